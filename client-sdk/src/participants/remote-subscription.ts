/**
 * One remote track (a producer of someone else) and this client's consumer of it. It outlives a
 * media session: after a reconnection it is received again as a new {@link RemoteTrack}, at the
 * size last asked for. It owns the state behind its current RemoteTrack.
 */
import type { Consumer } from 'mediasoup-client/types';
import type { MediaSession } from '../media-session.ts';
import type { ConsumeResponse, ConsumerPauseReason, TrackInfo } from '../protocol/index.ts';
import { RemoteTrack, type RemoteTrackState } from './remote-track.ts';

export class RemoteSubscription {
  #info: TrackInfo;
  #consumer: Consumer | undefined;
  #remote: RemoteTrack | undefined;
  #remoteState: RemoteTrackState | undefined;
  /** The media session a consume is in flight on. */
  consumingOn: MediaSession | undefined;
  /** Last preferred size of a previous RemoteTrack, sent again after a reconnection. */
  #preferredSize: { width: number; height: number } | undefined;
  #removed = false;

  constructor(info: TrackInfo) {
    this.#info = { ...info };
  }

  get info(): TrackInfo {
    return this.#info;
  }

  get producerId(): string {
    return this.#info.producerId;
  }

  get participantId(): string {
    return this.#info.participantId;
  }

  get consumer(): Consumer | undefined {
    return this.#consumer;
  }

  /** Its track as the app sees it, while received. */
  get remote(): RemoteTrack | undefined {
    return this.#remote;
  }

  /** The track was unpublished, its owner left, or the client closed: never received again. */
  get removed(): boolean {
    return this.#removed;
  }

  markRemoved(): void {
    this.#removed = true;
  }

  /** What the server says of the track now (its paused state, mostly). */
  update(info: TrackInfo): void {
    this.#info = { ...info };
  }

  /** Whether a consume should start on `media`: not removed, not received, not already in flight there. */
  wantsConsumerOn(media: MediaSession): boolean {
    return !this.#removed && !this.#consumer && this.consumingOn !== media;
  }

  /**
   * The consumer is up: a new RemoteTrack, held back by the server for `pausedReason` (a
   * `consumerPaused` may come before the consumer is up here).
   */
  receive(
    consumer: Consumer,
    response: ConsumeResponse,
    media: MediaSession,
    pausedReason: ConsumerPauseReason | null = null,
  ): RemoteTrack {
    const { producerId, participantId } = this.#info;
    const remoteState: RemoteTrackState = {
      consumerId: consumer.id,
      producerId,
      participantId,
      kind: response.kind,
      source: response.source,
      track: consumer.track,
      paused: this.#info.paused,
      pausedReason,
      ended: false,
      preferredSize: undefined,
      sendPreferredSize: async (width, height) => {
        await media.signaling.request('setPreferredSize', { consumerId: consumer.id, width, height });
      },
    };
    const remote = new RemoteTrack(remoteState);
    this.#consumer = consumer;
    this.#remote = remote;
    this.#remoteState = remoteState;
    return remote;
  }

  /** Asks again for the size a previous RemoteTrack was last rendered at (once the app has the new one). */
  restorePreferredSize(): void {
    const size = this.#preferredSize;
    if (size && this.#remote && this.#remoteState && !this.#remoteState.ended)
      this.#remote.setPreferredSize(size.width, size.height).catch(() => {});
  }

  /** Its publisher muted or unmuted it: whether the RemoteTrack changed (then `trackUpdated` is due). */
  setPaused(paused: boolean): boolean {
    const state = this.#remoteState;
    if (!this.#remote || !state || state.paused === paused) return false;
    state.paused = paused;
    return true;
  }

  /** The server holds its consumer back, or sends it again (null): whether that changed (then `trackUpdated` is due). */
  setPausedReason(reason: ConsumerPauseReason | null): boolean {
    const state = this.#remoteState;
    if (!this.#remote || !state || state.pausedReason === reason) return false;
    state.pausedReason = reason;
    return true;
  }

  /** Closes the consumer, if any; answers the RemoteTrack that ended (then `trackUnsubscribed` is due). */
  drop(): RemoteTrack | undefined {
    const consumer = this.#consumer;
    const remote = this.#remote;
    const remoteState = this.#remoteState;
    this.#consumer = undefined;
    this.#remote = undefined;
    this.#remoteState = undefined;
    if (consumer && !consumer.closed) consumer.close();
    if (!remote || !remoteState) return undefined;
    this.#preferredSize = remoteState.preferredSize ?? this.#preferredSize;
    remoteState.ended = true;
    return remote;
  }
}
