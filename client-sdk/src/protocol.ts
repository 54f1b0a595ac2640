/**
 * Haven's wire protocol: socket.io event names, payload types and error codes. The one contract
 * between the SDK and the server (the server imports these types and validates every payload
 * against schemas typed by them). Depends on nothing.
 *
 * A request is a socket.io event with an acknowledgement: the client emits
 * `socket.emit(name, request, ack)` and the server answers `ack({ ok: true, data })` or
 * `ack({ ok: false, error: { code, message } })`. Notifications flow from server to client.
 */

/** Version of this protocol; the server refuses clients of another major version. */
export const protocolVersion = 1;

/** socket.io path the server listens on. */
export const socketPath = '/socket.io';

export const errorCodes = [
  /** Missing, malformed, expired, revoked or otherwise unacceptable access token. */
  'UNAUTHORIZED',
  /** The caller's role or capabilities do not allow this. */
  'FORBIDDEN',
  /** The payload does not match the request's schema. */
  'INVALID_REQUEST',
  /** No such room, transport, producer or consumer. */
  'NOT_FOUND',
  /** The room is locked: nobody new gets in. */
  'ROOM_LOCKED',
  /** The room is at capacity for the caller's role. */
  'ROOM_FULL',
  /** Too many requests from this connection. */
  'RATE_LIMITED',
  /** The request is valid but not now (e.g. produce before join). */
  'INVALID_STATE',
  /** The event name is not part of the protocol. */
  'UNKNOWN_EVENT',
  /** Something failed on the server; nothing was changed. */
  'INTERNAL',
  /** The room is served by another node: connect to `url` (the SDK does by itself). */
  'REDIRECT',
  /** Not now, try again in a few seconds: the room is moving to another node, or nodes are shutting down. */
  'UNAVAILABLE',
  /** An HTTP body over the limit (64 KiB): nothing was read or changed. */
  'PAYLOAD_TOO_LARGE',
] as const;
export type ErrorCode = (typeof errorCodes)[number];

export interface ProtocolError {
  code: ErrorCode;
  message: string;
  /** With `REDIRECT`: the node serving the room. */
  url?: string;
  /** With `UNAVAILABLE`: in how many ms trying again makes sense (the SDK waits that long). */
  retryAfterMs?: number;
  /** With `INVALID_REQUEST` to `acceptConsent` of a version no longer in force: the text now in force. */
  consent?: ConsentInfo;
  /** With `INTERNAL`: the id of the server's log line about the fault, to quote when reporting it. */
  errorId?: string;
}

export type Ack<T> = { ok: true; data: T } | { ok: false; error: ProtocolError };

export type Role = 'facilitator' | 'participant' | 'observer';
export type RoomKind = 'group' | 'individual' | 'education';
export type MediaKind = 'audio' | 'video';
export type TrackSource = 'microphone' | 'camera' | 'screen';

/** What a participant may do, from the token's `caps` claim (or the role's defaults). */
export interface Capabilities {
  publishAudio: boolean;
  publishVideo: boolean;
  publishScreen: boolean;
  chat: boolean;
}

/** A published track as others see it. */
export interface TrackInfo {
  producerId: string;
  participantId: string;
  kind: MediaKind;
  source: TrackSource;
  paused: boolean;
}

/** A participant as others see it: a pseudonymous id and a display name, never more. */
export interface ParticipantInfo {
  /** The token's `sub`: an opaque id chosen by the embedding app. */
  id: string;
  /** Display name from the token's `name` claim. */
  name: string;
  role: Role;
  tracks: TrackInfo[];
}

export interface RoomInfo {
  id: string;
  kind: RoomKind;
  title: string;
}

/** ICE server for restrictive networks (TURN with time-limited credentials). */
export interface IceServer {
  urls: string[];
  username?: string;
  credential?: string;
}

/* ---- Requests (client → server, acknowledged) ------------------------------------------- */

export interface JoinRequest {
  /** The SDK's protocol version. */
  protocolVersion: number;
}

/** The room's confidentiality and consent text, which a participant accepts before waiting. */
export interface ConsentInfo {
  /** Increases each time the clinic changes the text. */
  version: number;
  /** SHA-256 of the text (hex): what the audit log records as accepted. */
  hash: string;
  text: string;
}

/** What someone in the waiting room is told. */
export interface WaitingInfo {
  /** Whether a facilitator is in the session (if not, say so: nobody can admit yet). */
  facilitatorPresent: boolean;
  /** The facilitators' latest message to everyone waiting ("we start in 5 minutes"). */
  message?: string;
  /**
   * Why this person is told again: a facilitator moved them back (`movedByFacilitator`), or the
   * session holds as many participants as it admits and they stay waiting until a place frees
   * up (`sessionFull`).
   */
  reason?: 'movedByFacilitator' | 'sessionFull';
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

/** The session as an admitted participant sees it when entering. */
export interface SessionState {
  room: RoomInfo;
  self: ParticipantInfo;
  capabilities: Capabilities;
  /** Everyone else in the room the caller may see, with their tracks. */
  participants: ParticipantInfo[];
  /** mediasoup RtpCapabilities of the room's router. */
  routerRtpCapabilities: unknown;
  iceServers: IceServer[];
  /** True when this join took back a place kept during the reconnection grace window. */
  resumed: boolean;
  /** How long the server keeps a place after a connection drops, in ms. */
  reconnectGraceMs: number;
  /** Facilitator-controlled audio: participants unmute only when a facilitator asked them to. */
  audioMode: AudioMode;
  locked: boolean;
  spotlight: string | null;
  /** Raised hands, oldest first (facilitators see all; others see their own). */
  hands: RaisedHand[];
  /** Who is waiting to be admitted (facilitators only; empty for others). */
  waiting: WaitingEntry[];
}

export type AudioMode = 'open' | 'controlled';

export interface RaisedHand {
  participantId: string;
  /** Server time (ms since the epoch). */
  raisedAt: number;
}

/** Someone in the waiting room, as facilitators see them. */
export interface WaitingEntry {
  participantId: string;
  name: string;
  /** Server time (ms since the epoch). */
  waitingSince: number;
}

/**
 * One person in a facilitator's live attendance view, with the figures billing uses (union of
 * present intervals; a drop recovered within the reconnection grace counts as present).
 */
export interface AttendanceEntry {
  participantId: string;
  /** Display name while the room knows this person (in the session, waiting, or within the grace); else null. */
  name: string | null;
  /** While the room knows this person, their token's; after, their last admission's; else null (a no-show). */
  role: Role | null;
  /** In the session now (a dropped connection still inside its grace window counts, see `reconnecting`). */
  present: boolean;
  /** Server time (ms since the epoch) the current present stretch began; null if not present. */
  presentSince: number | null;
  /** Whole seconds present in this session so far, at the snapshot's `asOf`. */
  secondsPresent: number;
  /** The connection dropped and the room keeps the place for the grace window. */
  reconnecting: boolean;
}

/** Who is present, since when, seconds so far: facilitators only. */
export interface AttendanceSnapshot {
  /** Server time (ms since the epoch) the figures are computed at. */
  asOf: number;
  /** Everyone seen in the session, and the roster's no-shows, sorted by participant id. */
  participants: AttendanceEntry[];
}

export type ChatAudience = 'everyone' | 'facilitators';
export interface ChatMessage {
  id: string;
  from: string;
  /** `everyone`, `facilitators`, or a participant id for a private message (where the room allows it). */
  to: ChatAudience | string;
  text: string;
  /** Server time (ms since the epoch). */
  sentAt: number;
}

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
}
export type ModerationRequestName = keyof ModerationRequests;

/** Views only a facilitator may ask for (anyone else is answered FORBIDDEN); they change nothing. */
export interface FacilitatorQueries {
  /** Who is present now, since when, seconds so far (`INTERNAL` when the server cannot read attendance). */
  liveAttendance: [Empty, AttendanceSnapshot];
}

/** Every request: its payload and the `data` of its successful acknowledgement. */
export interface ClientRequests extends ModerationRequests, FacilitatorQueries {
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
  leave: [Empty, Empty];
}
export type RequestName = keyof ClientRequests;
export type RequestOf<K extends RequestName> = ClientRequests[K][0];
export type ResponseOf<K extends RequestName> = ClientRequests[K][1];

/* ---- Notifications (server → client) ---------------------------------------------------- */

export type LeaveReason = 'left' | 'disconnected' | 'removed' | 'sessionEnded' | 'movedToWaitingRoom';

export interface ServerNotifications {
  participantJoined: [ParticipantInfo];
  participantLeft: [{ participantId: string; reason: LeaveReason }];
  trackPublished: [TrackInfo];
  trackUnpublished: [{ producerId: string; participantId: string }];
  /** A producer was paused or resumed by its owner (or a facilitator). */
  trackUpdated: [TrackInfo];
  /** The server closed one of the caller's consumers (its producer went away). */
  consumerClosed: [{ consumerId: string }];
  /** Loudest participant, or null in silence. */
  activeSpeaker: [{ participantId: string | null }];
  /**
   * The server lost the caller's media (a media worker failed) and closed its transports: create
   * new transports, publish again and consume again, exactly as after a resumed join.
   */
  mediaReset: [{ reason: string }];
  /** The session is over for everyone. */
  sessionEnded: [{ reason: string }];
  /** The same identity joined from another connection; this one is closed. */
  replaced: [Empty];
  /**
   * This node stops serving the room (it shuts down, or another node took the room over): the
   * connection closes and the SDK reconnects, to whichever node serves the room now.
   */
  moved: [{ reason: 'draining' | 'failover' }];

  /* Waiting room: to the person waiting. */
  /** In the waiting room (first arrival, or moved back), or what it says changed. */
  waiting: [WaitingInfo];
  /** Admitted: set up media with this. */
  admitted: [SessionState];
  /** Not admitted; the connection closes. */
  denied: [{ reason?: string }];

  /* Waiting room: to facilitators. */
  waitingRoomChanged: [{ waiting: WaitingEntry[] }];
  /** Facilitators who asked for `liveAttendance`: it changed (about a second after, several changes in one). */
  attendanceUpdated: [AttendanceSnapshot];

  /* Moderation: to the participant concerned. */
  /** A facilitator muted one of this participant's tracks (the server paused it). */
  mutedByFacilitator: [{ source: TrackSource; producerId: string }];
  /** A facilitator asks this participant to unmute: only they can (resume their producer). */
  unmuteRequested: [{ by: string }];
  /** Removed by a facilitator; the connection closes. */
  removed: [{ banned: boolean }];

  /* Moderation: to everyone admitted. */
  roomLocked: [{ locked: boolean }];
  audioModeChanged: [{ mode: AudioMode }];
  displayNameChanged: [{ participantId: string; name: string }];
  spotlightChanged: [{ participantId: string | null }];
  handRaised: [RaisedHand];
  handLowered: [{ participantId: string }];
  chatMessage: [ChatMessage];
  chatMessageDeleted: [{ messageId: string }];
}
export type NotificationName = keyof ServerNotifications;

/* ---- socket.io typed event maps ---------------------------------------------------------- */

export type ClientToServerEvents = {
  [K in RequestName]: (request: RequestOf<K>, ack: (response: Ack<ResponseOf<K>>) => void) => void;
};
export type ServerToClientEvents = {
  [K in NotificationName]: (...args: ServerNotifications[K]) => void;
};

/** What the client sends in the socket.io handshake (`io(url, { auth })`). */
export interface HandshakeAuth {
  token: string;
}

/* ---- Access tokens ------------------------------------------------------------------------ */

/** Claims of a Haven access token (a JWT minted by the embedding app's backend). */
export interface AccessTokenClaims {
  /** Opaque, pseudonymous participant id: never a real name. */
  sub: string;
  /** Display name shown to others in the room. */
  name: string;
  /** Room id. */
  room: string;
  role: Role;
  caps?: Partial<Capabilities>;
  iss: string;
  aud: string | string[];
  exp: number;
  iat?: number;
  nbf?: number;
  jti?: string;
}
