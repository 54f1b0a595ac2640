/**
 * `SessionClient`: one participant's place in a Haven session, from the browser. It connects
 * (socket.io), joins, publishes the microphone, camera and screen, receives everyone else's
 * tracks, and survives dropped connections: it reconnects within the server's grace window,
 * joins again (`resumed: true`), re-publishes the same local tracks in the same muted state and
 * receives every remote track again.
 *
 * Reconnection runs its own loop rather than socket.io-client's: each attempt is a fresh
 * connection (with a fresh token when `token` is a function), delays use full jitter (socket.io's
 * `randomizationFactor` only spreads delays around the exponential curve), the loop stops at the
 * end of the server's grace window or on a refusal that retrying cannot fix, and no request is
 * ever buffered by socket.io and replayed on a later connection with stale transport ids.
 *
 * Facilitation: a join may pass through the consent gate (`consentRequired`, then
 * `acceptConsent()`) and the waiting room (`waiting`) before the client is admitted; a facilitator
 * may send it back to the waiting room (its media stops, and is set up again on readmission).
 * `moderation` (moderation.ts) holds a facilitator's controls and live attendance (attendance.ts).
 */
import type { Consumer, Producer } from 'mediasoup-client/types';
import { LiveAttendance } from './attendance.ts';
import { HavenRequestError, InvalidStateError, isConnectionLoss } from './errors.ts';
import { MediaSession } from './media-session.ts';
import { Moderation, type ModerationState } from './moderation.ts';
import { obtainToken, type ResolvedOptions, resolveOptions, type SessionClientOptions } from './options.ts';
import {
  LocalParticipant,
  type LocalParticipantState,
  LocalTrack,
  type LocalTrackState,
  RemoteParticipant,
  type RemoteParticipantState,
  RemoteTrack,
  type RemoteTrackState,
} from './participants.ts';
import {
  type AttendanceSnapshot,
  type AudioMode,
  type ChatAudience,
  type ChatMessage,
  type ConsentInfo,
  fatalRejoinCodes,
  type IceServer,
  type JoinResponse,
  type LeaveReason,
  type MediaKind,
  maxChatLength,
  type NotificationName,
  type ParticipantInfo,
  protocolVersion,
  type RaisedHand,
  type RequestName,
  type RequestOf,
  type ResponseOf,
  type RoomInfo,
  type ServerNotifications,
  type SessionState,
  sourceCapability,
  type TrackInfo,
  type TrackSource,
  trackSources,
  type WaitingEntry,
  type WaitingInfo,
} from './protocol/index.ts';
import { TypedEmitter } from './protocol/typed-emitter.ts';
import { captureTrack, type PublishPreset, publishPresets } from './publish-presets.ts';
import { graceExpired, ReconnectDeadline } from './reconnect-policy.ts';
import { Signaling } from './signaling.ts';

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
 * refused the rejoin), `failed` (setting up the session after admission failed: `error` says why).
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
  /** A remote track was muted or unmuted by its publisher (`track.paused`). */
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
  /** A chat message for this client (including its own, as the server delivered it). */
  chatMessage: [message: ChatMessage];
  /** A facilitator deleted a chat message: remove it from view. */
  chatMessageDeleted: [messageId: string];
  /** The client closed for good; `error` says what made a reconnection fail. */
  closed: [reason: CloseReason, error: Error | undefined];
  /** A failure no call awaits (receiving a track, an ICE restart, a rejoin step). */
  error: [error: Error];
};

/** Redirects followed per connection: a room moving while the client follows it may need two. */
const maxRedirects = 3;

/** The reconnection window when the server did not announce one (`reconnectGraceMs`): its default. */
const defaultGraceMs = 30_000;

/** Notifications about this client's place (the join's stages): handled whatever the state. */
type StageNotification = 'waiting' | 'admitted';

/** A promise and its settlers. */
interface Deferred {
  readonly promise: Promise<void>;
  resolve(): void;
  reject(error: Error): void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (error: Error) => void;
  const promise = new Promise<void>((ok, fail) => {
    resolve = ok;
    reject = fail;
  });
  // Nobody may be waiting (the join() call already failed): never an unhandled rejection.
  promise.catch(() => {});
  return { promise, resolve, reject };
}

/** Stage notifications that arrived while a stage request (join, acceptConsent) was in flight. */
interface EarlyStage {
  waiting: WaitingInfo | undefined;
  admitted: SessionState | undefined;
}

/** A local track and the producer that sends it on the current connection. */
interface Publication {
  readonly state: LocalTrackState;
  readonly local: LocalTrack;
  readonly preset: PublishPreset;
  /** Captured by the SDK (not passed in by the app): the SDK stops it when unpublished. */
  readonly owned: boolean;
  producer: Producer | undefined;
  media: MediaSession | undefined;
  /** Whether the server's producer is paused, as far as this client knows. */
  serverPaused: boolean;
  removed: boolean;
  /** Serialises this publication's server requests (produce, pause, resume, close). */
  queue: Promise<void>;
}

/** A remote track (a producer of someone else) and this client's consumer of it. */
interface Subscription {
  info: TrackInfo;
  consumer: Consumer | undefined;
  remote: RemoteTrack | undefined;
  remoteState: RemoteTrackState | undefined;
  /** The media session a consume is in flight on. */
  consumingOn: MediaSession | undefined;
  /** Last preferred size of a previous RemoteTrack, sent again after a reconnection. */
  preferredSize: { width: number; height: number } | undefined;
  removed: boolean;
}

function toError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}

function assertTrack(track: unknown, kind: MediaKind, source: TrackSource): asserts track is MediaStreamTrack {
  const candidate = track as Partial<MediaStreamTrack> | null;
  if (typeof candidate !== 'object' || candidate === null || typeof candidate.stop !== 'function') {
    throw new TypeError(`the ${source} track must be a MediaStreamTrack`);
  }
  if (candidate.kind !== kind)
    throw new TypeError(`the ${source} track must be an ${kind} track, not ${candidate.kind}`);
  if (candidate.readyState === 'ended') throw new InvalidStateError(`the ${source} track has ended`);
}

/**
 * One participant's connection to a Haven session.
 *
 * @example
 * const client = new SessionClient({ url: 'https://haven.example.org', token: fetchToken });
 * client.on('trackSubscribed', (remote) => attach(remote));
 * await client.connect();
 * await client.join();
 * await client.publishMicrophone();
 */
export class SessionClient extends TypedEmitter<SessionClientEvents> {
  readonly #options: ResolvedOptions;
  #state: ConnectionState = 'disconnected';
  #signaling: Signaling | undefined;
  #media: MediaSession | undefined;
  #room: RoomInfo | undefined;
  #self: LocalParticipantState | undefined;
  #local: LocalParticipant | undefined;
  /** The server's reconnection grace window, from the last join answer. */
  #graceMs = 0;
  /** From the last join answer, for a media session built after a `mediaReset`. */
  #routerRtpCapabilities: unknown;
  #iceServers: IceServer[] = [];
  /** The media reset in progress, if any (resets run one after another). */
  #resetting: Promise<void> = Promise.resolve();
  readonly #participantStates = new Map<string, RemoteParticipantState>();
  readonly #participants = new Map<string, RemoteParticipant>();
  /** By producer id. */
  readonly #subscriptions = new Map<string, Subscription>();
  readonly #publications = new Map<TrackSource, Publication>();
  /** Sources whose `publish*()` call is in progress. */
  readonly #publishing = new Set<TrackSource>();
  /** Notifications held while a join answer is being applied (then replayed in order). */
  #held: (() => void)[] | undefined;
  #activeSpeakerId: string | null = null;
  #leaving = false;
  /** The node said it hands the room over (`moved`): its disconnect is a drop, not an eviction. */
  #moved = false;
  /** The reconnection in progress, if any (closing the client stops it). */
  #reconnection: ReconnectDeadline | undefined;
  /** The `join()` call waiting to be admitted, if any. */
  #admission: Deferred | undefined;
  /** Whether the server gave this client a place (a stage) at least once: a drop then reconnects. */
  #placed = false;
  /** Set while a stage request (join, acceptConsent) is in flight. */
  #early: EarlyStage | undefined;
  #consent: ConsentInfo | undefined;
  #waitingInfo: WaitingInfo | undefined;
  #audioMode: AudioMode = 'open';
  #locked = false;
  #spotlight: string | null = null;
  #hands: readonly RaisedHand[] = [];
  readonly #moderationState: ModerationState = { waiting: [], attendance: undefined, sessionEnded: false };

  /**
   * A facilitator's controls (admit, mute, remove, lock, end, …) and the waiting room as
   * facilitators see it; see {@link Moderation}. Anyone else's calls are refused `FORBIDDEN`.
   */
  readonly moderation: Moderation = new Moderation(
    (name, payload) => this.#request(`moderation.${name}()`, name, payload),
    this.#moderationState,
    (snapshot, receivedAt) => this.#applyAttendance(snapshot, receivedAt),
  );

  /**
   * @param options - where to connect and how; see {@link SessionClientOptions}.
   * @throws TypeError if an option is missing or invalid.
   */
  constructor(options: SessionClientOptions) {
    super();
    this.#options = resolveOptions(options);
  }

  /** Where the client is; see {@link ConnectionState}. Initially `'disconnected'`. */
  get connectionState(): ConnectionState {
    return this.#state;
  }

  /** The room, once joined. */
  get room(): RoomInfo | undefined {
    return this.#room;
  }

  /** This client in the room (id, name, role, capabilities, published tracks), once joined. */
  get localParticipant(): LocalParticipant | undefined {
    return this.#local;
  }

  /** Everyone else in the room, by participant id. Empty before `join()` and after close. */
  get participants(): ReadonlyMap<string, RemoteParticipant> {
    return this.#participants;
  }

  /** The loudest participant's id (possibly this client's), or null. */
  get activeSpeakerId(): string | null {
    return this.#activeSpeakerId;
  }

  /** The consent text to accept, while the state is `consent` (else undefined). */
  get consent(): ConsentInfo | undefined {
    return this.#state === 'consent' ? this.#consent : undefined;
  }

  /** What the waiting room says, while the state is `waiting` (else undefined). */
  get waitingInfo(): WaitingInfo | undefined {
    return this.#state === 'waiting' ? this.#waitingInfo : undefined;
  }

  /** `'controlled'` when participants may unmute only after a facilitator asked; default `'open'`. */
  get audioMode(): AudioMode {
    return this.#audioMode;
  }

  /** Whether the room is locked (nobody new gets in). */
  get locked(): boolean {
    return this.#locked;
  }

  /** Who is in the spotlight (possibly this client), or null. */
  get spotlight(): string | null {
    return this.#spotlight;
  }

  /** Raised hands, oldest first: everyone's for facilitators, one's own for others. */
  get hands(): ReadonlyArray<RaisedHand> {
    return this.#hands;
  }

  /**
   * Connects to the server (the token is checked in the handshake).
   *
   * @throws InvalidStateError unless the state is `'disconnected'`.
   * @throws HavenRequestError `UNAUTHORIZED` for a refused token, `TIMEOUT` after
   *   `connectTimeoutMs`, `DISCONNECTED` if the server cannot be reached; the state is then
   *   `'disconnected'` again and `connect()` may be retried.
   */
  async connect(): Promise<void> {
    this.#assertState('connect()', 'disconnected');
    this.#setState('connecting');
    let signaling: Signaling;
    try {
      signaling = await this.#open();
    } catch (error) {
      if (this.#state === 'connecting') this.#setState('disconnected');
      throw error;
    }
    if (this.#state !== 'connecting') {
      signaling.close();
      throw new InvalidStateError('the client was closed while connecting');
    }
    this.#attach(signaling);
    this.#setState('connected');
  }

  /**
   * Joins the room named by the token. Resolves once admitted into the room (event `admitted`);
   * `participantJoined` has then been emitted for everyone already there, and their tracks follow
   * as `trackSubscribed`. On the way it may stop at the consent gate (state `consent`, event
   * `consentRequired`: call {@link SessionClient.acceptConsent}) and in the waiting room (state
   * `waiting`, event `waiting`) until a facilitator admits; it keeps waiting across reconnections.
   *
   * @throws InvalidStateError unless the state is `'connected'`; also if `leave()` is called
   *   before admission.
   * @throws HavenRequestError a refusal: `ROOM_LOCKED`, `ROOM_FULL`, `FORBIDDEN` (banned),
   *   `NOT_FOUND`, `INVALID_STATE` (the session ended), …; the state is then `'connected'` again.
   *   `DENIED` when a facilitator turns this client away (the client is then closed, reason
   *   `denied`); any other error the client closed with before admission (e.g. after a failed
   *   reconnection).
   */
  async join(): Promise<void> {
    this.#assertState('join()', 'connected');
    const signaling = this.#currentSignaling('join()');
    this.#setState('joining');
    const admission = deferred();
    this.#admission = admission;
    try {
      await this.#requestStage(signaling, () => signaling.request('join', { protocolVersion }));
    } catch (error) {
      if (this.#admission === admission) this.#admission = undefined;
      if (this.#signaling === signaling && this.#state === 'joining') this.#setState('connected');
      throw error;
    }
    return admission.promise;
  }

  /**
   * Accepts the consent text shown (the version of the last `consentRequired`). Resolves once past
   * the gate: in the waiting room (state `waiting`) or admitted (state `joined`; `join()` resolves
   * too).
   *
   * @throws InvalidStateError unless the state is `'consent'`.
   * @throws HavenRequestError e.g. `INVALID_REQUEST` when the text changed meanwhile (also
   *   emitted as `error`); the state is then `'consent'` again, `consent` holds the text in force
   *   and `consentRequired` fires with it: show it, then call `acceptConsent()` again.
   */
  async acceptConsent(): Promise<void> {
    this.#assertState('acceptConsent()', 'consent');
    const signaling = this.#currentSignaling('acceptConsent()');
    const consent = this.#consent;
    if (!consent) throw new InvalidStateError('acceptConsent(): no consent text was shown');
    this.#setState('joining');
    try {
      await this.#requestStage(signaling, () => signaling.request('acceptConsent', { version: consent.version }));
    } catch (error) {
      if (this.#signaling === signaling && this.#state === 'joining') {
        // Another version is in force now: the refusal carries it, to show and accept instead.
        const current = error instanceof HavenRequestError ? error.consent : undefined;
        if (current) this.#consent = current;
        this.#setState('consent');
        if (!isConnectionLoss(error)) this.#emitError(error);
        if (current) this.safeEmit('consentRequired', { ...current });
      }
      throw error;
    }
  }

  /** Raises this client's hand (`handRaised` follows, for this client and the facilitators). */
  async raiseHand(): Promise<void> {
    await this.#request('raiseHand()', 'raiseHand', {});
  }

  /** Lowers this client's hand (`handLowered` follows). A facilitator lowers others' with `moderation.lowerHand(id)`. */
  async lowerHand(): Promise<void> {
    await this.#request('lowerHand()', 'lowerHand', {});
  }

  /**
   * Sends a chat message; resolves with its id. Everyone in its audience gets `chatMessage`,
   * this client too.
   *
   * @param text - 1 to 2000 characters.
   * @param to - `'everyone'` (default), `'facilitators'`, or a participant id for a private
   *   message (where the room allows it).
   * @throws TypeError for an empty or too long `text`, or an empty `to`.
   * @throws HavenRequestError `FORBIDDEN` if this token may not chat (or not privately).
   */
  async sendChat(text: string, to: ChatAudience | string = 'everyone'): Promise<string> {
    if (typeof text !== 'string' || text.length === 0 || text.length > maxChatLength) {
      throw new TypeError(`text must be a string of 1 to ${maxChatLength} characters`);
    }
    if (typeof to !== 'string' || to.length === 0) throw new TypeError('to must be a non-empty string');
    return (await this.#request('sendChat()', 'sendChat', { text, to })).messageId;
  }

  /**
   * Publishes the microphone (Opus with in-band FEC and DTX).
   *
   * @param track - an audio track to send; default: captured with `getUserMedia` (echo
   *   cancellation, noise suppression, auto gain), and then stopped by the SDK when unpublished.
   *   A track passed in is never stopped by the SDK.
   * @throws TypeError if `track` is not an audio MediaStreamTrack.
   * @throws InvalidStateError if not joined, or a microphone is already published.
   * @throws HavenRequestError `FORBIDDEN` if the token does not allow publishing audio.
   */
  publishMicrophone(track?: MediaStreamTrack): Promise<LocalTrack> {
    return this.#publish('microphone', track);
  }

  /**
   * Publishes the camera with simulcast: three layers at a quarter, half and full resolution
   * (`scaleResolutionDownBy` 4/2/1, at most 150 kbps, 500 kbps and 1.5 Mbps); the server sends
   * each receiver the layer that fits its `setPreferredSize`.
   *
   * @param track - a video track to send; default: captured with `getUserMedia` (1280×720 ideal,
   *   at most 30 fps), and then stopped by the SDK when unpublished.
   * @throws TypeError if `track` is not a video MediaStreamTrack.
   * @throws InvalidStateError if not joined, or a camera is already published.
   * @throws HavenRequestError `FORBIDDEN` if the token does not allow publishing video.
   */
  publishCamera(track?: MediaStreamTrack): Promise<LocalTrack> {
    return this.#publish('camera', track);
  }

  /**
   * Publishes a screen (one layer, at most 1.5 Mbps and 15 fps: sharp text, few frames). When
   * the user stops sharing from the browser's own UI, the track is unpublished
   * (`localTrackUnpublished`).
   *
   * @param track - a video track to send; default: captured with `getDisplayMedia`.
   * @throws TypeError if `track` is not a video MediaStreamTrack.
   * @throws InvalidStateError if not joined, or a screen is already published.
   * @throws HavenRequestError `FORBIDDEN` if the token does not allow sharing a screen.
   */
  publishScreen(track?: MediaStreamTrack): Promise<LocalTrack> {
    return this.#publish('screen', track);
  }

  /**
   * Mutes or unmutes the microphone: the track is disabled at once (nothing leaves this device
   * even before the server answers) and the producer is paused on the server so others see it
   * muted. Allowed while reconnecting and in the waiting room: the state is applied when the
   * track is re-published.
   *
   * @throws TypeError if `enabled` is not a boolean.
   * @throws InvalidStateError if not joined (or reconnecting, or moved to the waiting room), or no
   *   microphone is published.
   * @throws HavenRequestError `FORBIDDEN` when unmuting in audio mode `controlled` without a
   *   facilitator's `unmuteRequested`: the track is muted again.
   */
  setMicrophoneEnabled(enabled: boolean): Promise<void> {
    return this.#setEnabled('microphone', enabled);
  }

  /** Turns the camera off or on; the same contract as {@link SessionClient.setMicrophoneEnabled}. */
  setCameraEnabled(enabled: boolean): Promise<void> {
    return this.#setEnabled('camera', enabled);
  }

  /**
   * Stops publishing `source` (closes its producer on the server). Does nothing if `source` is
   * not published. A track the SDK captured is stopped; a track passed in is left running.
   *
   * @throws TypeError if `source` is not `'microphone'`, `'camera'` or `'screen'`.
   */
  async unpublish(source: TrackSource): Promise<void> {
    if (!trackSources.includes(source)) throw new TypeError(`source must be one of ${trackSources.join(', ')}`);
    const publication = this.#publications.get(source);
    if (publication) await this.#unpublish(publication);
  }

  /**
   * Leaves the room and closes the client (state `'closed'`, event `closed` with reason
   * `'left'`): tells the server (best effort), closes every transport and stops the tracks the
   * SDK captured. Idempotent; allowed in every state.
   */
  async leave(): Promise<void> {
    if (this.#state === 'closed') return;
    this.#leaving = true;
    const signaling = this.#signaling;
    if (signaling?.connected && (this.#state === 'joined' || this.#state === 'waiting' || this.#state === 'consent')) {
      try {
        await signaling.request('leave', {});
      } catch {
        // Closing anyway: the server lets the place go when the connection drops.
      }
    }
    this.#close('left');
  }

  /* ---- connection ------------------------------------------------------------------------- */

  #setState(state: ConnectionState): void {
    const previous = this.#state;
    if (previous === state) return;
    this.#state = state;
    this.safeEmit('connectionStateChanged', state, previous);
  }

  #assertState(what: string, ...allowed: ConnectionState[]): void {
    if (allowed.includes(this.#state)) return;
    if (this.#state === 'closed') throw new InvalidStateError(`${what}: this client is closed; create a new one`);
    throw new InvalidStateError(`${what} needs the state ${allowed.join(' or ')}, not '${this.#state}'`);
  }

  #currentSignaling(what: string): Signaling {
    if (!this.#signaling) throw new InvalidStateError(`${what}: not connected`);
    return this.#signaling;
  }

  #emitError(error: unknown): void {
    if (!this.safeEmit('error', toError(error))) console.warn('[haven-sdk]', toError(error).message);
  }

  /** Fetches a token and opens a connection with it. */
  async #open(): Promise<Signaling> {
    const { token, url, socketPath, connectTimeoutMs, requestTimeoutMs } = this.#options;
    const value = await obtainToken(token, connectTimeoutMs);
    // Always from `url` (the entry, e.g. a load balancer): a node that does not serve the room
    // redirects to the one that does, wherever the room moved since the last connection.
    let target = url;
    for (let hop = 0; ; hop++) {
      try {
        return await Signaling.open({
          url: target,
          path: socketPath,
          token: value,
          connectTimeoutMs,
          requestTimeoutMs,
        });
      } catch (error) {
        const redirect = error instanceof HavenRequestError && error.code === 'REDIRECT' ? error.url : undefined;
        if (!redirect || hop >= maxRedirects) throw error;
        target = redirect;
      }
    }
  }

  /** Sends a request that needs the client in the room. */
  #request<K extends RequestName>(what: string, name: K, payload: RequestOf<K>): Promise<ResponseOf<K>> {
    this.#assertState(what, 'joined');
    return this.#currentSignaling(what).request(name, payload);
  }

  /** Makes `signaling` the current connection and routes its notifications. */
  #attach(signaling: Signaling): void {
    this.#signaling = signaling;
    signaling.on('disconnected', (reason) => this.#onDisconnected(signaling, reason));
    // The node hands the room over: the disconnect that follows is a drop to recover from.
    signaling.on('moved', () => {
      if (signaling === this.#signaling) this.#moved = true;
    });
    const current = () => signaling === this.#signaling && this.#state !== 'closed';
    /** Notifications about the room: held while a join answer is applied, dropped unless in the room. */
    const route = <K extends NotificationName>(name: K, handler: (...args: ServerNotifications[K]) => void) => {
      signaling.on(name, (...args) => {
        if (!current()) return;
        const run = () => handler(...(args as ServerNotifications[K]));
        if (this.#held) this.#held.push(run);
        else if (this.#state === 'joined') run();
      });
    };
    /** Notifications about this client's place: kept for later while a stage request is in flight. */
    const stage = <K extends StageNotification>(name: K, handler: (...args: ServerNotifications[K]) => void) => {
      signaling.on(name, (...args) => {
        if (!current()) return;
        const run = () => handler(...(args as ServerNotifications[K]));
        if (this.#early) {
          if (name === 'waiting') this.#early.waiting = args[0] as WaitingInfo;
          else this.#early.admitted = args[0] as SessionState;
        } else if (this.#held) this.#held.push(run);
        else run();
      });
    };
    /** Notifications that end the session: handled at once, whatever the state. */
    const final = <K extends NotificationName>(name: K, handler: (...args: ServerNotifications[K]) => void) => {
      signaling.on(name, (...args) => {
        if (current()) handler(...(args as ServerNotifications[K]));
      });
    };
    route('participantJoined', (info) => this.#onParticipantJoined(info));
    route('participantLeft', ({ participantId, reason }) => this.#onParticipantLeft(participantId, reason));
    route('trackPublished', (info) => this.#subscribe(info));
    route('trackUnpublished', ({ producerId }) => this.#onTrackUnpublished(producerId));
    route('trackUpdated', (info) => this.#onTrackUpdated(info));
    route('consumerClosed', ({ consumerId }) => this.#onConsumerClosed(consumerId));
    route('activeSpeaker', ({ participantId }) => {
      if (participantId === this.#activeSpeakerId) return;
      this.#activeSpeakerId = participantId;
      this.safeEmit('activeSpeakerChanged', participantId);
    });
    route('mediaReset', () => this.#onMediaReset(signaling));
    route('waitingRoomChanged', ({ waiting }) => {
      this.#moderationState.waiting = Object.freeze(waiting.map((entry) => ({ ...entry })));
      this.safeEmit('waitingRoomChanged', this.#moderationState.waiting);
    });
    route('attendanceUpdated', (snapshot) => this.#applyAttendance(snapshot, Date.now()));
    route('mutedByFacilitator', ({ source, producerId }) => this.#onMutedByFacilitator(source, producerId));
    route('unmuteRequested', ({ by }) => this.safeEmit('unmuteRequested', by));
    route('roomLocked', ({ locked }) => {
      this.#locked = locked;
      this.safeEmit('roomLocked', locked);
    });
    route('audioModeChanged', ({ mode }) => {
      this.#audioMode = mode;
      this.safeEmit('audioModeChanged', mode);
    });
    route('displayNameChanged', ({ participantId, name }) => this.#onDisplayNameChanged(participantId, name));
    route('spotlightChanged', ({ participantId }) => {
      this.#spotlight = participantId;
      this.safeEmit('spotlightChanged', participantId);
    });
    route('handRaised', (hand) => {
      this.#setHands([...this.#hands.filter((h) => h.participantId !== hand.participantId), { ...hand }]);
      this.safeEmit('handRaised', { ...hand });
    });
    route('handLowered', ({ participantId }) => {
      this.#setHands(this.#hands.filter((hand) => hand.participantId !== participantId));
      this.safeEmit('handLowered', participantId);
    });
    route('chatMessage', (message) => this.safeEmit('chatMessage', { ...message }));
    route('chatMessageDeleted', ({ messageId }) => this.safeEmit('chatMessageDeleted', messageId));
    stage('waiting', (info) => this.#onWaiting(signaling, info));
    stage('admitted', (session) => this.#onAdmitted(signaling, session));
    final('denied', ({ reason }) => {
      this.safeEmit('denied', reason);
      this.#close('denied', new HavenRequestError('DENIED', reason ?? 'a facilitator did not admit you', 'join'));
    });
    final('removed', ({ banned }) => {
      this.safeEmit('removed', banned);
      this.#close('removed');
    });
    final('sessionEnded', ({ reason }) => {
      this.#moderationState.sessionEnded = true;
      this.safeEmit('sessionEnded', reason);
      this.#close('sessionEnded');
    });
    final('replaced', () => this.#close('replaced'));
  }

  #onDisconnected(signaling: Signaling, reason: string): void {
    if (signaling !== this.#signaling) return;
    this.#signaling = undefined;
    if (this.#state === 'closed') return;
    const moved = this.#moved;
    this.#moved = false;
    if (this.#leaving || (reason === 'io server disconnect' && !moved)) {
      this.#close(this.#leaving ? 'left' : 'serverDisconnect');
      return;
    }
    const state = this.#state;
    if (state === 'reconnecting') return; // The attempt in flight fails and the loop goes on.
    if (state === 'connected' || (state === 'joining' && !this.#placed)) {
      // Nothing to get back: a join() in flight fails with DISCONNECTED.
      this.#held = undefined;
      this.#setState('disconnected');
      return;
    }
    // In the room, at the consent gate, in the waiting room, or on the way between them.
    if (this.#options.reconnect) void this.#reconnect();
    else this.#close('connectionLost', new HavenRequestError('DISCONNECTED', 'the connection dropped', 'join'));
  }

  /**
   * Gets the place back: new connections with backoff until a rejoin gets an answer (admitted,
   * consent or waiting), a refusal retrying cannot fix, or the end of the server's grace window
   * counted from the drop (`GRACE_EXPIRED`; an attempt still in flight then is dropped).
   */
  async #reconnect(): Promise<void> {
    const policy = this.#options.reconnect;
    if (!policy) return;
    this.#held = undefined;
    this.#early = undefined;
    this.#setState('reconnecting');
    const graceMs = this.#graceMs > 0 ? this.#graceMs : defaultGraceMs;
    let lastError: Error | undefined;
    const expire = () =>
      this.#state === 'reconnecting' && this.#close('reconnectFailed', graceExpired(graceMs, lastError));
    const deadline = new ReconnectDeadline(policy, graceMs, expire);
    this.#reconnection = deadline;
    try {
      for (let delay = deadline.nextDelay(lastError); delay !== undefined; delay = deadline.nextDelay(lastError)) {
        await deadline.wait(delay);
        if (this.#state !== 'reconnecting') return;
        if (!deadline.open) return void expire();
        let signaling: Signaling | undefined;
        try {
          signaling = await this.#open();
          if (this.#state !== 'reconnecting') {
            signaling.close();
            return;
          }
          this.#attach(signaling);
          const opened = signaling;
          // Once the server answers the rejoin, the place is back: the window no longer applies.
          await this.#requestStage(opened, () =>
            opened.request('join', { protocolVersion }).then((answer) => {
              deadline.stop();
              return answer;
            }),
          );
          return;
        } catch (error) {
          if (this.#state !== 'reconnecting') return;
          lastError = toError(error);
          if (signaling && this.#signaling === signaling) {
            this.#signaling = undefined;
            signaling.close();
          }
          if (this.#isFatal(error)) break;
        }
      }
      this.#close('reconnectFailed', lastError ?? graceExpired(graceMs, lastError));
    } finally {
      deadline.stop();
      if (this.#reconnection === deadline) this.#reconnection = undefined;
    }
  }

  #isFatal(error: unknown): boolean {
    if (!(error instanceof HavenRequestError) || !(fatalRejoinCodes as readonly string[]).includes(error.code))
      return false;
    // A token function may mint a valid token next time.
    return !(error.code === 'UNAUTHORIZED' && typeof this.#options.token === 'function');
  }

  /* ---- joining: consent, waiting room, admission ------------------------------------------ */

  /**
   * Sends a request answered by a join stage (`join`, `acceptConsent`) on `signaling` and goes
   * there. Notifications about the room that arrive meanwhile are held (replayed once in the
   * room); `waiting` and `admitted` ones are kept and applied after the answer.
   */
  async #requestStage(signaling: Signaling, send: () => Promise<JoinResponse>): Promise<void> {
    const held: (() => void)[] = [];
    this.#held = held;
    const early: EarlyStage = { waiting: undefined, admitted: undefined };
    this.#early = early;
    let response: JoinResponse;
    try {
      response = await send();
    } catch (error) {
      if (this.#held === held) this.#held = undefined;
      throw error;
    } finally {
      if (this.#early === early) this.#early = undefined;
    }
    this.#assertCurrent(signaling);
    if (response.stage !== 'admitted' && response.reconnectGraceMs) this.#graceMs = response.reconnectGraceMs;
    switch (response.stage) {
      case 'admitted':
        await this.#enterSession(signaling, response.session);
        return;
      case 'consent':
        this.#held = undefined;
        this.#placed = true;
        this.#leaveSessionView('left');
        this.#consent = response.consent;
        this.#setState('consent');
        this.safeEmit('consentRequired', { ...response.consent });
        return;
      case 'waiting':
        this.#held = undefined;
        this.#placed = true;
        this.#leaveSessionView('left');
        this.#waitingInfo = { ...(early.waiting ?? response.waiting) };
        this.#setState('waiting');
        this.safeEmit('waiting', { ...this.#waitingInfo });
        if (early.admitted) this.#onAdmitted(signaling, early.admitted);
        return;
      default:
        throw new HavenRequestError('INTERNAL', 'malformed join answer from the server', 'join');
    }
  }

  /** A `waiting` notification: what the waiting room says changed, or a facilitator moved this client back. */
  #onWaiting(signaling: Signaling, info: WaitingInfo): void {
    if (signaling !== this.#signaling) return;
    if (this.#state === 'joined') {
      // The server closed this client's transports, producers and consumers.
      this.#leaveSessionView('movedToWaitingRoom');
      this.#waitingInfo = { ...info };
      this.#setState('waiting');
      this.safeEmit('movedToWaitingRoom');
      this.safeEmit('waiting', { ...info });
      return;
    }
    if (this.#state !== 'waiting') return;
    this.#waitingInfo = { ...info };
    this.safeEmit('waiting', { ...info });
  }

  /** An `admitted` notification: in from the waiting room. */
  #onAdmitted(signaling: Signaling, session: SessionState): void {
    if (signaling !== this.#signaling || this.#state !== 'waiting') return;
    this.#setState('joining');
    this.#enterSession(signaling, session).catch((error) => {
      // A connection lost meanwhile is the reconnection's business.
      if (this.#signaling !== signaling || this.#state === 'closed' || isConnectionLoss(error)) return;
      this.#close('failed', toError(error));
    });
  }

  /**
   * Applies an admission (a join answer or an `admitted` notification): a new media session, this
   * client and everyone else reconciled with what the client knew, every local track published
   * (again, in the same muted state), then the state `joined`, `admitted` (unless a reconnection
   * resumed the place), the held notifications, and every remote track subscribed.
   */
  async #enterSession(signaling: Signaling, session: SessionState): Promise<void> {
    this.#held ??= [];
    const held = this.#held;
    try {
      this.#routerRtpCapabilities = session.routerRtpCapabilities;
      this.#iceServers = session.iceServers;
      // The server closed the old transports when it gave the place back.
      await this.#replaceMediaSession(signaling);
      this.#applySession(session);
      this.#assertCurrent(signaling);
      for (const publication of [...this.#publications.values()]) await this.#restorePublication(publication);
      this.#assertCurrent(signaling);
      this.#placed = true;
      this.#setState('joined');
    } catch (error) {
      if (this.#held === held) this.#held = undefined;
      throw error;
    }
    this.#held = undefined;
    if (!session.resumed) this.safeEmit('admitted');
    const admission = this.#admission;
    this.#admission = undefined;
    admission?.resolve();
    for (const run of held) {
      if (this.#state !== 'joined' || this.#signaling !== signaling) return;
      run();
    }
    if (this.#state !== 'joined') return;
    for (const subscription of this.#subscriptions.values()) void this.#consume(subscription);
    this.#refreshAttendance(signaling);
  }

  /** Closes the media session and forgets every subscription (their tracks end). */
  #dropMedia(): void {
    const media = this.#media;
    this.#media = undefined;
    media?.close();
    for (const subscription of this.#subscriptions.values()) {
      subscription.removed = true;
      this.#dropConsumer(subscription);
    }
    this.#subscriptions.clear();
  }

  /**
   * Out of the room but still connected (moved to the waiting room, or a rejoin that did not land
   * in the room): media closed, everyone else gone from view (`participantLeft` with `reason`),
   * local tracks kept to be published again on admission.
   */
  #leaveSessionView(reason: LeaveReason): void {
    this.#dropMedia();
    for (const id of [...this.#participantStates.keys()]) this.#removeParticipant(id, reason);
    for (const publication of this.#publications.values()) {
      if (publication.producer && !publication.producer.closed) publication.producer.close();
      publication.producer = undefined;
      publication.media = undefined;
      publication.state.producerId = undefined;
      publication.serverPaused = false;
    }
    this.#activeSpeakerId = null;
    this.#setHands([]);
    this.#moderationState.waiting = Object.freeze([]);
  }

  /** Throws if the client closed, or `signaling` is no longer its connection (a listener may have left). */
  #assertCurrent(signaling: Signaling): void {
    if (this.#state === 'closed') throw new InvalidStateError('the client was closed while joining');
    if (this.#signaling !== signaling) throw new HavenRequestError('DISCONNECTED', 'the connection dropped', 'join');
  }

  /** Builds a media session on `signaling` (a new Device) and closes the previous one. */
  async #replaceMediaSession(signaling: Signaling): Promise<MediaSession> {
    const media = await MediaSession.create({
      signaling,
      routerRtpCapabilities: this.#routerRtpCapabilities,
      iceServers: this.#iceServers,
      handlerName: this.#options.mediasoupHandlerName,
      onError: (error) => this.#emitError(error),
    });
    try {
      this.#assertCurrent(signaling);
    } catch (error) {
      media.close();
      throw error;
    }
    const previous = this.#media;
    this.#media = media;
    previous?.close();
    return media;
  }

  /**
   * The server lost this client's media (`mediaReset`: a media worker failed) but kept its place:
   * new transports, every local track published again, every remote track received again, as
   * after a resumed join. A connection lost meanwhile leaves the rest to the reconnection.
   */
  #onMediaReset(signaling: Signaling): void {
    const reset = async () => {
      if (this.#signaling !== signaling || this.#state !== 'joined') return;
      await this.#replaceMediaSession(signaling);
      for (const subscription of this.#subscriptions.values()) this.#dropConsumer(subscription);
      for (const publication of [...this.#publications.values()]) await this.#restorePublication(publication);
      for (const subscription of this.#subscriptions.values()) void this.#consume(subscription);
    };
    this.#resetting = this.#resetting.then(reset).catch((error) => {
      if (this.#signaling === signaling && this.#state === 'joined' && !isConnectionLoss(error)) this.#emitError(error);
    });
  }

  #applySession(session: SessionState): void {
    const { self } = session;
    this.#room = session.room;
    this.#graceMs = session.reconnectGraceMs;
    this.#consent = undefined;
    this.#waitingInfo = undefined;
    this.#audioMode = session.audioMode;
    this.#locked = session.locked;
    this.#spotlight = session.spotlight;
    this.#setHands(session.hands.map((hand) => ({ ...hand })));
    this.#moderationState.waiting = Object.freeze(session.waiting.map((entry) => ({ ...entry })));
    if (this.#self && this.#self.id === self.id) {
      Object.assign(this.#self, { name: self.name, role: self.role, capabilities: { ...session.capabilities } });
    } else {
      this.#self = { ...self, capabilities: { ...session.capabilities }, tracks: new Map() };
      this.#local = new LocalParticipant(this.#self);
    }
    // Remote tracks went away with the old media session: they are subscribed again below.
    for (const subscription of this.#subscriptions.values()) this.#dropConsumer(subscription);
    const others = session.participants.filter((participant) => participant.id !== self.id);
    const present = new Set(others.map((participant) => participant.id));
    for (const id of [...this.#participantStates.keys()]) {
      if (!present.has(id)) this.#removeParticipant(id, 'left');
    }
    const published = new Set<string>();
    for (const participant of others) {
      this.#upsertParticipant(participant);
      for (const track of participant.tracks) published.add(track.producerId);
    }
    for (const [producerId, subscription] of this.#subscriptions) {
      if (!published.has(producerId)) {
        subscription.removed = true;
        this.#subscriptions.delete(producerId);
      }
    }
    for (const participant of others) for (const track of participant.tracks) this.#subscribe(track);
  }

  /* ---- facilitation ----------------------------------------------------------------------- */

  /** Keeps the newest view (a push and an answer may cross); emits `attendanceUpdated` for a new one. */
  #applyAttendance(snapshot: AttendanceSnapshot, receivedAt: number): LiveAttendance {
    const current = this.#moderationState.attendance;
    if (current && snapshot.asOf < current.asOf) return current;
    const next = new LiveAttendance(snapshot, receivedAt, current);
    this.#moderationState.attendance = next;
    this.safeEmit('attendanceUpdated', next);
    return next;
  }

  /**
   * Back in the room with a live attendance view in use: changes pushed while the connection was
   * down were lost, so ask again (a failure leaves the view as it was; the next push updates it).
   */
  #refreshAttendance(signaling: Signaling): void {
    if (this.#self?.role !== 'facilitator' || !this.#moderationState.attendance) return;
    signaling.request('liveAttendance', {}).then(
      (snapshot) => {
        if (signaling === this.#signaling && this.#state === 'joined') this.#applyAttendance(snapshot, Date.now());
      },
      () => {},
    );
  }

  #setHands(hands: RaisedHand[]): void {
    this.#hands = Object.freeze(hands.sort((a, b) => a.raisedAt - b.raisedAt));
  }

  #onDisplayNameChanged(participantId: string, name: string): void {
    if (participantId === this.#self?.id) this.#self.name = name;
    else {
      const state = this.#participantStates.get(participantId);
      if (state) state.name = name;
    }
    this.safeEmit('displayNameChanged', participantId, name);
  }

  /**
   * A facilitator muted one of this client's tracks: the server paused the microphone or camera
   * (the local track is disabled too; only the person turns it on again) or closed the screen
   * (unpublished here, without a request).
   */
  #onMutedByFacilitator(source: TrackSource, producerId: string): void {
    const publication = this.#publications.get(source);
    if (!publication || publication.state.producerId !== producerId) return;
    if (source === 'screen') {
      const { producer } = publication;
      publication.producer = undefined;
      publication.media = undefined;
      publication.state.producerId = undefined;
      if (producer && !producer.closed) producer.close();
      this.#forget(publication);
      this.safeEmit('localTrackUnpublished', publication.local);
      if (publication.owned) publication.state.track.stop();
    } else {
      publication.serverPaused = true;
      publication.state.track.enabled = false;
      publication.producer?.pause();
      if (publication.state.enabled) {
        publication.state.enabled = false;
        this.safeEmit('localTrackUpdated', publication.local);
      }
    }
    this.safeEmit('mutedByFacilitator', source);
  }

  /* ---- remote participants and tracks ----------------------------------------------------- */

  #upsertParticipant(info: ParticipantInfo): RemoteParticipantState {
    const known = this.#participantStates.get(info.id);
    if (known) {
      known.name = info.name;
      known.role = info.role;
      return known;
    }
    const state: RemoteParticipantState = { id: info.id, name: info.name, role: info.role, tracks: new Map() };
    const participant = new RemoteParticipant(state);
    this.#participantStates.set(info.id, state);
    this.#participants.set(info.id, participant);
    this.safeEmit('participantJoined', participant);
    return state;
  }

  #onParticipantJoined(info: ParticipantInfo): void {
    if (info.id === this.#self?.id) return;
    this.#upsertParticipant(info);
    for (const track of info.tracks) this.#subscribe(track);
    // Tracks announced before their participant.
    for (const subscription of this.#subscriptions.values()) {
      if (subscription.info.participantId === info.id) void this.#consume(subscription);
    }
  }

  #onParticipantLeft(participantId: string, reason: LeaveReason): void {
    if (participantId === this.#self?.id) {
      // Moved to the waiting room: the `waiting` notification says so.
      if (reason === 'movedToWaitingRoom') return;
      this.#close(reason === 'removed' ? 'removed' : reason === 'sessionEnded' ? 'sessionEnded' : 'serverDisconnect');
      return;
    }
    this.#removeParticipant(participantId, reason);
  }

  #removeParticipant(participantId: string, reason: LeaveReason): void {
    for (const [producerId, subscription] of this.#subscriptions) {
      if (subscription.info.participantId !== participantId) continue;
      subscription.removed = true;
      this.#subscriptions.delete(producerId);
      this.#dropConsumer(subscription);
    }
    const participant = this.#participants.get(participantId);
    this.#participants.delete(participantId);
    this.#participantStates.delete(participantId);
    if (participant) this.safeEmit('participantLeft', participant, reason);
  }

  /** Records a remote track and receives it (once joined, and once its participant is known). */
  #subscribe(info: TrackInfo): void {
    if (info.participantId === this.#self?.id) return;
    const known = this.#subscriptions.get(info.producerId);
    if (known) {
      known.info = { ...info };
      return;
    }
    const subscription: Subscription = {
      info: { ...info },
      consumer: undefined,
      remote: undefined,
      remoteState: undefined,
      consumingOn: undefined,
      preferredSize: undefined,
      removed: false,
    };
    this.#subscriptions.set(info.producerId, subscription);
    void this.#consume(subscription);
  }

  async #consume(subscription: Subscription): Promise<void> {
    const media = this.#media;
    const { producerId, participantId } = subscription.info;
    if (this.#state !== 'joined' || !media || media.closed) return;
    if (subscription.removed || subscription.consumer || subscription.consumingOn === media) return;
    if (!this.#participantStates.has(participantId)) return;
    subscription.consumingOn = media;
    try {
      const { consumer, response } = await media.consume(producerId);
      const participantState = this.#participantStates.get(participantId);
      const participant = this.#participants.get(participantId);
      if (subscription.removed || media !== this.#media || media.closed || !participantState || !participant) {
        consumer.close();
        return;
      }
      const remoteState: RemoteTrackState = {
        consumerId: consumer.id,
        producerId,
        participantId,
        kind: response.kind,
        source: response.source,
        track: consumer.track,
        paused: subscription.info.paused,
        ended: false,
        preferredSize: undefined,
        sendPreferredSize: async (width, height) => {
          await media.signaling.request('setPreferredSize', { consumerId: consumer.id, width, height });
        },
      };
      const remote = new RemoteTrack(remoteState);
      subscription.consumer = consumer;
      subscription.remote = remote;
      subscription.remoteState = remoteState;
      participantState.tracks.set(producerId, remote);
      this.safeEmit('trackSubscribed', remote, participant);
      const size = subscription.preferredSize;
      if (size && !remoteState.ended) remote.setPreferredSize(size.width, size.height).catch(() => {});
    } catch (error) {
      const expected =
        subscription.removed ||
        media !== this.#media ||
        media.closed ||
        isConnectionLoss(error) ||
        // The producer went away meanwhile (trackUnpublished follows).
        (error instanceof HavenRequestError && error.code === 'NOT_FOUND');
      if (!expected) this.#emitError(error);
    } finally {
      if (subscription.consumingOn === media) subscription.consumingOn = undefined;
    }
  }

  /** Closes the subscription's consumer, if any, and emits `trackUnsubscribed`. */
  #dropConsumer(subscription: Subscription): void {
    const { consumer, remote, remoteState } = subscription;
    subscription.consumer = undefined;
    subscription.remote = undefined;
    subscription.remoteState = undefined;
    if (consumer && !consumer.closed) consumer.close();
    if (!remote || !remoteState) return;
    subscription.preferredSize = remoteState.preferredSize ?? subscription.preferredSize;
    remoteState.ended = true;
    this.#participantStates.get(remoteState.participantId)?.tracks.delete(remoteState.producerId);
    const participant = this.#participants.get(remoteState.participantId);
    if (participant) this.safeEmit('trackUnsubscribed', remote, participant);
  }

  #onTrackUnpublished(producerId: string): void {
    const subscription = this.#subscriptions.get(producerId);
    if (!subscription) return;
    subscription.removed = true;
    this.#subscriptions.delete(producerId);
    this.#dropConsumer(subscription);
  }

  #onConsumerClosed(consumerId: string): void {
    for (const [producerId, subscription] of this.#subscriptions) {
      if (subscription.consumer?.id !== consumerId) continue;
      subscription.removed = true;
      this.#subscriptions.delete(producerId);
      this.#dropConsumer(subscription);
    }
  }

  #onTrackUpdated(info: TrackInfo): void {
    if (info.participantId === this.#self?.id) {
      this.#onLocalTrackUpdated(info);
      return;
    }
    const subscription = this.#subscriptions.get(info.producerId);
    if (!subscription) {
      this.#subscribe(info);
      return;
    }
    subscription.info = { ...info };
    const { remote, remoteState } = subscription;
    const participant = this.#participants.get(info.participantId);
    if (!remote || !remoteState || !participant || remoteState.paused === info.paused) return;
    remoteState.paused = info.paused;
    this.safeEmit('trackUpdated', remote, participant);
  }

  /**
   * The server paused or resumed one of this client's producers (a facilitator's mute). A pause
   * disables the local track too; a resume is only recorded: the SDK never turns a microphone or
   * camera on by itself.
   */
  #onLocalTrackUpdated(info: TrackInfo): void {
    for (const publication of this.#publications.values()) {
      if (publication.state.producerId !== info.producerId) continue;
      publication.serverPaused = info.paused;
      if (info.paused && publication.state.enabled) {
        publication.state.enabled = false;
        publication.state.track.enabled = false;
        publication.producer?.pause();
        this.safeEmit('localTrackUpdated', publication.local);
      }
    }
  }

  /* ---- local tracks ----------------------------------------------------------------------- */

  async #publish(source: TrackSource, track: MediaStreamTrack | undefined): Promise<LocalTrack> {
    const preset = publishPresets[source];
    if (track !== undefined) assertTrack(track, preset.kind, source);
    this.#assertState(`publishing the ${source}`, 'joined');
    if (this.#publications.has(source) || this.#publishing.has(source)) {
      throw new InvalidStateError(`a ${source} track is already published; unpublish('${source}') first`);
    }
    const self = this.#self;
    if (!self) throw new InvalidStateError('not joined');
    const allowed = self.capabilities[sourceCapability[source]];
    if (!allowed)
      throw new HavenRequestError('FORBIDDEN', `this token does not allow publishing the ${source}`, 'produce');
    this.#publishing.add(source);
    let captured: MediaStreamTrack | undefined;
    try {
      if (!track) captured = await captureTrack(source);
      const sent = track ?? captured;
      if (!sent) throw new TypeError(`no ${source} track`);
      this.#assertState(`publishing the ${source}`, 'joined', 'reconnecting');
      const state: LocalTrackState = {
        source,
        kind: preset.kind,
        track: sent,
        enabled: sent.enabled,
        producerId: undefined,
      };
      const publication: Publication = {
        state,
        local: new LocalTrack(state),
        preset,
        owned: captured !== undefined,
        producer: undefined,
        media: undefined,
        serverPaused: false,
        removed: false,
        queue: Promise.resolve(),
      };
      this.#publications.set(source, publication);
      self.tracks.set(source, publication.local);
      try {
        await this.#enqueue(publication, () => this.#ensureProduced(publication));
      } catch (error) {
        // Connection lost meanwhile: the reconnection publishes it.
        if (!isConnectionLoss(error)) {
          this.#forget(publication);
          throw error;
        }
      }
      if (publication.removed) throw new InvalidStateError(`the ${source} was unpublished while publishing`);
      this.safeEmit('localTrackPublished', publication.local);
      return publication.local;
    } catch (error) {
      captured?.stop();
      throw error;
    } finally {
      this.#publishing.delete(source);
    }
  }

  /** Runs `task` after the publication's earlier requests. */
  #enqueue(publication: Publication, task: () => Promise<void>): Promise<void> {
    const run = publication.queue.then(task);
    publication.queue = run.catch(() => {});
    return run;
  }

  /** Creates the publication's producer on the current media session, if it has none there. */
  async #ensureProduced(publication: Publication): Promise<void> {
    const media = this.#media;
    if (publication.removed || !media || media.closed) return;
    if (publication.producer && publication.media === media && !publication.producer.closed) return;
    publication.producer = undefined;
    publication.media = undefined;
    publication.state.producerId = undefined;
    if (publication.state.track.readyState === 'ended') {
      // Ended while offline (e.g. a camera unplugged): nothing to send, no producer to close.
      this.#forget(publication);
      this.safeEmit('localTrackUnpublished', publication.local);
      if (publication.owned) publication.state.track.stop();
      return;
    }
    const producer = await media.produce(publication.state.track, publication.state.source, publication.preset);
    if (publication.removed || media !== this.#media || media.closed) {
      producer.close();
      if (publication.removed && !media.closed) {
        await media.signaling.request('closeProducer', { producerId: producer.id }).catch(() => {});
      }
      return;
    }
    publication.producer = producer;
    publication.media = media;
    publication.serverPaused = false;
    publication.state.producerId = producer.id;
    producer.on('trackended', () => {
      if (publication.producer === producer) this.#unpublish(publication).catch((error) => this.#emitError(error));
    });
    await this.#syncPaused(publication);
  }

  /** On a rejoin: produce again (same track, same muted state); a track that cannot be is unpublished. */
  async #restorePublication(publication: Publication): Promise<void> {
    try {
      await this.#enqueue(publication, () => this.#ensureProduced(publication));
    } catch (error) {
      if (isConnectionLoss(error)) throw error;
      this.#emitError(error);
      await this.#unpublish(publication).catch(() => {});
    }
  }

  /** Makes the server's paused state match the publication's `enabled`. */
  async #syncPaused(publication: Publication): Promise<void> {
    const { producer, media } = publication;
    if (!producer || producer.closed || !media || media.closed) return;
    const paused = !publication.state.enabled;
    if (paused) producer.pause();
    else producer.resume();
    if (publication.serverPaused === paused) return;
    await media.signaling.request(paused ? 'pauseProducer' : 'resumeProducer', { producerId: producer.id });
    publication.serverPaused = paused;
  }

  async #setEnabled(source: TrackSource, enabled: boolean): Promise<void> {
    if (typeof enabled !== 'boolean') throw new TypeError('enabled must be a boolean');
    this.#assertState(`setting the ${source} on or off`, 'joined', 'reconnecting', 'waiting', 'joining');
    const publication = this.#publications.get(source);
    if (!publication) throw new InvalidStateError(`no ${source} track is published`);
    // At once: a mute never waits for the network.
    publication.state.track.enabled = enabled;
    if (publication.state.enabled !== enabled) {
      publication.state.enabled = enabled;
      this.safeEmit('localTrackUpdated', publication.local);
    }
    try {
      await this.#enqueue(publication, () => this.#syncPaused(publication));
    } catch (error) {
      // Applied when the reconnection re-publishes the track.
      if (isConnectionLoss(error)) return;
      if (enabled && error instanceof HavenRequestError && error.code === 'FORBIDDEN') {
        // Audio mode `controlled` without a facilitator's request: stay muted.
        publication.state.track.enabled = false;
        publication.producer?.pause();
        if (publication.state.enabled) {
          publication.state.enabled = false;
          this.safeEmit('localTrackUpdated', publication.local);
        }
      }
      throw error;
    }
  }

  /** Removes the publication from the client's records (no request, no event). */
  #forget(publication: Publication): void {
    publication.removed = true;
    if (this.#publications.get(publication.state.source) === publication) {
      this.#publications.delete(publication.state.source);
      this.#self?.tracks.delete(publication.state.source);
    }
  }

  async #unpublish(publication: Publication): Promise<void> {
    if (publication.removed) return;
    this.#forget(publication);
    this.safeEmit('localTrackUnpublished', publication.local);
    try {
      await this.#enqueue(publication, async () => {
        const { producer, media } = publication;
        publication.producer = undefined;
        publication.state.producerId = undefined;
        if (!producer) return;
        producer.close();
        if (!media || media.closed) return;
        try {
          await media.signaling.request('closeProducer', { producerId: producer.id });
        } catch (error) {
          const gone = error instanceof HavenRequestError && error.code === 'NOT_FOUND';
          if (!gone && !isConnectionLoss(error)) throw error;
        }
      });
    } finally {
      if (publication.owned) publication.state.track.stop();
    }
  }

  /* ---- closing ---------------------------------------------------------------------------- */

  /** Releases everything and enters `closed` for good. Idempotent. */
  #close(reason: CloseReason, error?: Error): void {
    if (this.#state === 'closed') return;
    this.#reconnection?.stop();
    this.#held = undefined;
    const signaling = this.#signaling;
    this.#signaling = undefined;
    this.#dropMedia();
    for (const publication of [...this.#publications.values()]) {
      this.#forget(publication);
      publication.producer = undefined;
      publication.state.producerId = undefined;
      if (publication.owned) publication.state.track.stop();
      this.safeEmit('localTrackUnpublished', publication.local);
    }
    this.#participants.clear();
    this.#participantStates.clear();
    signaling?.close();
    this.#early = undefined;
    const admission = this.#admission;
    this.#admission = undefined;
    this.#setState('closed');
    admission?.reject(error ?? new InvalidStateError(`the client closed (${reason}) before being admitted`));
    this.safeEmit('closed', reason, error);
  }
}
