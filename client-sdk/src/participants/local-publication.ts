/**
 * One local track this client publishes, and the producer that sends it on the current media
 * session. It owns the state behind its {@link LocalTrack} and serialises its server requests
 * (produce, pause, resume, close) so that a mute never overtakes a produce.
 */
import type { Producer } from 'mediasoup-client/types';
import type { MediaSession } from '../media-session.ts';
import type { TrackSource } from '../protocol/index.ts';
import type { PublishPreset } from '../publish-presets.ts';
import type { SessionEvents } from '../session-events.ts';
import { LocalTrack, type LocalTrackState } from './local-track.ts';

export class LocalPublication {
  readonly #state: LocalTrackState;
  readonly #events: SessionEvents;
  /** The app's view of it. */
  readonly local: LocalTrack;
  readonly preset: PublishPreset;
  /** Captured by the SDK (not passed in by the app): the SDK stops it when unpublished. */
  readonly owned: boolean;
  #producer: Producer | undefined;
  #media: MediaSession | undefined;
  /** Whether the server's producer is paused, as far as this client knows. */
  #serverPaused = false;
  #removed = false;
  #queue: Promise<void> = Promise.resolve();

  constructor(
    track: MediaStreamTrack,
    source: TrackSource,
    preset: PublishPreset,
    owned: boolean,
    events: SessionEvents,
  ) {
    this.#state = { source, kind: preset.kind, track, enabled: track.enabled, producerId: undefined };
    this.local = new LocalTrack(this.#state);
    this.preset = preset;
    this.owned = owned;
    this.#events = events;
  }

  get source(): TrackSource {
    return this.#state.source;
  }

  get track(): MediaStreamTrack {
    return this.#state.track;
  }

  get producerId(): string | undefined {
    return this.#state.producerId;
  }

  get producer(): Producer | undefined {
    return this.#producer;
  }

  /** The media session its producer belongs to. */
  get media(): MediaSession | undefined {
    return this.#media;
  }

  /** Unpublished (or being unpublished): it sends nothing more. */
  get removed(): boolean {
    return this.#removed;
  }

  /** Whether it has a live producer on `media`. */
  producesOn(media: MediaSession): boolean {
    return this.#producer !== undefined && this.#media === media && !this.#producer.closed;
  }

  /** Runs `task` after the publication's earlier requests. */
  enqueue(task: () => Promise<void>): Promise<void> {
    const run = this.#queue.then(task);
    this.#queue = run.catch(() => {});
    return run;
  }

  /** A new producer on `media` (the server's starts unpaused). */
  attach(producer: Producer, media: MediaSession): void {
    this.#producer = producer;
    this.#media = media;
    this.#serverPaused = false;
    this.#state.producerId = producer.id;
  }

  /** Lets go of the producer (nothing is closed); answers what it had. */
  detach(): { producer: Producer | undefined; media: MediaSession | undefined } {
    const detached = { producer: this.#producer, media: this.#media };
    this.#producer = undefined;
    this.#media = undefined;
    this.#state.producerId = undefined;
    return detached;
  }

  /** The server closed the producer (out of the room): closed here too, to be produced again on admission. */
  dropProducer(): void {
    const { producer } = this.detach();
    if (producer && !producer.closed) producer.close();
    this.#serverPaused = false;
  }

  markRemoved(): void {
    this.#removed = true;
  }

  /** Stops the track if the SDK captured it (a track the app passed in stays the app's). */
  stopOwnedTrack(): void {
    if (this.owned) this.#state.track.stop();
  }

  /** This client's mute or unmute: the track at once (nothing leaves the device), the event if it changed. */
  setEnabled(enabled: boolean): void {
    this.#state.track.enabled = enabled;
    this.#setEnabledState(enabled);
  }

  /**
   * The server paused the producer (a facilitator's mute), or refused to resume it (audio mode
   * `controlled`): the track is disabled too; only the person turns it on again.
   */
  applyServerPause(): void {
    this.#serverPaused = true;
    this.#state.track.enabled = false;
    this.#producer?.pause();
    this.#setEnabledState(false);
  }

  /** The server resumed the producer: only recorded (the SDK never turns a track on by itself). */
  applyServerResume(): void {
    this.#serverPaused = false;
  }

  /**
   * Dynacast (`publisherLayers`): sends simulcast encodings 0 to `maxSpatialLayer` of producer
   * `producerId` and turns the others off, nobody receiving them. False unless that is this
   * publication's live producer. Not reapplied on a new producer: it starts with every encoding
   * on, and the server says again what it needs.
   */
  limitLayers(producerId: string, maxSpatialLayer: number): boolean {
    const producer = this.#producer;
    if (!producer || producer.closed || producer.id !== producerId || producer.kind !== 'video') return false;
    if (!Number.isInteger(maxSpatialLayer) || maxSpatialLayer < 0) return false;
    // mediasoup-client renegotiates on the send transport's queue; a failure there leaves the layers as they were.
    producer.setMaxSpatialLayer(maxSpatialLayer).catch(() => {});
    return true;
  }

  /** Makes the server's paused state match `enabled`. */
  async syncPaused(): Promise<void> {
    const producer = this.#producer;
    const media = this.#media;
    if (!producer || producer.closed || !media || media.closed) return;
    const paused = !this.#state.enabled;
    if (paused) producer.pause();
    else producer.resume();
    if (this.#serverPaused === paused) return;
    await media.signaling.request(paused ? 'pauseProducer' : 'resumeProducer', { producerId: producer.id });
    this.#serverPaused = paused;
  }

  #setEnabledState(enabled: boolean): void {
    if (this.#state.enabled === enabled) return;
    this.#state.enabled = enabled;
    this.#events.safeEmit('localTrackUpdated', this.local);
  }
}
