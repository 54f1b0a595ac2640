/** What the protocol talks about: roles, rooms, participants, tracks, the session, tokens. */
import type { BreakoutPlace, BreakoutsState } from './breakouts.ts';

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
  /** End-to-end encrypted: media and chat are encrypted by the clients with keys the server never sees. */
  e2ee: boolean;
  /**
   * Participants see each other's connection quality (`connectionQualityChanged`); otherwise only
   * their own, and facilitators everyone's.
   */
  shareConnectionQuality: boolean;
}

/* ---- Poor networks ------------------------------------------------------------------------ */

/**
 * How well a participant's connection carries the session, as the server measures it (loss,
 * jitter and round trip from RTCP, the bandwidth estimate, what arrives against what should):
 * `lost` while no media or signaling arrives from them.
 */
export type ConnectionQuality = 'excellent' | 'good' | 'poor' | 'lost';

/** Which way the connection is weak: what the person sends (`upload`), receives (`download`), or both. */
export type ConnectionQualityReason = 'upload' | 'download' | 'both';

export interface ConnectionQualityInfo {
  participantId: string;
  quality: ConnectionQuality;
  /** Null when nothing is wrong (`excellent`). */
  reason: ConnectionQualityReason | null;
}

/** Why video is not received: the person asked (`self`), or their downlink is too weak (`bandwidth`). */
export type AudioOnlyReason = 'self' | 'bandwidth';

export interface AudioOnlyState {
  enabled: boolean;
  /** What turned it on (or, when off, what last turned it on); null when it never was. */
  reason: AudioOnlyReason | null;
}

/** Why the server holds back one of the caller's video consumers (audio is never held back). */
export type ConsumerPauseReason = 'bandwidth' | 'audioOnly';

/** ICE server for restrictive networks (TURN with time-limited credentials). */
export interface IceServer {
  urls: string[];
  username?: string;
  credential?: string;
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
  /**
   * In an end-to-end encrypted room: who takes part in the key exchange of the caller's own space
   * (`e2eeRoster` tells of changes). A facilitator, a member of every space, is told the other
   * spaces' rosters as `e2eeRoster` notifications: its arrival is a new revision in each of them,
   * and they are sent with the join's answer (before it, as any notification of the admission).
   */
  e2ee?: E2eeRoster;
  /** The connection qualities the caller may see (its own, and others' as `shareConnectionQuality` allows). */
  connectionQuality: ConnectionQualityInfo[];
  /** Whether the caller receives audio only. */
  audioOnly: AudioOnlyState;
  /** Where the caller stands in the session's breakouts (`participants` are those of its group). */
  breakout: BreakoutPlace;
  /** The whole of the session's breakouts: facilitators only (null for others). */
  breakouts: BreakoutsState | null;
}

/* ---- End-to-end encryption ------------------------------------------------------------------ */

/** One member of an E2EE room's key exchange: someone admitted, with the public key its client sent at join. */
export interface E2eeMember {
  /** Null for a member the recipient may not see (a hidden observer): their key still counts. */
  participantId: string | null;
  /** The client's ECDH P-256 public key: the 65-byte uncompressed point, base64 (`e2eePublicKeyPattern`). */
  publicKey: string;
}

/**
 * Who holds the keys of one space of an E2EE room, as the server relays it: everyone admitted (in
 * the session, or within their reconnection grace) with their public key whose place is that
 * space, plus every facilitator wherever they are (they receive every group's chat), and the key
 * leader, who wraps each epoch's key for every other member. Nobody waiting or at the consent
 * gate is a member. Without breakouts there is one space, the main room. A member is told its
 * own space's roster, a facilitator every space's; a group's space that ends (nobody is there any
 * more) is told to facilitators once more with no members and a null leader: forget its keys.
 */
export interface E2eeRoster {
  /** The space: null for the main room, else the breakout group's id. */
  breakoutId: string | null;
  /**
   * Who distributes keys: the longest-present connected facilitator, else the longest-present
   * connected member; null when nobody admitted is connected.
   */
  leader: string | null;
  /** Everyone admitted with a key, longest-present first (the leader's own entry included). */
  members: E2eeMember[];
  /**
   * Increases with every change of the roster; the leader starts a new epoch for each. One counter
   * for the room: a space's roster told later (a move, say) always has a higher revision.
   */
  revision: number;
  /**
   * The latest epoch the server relayed keys for in the room, any space (0 before any); a new
   * leader continues above it. Epoch numbers are unique across the room's spaces.
   */
  epoch: number;
  /** How often the leader starts a new epoch even when nothing changed, in ms. */
  rotationIntervalMs: number;
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
  /** In an E2EE room, as the server relays it: ciphertext (`e2eeChatPattern`); the SDK decrypts it. */
  text: string;
  /** Server time (ms since the epoch). */
  sentAt: number;
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
