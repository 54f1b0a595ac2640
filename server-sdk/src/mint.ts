/**
 * Minting access tokens: what a clinic's backend (in Node) calls to let one person into one room.
 * The claims are checked with the verifier's own schema, so a token minted here is refused only for
 * a wrong key, issuer or audience, or a lifetime above the server's cap, never for its shape.
 */
import { createPrivateKey, type KeyObject, randomUUID } from 'node:crypto';
import jwt from 'jsonwebtoken';
import type { AccessTokenClaims, Capabilities, Role } from '../../client-sdk/src/protocol/index.ts';
import { accessTokenClaimsSchema } from './claims.ts';
import { algorithmForKey, type TokenAlgorithm } from './keys.ts';

export interface MintOptions {
  /**
   * HS256 shared secret (32+ characters): the same value as Haven's `auth.secret`
   * (`HAVEN_AUTH_SECRET`). Exactly one of `secret` and `privateKeyPem`. No default.
   */
  secret?: string;
  /**
   * PEM private key (RSA 2048+ bits, or EC P-256) whose public key Haven verifies with
   * (`auth.publicKeyFile`). Exactly one of `secret` and `privateKeyPem`. No default.
   */
  privateKeyPem?: string;
  /**
   * Signing algorithm. Default: `HS256` with a `secret`; with a `privateKeyPem`, `RS256` for an RSA
   * key and `ES256` for an EC P-256 key. Any other combination is refused.
   */
  algorithm?: TokenAlgorithm;
  /** `iss` claim: must equal Haven's `auth.issuer`. Required. */
  issuer: string;
  /** `aud` claim: must equal Haven's `auth.audience`. Required. */
  audience: string;
  /**
   * `sub` claim: the participant's opaque, pseudonymous id (never a real name or a medical record
   * number); 1–128 characters from `A-Za-z0-9._:-`, not dots alone. Required.
   */
  sub: string;
  /** `name` claim: display name shown to the others in the room (1–256 characters). Required. */
  name: string;
  /** `room` claim: the room id; 1–128 characters from `A-Za-z0-9._:-`, not dots alone. Required. */
  room: string;
  /** `role` claim. Required. */
  role: Role;
  /**
   * `caps` claim: overrides of the role's default capabilities, field by field. Default: none (the
   * role's defaults: a facilitator may do everything, a participant everything but share a screen,
   * an observer nothing).
   */
  caps?: Partial<Capabilities>;
  /** Lifetime in seconds (`exp` = `iat` + `ttlS`); Haven refuses more than `auth.maxTokenLifetimeS`. Default 3600. */
  ttlS?: number;
  /** `jti` claim: the token's id, which Haven can revoke. Default: a random UUID. */
  jti?: string;
  /** Seconds from now before which the token is refused (`nbf` = `iat` + `notBefore`). Default: none, valid at once. */
  notBefore?: number;
}

/** Signs a Haven access token; throws a TypeError naming the first bad option. */
export function mintAccessToken(options: MintOptions): string {
  const { key, algorithm } = signingKey(options);
  for (const option of ['issuer', 'audience'] as const) {
    if (typeof options[option] !== 'string' || options[option] === '')
      throw new TypeError(`${option} must not be empty`);
  }
  const ttlS = options.ttlS ?? 3600;
  if (!Number.isInteger(ttlS) || ttlS <= 0) throw new TypeError('ttlS must be a positive integer');
  const notBefore = options.notBefore;
  if (notBefore !== undefined && !(Number.isFinite(notBefore) && notBefore >= 0)) {
    throw new TypeError('notBefore must be a number of seconds, zero or more');
  }

  const iat = Math.floor(Date.now() / 1000);
  const claims: AccessTokenClaims = {
    iss: options.issuer,
    aud: options.audience,
    sub: options.sub,
    name: options.name,
    room: options.room,
    role: options.role,
    iat,
    exp: iat + ttlS,
    jti: options.jti ?? randomUUID(),
  };
  if (options.caps !== undefined) claims.caps = options.caps;
  if (notBefore !== undefined) claims.nbf = iat + notBefore;

  const parsed = accessTokenClaimsSchema.safeParse(claims);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new TypeError(`invalid ${issue?.path.join('.') || 'claims'}: ${issue?.message}`);
  }
  // `claims` as given (not zod's copy, which trims the name): what the caller asked for is what is signed.
  return jwt.sign(claims, key, { algorithm });
}

function signingKey(options: MintOptions): { key: KeyObject | string; algorithm: TokenAlgorithm } {
  const { secret, privateKeyPem, algorithm } = options;
  if ((secret === undefined) === (privateKeyPem === undefined)) {
    throw new TypeError('give exactly one of secret and privateKeyPem');
  }
  if (secret !== undefined) {
    if (typeof secret !== 'string' || secret.length < 32) throw new TypeError('secret must have 32+ characters');
    if (algorithm !== undefined && algorithm !== 'HS256') throw new TypeError(`a secret signs HS256, not ${algorithm}`);
    return { key: secret, algorithm: 'HS256' };
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(privateKeyPem as string);
  } catch {
    throw new TypeError('privateKeyPem is not a PEM private key');
  }
  const keyAlgorithm = algorithmForKey(key);
  if (algorithm !== undefined && algorithm !== keyAlgorithm) {
    throw new TypeError(`this key signs ${keyAlgorithm}, not ${algorithm}`);
  }
  return { key, algorithm: keyAlgorithm };
}
