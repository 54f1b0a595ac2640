/** The states, close reasons and events of a {@link SessionClient}. */
import type { LiveAttendance } from './attendance.ts';
import type { LocalTrack } from './participants/local-track.ts';
import type { RemoteParticipant } from './participants/participant.ts';
import type { RemoteTrack } from './participants/remote-track.ts';
import type {
  AudioMode,
  AudioOnlyState,
  BreakoutBroadcast,
  BreakoutHelpRequest,
  BreakoutPlace,
  BreakoutsChange,
  BreakoutsState,
  ChatMessage,
  ConnectionQuality,
  ConnectionQualityReason,
  ConsentInfo,
  LeaveReason,
  RaisedHand,
  TrackSource,
  WaitingEntry,
  WaitingInfo,
} from './protocol/index.ts';
import type { TypedEmitter } from './protocol/typed-emitter.ts';

/**
 * Where the client is:
 * - `disconnected`: not connected (initially, or after `connect()` failed or a connection that
 *   had not joined dropped): call `connect()`;
 * - `connecting`: `connect()` in progress;
 * - `connected`: connected, not in the room yet: call `join()`;
 * - `joining`: a `join` or `acceptConsent` request in progress, or the session being set up after
 *   admission;
 * - `consent`: at the consent gate: show `consent.text` (event `consentRequired`), then call
 *   `acceptConsent()`;
 * - `waiting`: in the waiting room until a facilitator admits (event `waiting`, again on every
 *   update); also after a facilitator moved this client back there;
 * - `joined`: in the room;
 * - `reconnecting`: the connection dropped after the join got an answer (in the room, at the
 *   consent gate or in the waiting room); the SDK is getting the place back;
 * - `closed`: over for good (`leave()`, session ended, denied, removed, replaced, reconnection
 *   failed). Create a new SessionClient to join again.
 */
export type ConnectionState =
  | 'disconnected'
  | 'connecting'
  | 'connected'
  | 'joining'
  | 'consent'
  | 'waiting'
  | 'joined'
  | 'reconnecting'
  | 'closed';

/**
 * Why a client closed:
 * `left` (`leave()`), `sessionEnded` (a facilitator ended it), `denied` (a facilitator turned
 * this client away from the waiting room), `removed` (a facilitator removed this participant),
 * `replaced` (the same identity joined from elsewhere), `serverDisconnect` (the server closed the
 * connection), `connectionLost` (the connection dropped and `reconnect` is `false`),
 * `reconnectFailed` (no reconnection within the grace window or `maxAttempts`, or the server
 * refused the rejoin), `failed` (setting up the session after admission failed, or the room is
 * end-to-end encrypted and this browser cannot encrypt (`E2EE_UNSUPPORTED`): `error` says why).
 */
export type CloseReason =
  | 'left'
  | 'sessionEnded'
  | 'denied'
  | 'removed'
  | 'failed'
  | 'replaced'
  | 'serverDisconnect'
  | 'connectionLost'
  | 'reconnectFailed';

/**
 * A chat message as the SDK delivers it (`chatMessage`): as the server relayed it, except in an
 * E2EE room, where `text` is the decrypted text.
 */
export interface ReceivedChatMessage extends ChatMessage {
  /**
   * E2EE rooms only: true when the message could not be decrypted (no key for its epoch, e.g.
   * it was sent before this client was admitted, or it does not authenticate); `text` is then `''`.
   */
  undecryptable?: boolean;
}

/** A facilitator's broadcast as the SDK delivers it (`broadcastReceived`): in an E2EE room, decrypted. */
export interface ReceivedBroadcast extends BreakoutBroadcast {
  /** E2EE rooms only: true when it could not be decrypted (no key, or not sealed for this place); `text` is `''`. */
  undecryptable?: boolean;
}

/** Events of a {@link SessionClient}. Register listeners before `join()`. */
export type SessionClientEvents = {
  /** The {@link ConnectionState} changed. */
  connectionStateChanged: [state: ConnectionState, previous: ConnectionState];
  /** Someone is in the room: emitted after `join()` for everyone already there, then for each newcomer. */
  participantJoined: [participant: RemoteParticipant];
  /** Someone left (their tracks were unsubscribed first). */
  participantLeft: [participant: RemoteParticipant, reason: LeaveReason];
  /**
   * A remote track is being received: attach `track.track` to a media element. After a
   * reconnection every remote track is subscribed again, as a new RemoteTrack.
   */
  trackSubscribed: [track: RemoteTrack, participant: RemoteParticipant];
  /** A remote track stopped (unpublished, its owner left, reconnection, or close): detach it. */
  trackUnsubscribed: [track: RemoteTrack, participant: RemoteParticipant];
  /**
   * A remote track was muted or unmuted by its publisher (`track.paused`), or the server held it
   * back from this client or sends it again (`track.pausedReason`).
   */
  trackUpdated: [track: RemoteTrack, participant: RemoteParticipant];
  /** A local track was published. */
  localTrackPublished: [track: LocalTrack];
  /** A local track was unpublished (`unpublish()`, its track ended, e.g. screen sharing stopped, or close). */
  localTrackUnpublished: [track: LocalTrack];
  /** A local track was muted or unmuted (by this client, or muted by a facilitator). */
  localTrackUpdated: [track: LocalTrack];
  /** The loudest participant (possibly this one), or null in silence. */
  activeSpeakerChanged: [participantId: string | null];
  /** A facilitator ended the session; `closed` follows. */
  sessionEnded: [reason: string];
  /**
   * At the consent gate (state `consent`): show the text, then call `acceptConsent()` (which
   * accepts this version). Emitted again if a rejoin lands at the gate (the text changed).
   */
  consentRequired: [consent: ConsentInfo];
  /** In the waiting room (state `waiting`), and again each time what it says changes. */
  waiting: [info: WaitingInfo];
  /** Admitted into the room (state `joined`): after `join()`'s wait, and after each readmission. */
  admitted: [];
  /** A facilitator turned this client away; `closed` (reason `denied`) follows. */
  denied: [reason: string | undefined];
  /** A facilitator sent this client back to the waiting room; `waiting` follows. */
  movedToWaitingRoom: [];
  /** A facilitator removed this client (`banned`: for the rest of the session); `closed` follows. */
  removed: [banned: boolean];
  /** Facilitators only: who waits changed (also in `moderation.waiting`). */
  waitingRoomChanged: [waiting: ReadonlyArray<WaitingEntry>];
  /**
   * Facilitators only, once they called `moderation.liveAttendance()`: a new live attendance view
   * (also in `moderation.attendance`), about a second after each presence change, and after a
   * reconnection. Between two, tick a display with `entry.minutesSoFar()`.
   */
  attendanceUpdated: [attendance: LiveAttendance];
  /**
   * A facilitator muted this client's microphone or camera (the local track is disabled, see
   * `localTrackUpdated`) or stopped its screen sharing (unpublished, see `localTrackUnpublished`).
   */
  mutedByFacilitator: [source: TrackSource];
  /**
   * A facilitator (id `by`) asks this client to unmute: show it; only the person can do it
   * (`setMicrophoneEnabled(true)`), which in audio mode `controlled` is allowed only after this.
   */
  unmuteRequested: [by: string];
  /** The room was locked or unlocked (`locked`). */
  roomLocked: [locked: boolean];
  /** The audio mode changed (`audioMode`). */
  audioModeChanged: [mode: AudioMode];
  /** A facilitator renamed someone (possibly this client): `name` of the participant is already updated. */
  displayNameChanged: [participantId: string, name: string];
  /** The spotlight moved to someone (possibly this client), or ended (`null`). */
  spotlightChanged: [participantId: string | null];
  /** A hand went up (facilitators see everyone's, others their own); `hands` is updated. */
  handRaised: [hand: RaisedHand];
  /** A hand went down; `hands` is updated. */
  handLowered: [participantId: string];
  /**
   * A chat message for this client (including its own, as the server delivered it). In an E2EE
   * room, decrypted (in arrival order); one that cannot be is `undecryptable`, with text `''`.
   */
  chatMessage: [message: ReceivedChatMessage];
  /** A facilitator deleted a chat message: remove it from view. */
  chatMessageDeleted: [messageId: string];
  /**
   * Someone's connection quality changed (this client's own: `client.connectionQuality`; someone
   * else's: `participant.connectionQuality`); `reason` says which way it is weak, null when
   * `excellent`. Also emitted on admission for what differs from what the client knew.
   */
  connectionQualityChanged: [participantId: string, quality: ConnectionQuality, reason: ConnectionQualityReason | null];
  /**
   * This client now receives audio only, or video again (`client.audioOnly`, the same object);
   * also on admission when it differs from what the client knew.
   */
  audioOnlyChanged: [state: Readonly<AudioOnlyState>];
  /**
   * A facilitator (id `by`) suggests receiving audio only: show it; only the person turns it on
   * (`setAudioOnly(true)`).
   */
  audioOnlySuggested: [suggestion: { by: string }];
  /** A round started (`endsAt`: when a timed one ends, server ms; else null); each one's `movedToBreakout` follows. */
  breakoutStarted: [endsAt: number | null];
  /**
   * This client went to a group or back to the main room (`client.breakout`, the same object):
   * those it saw left first (`participantLeft`, reason `movedToBreakout`), those of the new place
   * follow (`participantJoined`), with their tracks. Also on admission when the place differs.
   */
  movedToBreakout: [place: Readonly<BreakoutPlace>];
  /** A timed round ends at `endsAt` (server ms), in `secondsLeft` seconds: show a countdown. */
  breakoutEnding: [endsAt: number, secondsLeft: number];
  /** The round is over: everyone is back in the main room (those in groups got `movedToBreakout` first). */
  breakoutEnded: [];
  /**
   * A facilitator's message to every group and the main room (`breakoutId`: the place it came to).
   * In an E2EE room, decrypted (in arrival order); one that cannot be is `undecryptable`.
   */
  broadcastReceived: [broadcast: ReceivedBroadcast];
  /**
   * Facilitators only: the breakouts changed (`moderation.breakouts.state`, the same object);
   * `change` says how, `participantId` whom it was about (moved, newcomer, left, help).
   */
  breakoutsChanged: [state: Readonly<BreakoutsState>, change: BreakoutsChange, participantId: string | undefined];
  /** Facilitators only: someone in group `request.breakoutId` asks for help. */
  breakoutHelpRequested: [request: BreakoutHelpRequest];
  /** The client closed for good; `error` says what made a reconnection fail. */
  closed: [reason: CloseReason, error: Error | undefined];
  /** A failure no call awaits (receiving a track, an ICE restart, a rejoin step). */
  error: [error: Error];
};

/** @internal What the parts of a SessionClient emit its events through (the client itself). */
export type SessionEvents = TypedEmitter<SessionClientEvents>;

/** @internal Reports a failure no call awaits: as `error`, or on the console when nobody listens. */
export function reportError(events: SessionEvents, error: unknown): void {
  const failure = toError(error);
  if (!events.safeEmit('error', failure)) console.warn('[haven-sdk]', failure.message);
}

/** @internal */
export function toError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}
