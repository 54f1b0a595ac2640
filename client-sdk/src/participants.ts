/**
 * What the app sees of a session's people and tracks. These are read-only views: the
 * SessionClient owns and updates the state behind them (the `*State` records, not exported from
 * the package).
 */
import type { Capabilities, MediaKind, Role, TrackSource } from './protocol/index.ts';

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

  /** @internal Created by the SessionClient. */
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

/** @internal What every participant's state holds. */
export interface ParticipantState {
  id: string;
  name: string;
  role: Role;
}

/** What the local and the remote participants share: who they are. */
abstract class Participant<State extends ParticipantState> {
  protected readonly state: State;

  /** @internal Created by the SessionClient. */
  constructor(state: State) {
    this.state = state;
  }

  /** The pseudonymous id (the token's `sub`). */
  get id(): string {
    return this.state.id;
  }
  /** Display name: the token's, or the alias a facilitator gave (`displayNameChanged`). */
  get name(): string {
    return this.state.name;
  }
  /** Role from the token: `'facilitator'`, `'participant'` or `'observer'`. */
  get role(): Role {
    return this.state.role;
  }
}

/** @internal State behind a {@link LocalParticipant}. */
export interface LocalParticipantState extends ParticipantState {
  capabilities: Capabilities;
  tracks: Map<TrackSource, LocalTrack>;
}

/** This client in the room. */
export class LocalParticipant extends Participant<LocalParticipantState> {
  /** What the token allows this client to publish. */
  get capabilities(): Readonly<Capabilities> {
    return this.state.capabilities;
  }
  /** Published tracks by source. */
  get tracks(): ReadonlyMap<TrackSource, LocalTrack> {
    return this.state.tracks;
  }
}

/** @internal State behind a {@link RemoteTrack}. */
export interface RemoteTrackState {
  consumerId: string;
  producerId: string;
  participantId: string;
  kind: MediaKind;
  source: TrackSource;
  track: MediaStreamTrack;
  paused: boolean;
  ended: boolean;
  /** Last size sent with `setPreferredSize`. */
  preferredSize: { width: number; height: number } | undefined;
  sendPreferredSize: (width: number, height: number) => Promise<void>;
}

/** Another participant's track, as received by this client. */
export class RemoteTrack {
  readonly #state: RemoteTrackState;

  /** @internal Created by the SessionClient. */
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

/** @internal State behind a {@link RemoteParticipant}. */
export interface RemoteParticipantState extends ParticipantState {
  tracks: Map<string, RemoteTrack>;
}

/** Someone else in the room. */
export class RemoteParticipant extends Participant<RemoteParticipantState> {
  /** Their tracks this client receives, by producer id. */
  get tracks(): ReadonlyMap<string, RemoteTrack> {
    return this.state.tracks;
  }
  /** Their received track from `source`, if any. */
  getTrack(source: TrackSource): RemoteTrack | undefined {
    for (const track of this.state.tracks.values()) if (track.source === source) return track;
    return undefined;
  }
}
