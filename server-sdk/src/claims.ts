/**
 * The access token's claims as Haven reads them: the one schema that minting (mint.ts) and Haven's
 * verifier (server/auth/tokens.ts) both check with, so a minted token never fails on its shape.
 */
import { z } from 'zod';
import { idPattern, maxIdLength } from '../../client-sdk/src/protocol/index.ts';

/** `sub` and `room` end up in Redis keys and logs: a small, safe alphabet. */
const id = z
  .string()
  .min(1, 'must not be empty')
  .max(maxIdLength, `at most ${maxIdLength} characters`)
  .regex(idPattern, 'only letters, digits and . _ : -');
const numericDate = z.number();
const cap = z.boolean().optional();

/** The claims Haven reads; other claims are allowed (and dropped). Keys in the order they are checked. */
export const accessTokenClaimsSchema = z.object({
  exp: numericDate,
  iss: z.string(),
  aud: z.union([z.string(), z.array(z.string())]),
  sub: id,
  room: id,
  role: z.enum(['facilitator', 'participant', 'observer']),
  name: z.string().trim().min(1, 'must not be empty').max(256, 'at most 256 characters'),
  caps: z.strictObject({ publishAudio: cap, publishVideo: cap, publishScreen: cap, chat: cap }).optional(),
  iat: numericDate.optional(),
  nbf: numericDate.optional(),
  jti: z.string().min(1, 'must not be empty').max(256, 'at most 256 characters').optional(),
});
