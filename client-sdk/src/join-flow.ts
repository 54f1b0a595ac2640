/**
 * The join's stages: a join (or rejoin) may stop at the consent gate and in the waiting room
 * before the client is admitted; a facilitator may send it back to the waiting room. Admission
 * builds a new media session and reconciles everything the client knew with what the server
 * says (a resumed rejoin keeps the place: the others see no leave). A `mediaReset` (a media
 * worker failed) is handled the same way, without rejoining.
 */
import type { BreakoutsView } from './breakouts.ts';
import type { ClientContext } from './client-context.ts';
import type { KeyExchange } from './e2ee/key-exchange.ts';
import { HavenRequestError, InvalidStateError, isConnectionLoss } from './errors.ts';
import { MediaSession } from './media-session.ts';
import type { ModerationState } from './moderation.ts';
import type { NetworkQuality } from './network-quality.ts';
import type {
  FinalNotification,
  NotificationHandlers,
  NotificationRouter,
  StageNotification,
} from './notification-router.ts';
import type { LocalMember } from './participants/local-member.ts';
import type { RemoteMembers } from './participants/remote-members.ts';
import {
  type ConsentInfo,
  type JoinResponse,
  type LeaveReason,
  protocolVersion,
  type SessionState,
  type WaitingInfo,
} from './protocol/index.ts';
import type { RoomView } from './room-view.ts';
import { type CloseReason, reportError, toError } from './session-events.ts';
import type { Signaling } from './signaling.ts';

/** The parts of the client a {@link JoinFlow} brings up to date on each stage. */
export interface JoinParts {
  readonly router: NotificationRouter;
  readonly self: LocalMember;
  readonly others: RemoteMembers;
  readonly view: RoomView;
  readonly moderation: ModerationState;
  readonly keys: KeyExchange;
  readonly network: NetworkQuality;
  readonly breakouts: BreakoutsView;
}

/** What a {@link JoinFlow} needs of the client it belongs to. */
type JoinFlowHost = Omit<ClientContext, 'media' | 'assertState'> & JoinParts;

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

export class JoinFlow {
  readonly #host: JoinFlowHost;
  #media: MediaSession | undefined;
  /** From the last admission, for a media session built after a `mediaReset`. */
  #routerRtpCapabilities: unknown;
  /** The media reset in progress, if any (resets run one after another). */
  #resetting: Promise<void> = Promise.resolve();
  /** The server's reconnection grace window, from the last join answer (0 until one said). */
  #graceMs = 0;
  /** Whether the server gave this client a place (a stage) at least once: a drop then reconnects. */
  #placed = false;
  /** The `join()` call waiting to be admitted, if any. */
  #admission: Deferred | undefined;
  #consent: ConsentInfo | undefined;
  #waitingInfo: WaitingInfo | undefined;

  constructor(context: ClientContext, parts: JoinParts) {
    this.#host = { ...context, ...parts };
  }

  /** The current media session, if any. */
  get media(): MediaSession | undefined {
    return this.#media;
  }

  get graceMs(): number {
    return this.#graceMs;
  }

  get placed(): boolean {
    return this.#placed;
  }

  /** The consent text last shown (the state says whether it is in force). */
  get consent(): ConsentInfo | undefined {
    return this.#consent;
  }

  /** What the waiting room last said (the state says whether the client is there). */
  get waitingInfo(): WaitingInfo | undefined {
    return this.#waitingInfo;
  }

  /** `join()` on `signaling` (the state is `connected`); resolves once admitted. */
  async join(signaling: Signaling): Promise<void> {
    this.#host.setState('joining');
    const admission = deferred();
    this.#admission = admission;
    try {
      await this.#requestStage(signaling, () => this.#sendJoin(signaling));
    } catch (error) {
      if (this.#admission === admission) this.#admission = undefined;
      // An E2EE room this browser cannot encrypt for: no later join can pass, the client closes.
      if (error instanceof HavenRequestError && error.code === 'E2EE_UNSUPPORTED') this.#host.close('failed', error);
      if (this.#host.signaling() === signaling && this.#host.state() === 'joining') this.#host.setState('connected');
      throw error;
    }
    return admission.promise;
  }

  /** `acceptConsent()` on `signaling` (the state is `consent`). */
  async acceptConsent(signaling: Signaling): Promise<void> {
    const consent = this.#consent;
    if (!consent) throw new InvalidStateError('acceptConsent(): no consent text was shown');
    this.#host.setState('joining');
    try {
      await this.#requestStage(signaling, () => signaling.request('acceptConsent', { version: consent.version }));
    } catch (error) {
      if (this.#host.signaling() === signaling && this.#host.state() === 'joining') {
        // Another version is in force now: the refusal carries it, to show and accept instead.
        const current = error instanceof HavenRequestError ? error.consent : undefined;
        if (current) this.#consent = current;
        this.#host.setState('consent');
        if (!isConnectionLoss(error)) reportError(this.#host.events, error);
        if (current) this.#host.events.safeEmit('consentRequired', { ...current });
      }
      throw error;
    }
  }

  /** A rejoin on a new connection after a drop (`answered` as soon as the server answers it). */
  rejoin(signaling: Signaling, answered: () => void): Promise<void> {
    return this.#requestStage(signaling, () =>
      this.#sendJoin(signaling).then((answer) => {
        answered();
        return answer;
      }),
    );
  }

  /** The join request: with this client's public key where it can encrypt (the same key on every rejoin). */
  async #sendJoin(signaling: Signaling): Promise<JoinResponse> {
    return signaling.request('join', { protocolVersion, ...(await this.#host.keys.joinFields()) });
  }

  /** The notifications about this client's place, and the ones that end it, on `signaling`. */
  handlers(signaling: Signaling): {
    stage: NotificationHandlers<StageNotification>;
    final: NotificationHandlers<FinalNotification>;
    mediaReset: () => void;
  } {
    const { events } = this.#host;
    const close = (reason: CloseReason, error?: Error) => this.#host.close(reason, error);
    return {
      stage: {
        waiting: (info) => this.#onWaiting(signaling, info),
        admitted: (session) => this.#onAdmitted(signaling, session),
      },
      final: {
        denied: ({ reason }) => {
          events.safeEmit('denied', reason);
          close('denied', new HavenRequestError('DENIED', reason ?? 'a facilitator did not admit you', 'join'));
        },
        removed: ({ banned }) => {
          events.safeEmit('removed', banned);
          close('removed');
        },
        sessionEnded: ({ reason }) => {
          this.#host.moderation.markSessionEnded();
          events.safeEmit('sessionEnded', reason);
          close('sessionEnded');
        },
        replaced: () => close('replaced'),
      },
      mediaReset: () => this.#onMediaReset(signaling),
    };
  }

  /** The server tells everyone this client left the room (`participantLeft` about itself). */
  onSelfLeft(reason: LeaveReason): void {
    // Moved to the waiting room: the `waiting` notification says so.
    if (reason === 'movedToWaitingRoom') return;
    this.#host.close(
      reason === 'removed' ? 'removed' : reason === 'sessionEnded' ? 'sessionEnded' : 'serverDisconnect',
    );
  }

  /**
   * Sends a request answered by a join stage (`join`, `acceptConsent`) on `signaling` and goes
   * there. Notifications about the room that arrive meanwhile are held (replayed once in the
   * room); `waiting` and `admitted` ones are kept and applied after the answer.
   */
  async #requestStage(signaling: Signaling, send: () => Promise<JoinResponse>): Promise<void> {
    const { router, events } = this.#host;
    const held = router.hold();
    const early = router.startStage();
    let response: JoinResponse;
    try {
      response = await send();
    } catch (error) {
      if (router.holding(held)) router.release();
      throw error;
    } finally {
      router.endStage(early);
    }
    this.#assertCurrent(signaling);
    if (response.stage !== 'admitted' && response.reconnectGraceMs) this.#graceMs = response.reconnectGraceMs;
    switch (response.stage) {
      case 'admitted':
        await this.#enterSession(signaling, response.session);
        return;
      case 'consent':
        router.release();
        this.#placed = true;
        this.leaveSessionView('left');
        this.#consent = response.consent;
        this.#host.setState('consent');
        events.safeEmit('consentRequired', { ...response.consent });
        return;
      case 'waiting':
        router.release();
        this.#placed = true;
        this.leaveSessionView('left');
        this.#waitingInfo = { ...(early.waiting ?? response.waiting) };
        this.#host.setState('waiting');
        events.safeEmit('waiting', { ...this.#waitingInfo });
        if (early.admitted) this.#onAdmitted(signaling, early.admitted);
        return;
      default:
        throw new HavenRequestError('INTERNAL', 'malformed join answer from the server', 'join');
    }
  }

  /** A `waiting` notification: what the waiting room says changed, or a facilitator moved this client back. */
  #onWaiting(signaling: Signaling, info: WaitingInfo): void {
    const { events } = this.#host;
    if (signaling !== this.#host.signaling()) return;
    if (this.#host.state() === 'joined') {
      // The server closed this client's transports, producers and consumers.
      this.leaveSessionView('movedToWaitingRoom');
      this.#waitingInfo = { ...info };
      this.#host.setState('waiting');
      events.safeEmit('movedToWaitingRoom');
      events.safeEmit('waiting', { ...info });
      return;
    }
    if (this.#host.state() !== 'waiting') return;
    this.#waitingInfo = { ...info };
    events.safeEmit('waiting', { ...info });
  }

  /** An `admitted` notification: in from the waiting room. */
  #onAdmitted(signaling: Signaling, session: SessionState): void {
    if (signaling !== this.#host.signaling() || this.#host.state() !== 'waiting') return;
    this.#host.setState('joining');
    this.#enterSession(signaling, session).catch((error) => {
      // A connection lost meanwhile is the reconnection's business.
      if (this.#host.signaling() !== signaling || this.#host.state() === 'closed' || isConnectionLoss(error)) return;
      this.#host.close('failed', toError(error));
    });
  }

  /**
   * The server lost this client's media (`mediaReset`: a media worker failed) but kept its place:
   * new transports, every local track published again, every remote track received again, as
   * after a resumed join. A connection lost meanwhile leaves the rest to the reconnection.
   */
  #onMediaReset(signaling: Signaling): void {
    const current = () => this.#host.signaling() === signaling && this.#host.state() === 'joined';
    const reset = async () => {
      if (!current()) return;
      await this.#replaceMediaSession(signaling);
      this.#host.others.dropConsumers();
      await this.#host.self.restoreAll();
      this.#host.others.consumeAll();
    };
    this.#resetting = this.#resetting.then(reset).catch((error) => {
      if (current() && !isConnectionLoss(error)) reportError(this.#host.events, error);
    });
  }

  /**
   * Out of the room but still connected (moved to the waiting room, or a rejoin that did not land
   * in the room): media closed, everyone else gone from view (`participantLeft` with `reason`),
   * local tracks kept to be published again on admission.
   */
  leaveSessionView(reason: LeaveReason): void {
    this.dropMedia();
    this.#host.others.removeAll(reason);
    this.#host.self.dropProducers();
    this.#host.view.leave();
    this.#host.moderation.leave();
    this.#host.keys.leave();
    this.#host.network.leave();
    this.#host.breakouts.leave();
  }

  /** Closes the media session and forgets every subscription (their tracks end). */
  dropMedia(): void {
    const media = this.#media;
    this.#media = undefined;
    media?.close();
    this.#host.others.forgetTracks();
  }

  /** The client closed: a `join()` still waiting for admission rejects with `error`. */
  rejectAdmission(error: Error): void {
    const admission = this.#admission;
    this.#admission = undefined;
    admission?.reject(error);
  }

  /**
   * Applies an admission (a join answer or an `admitted` notification): a new media session, this
   * client and everyone else reconciled with what the client knew, every local track published
   * (again, in the same muted state), then the state `joined`, `admitted` (unless a reconnection
   * resumed the place), the held notifications, and every remote track subscribed.
   */
  async #enterSession(signaling: Signaling, session: SessionState): Promise<void> {
    const { router, self, others, events } = this.#host;
    const held = router.keepHolding();
    try {
      this.#routerRtpCapabilities = session.routerRtpCapabilities;
      // Before the media session: in an E2EE room its transports attach the frame transforms.
      this.#host.keys.enter(session);
      // The server closed the old transports when it gave the place back.
      await this.#replaceMediaSession(signaling);
      this.#applySession(session);
      this.#assertCurrent(signaling);
      await self.restoreAll();
      this.#assertCurrent(signaling);
      this.#placed = true;
      this.#host.setState('joined');
    } catch (error) {
      if (router.holding(held)) router.release();
      throw error;
    }
    router.release();
    if (!session.resumed) events.safeEmit('admitted');
    const admission = this.#admission;
    this.#admission = undefined;
    admission?.resolve();
    const stillIn = () => this.#host.state() === 'joined' && this.#host.signaling() === signaling;
    for (const run of held) {
      if (!stillIn()) return;
      run();
    }
    if (this.#host.state() !== 'joined') return;
    // Before the consumes: a person who chose audio only gets no video on the new session either.
    this.#host.network.restoreChoice(signaling);
    others.consumeAll();
    if (self.isFacilitator)
      this.#host.moderation.refreshAttendance(() => signaling.request('liveAttendance', {}), stillIn);
  }

  #applySession(session: SessionState): void {
    const { self } = session;
    this.#graceMs = session.reconnectGraceMs;
    this.#consent = undefined;
    this.#waitingInfo = undefined;
    this.#host.view.applySession(session);
    this.#host.moderation.applySession(session);
    this.#host.self.applySelf(self, session.capabilities);
    // Remote tracks went away with the old media session: they are received again.
    this.#host.others.reconcile(session.participants.filter((participant) => participant.id !== self.id));
    // Once everyone is in view: qualities are emitted about known participants.
    this.#host.network.applySession(session);
    this.#host.breakouts.applySession(session);
  }

  /** Throws if the client closed, or `signaling` is no longer its connection (a listener may have left). */
  #assertCurrent(signaling: Signaling): void {
    if (this.#host.state() === 'closed') throw new InvalidStateError('the client was closed while joining');
    if (this.#host.signaling() !== signaling)
      throw new HavenRequestError('DISCONNECTED', 'the connection dropped', 'join');
  }

  /** Builds a media session on `signaling` (a new Device) and closes the previous one. */
  async #replaceMediaSession(signaling: Signaling): Promise<void> {
    const media = await MediaSession.create({
      signaling,
      routerRtpCapabilities: this.#routerRtpCapabilities,
      ...this.#host.mediaOptions(),
      e2ee: this.#host.keys.media,
      onError: (error) => reportError(this.#host.events, error),
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
  }
}
