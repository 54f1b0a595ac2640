/**
 * `SessionClient`: one participant's place in a Haven session, from the browser: connect, join
 * (consent gate, waiting room), publish, receive the others' tracks, survive drops (a rejoin
 * within the server's grace, local tracks re-published in the same muted state, remote tracks
 * received again). Here: the public API, and the parts wired together. Elsewhere: connection/ (the
 * connection's life in connection-lifecycle.ts; reconnection runs its own loop, not socket.io's),
 * join-flow.ts, notification-router.ts, session-routes.ts, room-view.ts, network-quality.ts,
 * participants/, moderation.ts, breakouts.ts, e2ee/.
 */

import { BreakoutsView } from './breakouts.ts';
import type { ClientContext } from './client-context.ts';
import { ClientState } from './client-state.ts';
import { ConnectionLifecycle } from './connection/connection-lifecycle.ts';
import { E2ee } from './e2ee/e2ee.ts';
import { KeyExchange } from './e2ee/key-exchange.ts';
import { InvalidStateError } from './errors.ts';
import { JoinFlow } from './join-flow.ts';
import { Moderation, ModerationState } from './moderation.ts';
import { NetworkQuality } from './network-quality.ts';
import { NotificationRouter } from './notification-router.ts';
import { type ResolvedOptions, resolveOptions, type SessionClientOptions } from './options.ts';
import { LocalMember } from './participants/local-member.ts';
import type { LocalTrack } from './participants/local-track.ts';
import type { LocalParticipant, RemoteParticipant } from './participants/participant.ts';
import { RemoteMembers } from './participants/remote-members.ts';
import type {
  AudioMode,
  AudioOnlyState,
  BreakoutPlace,
  ChatAudience,
  ConnectionQuality,
  ConsentInfo,
  RaisedHand,
  RequestName,
  RequestOf,
  ResponseOf,
  RoomInfo,
  TrackSource,
  WaitingInfo,
} from './protocol/index.ts';
import { TypedEmitter } from './protocol/typed-emitter.ts';
import { checkChatArguments, RoomView } from './room-view.ts';
import { type CloseReason, type ConnectionState, reportError, type SessionClientEvents } from './session-events.ts';
import { sessionRoutes } from './session-routes.ts';
import type { Signaling } from './signaling.ts';

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
  readonly #state = new ClientState(this);
  readonly #context: ClientContext = {
    events: this,
    ...this.#state.accessors(),
    signaling: () => this.#connection.current,
    media: () => this.#join.media,
    receiving: () => this.#keys.receiving,
    mediaOptions: () => this.#options.media,
    close: (reason, error) => this.#close(reason, error),
  };
  readonly #keys: KeyExchange = KeyExchange.forBrowser({
    request: (name, payload) => this.#currentSignaling(`the ${name} request`).request(name, payload),
    onError: (error) => reportError(this, error),
    activated: () => this.#state.current === 'joined' && this.#others.consumeAll(),
  });
  readonly #router = new NotificationRouter(() => this.#state.current === 'joined');
  readonly #view = new RoomView(this, this.#keys);
  readonly #moderationState = new ModerationState(this);
  /** This client: who it is and what it publishes. */
  readonly #self = new LocalMember(this.#context);
  readonly #network = new NetworkQuality(this.#context, () => this.#self.id);
  /** Everyone else, and the tracks of theirs this client receives. */
  readonly #others = new RemoteMembers(this.#context, () => this.#self.id, this.#network);
  readonly #parts = {
    events: this,
    router: this.#router,
    view: this.#view,
    moderation: this.#moderationState,
    self: this.#self,
    others: this.#others,
    keys: this.#keys,
    network: this.#network,
    breakouts: new BreakoutsView(this, this.#keys),
  };
  readonly #join: JoinFlow = new JoinFlow(this.#context, this.#parts);
  /** The current connection, and what a drop means (a reconnection, or the end). */
  readonly #connection = new ConnectionLifecycle({
    ...this.#state.accessors(),
    options: () => this.#options,
    join: this.#join,
    router: this.#router,
    routes: (signaling) => sessionRoutes(signaling, this.#join, this.#parts),
    close: (reason, error) => this.#close(reason, error),
  });

  /** A facilitator's controls and waiting room ({@link Moderation}); anyone else gets `FORBIDDEN`. */
  readonly moderation: Moderation = new Moderation(
    (name, payload) => this.#request(`moderation.${name}()`, name, payload),
    this.#moderationState,
    this.#parts.breakouts,
  );

  /** End-to-end encryption (rooms created with `e2ee`): state, epoch, security code; see {@link E2ee}. */
  readonly e2ee: E2ee = new E2ee(this.#keys);

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
    return this.#state.current;
  }

  /** The room, once joined. */
  get room(): RoomInfo | undefined {
    return this.#view.room;
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
    return this.#view.activeSpeakerId;
  }

  /** The consent text to accept, while the state is `consent` (else undefined). */
  get consent(): ConsentInfo | undefined {
    return this.#state.current === 'consent' ? this.#join.consent : undefined;
  }

  /** What the waiting room says, while the state is `waiting` (else undefined). */
  get waitingInfo(): WaitingInfo | undefined {
    return this.#state.current === 'waiting' ? this.#join.waitingInfo : undefined;
  }

  /** `'controlled'` when participants may unmute only after a facilitator asked; default `'open'`. */
  get audioMode(): AudioMode {
    return this.#view.audioMode;
  }

  /** Whether the room is locked (nobody new gets in). */
  get locked(): boolean {
    return this.#view.locked;
  }

  /** Who is in the spotlight (possibly this client), or null. */
  get spotlight(): string | null {
    return this.#view.spotlight;
  }

  /** Raised hands, oldest first: everyone's for facilitators, one's own for others. */
  get hands(): ReadonlyArray<RaisedHand> {
    return this.#view.hands;
  }

  /** Where this client is in the session's breakouts: its group, or null in the main room (`movedToBreakout`). */
  get breakout(): Readonly<BreakoutPlace> {
    return this.#parts.breakouts.place;
  }

  /** This client's connection quality, as the server measures it; `'excellent'` until told. */
  get connectionQuality(): ConnectionQuality {
    return this.#network.quality;
  }

  /** Whether this client receives audio only, and what turned it on; see {@link SessionClient.setAudioOnly}. */
  get audioOnly(): Readonly<AudioOnlyState> {
    return this.#network.audioOnly;
  }

  /**
   * Receives audio only (`true`: video tracks get `pausedReason` `'audioOnly'`) or video again
   * (`false` also stops a weak downlink's automatic audio-only until it recovered); then
   * `audioOnlyChanged`. Sent on admission if called on the way there, and again after a rejoin.
   * @throws TypeError for a non-boolean; InvalidStateError unless joined or on the way there.
   */
  setAudioOnly(enabled: boolean): Promise<void> {
    return this.#network.setAudioOnly(enabled);
  }

  /**
   * Connects to the server (the token is checked in the handshake).
   *
   * @throws InvalidStateError unless the state is `'disconnected'`.
   * @throws HavenRequestError `UNAUTHORIZED` for a refused token, `TIMEOUT` after
   *   `connectTimeoutMs`, `DISCONNECTED` if the server cannot be reached; the state is then
   *   `'disconnected'` again and `connect()` may be retried.
   */
  connect(): Promise<void> {
    return this.#connection.connect();
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
   * @throws HavenRequestError a refusal (`ROOM_LOCKED`, `ROOM_FULL`, `FORBIDDEN` when banned,
   *   `NOT_FOUND`, `INVALID_STATE` when the session ended, …: the state is `'connected'` again);
   *   `DENIED` (closed, reason `denied`); `E2EE_UNSUPPORTED` in an E2EE room when this browser
   *   cannot encrypt (closed, reason `failed`); or the error the client closed with meanwhile.
   */
  async join(): Promise<void> {
    this.#state.assert('join()', 'connected');
    return this.#join.join(this.#currentSignaling('join()'));
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
    this.#state.assert('acceptConsent()', 'consent');
    await this.#join.acceptConsent(this.#currentSignaling('acceptConsent()'));
  }

  /** Raises this client's hand (`handRaised` follows, for it and the facilitators). */
  async raiseHand(): Promise<void> {
    await this.#request('raiseHand()', 'raiseHand', {});
  }

  /** Lowers this client's hand (`handLowered` follows). A facilitator lowers others' with `moderation.lowerHand(id)`. */
  async lowerHand(): Promise<void> {
    await this.#request('lowerHand()', 'lowerHand', {});
  }

  /** In a breakout group: facilitators are told which group asks. `INVALID_STATE` in the main room. */
  async askForHelp(): Promise<void> {
    await this.#request('askForHelp()', 'askForHelp', {});
  }

  /**
   * Sends a chat message (encrypted first in an E2EE room); resolves with its id. Everyone in its
   * audience gets `chatMessage`, this client too.
   *
   * @param text - 1 to 2000 characters.
   * @param to - `'everyone'` (default), `'facilitators'`, or a participant id (a private message).
   * @throws TypeError for an empty or too long `text`, or an empty `to`.
   * @throws InvalidStateError in an E2EE room before a key is active (`e2ee.state` `'waiting'`).
   * @throws HavenRequestError `FORBIDDEN` if this token may not chat (or not privately).
   */
  async sendChat(text: string, to: ChatAudience | string = 'everyone'): Promise<string> {
    checkChatArguments(text, to);
    this.#state.assert('sendChat()', 'joined');
    const sent = this.#keys.enabled ? await this.#keys.sealChat(text, to) : text;
    return (await this.#request('sendChat()', 'sendChat', { text: sent, to })).messageId;
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
   * (`scaleResolutionDownBy` 4/2/1, at most 150/500/1500 kbps); each receiver gets the layer that
   * fits its `setPreferredSize`, and layers nobody receives are turned off here (dynacast).
   *
   * @param track - a video track to send; default: captured with `getUserMedia` (1280×720 ideal,
   *   at most 30 fps), and then stopped by the SDK when unpublished.
   * @throws as {@link SessionClient.publishMicrophone}, for a video track and a camera (`FORBIDDEN`: no video).
   */
  publishCamera(track?: MediaStreamTrack): Promise<LocalTrack> {
    return this.#self.publish('camera', track);
  }

  /**
   * Publishes a screen (one layer, at most 1.5 Mbps and 15 fps; a weak uplink drops frames, not
   * sharpness: `maintain-resolution`). When the user stops sharing from the browser's own UI,
   * the track is unpublished (`localTrackUnpublished`).
   *
   * @param track - a video track to send; default: captured with `getDisplayMedia`.
   * @throws as {@link SessionClient.publishMicrophone}, for a video track and a screen (`FORBIDDEN`: no sharing).
   */
  publishScreen(track?: MediaStreamTrack): Promise<LocalTrack> {
    return this.#self.publish('screen', track);
  }

  /**
   * Mutes or unmutes the microphone: the track is disabled at once (nothing leaves this device)
   * and the producer paused on the server. Allowed while reconnecting and in the waiting room:
   * the state is applied when the track is re-published.
   *
   * @throws TypeError if `enabled` is not a boolean.
   * @throws InvalidStateError if not joined (or reconnecting, or moved to the waiting room), or no
   *   microphone is published.
   * @throws HavenRequestError `FORBIDDEN` when unmuting in audio mode `controlled` without a
   *   facilitator's `unmuteRequested`: the track is muted again.
   */
  setMicrophoneEnabled(enabled: boolean): Promise<void> {
    return this.#self.setEnabled('microphone', enabled);
  }

  /** Turns the camera off or on; the same contract as {@link SessionClient.setMicrophoneEnabled}. */
  setCameraEnabled(enabled: boolean): Promise<void> {
    return this.#self.setEnabled('camera', enabled);
  }

  /**
   * Stops publishing `source` (closes its producer on the server). Does nothing if `source` is
   * not published. A track the SDK captured is stopped; a track passed in is left running.
   *
   * @throws TypeError if `source` is not `'microphone'`, `'camera'` or `'screen'`.
   */
  async unpublish(source: TrackSource): Promise<void> {
    await this.#self.unpublish(source);
  }

  /**
   * Leaves the room and closes the client (state `'closed'`, `closed` with reason `'left'`): tells
   * the server (best effort), closes every transport, stops the tracks the SDK captured. In any
   * state; idempotent.
   */
  async leave(): Promise<void> {
    if (this.#state.current === 'closed') return;
    this.#connection.markLeaving();
    const signaling = this.#connection.current;
    if (signaling?.connected && this.#state.is('joined', 'waiting', 'consent')) {
      // Closing anyway on a failure: the server lets the place go when the connection drops.
      await signaling.request('leave', {}).catch(() => {});
    }
    this.#close('left');
  }

  #currentSignaling(what: string): Signaling {
    const signaling = this.#connection.current;
    if (!signaling) throw new InvalidStateError(`${what}: not connected`);
    return signaling;
  }

  /** Sends a request that needs the client in the room. */
  #request<K extends RequestName>(what: string, name: K, payload: RequestOf<K>): Promise<ResponseOf<K>> {
    this.#state.assert(what, 'joined');
    return this.#currentSignaling(what).request(name, payload);
  }

  /** Releases everything and enters `closed` for good. Idempotent. */
  #close(reason: CloseReason, error?: Error): void {
    if (this.#state.current === 'closed') return;
    const signaling = this.#connection.detach();
    this.#router.reset();
    this.#join.dropMedia();
    this.#self.close();
    this.#others.clear();
    this.#keys.close();
    signaling?.close();
    this.#state.set('closed');
    this.#join.rejectAdmission(error ?? new InvalidStateError(`the client closed (${reason}) before being admitted`));
    this.safeEmit('closed', reason, error);
  }
}
