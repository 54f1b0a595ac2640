/**
 * Everyone else in the room as this client sees them: the state behind each
 * {@link RemoteParticipant}, and a subscription per remote track (by producer id). A track may be
 * announced before its participant; it is received once both are known and the client is in the
 * room.
 */
import type { ClientContext } from '../client-context.ts';
import { HavenRequestError, isConnectionLoss } from '../errors.ts';
import type { NotificationHandlers } from '../notification-router.ts';
import type {
  ConnectionQuality,
  ConsumerPauseReason,
  LeaveReason,
  ParticipantInfo,
  TrackInfo,
} from '../protocol/index.ts';
import { reportError } from '../session-events.ts';
import { RemoteParticipant, type RemoteParticipantState } from './participant.ts';
import { RemoteSubscription } from './remote-subscription.ts';

/** What {@link RemoteMembers} need of the client they belong to. */
export type RemoteMembersHost = Pick<ClientContext, 'events' | 'media' | 'state' | 'receiving'>;

/** Where someone's connection quality is known. */
export interface QualityLookup {
  qualityOf(participantId: string): ConnectionQuality | undefined;
}

export class RemoteMembers {
  readonly #host: RemoteMembersHost;
  /** This client's participant id, once joined (never among the others). */
  readonly #selfId: () => string | undefined;
  readonly #states = new Map<string, RemoteParticipantState>();
  readonly #participants = new Map<string, RemoteParticipant>();
  /** By producer id. */
  readonly #subscriptions = new Map<string, RemoteSubscription>();
  /** Why the server holds back a consumer of this media session, by consumer id (it may say so before the consumer is up). */
  readonly #pauseReasons = new Map<string, ConsumerPauseReason>();
  readonly #qualities: QualityLookup | undefined;

  /** @param qualities - someone's connection quality, where this client may see it (network-quality.ts). */
  constructor(host: RemoteMembersHost, selfId: () => string | undefined, qualities?: QualityLookup) {
    this.#host = host;
    this.#selfId = selfId;
    this.#qualities = qualities;
  }

  /** The app's views, by participant id. */
  get participants(): ReadonlyMap<string, RemoteParticipant> {
    return this.#participants;
  }

  /** The handlers of the notifications only they are concerned by. */
  handlers(): NotificationHandlers<
    'participantJoined' | 'trackPublished' | 'trackUnpublished' | 'consumerClosed' | 'consumerPaused'
  > {
    return {
      participantJoined: (info) => this.join(info),
      trackPublished: (info) => this.subscribe(info),
      trackUnpublished: ({ producerId }) => this.unpublished(producerId),
      consumerClosed: ({ consumerId }) => this.consumerClosed(consumerId),
      consumerPaused: ({ consumerId, reason }) => this.consumerPaused(consumerId, reason),
    };
  }

  /** A facilitator renamed someone: false if that is nobody here. */
  rename(participantId: string, name: string): boolean {
    const state = this.#states.get(participantId);
    if (state) state.name = name;
    return state !== undefined;
  }

  /** A `participantJoined`: who it is, their tracks, and tracks of theirs announced before them. */
  join(info: ParticipantInfo): void {
    if (info.id === this.#selfId()) return;
    this.#upsert(info);
    for (const track of info.tracks) this.subscribe(track);
    for (const subscription of this.#subscriptions.values()) {
      if (subscription.participantId === info.id) void this.#consume(subscription);
    }
  }

  /** Someone left (their tracks end first), with `reason`. */
  remove(participantId: string, reason: LeaveReason): void {
    for (const subscription of [...this.#subscriptions.values()]) {
      if (subscription.participantId === participantId) this.#unsubscribe(subscription);
    }
    const participant = this.#participants.get(participantId);
    this.#participants.delete(participantId);
    this.#states.delete(participantId);
    if (participant) this.#host.events.safeEmit('participantLeft', participant, reason);
  }

  /** Everyone leaves the view (this client is out of the room). */
  removeAll(reason: LeaveReason): void {
    for (const id of [...this.#states.keys()]) this.remove(id, reason);
  }

  /**
   * The room as a join answer describes it: who left meanwhile goes, who came is added, tracks
   * no longer published are forgotten, and every track is received again (the old media session
   * went away with its consumers).
   */
  reconcile(others: readonly ParticipantInfo[]): void {
    this.dropConsumers();
    const present = new Set(others.map((participant) => participant.id));
    for (const id of [...this.#states.keys()]) {
      if (!present.has(id)) this.remove(id, 'left');
    }
    const published = new Set<string>();
    for (const participant of others) {
      this.#upsert(participant);
      for (const track of participant.tracks) published.add(track.producerId);
    }
    for (const [producerId, subscription] of this.#subscriptions) {
      if (!published.has(producerId)) {
        subscription.markRemoved();
        this.#subscriptions.delete(producerId);
      }
    }
    for (const participant of others) for (const track of participant.tracks) this.subscribe(track);
  }

  /** Records a remote track and receives it (once joined, and once its participant is known). */
  subscribe(info: TrackInfo): void {
    if (info.participantId === this.#selfId()) return;
    const known = this.#subscriptions.get(info.producerId);
    if (known) {
      known.update(info);
      return;
    }
    const subscription = new RemoteSubscription(info);
    this.#subscriptions.set(info.producerId, subscription);
    void this.#consume(subscription);
  }

  /** A remote track was unpublished. */
  unpublished(producerId: string): void {
    const subscription = this.#subscriptions.get(producerId);
    if (subscription) this.#unsubscribe(subscription);
  }

  /** The server closed one of this client's consumers. */
  consumerClosed(consumerId: string): void {
    for (const subscription of [...this.#subscriptions.values()]) {
      if (subscription.consumer?.id === consumerId) this.#unsubscribe(subscription);
    }
  }

  /** The server holds back one of this client's consumers (its downlink, audio-only), or sends it again (null). */
  consumerPaused(consumerId: string, reason: ConsumerPauseReason | null): void {
    if (reason === null) this.#pauseReasons.delete(consumerId);
    else this.#pauseReasons.set(consumerId, reason);
    for (const subscription of this.#subscriptions.values()) {
      if (subscription.consumer?.id !== consumerId || !subscription.remote) continue;
      const participant = this.#participants.get(subscription.participantId);
      if (subscription.setPausedReason(reason) && participant)
        this.#host.events.safeEmit('trackUpdated', subscription.remote, participant);
    }
  }

  /** A remote track was muted or unmuted by its publisher (a track not known yet is subscribed). */
  updated(info: TrackInfo): void {
    const subscription = this.#subscriptions.get(info.producerId);
    if (!subscription) {
      this.subscribe(info);
      return;
    }
    subscription.update(info);
    const participant = this.#participants.get(info.participantId);
    if (!participant || !subscription.remote) return;
    if (subscription.setPaused(info.paused))
      this.#host.events.safeEmit('trackUpdated', subscription.remote, participant);
  }

  /** Receives every track not received on the current media session (also once an E2EE key is active). */
  consumeAll(): void {
    for (const subscription of this.#subscriptions.values()) void this.#consume(subscription);
  }

  /** Every consumer closed (`trackUnsubscribed`), the subscriptions kept to be received again. */
  dropConsumers(): void {
    for (const subscription of this.#subscriptions.values()) this.#dropConsumer(subscription);
    this.#pauseReasons.clear();
  }

  /** Every subscription forgotten (their tracks end): the media session is gone. */
  forgetTracks(): void {
    for (const subscription of this.#subscriptions.values()) {
      subscription.markRemoved();
      this.#dropConsumer(subscription);
    }
    this.#subscriptions.clear();
    this.#pauseReasons.clear();
  }

  /** The client closed (tracks already forgotten): nobody left in view, without events. */
  clear(): void {
    this.#participants.clear();
    this.#states.clear();
  }

  #upsert(info: ParticipantInfo): void {
    const known = this.#states.get(info.id);
    if (known) {
      known.name = info.name;
      known.role = info.role;
      return;
    }
    const state: RemoteParticipantState = {
      id: info.id,
      name: info.name,
      role: info.role,
      tracks: new Map(),
      connectionQuality: () => this.#qualities?.qualityOf(info.id),
    };
    const participant = new RemoteParticipant(state);
    this.#states.set(info.id, state);
    this.#participants.set(info.id, participant);
    this.#host.events.safeEmit('participantJoined', participant);
  }

  #unsubscribe(subscription: RemoteSubscription): void {
    subscription.markRemoved();
    this.#subscriptions.delete(subscription.producerId);
    this.#dropConsumer(subscription);
  }

  async #consume(subscription: RemoteSubscription): Promise<void> {
    const media = this.#host.media();
    const { producerId, participantId } = subscription.info;
    // Tracks are received only in the room (in an E2EE room, once the key is there: consumeAll() then).
    if (this.#host.state() !== 'joined' || !this.#host.receiving() || !media || media.closed) return;
    if (!subscription.wantsConsumerOn(media) || !this.#states.has(participantId)) return;
    subscription.consumingOn = media;
    try {
      const { consumer, response } = await media.consume(producerId);
      const state = this.#states.get(participantId);
      const participant = this.#participants.get(participantId);
      if (subscription.removed || media !== this.#host.media() || media.closed || !state || !participant) {
        consumer.close();
        return;
      }
      const remote = subscription.receive(consumer, response, media, this.#pauseReasons.get(consumer.id) ?? null);
      state.tracks.set(producerId, remote);
      this.#host.events.safeEmit('trackSubscribed', remote, participant);
      subscription.restorePreferredSize();
    } catch (error) {
      const expected =
        subscription.removed ||
        media !== this.#host.media() ||
        media.closed ||
        isConnectionLoss(error) ||
        // The producer went away meanwhile (trackUnpublished follows).
        (error instanceof HavenRequestError && error.code === 'NOT_FOUND');
      if (!expected) reportError(this.#host.events, error);
    } finally {
      if (subscription.consumingOn === media) subscription.consumingOn = undefined;
    }
  }

  /** Closes the subscription's consumer, if any, and emits `trackUnsubscribed`. */
  #dropConsumer(subscription: RemoteSubscription): void {
    const consumerId = subscription.consumer?.id;
    if (consumerId) this.#pauseReasons.delete(consumerId);
    const remote = subscription.drop();
    if (!remote) return;
    this.#states.get(remote.participantId)?.tracks.delete(remote.producerId);
    const participant = this.#participants.get(remote.participantId);
    if (participant) this.#host.events.safeEmit('trackUnsubscribed', remote, participant);
  }
}
