/** Notifications (server → client) and the socket.io typed event maps. */
import type { BreakoutNotifications } from './breakouts.ts';
import type { Ack } from './errors.ts';
import type {
  AttendanceSnapshot,
  AudioMode,
  AudioOnlyState,
  ChatMessage,
  ConnectionQualityInfo,
  ConsumerPauseReason,
  E2eeRoster,
  ParticipantInfo,
  RaisedHand,
  SessionState,
  TrackInfo,
  TrackSource,
  WaitingEntry,
  WaitingInfo,
} from './model.ts';
import type { Empty, RequestName, RequestOf, ResponseOf } from './requests.ts';

/* ---- Notifications (server → client) ---------------------------------------------------- */

/** Why someone left one's view: `movedToBreakout` when they (or the one told) went to another group or the main room. */
export type LeaveReason =
  | 'left'
  | 'disconnected'
  | 'removed'
  | 'sessionEnded'
  | 'movedToWaitingRoom'
  | 'movedToBreakout';

export interface ServerNotifications extends BreakoutNotifications {
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

  /* Poor networks. */
  /**
   * A participant's connection quality changed: told to that person, to facilitators, and to
   * everyone admitted when the room has `shareConnectionQuality`.
   */
  connectionQualityChanged: [ConnectionQualityInfo];
  /** To the person: they now receive audio only, or video again (their choice, or their downlink's). */
  audioOnlyChanged: [AudioOnlyState];
  /** To the person: a facilitator suggests receiving audio only (`setAudioOnly`). */
  audioOnlySuggested: [{ by: string }];
  /**
   * To the receiver: the server holds back one of its video consumers (its downlink cannot carry
   * it, or audio-only), or sends it again (`reason` null).
   */
  consumerPaused: [{ consumerId: string; reason: ConsumerPauseReason | null }];
  /**
   * To a publisher (dynacast): send simulcast encodings 0 to `maxSpatialLayer` of this producer
   * and turn the others off, since nobody receives them (`RTCRtpEncodingParameters.active`).
   */
  publisherLayers: [{ producerId: string; maxSpatialLayer: number }];

  /*
   * End-to-end encryption (E2EE rooms): to the members of one key space (`breakoutId`: null for
   * the main room, else a breakout group), that is those in it and every facilitator.
   */
  /** A space's members or leader changed: its leader starts a new epoch (see `E2eeRoster`). */
  e2eeRoster: [E2eeRoster];
  /** To one member: the leader's key for `epoch` of space `breakoutId`, wrapped for this member's public key. */
  e2eeKey: [{ epoch: number; from: string; wrapped: string; breakoutId: string | null }];
  /**
   * Every connected member of space `breakoutId` has the key of `epoch` (or the wait timed out):
   * those whose own space it is send with it from now on; facilitators elsewhere decrypt with it.
   */
  e2eeEpochActive: [{ epoch: number; breakoutId: string | null }];
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
