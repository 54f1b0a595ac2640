/** Requests (client → server, each acknowledged): payloads and the data of their answers. */
import type { BreakoutRequests } from './breakouts.ts';
import type {
  AttendanceSnapshot,
  AudioMode,
  ChatAudience,
  ConsentInfo,
  IceServer,
  MediaKind,
  SessionState,
  TrackSource,
  WaitingInfo,
} from './model.ts';

/* ---- Requests (client → server, acknowledged) ------------------------------------------- */

export interface JoinRequest {
  /** The SDK's protocol version. */
  protocolVersion: number;
  /**
   * Sent by clients that can encrypt media: their ECDH P-256 public key (`e2eePublicKeyPattern`).
   * An E2EE room refuses a join without it (`E2EE_UNSUPPORTED`); other rooms ignore it.
   */
  e2ee?: { publicKey: string };
}

/** The answer to `admitAll`: who came in, and who was left waiting and why. */
export interface AdmitAllResponse {
  /** How many were admitted (`admittedIds.length`). */
  admitted: number;
  /** Those admitted, in the order they had arrived. */
  admittedIds: string[];
  /** Those still waiting, in arrival order: `ROOM_FULL` when the room is at its capacity. */
  leftWaiting: { participantId: string; reason: 'ROOM_FULL' }[];
}

/**
 * Where a join lands: in the session (`admitted`, with everything needed to set up media), at the
 * consent gate (`consent`: call `acceptConsent`), or in the waiting room (`waiting`: the
 * `admitted` notification follows when a facilitator admits). `reconnectGraceMs`: how long the
 * server keeps this place after a connection drops (in the session: `session.reconnectGraceMs`).
 */
export type JoinResponse =
  | { stage: 'admitted'; session: SessionState }
  | { stage: 'consent'; consent: ConsentInfo; reconnectGraceMs?: number }
  | { stage: 'waiting'; waiting: WaitingInfo; reconnectGraceMs?: number };

export type TransportDirection = 'send' | 'recv';
export interface CreateTransportRequest {
  direction: TransportDirection;
}
/** Parameters for mediasoup-client's `createSendTransport` / `createRecvTransport`. */
export interface TransportOptions {
  id: string;
  iceParameters: unknown;
  iceCandidates: unknown[];
  dtlsParameters: unknown;
  sctpParameters?: unknown;
  /** TURN servers with credentials fresh for this transport (empty without TURN). */
  iceServers: IceServer[];
}

export interface ConnectTransportRequest {
  transportId: string;
  dtlsParameters: unknown;
}

/** SRTP keying of a plain transport (RFC 4568 style: a 30-byte master key and salt). */
export interface SrtpKeying {
  cryptoSuite: 'AES_CM_128_HMAC_SHA1_80';
  keyBase64: string;
}
/**
 * A plain RTP transport (SRTP, no ICE or DTLS): where the node allows them, what a load
 * generator or a media gateway sends RTP to. `srtpParameters` is the key the node encrypts with.
 */
export interface PlainTransportOptions {
  id: string;
  ip: string;
  port: number;
  srtpParameters: SrtpKeying;
}
/** Where the node sends this transport's RTP, and the key the caller encrypts with. */
export interface ConnectPlainTransportRequest {
  transportId: string;
  ip: string;
  port: number;
  srtpParameters: SrtpKeying;
}
export interface RestartIceRequest {
  transportId: string;
}
export interface RestartIceResponse {
  iceParameters: unknown;
  /** Fresh TURN credentials: the transport's may have expired (`turn.ttlS`) since it was made. */
  iceServers: IceServer[];
}

export interface ProduceRequest {
  transportId: string;
  kind: MediaKind;
  source: TrackSource;
  rtpParameters: unknown;
}
export interface ProduceResponse {
  producerId: string;
}

export interface ProducerRequest {
  producerId: string;
}

export interface ConsumeRequest {
  transportId: string;
  producerId: string;
  /** The device's mediasoup RtpCapabilities. */
  rtpCapabilities: unknown;
}
/** Parameters for mediasoup-client's `transport.consume`; created paused, resume when ready. */
export interface ConsumeResponse {
  id: string;
  producerId: string;
  participantId: string;
  kind: MediaKind;
  source: TrackSource;
  rtpParameters: unknown;
}

export interface ConsumerRequest {
  consumerId: string;
}

/** A hint: the receiver renders this consumer at about this size (simulcast layer choice). */
export interface SetPreferredSizeRequest {
  consumerId: string;
  width: number;
  height: number;
}

export interface SetAudioOnlyRequest {
  enabled: boolean;
}

// biome-ignore lint/complexity/noBannedTypes: an empty object is the payload of requests that carry nothing.
export type Empty = {};

export interface AcceptConsentRequest {
  /** The version accepted: it must be the room's current one. */
  version: number;
}
export interface TargetRequest {
  participantId: string;
}
export interface DenyRequest {
  participantId: string;
  /** Shown to the person denied. */
  reason?: string;
}
export interface TextRequest {
  text: string;
}
export interface SendChatRequest {
  text: string;
  to: ChatAudience | string;
}
export interface RemoveRequest {
  participantId: string;
  /** Also refuse this person for the rest of the session (their token's `jti` is revoked). */
  ban?: boolean;
}
export interface SetDisplayNameRequest {
  participantId: string;
  name: string;
}
export interface SpotlightRequest {
  participantId: string | null;
}
export interface LockRequest {
  locked: boolean;
}
export interface AudioModeRequest {
  mode: AudioMode;
}
export interface MessageRequest {
  messageId: string;
}
export interface LowerHandRequest {
  /** Whose hand: omitted, one's own; a facilitator may lower anyone's. */
  participantId?: string;
}

/** One member's copy of an epoch key, wrapped by the leader for that member's public key (opaque to the server). */
export interface E2eeWrappedKey {
  participantId: string;
  /** Base64, at most `maxE2eeWrappedKeyLength` characters. */
  wrapped: string;
}
/**
 * The key leader of space `breakoutId` starts epoch `epoch` there (above every epoch the room has
 * had, in any space): the server relays each wrapped key to its member (`e2eeKey`) and, once every
 * connected recipient has it (`e2eeKeyReceived`, or after a short timeout), tells the space's
 * members to send with it (`e2eeEpochActive`). Keys for someone not a member of that space are not
 * relayed. Anyone but that space's leader (or a space that does not exist): FORBIDDEN.
 */
export interface E2eeDistributeRequest {
  epoch: number;
  keys: E2eeWrappedKey[];
  /** The space: null for the main room, else a breakout group's id. Omitted: the main room. */
  breakoutId?: string | null;
}
export interface E2eeDistributeResponse {
  /** The members the keys were relayed to (connected members of the roster). */
  delivered: string[];
}
/** A member has the key of `epoch` and can decrypt with it (epochs are unique across the room's spaces). */
export interface E2eeKeyReceivedRequest {
  epoch: number;
}

/**
 * Requests only a facilitator may make (anyone else is answered FORBIDDEN), each enforced and
 * audited by the server.
 */
export interface ModerationRequests {
  admit: [TargetRequest, Empty];
  admitAll: [Empty, AdmitAllResponse];
  deny: [DenyRequest, Empty];
  messageWaitingRoom: [TextRequest, Empty];
  moveToWaitingRoom: [TargetRequest, Empty];
  mute: [TargetRequest, Empty];
  muteAll: [Empty, { muted: number }];
  setAudioMode: [AudioModeRequest, Empty];
  requestUnmute: [TargetRequest, Empty];
  disableCamera: [TargetRequest, Empty];
  stopScreenShare: [TargetRequest, Empty];
  remove: [RemoveRequest, Empty];
  lockRoom: [LockRequest, Empty];
  endSession: [Empty, Empty];
  setDisplayName: [SetDisplayNameRequest, Empty];
  spotlight: [SpotlightRequest, Empty];
  deleteChatMessage: [MessageRequest, Empty];
  /** Suggests receiving audio only to someone admitted (`audioOnlySuggested`): only they can turn it on. */
  suggestAudioOnly: [TargetRequest, Empty];
}
export type ModerationRequestName = keyof ModerationRequests;

/** Views only a facilitator may ask for (anyone else is answered FORBIDDEN); they change nothing. */
export interface FacilitatorQueries {
  /** Who is present now, since when, seconds so far (`INTERNAL` when the server cannot read attendance). */
  liveAttendance: [Empty, AttendanceSnapshot];
}

/** Every request: its payload and the `data` of its successful acknowledgement. */
export interface ClientRequests extends ModerationRequests, FacilitatorQueries, BreakoutRequests {
  join: [JoinRequest, JoinResponse];
  acceptConsent: [AcceptConsentRequest, JoinResponse];
  raiseHand: [Empty, Empty];
  lowerHand: [LowerHandRequest, Empty];
  sendChat: [SendChatRequest, { messageId: string }];
  createTransport: [CreateTransportRequest, TransportOptions];
  connectTransport: [ConnectTransportRequest, Empty];
  /** Refused (FORBIDDEN) unless the node runs with `HAVEN_MEDIA_PLAIN_TRANSPORTS=true`. */
  createPlainTransport: [CreateTransportRequest, PlainTransportOptions];
  connectPlainTransport: [ConnectPlainTransportRequest, Empty];
  restartIce: [RestartIceRequest, RestartIceResponse];
  produce: [ProduceRequest, ProduceResponse];
  pauseProducer: [ProducerRequest, Empty];
  resumeProducer: [ProducerRequest, Empty];
  closeProducer: [ProducerRequest, Empty];
  consume: [ConsumeRequest, ConsumeResponse];
  resumeConsumer: [ConsumerRequest, Empty];
  pauseConsumer: [ConsumerRequest, Empty];
  setPreferredSize: [SetPreferredSizeRequest, Empty];
  /**
   * Receive audio only (`enabled`), or video again. Turning it off also stops the automatic
   * audio-only of a weak downlink until the downlink has recovered once.
   */
  setAudioOnly: [SetAudioOnlyRequest, Empty];
  /** E2EE rooms only (else INVALID_STATE); the key leader only (else FORBIDDEN). */
  e2eeDistribute: [E2eeDistributeRequest, E2eeDistributeResponse];
  /** E2EE rooms only (else INVALID_STATE). */
  e2eeKeyReceived: [E2eeKeyReceivedRequest, Empty];
  leave: [Empty, Empty];
}
export type RequestName = keyof ClientRequests;
export type RequestOf<K extends RequestName> = ClientRequests[K][0];
export type ResponseOf<K extends RequestName> = ClientRequests[K][1];
