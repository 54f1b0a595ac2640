import { LiveAttendance } from './attendance.ts';
import { followRedirects } from './connection/node-url-provider.ts';
import { graceExpired, ReconnectDeadline } from './connection/reconnect-deadline.ts';
import { HavenRequestError, InvalidStateError, isConnectionLoss } from './errors.ts';
import { MediaSession } from './media-session.ts';
import { Moderation, type ModerationState } from './moderation.ts';
import { obtainToken, type ResolvedOptions, resolveOptions, type SessionClientOptions } from './options.ts';
import { LocalMember } from './participants/local-member.ts';
import type { LocalTrack } from './participants/local-track.ts';
import type { LocalParticipant, RemoteParticipant } from './participants/participant.ts';
import { RemoteMembers } from './participants/remote-members.ts';
import {
  type AttendanceSnapshot,
  type AudioMode,
  type ChatAudience,
  type ConsentInfo,
  fatalRejoinCodes,
  type IceServer,
  type JoinResponse,
  type LeaveReason,
  maxChatLength,
  type NotificationName,
  protocolVersion,
  type RaisedHand,
  type RequestName,
  type RequestOf,
  type ResponseOf,
  type RoomInfo,
  type ServerNotifications,
  type SessionState,
  type TrackSource,
  trackSources,
  type WaitingInfo,
} from './protocol/index.ts';
import { TypedEmitter } from './protocol/typed-emitter.ts';
import {
  type CloseReason,
  type ConnectionState,
  reportError,
  type SessionClientEvents,
  toError,
} from './session-events.ts';
import { Signaling } from './signaling.ts';

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
  /** The server's reconnection grace window, from the last join answer. */
  #graceMs = 0;
  /** From the last join answer, for a media session built after a `mediaReset`. */
  #routerRtpCapabilities: unknown;
  #iceServers: IceServer[] = [];
  /** The media reset in progress, if any (resets run one after another). */
  #resetting: Promise<void> = Promise.resolve();
  /** This client: who it is and what it publishes. */
  readonly #self = new LocalMember({
    events: this,
    media: () => this.#media,
    assertState: (what, ...allowed) => this.#assertState(what, ...allowed),
  });
  /** Everyone else, and the tracks of theirs this client receives. */
  readonly #others = new RemoteMembers({
    events: this,
    media: () => this.#media,
    joined: () => this.#state === 'joined',
    selfId: () => this.#self.id,
  });
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
    return this.#self.participant;
  }

  /** Everyone else in the room, by participant id. Empty before `join()` and after close. */
  get participants(): ReadonlyMap<string, RemoteParticipant> {
    return this.#others.participants;
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
        if (!isConnectionLoss(error)) reportError(this, error);
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
    return this.#self.publish('microphone', track);
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
    return this.#self.publish('camera', track);
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
    return this.#self.publish('screen', track);
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
    await this.#self.unpublish(source);
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

  #setEnabled(source: TrackSource, enabled: boolean): Promise<void> {
    if (typeof enabled !== 'boolean') throw new TypeError('enabled must be a boolean');
    this.#assertState(`setting the ${source} on or off`, 'joined', 'reconnecting', 'waiting', 'joining');
    return this.#self.setEnabled(source, enabled);
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

  /** Fetches a token and opens a connection with it. */
  async #open(): Promise<Signaling> {
    const { token, url, socketPath, connectTimeoutMs, requestTimeoutMs } = this.#options;
    const value = await obtainToken(token, connectTimeoutMs);
    return followRedirects(url, (target) =>
      Signaling.open({ url: target, path: socketPath, token: value, connectTimeoutMs, requestTimeoutMs }),
    );
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
    route('participantJoined', (info) => this.#others.join(info));
    route('participantLeft', ({ participantId, reason }) => this.#onParticipantLeft(participantId, reason));
    route('trackPublished', (info) => this.#others.subscribe(info));
    route('trackUnpublished', ({ producerId }) => this.#others.unpublished(producerId));
    route('trackUpdated', (info) => {
      if (info.participantId === this.#self.id) this.#self.applyServerTrackUpdate(info);
      else this.#others.updated(info);
    });
    route('consumerClosed', ({ consumerId }) => this.#others.consumerClosed(consumerId));
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
    route('mutedByFacilitator', ({ source, producerId }) => {
      if (this.#self.applyFacilitatorMute(source, producerId)) this.safeEmit('mutedByFacilitator', source);
    });
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
      await this.#self.restoreAll();
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
    this.#others.consumeAll();
    this.#refreshAttendance(signaling);
  }

  /** Closes the media session and forgets every subscription (their tracks end). */
  #dropMedia(): void {
    const media = this.#media;
    this.#media = undefined;
    media?.close();
    this.#others.forgetTracks();
  }

  /**
   * Out of the room but still connected (moved to the waiting room, or a rejoin that did not land
   * in the room): media closed, everyone else gone from view (`participantLeft` with `reason`),
   * local tracks kept to be published again on admission.
   */
  #leaveSessionView(reason: LeaveReason): void {
    this.#dropMedia();
    this.#others.removeAll(reason);
    this.#self.dropProducers();
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
      onError: (error) => reportError(this, error),
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
      this.#others.dropConsumers();
      await this.#self.restoreAll();
      this.#others.consumeAll();
    };
    this.#resetting = this.#resetting.then(reset).catch((error) => {
      if (this.#signaling === signaling && this.#state === 'joined' && !isConnectionLoss(error))
        reportError(this, error);
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
    this.#self.applySelf(self, session.capabilities);
    // Remote tracks went away with the old media session: they are received again.
    this.#others.reconcile(session.participants.filter((participant) => participant.id !== self.id));
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
    if (!this.#self.isFacilitator || !this.#moderationState.attendance) return;
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
    if (participantId === this.#self.id) this.#self.rename(name);
    else this.#others.rename(participantId, name);
    this.safeEmit('displayNameChanged', participantId, name);
  }

  #onParticipantLeft(participantId: string, reason: LeaveReason): void {
    if (participantId !== this.#self.id) {
      this.#others.remove(participantId, reason);
      return;
    }
    // Moved to the waiting room: the `waiting` notification says so.
    if (reason === 'movedToWaitingRoom') return;
    this.#close(reason === 'removed' ? 'removed' : reason === 'sessionEnded' ? 'sessionEnded' : 'serverDisconnect');
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
    this.#self.close();
    this.#others.clear();
    signaling?.close();
    this.#early = undefined;
    const admission = this.#admission;
    this.#admission = undefined;
    this.#setState('closed');
    admission?.reject(error ?? new InvalidStateError(`the client closed (${reason}) before being admitted`));
    this.safeEmit('closed', reason, error);
  }
}
