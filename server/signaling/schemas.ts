/**
 * The schema of every signaling request, typed by the protocol module: a payload that does not
 * match is refused with INVALID_REQUEST before anything else runs. mediasoup's own parameter
 * objects are checked here for shape and size only; mediasoup validates their contents.
 */
import { ECDH } from 'node:crypto';
import { z } from 'zod';
import {
  e2eePublicKeyPattern,
  maxBreakoutDurationS,
  maxBreakoutGroupSize,
  maxBreakoutGroups,
  maxBreakoutNameLength,
  maxBroadcastLength,
  maxE2eeRecipients,
  maxE2eeWrappedKeyLength,
  maxEncryptedBroadcastLength,
  maxEncryptedChatLength,
  maxIdLength,
  type RequestName,
  type RequestOf,
} from '../../client-sdk/src/protocol/index.ts';

const id = z.string().min(1).max(maxIdLength);
const target = z.strictObject({ participantId: id });
/** Up to an encrypted message's length: the room decides (clear text is shorter, and refused in an E2EE room). */
const chatText = z.string().trim().min(1).max(maxEncryptedChatLength);
/** An ECDH P-256 public key: the uncompressed point, base64, on the curve. */
const e2eePublicKey = z.string().regex(e2eePublicKeyPattern).refine(isP256Point, 'not a point on P-256');
/** An E2EE epoch: what a frame's 32-bit trailer can carry; whether it is new is the room's to say. */
const epoch = z.number().int().min(0).max(0xffff_ffff);
const wrappedKeys = z
  .array(z.strictObject({ participantId: id, wrapped: z.base64().min(1).max(maxE2eeWrappedKeyLength) }))
  .max(maxE2eeRecipients)
  .refine((keys) => new Set(keys.map((k) => k.participantId)).size === keys.length, 'one key per participant');

/** Groups by hand: named, each with its members (whether they are in the session is the room's to say). */
const plannedGroups = z
  .array(
    z.strictObject({
      name: z.string().trim().min(1).max(maxBreakoutNameLength),
      members: z.array(id).max(1_000),
    }),
  )
  .min(1)
  .max(maxBreakoutGroups);
const groupCount = z.number().int().min(1).max(maxBreakoutGroups);
const breakoutId = id.nullable();

function isP256Point(publicKey: string): boolean {
  try {
    ECDH.convertKey(publicKey, 'prime256v1', 'base64', 'base64', 'uncompressed');
    return true;
  } catch {
    return false;
  }
}
/**
 * A mediasoup parameters object (RTP, DTLS, capabilities): a plain JSON object (not binary data
 * sent as an attachment), not too big (nor too deep to measure).
 */
const mediasoupObject = z
  .custom<Record<string, unknown>>(isJsonObject, 'must be a JSON object')
  .refine((v) => serializedLength(v) <= 32_768, 'parameters too large');

function isJsonObject(value: unknown): boolean {
  return typeof value === 'object' && value !== null && Object.getPrototypeOf(value) === Object.prototype;
}

/** The JSON length of a value; Infinity for one JSON.stringify cannot walk (nested deeper than the stack). */
function serializedLength(value: unknown): number {
  try {
    return JSON.stringify(value).length;
  } catch {
    return Number.POSITIVE_INFINITY;
  }
}

export const requestSchemas: { [K in RequestName]: z.ZodType<RequestOf<K>> } = {
  join: z.strictObject({
    protocolVersion: z.number().int().positive(),
    e2ee: z.strictObject({ publicKey: e2eePublicKey }).optional(),
  }),
  createTransport: z.strictObject({ direction: z.enum(['send', 'recv']) }),
  connectTransport: z.strictObject({ transportId: id, dtlsParameters: mediasoupObject }),
  restartIce: z.strictObject({ transportId: id }),
  createPlainTransport: z.strictObject({ direction: z.enum(['send', 'recv']) }),
  connectPlainTransport: z.strictObject({
    transportId: id,
    ip: z.union([z.ipv4(), z.ipv6()]),
    port: z.number().int().min(1).max(65_535),
    srtpParameters: z.strictObject({
      cryptoSuite: z.literal('AES_CM_128_HMAC_SHA1_80'),
      keyBase64: z.base64().length(40),
    }),
  }),
  produce: z.strictObject({
    transportId: id,
    kind: z.enum(['audio', 'video']),
    source: z.enum(['microphone', 'camera', 'screen']),
    rtpParameters: mediasoupObject,
  }),
  pauseProducer: z.strictObject({ producerId: id }),
  resumeProducer: z.strictObject({ producerId: id }),
  closeProducer: z.strictObject({ producerId: id }),
  consume: z.strictObject({ transportId: id, producerId: id, rtpCapabilities: mediasoupObject }),
  resumeConsumer: z.strictObject({ consumerId: id }),
  pauseConsumer: z.strictObject({ consumerId: id }),
  setPreferredSize: z.strictObject({
    consumerId: id,
    width: z.number().int().min(0).max(16_384),
    height: z.number().int().min(0).max(16_384),
  }),
  setAudioOnly: z.strictObject({ enabled: z.boolean() }),
  leave: z.strictObject({}),
  acceptConsent: z.strictObject({ version: z.number().int().positive() }),
  raiseHand: z.strictObject({}),
  lowerHand: z.strictObject({ participantId: id.optional() }),
  sendChat: z.strictObject({ text: chatText, to: z.union([z.enum(['everyone', 'facilitators']), id]) }),
  admit: target,
  admitAll: z.strictObject({}),
  deny: z.strictObject({ participantId: id, reason: z.string().trim().min(1).max(200).optional() }),
  messageWaitingRoom: z.strictObject({ text: z.string().trim().min(1).max(500) }),
  moveToWaitingRoom: target,
  mute: target,
  muteAll: z.strictObject({}),
  suggestAudioOnly: target,
  setAudioMode: z.strictObject({ mode: z.enum(['open', 'controlled']) }),
  requestUnmute: target,
  disableCamera: target,
  stopScreenShare: target,
  remove: z.strictObject({ participantId: id, ban: z.boolean().optional() }),
  lockRoom: z.strictObject({ locked: z.boolean() }),
  endSession: z.strictObject({}),
  setDisplayName: z.strictObject({ participantId: id, name: z.string().trim().min(1).max(80) }),
  spotlight: z.strictObject({ participantId: id.nullable() }),
  deleteChatMessage: z.strictObject({ messageId: id }),
  liveAttendance: z.strictObject({}),
  e2eeDistribute: z.strictObject({ epoch, keys: wrappedKeys, breakoutId: breakoutId.optional() }),
  e2eeKeyReceived: z.strictObject({ epoch }),
  createBreakouts: z.union([
    z.strictObject({ groups: plannedGroups }),
    z.strictObject({ count: groupCount }),
    z.strictObject({ perGroup: z.number().int().min(1).max(maxBreakoutGroupSize) }),
  ]),
  updateBreakouts: z.strictObject({ groups: plannedGroups }),
  startBreakouts: z.strictObject({
    durationS: z.number().int().min(10).max(maxBreakoutDurationS).optional(),
    noticeS: z.number().int().min(0).max(maxBreakoutDurationS).optional(),
  }),
  moveToBreakout: z.strictObject({ participantId: id, breakoutId }),
  visitBreakout: z.strictObject({ breakoutId }),
  broadcastToBreakouts: z.union([
    z.strictObject({ text: z.string().trim().min(1).max(maxBroadcastLength) }),
    // E2EE rooms: a copy per place (the main room and every group), each checked by the room.
    z.strictObject({
      texts: z
        .array(z.strictObject({ breakoutId, text: z.string().max(maxEncryptedBroadcastLength) }))
        .min(1)
        .max(maxBreakoutGroups + 1),
    }),
  ]),
  recallBreakouts: z.strictObject({}),
  askForHelp: z.strictObject({}),
};

export const requestNames = Object.keys(requestSchemas) as RequestName[];

export function isRequestName(name: string): name is RequestName {
  return Object.hasOwn(requestSchemas, name);
}
