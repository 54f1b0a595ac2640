/** What the app sees of a track this client publishes; its state is owned by its publication (local-publication.ts). */
import type { MediaKind, TrackSource } from '../protocol/index.ts';

/** @internal State behind a {@link LocalTrack}. */
export interface LocalTrackState {
  source: TrackSource;
  kind: MediaKind;
  track: MediaStreamTrack;
  enabled: boolean;
  producerId: string | undefined;
}

/** A track this client publishes. */
export class LocalTrack {
  readonly #state: LocalTrackState;

  /** @internal Created by its publication. */
  constructor(state: LocalTrackState) {
    this.#state = state;
  }

  /** What it is: `'microphone'`, `'camera'` or `'screen'`. */
  get source(): TrackSource {
    return this.#state.source;
  }
  /** `'audio'` for the microphone, `'video'` for the camera and screen. */
  get kind(): MediaKind {
    return this.#state.kind;
  }
  /** The captured track (for a local preview); the same object across reconnections. */
  get track(): MediaStreamTrack {
    return this.#state.track;
  }
  /** False while muted (`setMicrophoneEnabled(false)`, `setCameraEnabled(false)`, or a facilitator's mute). */
  get enabled(): boolean {
    return this.#state.enabled;
  }
  /** The server's producer id; changes after a reconnection, undefined while none exists. */
  get producerId(): string | undefined {
    return this.#state.producerId;
  }
}
