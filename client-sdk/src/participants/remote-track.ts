/** What the app sees of a received track; its state is owned by its subscription (remote-subscription.ts). */
import type { ConsumerPauseReason, MediaKind, TrackSource } from '../protocol/index.ts';

/** @internal State behind a {@link RemoteTrack}. */
export interface RemoteTrackState {
  consumerId: string;
  producerId: string;
  participantId: string;
  kind: MediaKind;
  source: TrackSource;
  track: MediaStreamTrack;
  paused: boolean;
  /** Why the server holds it back from this client, or null while it sends it. */
  pausedReason: ConsumerPauseReason | null;
  ended: boolean;
  /** Last size sent with `setPreferredSize`. */
  preferredSize: { width: number; height: number } | undefined;
  sendPreferredSize: (width: number, height: number) => Promise<void>;
}

/** Another participant's track, as received by this client. */
export class RemoteTrack {
  readonly #state: RemoteTrackState;

  /** @internal Created by its subscription. */
  constructor(state: RemoteTrackState) {
    this.#state = state;
  }

  /** The received track: attach it to a `<video>` or `<audio>` element (`new MediaStream([track])`). */
  get track(): MediaStreamTrack {
    return this.#state.track;
  }
  /** `'audio'` or `'video'`: attach to an `<audio>` or a `<video>` element. */
  get kind(): MediaKind {
    return this.#state.kind;
  }
  /** What the publisher sends: `'microphone'`, `'camera'` or `'screen'`. */
  get source(): TrackSource {
    return this.#state.source;
  }
  /** Id of the participant who publishes it. */
  get participantId(): string {
    return this.#state.participantId;
  }
  /** The publisher's producer id. */
  get producerId(): string {
    return this.#state.producerId;
  }
  /** True while its publisher has it muted (nothing flows; show an avatar instead of black). */
  get paused(): boolean {
    return this.#state.paused;
  }
  /**
   * Why the server does not send this video to this client now, while its publisher does send
   * it: `'bandwidth'` (this client's downlink cannot carry it: show "video paused: weak
   * connection"), `'audioOnly'` (this client receives audio only); null while it is sent. Audio is
   * never held back. `trackUpdated` is emitted when it changes.
   */
  get pausedReason(): ConsumerPauseReason | null {
    return this.#state.pausedReason;
  }
  /** True once unsubscribed (`trackUnsubscribed` was emitted); the track then ends. */
  get ended(): boolean {
    return this.#state.ended;
  }

  /**
   * Tells the server the size this video is rendered at, in CSS pixels times `devicePixelRatio`,
   * so that it forwards the smallest simulcast layer that looks sharp. Cheap to call from a
   * `ResizeObserver`: the same size is not sent twice, and a call on an audio or ended track does
   * nothing. After a reconnection the SDK sends the last size again for the new RemoteTrack.
   *
   * A hidden element (0×0) gets the lowest layer.
   *
   * @throws TypeError if `width` or `height` is not a finite number, zero or more.
   */
  async setPreferredSize(width: number, height: number): Promise<void> {
    if (typeof width !== 'number' || !Number.isFinite(width) || width < 0) {
      throw new TypeError('width must be a finite number, zero or more');
    }
    if (typeof height !== 'number' || !Number.isFinite(height) || height < 0) {
      throw new TypeError('height must be a finite number, zero or more');
    }
    if (this.#state.kind !== 'video' || this.#state.ended) return;
    // The protocol takes whole pixels up to 16384.
    const size = { width: Math.min(Math.round(width), 16_384), height: Math.min(Math.round(height), 16_384) };
    const last = this.#state.preferredSize;
    if (last && last.width === size.width && last.height === size.height) return;
    this.#state.preferredSize = size;
    try {
      await this.#state.sendPreferredSize(size.width, size.height);
    } catch (error) {
      // Send it again next time.
      if (this.#state.preferredSize === size) this.#state.preferredSize = undefined;
      throw error;
    }
  }
}
