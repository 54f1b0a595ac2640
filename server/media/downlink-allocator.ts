/**
 * Speech first, for one receiver: what of the room's media its downlink carries. mediasoup shares
 * a transport's bandwidth estimate among its video consumers but leaves audio out of the sum, so
 * on a weak link video takes the whole estimate and the voices queue behind it. Each second this
 * allocator takes what the audio needs off the estimate first, then gives video what is left:
 * the active speaker's tile first, screen shares next, then the others by how recently they
 * spoke, each at its lowest layer, then higher layers in the same order up to the size the
 * receiver renders at. A tile that does not fit is paused on the server (`consumerPaused`,
 * reason `bandwidth`); audio is never paused for bandwidth. Below `audioOnlyBelowBps` for a while
 * the receiver gets audio only until the estimate recovers (hysteresis).
 *
 * All this only once the link loses packets (`observeLoss`, from the transport-wide congestion
 * feedback), and for `congestionMs` after. An estimate alone is no proof of a weak link: a
 * receiver whose CPU is busy answers late, the delay-based estimate falls, and holding video back
 * would then only make the estimate fall further (it follows what is sent). Without loss,
 * mediasoup shares its estimate as it always does.
 */
import type { Consumer, WebRtcTransport } from 'mediasoup/node/lib/types.js';
import type {
  AudioOnlyReason,
  AudioOnlyState,
  ConsumerPauseReason,
  TrackSource,
} from '../../client-sdk/src/protocol/index.ts';
import { BandwidthProbe } from './bandwidth-probe.ts';
import {
  audioOnlyAfterTicks,
  audioOnlyOffAfterTicks,
  audioOnlyOffFactor,
  audioOverhead,
  congestionLoss,
  congestionMs,
  estimateWindowMs,
  holdAfterTicks,
  maxReleaseDoublings,
  priorities,
  quietBeforeProbingMs,
  releaseAfterTicks,
  releaseMargin,
  settledMs,
  unknownLayerBps,
} from './downlink-tuning.ts';
import type { TrackRates } from './track-rates.ts';

export interface DownlinkEstimate {
  /** mediasoup's estimate of what can be sent to this receiver (bps). */
  availableBitrate: number;
  /** What its consumers could send (bps; mediasoup counts each video at its top layer). */
  desiredBitrate: number;
  /**
   * The most mediasoup lets its estimate reach (bps): the transport's maximum, or 1.35× what its
   * consumers could send when that is lower (held tiles, being paused, count for nothing).
   */
  maxBitrate: number;
  updatedAt: number;
}

export interface DownlinkRoomView {
  rates: TrackRates;
  /** The loudest participant now, or null. */
  speaker(): string | null;
  /** When a participant was last the loudest (ms), or 0. */
  lastSpoke(participantId: string): number;
  /** Whose track a producer is, which source, and how many simulcast layers it sends (1 if none). */
  track(producerId: string): { participantId: string; source: TrackSource; layers: number } | undefined;
}

export interface DownlinkOptions {
  room: DownlinkRoomView;
  /** Below this estimate (bps) for `audioOnlyAfterTicks` ticks, the receiver gets audio only. */
  audioOnlyBelowBps: number;
  /** A consumer held back or sent again, audio-only turned on or off: the receiver is told. */
  onPaused(consumerId: string, reason: ConsumerPauseReason | null): void;
  onAudioOnly(state: AudioOnlyState): void;
  /** The clock (ms); tests pass their own. */
  now?: () => number;
}

interface Video {
  consumer: Consumer;
  /** The receiver paused it itself (or has not resumed it yet). */
  clientPaused: boolean;
  held: ConsumerPauseReason | null;
  /** The layer the receiver's rendered size asks for. */
  wantedLayer: number;
  appliedLayer: number | undefined;
  misfits: number;
  fits: number;
  /** Times it was paused for bandwidth soon after coming back (its back-off), and when it last came back. */
  relapses: number;
  releasedAt: number;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

export class DownlinkAllocator {
  readonly #options: DownlinkOptions;
  readonly #videos = new Map<string, Video>();
  readonly #audio = new Map<string, { consumer: Consumer; clientPaused: boolean }>();
  #estimate: DownlinkEstimate | undefined;
  /** mediasoup's estimates of the last few seconds (it reports several a second, and they jump). */
  #samples: { at: number; available: number }[] = [];
  /** Keeps the transport's sending near the plan, and probes for more. */
  readonly #probe: BandwidthProbe;
  /** The active speaker's camera among this receiver's videos, if any. */
  #speakerTile: Video | undefined;
  readonly #now: () => number;
  #audioOnly: AudioOnlyState = { enabled: false, reason: null };
  /** The person turned audio-only off while the link was weak: not turned on again until it recovers. */
  #autoSuppressed = false;
  #lowTicks = 0;
  #highTicks = 0;
  /** Until when the downlink counts as congested, and when it last lost packets (ms; see `observeLoss`). */
  #congestedUntil = 0;
  #lostAt = 0;

  constructor(options: DownlinkOptions) {
    this.#options = options;
    this.#probe = new BandwidthProbe(options.audioOnlyBelowBps * 2);
    this.#now = options.now ?? Date.now;
  }

  get estimate(): DownlinkEstimate | undefined {
    return this.#estimate;
  }

  /** How many of this receiver's videos are held back because its downlink cannot carry them. */
  get heldForBandwidth(): number {
    return this.held('bandwidth');
  }

  /** How many of this receiver's videos are held back for `reason`. */
  held(reason: ConsumerPauseReason): number {
    let held = 0;
    for (const video of this.#videos.values()) if (video.held === reason) held++;
    return held;
  }

  get audioOnly(): AudioOnlyState {
    return { ...this.#audioOnly };
  }

  /** The receive transport: its bandwidth estimate is followed from now on. */
  watch(transport: WebRtcTransport): void {
    this.#estimate = undefined;
    this.#samples = [];
    this.#probe.attach(transport);
    transport.on('trace', (trace) => {
      if (trace.type !== 'bwe') return;
      const info = trace.info as { availableBitrate?: number; desiredBitrate?: number; maxBitrate?: number };
      const now = this.#now();
      this.#samples.push({ at: now, available: info.availableBitrate ?? 0 });
      this.#samples = this.#samples.filter((sample) => sample.at > now - estimateWindowMs);
      this.#estimate = {
        availableBitrate: median(this.#samples.map((sample) => sample.available)),
        desiredBitrate: info.desiredBitrate ?? 0,
        maxBitrate: info.maxBitrate ?? 0,
        updatedAt: now,
      };
    });
    void transport.enableTraceEvent(['bwe']).catch(() => {});
  }

  /** A new consumer of this receiver (created paused, as the SDK resumes it once set up). */
  added(consumer: Consumer): void {
    const forget = () => {
      this.#videos.delete(consumer.id);
      this.#audio.delete(consumer.id);
    };
    consumer.observer.once('close', forget);
    if (consumer.kind === 'audio') {
      this.#audio.set(consumer.id, { consumer, clientPaused: true });
      void consumer.setPriority(priorities.audio).catch(() => {});
      return;
    }
    const layers = this.#layers(consumer);
    this.#videos.set(consumer.id, {
      consumer,
      clientPaused: true,
      held: this.#audioOnly.enabled ? 'audioOnly' : null,
      wantedLayer: Math.max(0, layers - 1),
      appliedLayer: undefined,
      misfits: 0,
      fits: 0,
      relapses: 0,
      releasedAt: 0,
    });
    // Audio-only already (a rejoin keeps the person's choice): the receiver learns why this one waits.
    if (this.#audioOnly.enabled) this.#options.onPaused(consumer.id, 'audioOnly');
  }

  /** The receiver pauses or resumes a consumer itself; it is sent only if nothing here holds it. */
  async setClientPaused(consumerId: string, paused: boolean): Promise<void> {
    const entry = this.#videos.get(consumerId) ?? this.#audio.get(consumerId);
    if (!entry) return;
    entry.clientPaused = paused;
    await this.#apply(entry.consumer, paused || ('held' in entry && entry.held !== null));
  }

  /** The receiver renders a video at this height: the layer it asks for (granted as bandwidth allows). */
  async setWantedHeight(consumerId: string, height: number): Promise<void> {
    const video = this.#videos.get(consumerId);
    if (video?.consumer.type !== 'simulcast') return;
    const layers = this.#layers(video.consumer);
    const wanted = height <= 180 ? 0 : height <= 360 ? 1 : 2;
    video.wantedLayer = Math.min(wanted, layers - 1);
    await this.#setLayer(
      video,
      this.#estimate ? Math.min(video.appliedLayer ?? 0, video.wantedLayer) : video.wantedLayer,
    );
  }

  /** The person's own switch. Off while the link is weak: automatic audio-only waits until it recovers. */
  setAudioOnly(enabled: boolean): void {
    if (!enabled && this.#audioOnly.enabled && this.#audioOnly.reason === 'bandwidth') this.#autoSuppressed = true;
    this.#setAudioOnly(enabled, 'self');
  }

  #setAudioOnly(enabled: boolean, reason: AudioOnlyReason): void {
    if (this.#audioOnly.enabled === enabled) return;
    this.#audioOnly = { enabled, reason };
    this.#options.onAudioOnly(this.audioOnly);
    for (const video of this.#videos.values()) {
      if (enabled) void this.#hold(video, 'audioOnly');
      else if (video.held === 'audioOnly') void this.#hold(video, null);
    }
  }

  /** The share of packets the downlink lost lately (transport-wide feedback, 0–1), as the node measured it. */
  observeLoss(lossFraction: number): void {
    if (lossFraction < congestionLoss) return;
    this.#lostAt = this.#now();
    this.#congestedUntil = this.#lostAt + congestionMs;
  }

  /** Whether the downlink lost packets lately: only then is the estimate taken as the link's limit. */
  get congested(): boolean {
    return this.#now() < this.#congestedUntil;
  }

  /** Once a second: audio-only by the estimate, then which tiles fit at which layer. */
  tick(): void {
    const estimate = this.#estimate;
    if (!estimate) return;
    const congested = this.congested;
    // Audio only needs a link that keeps losing packets at the low estimate, not just one that lost
    // some lately: a receiver starved of CPU answers late and its estimate falls with no loss.
    this.#followAudioOnly(estimate.availableBitrate, this.#now() - this.#lostAt < quietBeforeProbingMs);
    const audioNeed = this.#audioNeed();
    if (this.#audioOnly.enabled) {
      if (this.#audioOnly.reason === 'bandwidth') this.#probe.audioOnly();
      else this.#probe.planned(audioNeed, [], true, estimate.availableBitrate, estimate.maxBitrate);
      return;
    }
    const ranked = this.#ranked();
    if (!congested && !ranked.some((video) => video.held === 'bandwidth')) {
      this.#unplanned(ranked);
      return;
    }
    let budget = estimate.availableBitrate - audioNeed;
    const granted = new Map<Video, number>();
    // Lowest layers first, in rank order: who fits.
    for (const video of ranked) {
      const cost = this.#layerCost(video, 0);
      const margin = video.held === 'bandwidth' ? releaseMargin : 1;
      if (cost <= budget * margin) {
        granted.set(video, 0);
        budget -= cost;
      }
    }
    // Then higher layers, in the same order, up to what each receiver asks for.
    for (const [video, layer] of granted) {
      let top = layer;
      while (top < video.wantedLayer) {
        const step = this.#layerCost(video, top + 1) - this.#layerCost(video, top);
        if (step > budget) break;
        budget -= step;
        top++;
      }
      granted.set(video, top);
    }
    // Right after a loss the link is full: no room to look further until it has been quiet a while.
    const quiet = this.#now() - this.#lostAt >= quietBeforeProbingMs;
    // A quiet link whose estimate carries every tile, or more than one step beyond the plan, is
    // recovering: held tiles come back after one plan with room, without their back-off.
    const recovering = quiet && (granted.size === ranked.length || this.#probe.recovering);
    this.#applyPlan(ranked, granted, congested, recovering);
    this.#probeAfter(ranked, granted, audioNeed, quiet, estimate);
  }

  /** What the audio this receiver takes needs (bps), with packet overhead. */
  #audioNeed(): number {
    const { rates } = this.#options.room;
    let need = 0;
    for (const { consumer, clientPaused } of this.#audio.values()) {
      if (!clientPaused && !consumer.producerPaused) need += audioOverhead(rates.of(consumer.producerId)?.bitrate ?? 0);
    }
    return need;
  }

  /** Tells the probe what the plan uses and what its next steps would cost, in the order the plan would take them. */
  #probeAfter(
    ranked: Video[],
    granted: Map<Video, number>,
    audioNeed: number,
    quiet: boolean,
    estimate: DownlinkEstimate,
  ): void {
    let planned = audioNeed;
    for (const [video, layer] of granted) planned += this.#layerCost(video, layer);
    const steps = ranked.filter((video) => !granted.has(video)).map((video) => this.#layerCost(video, 0));
    for (const [video, layer] of granted) {
      if (layer < video.wantedLayer) steps.push(this.#layerCost(video, layer + 1) - this.#layerCost(video, layer));
    }
    this.#probe.planned(planned, steps, quiet, estimate.availableBitrate, estimate.maxBitrate);
  }

  #applyPlan(ranked: Video[], granted: Map<Video, number>, congested: boolean, recovering: boolean): void {
    const now = this.#now();
    const releasing: Video[] = [];
    for (const video of ranked) {
      if (!granted.has(video)) {
        video.fits = 0;
        continue;
      }
      video.misfits = 0;
      const backOff = video === this.#speakerTile ? 1 : 2 ** Math.min(video.relapses, maxReleaseDoublings);
      const releaseAfter = recovering ? 1 : releaseAfterTicks * backOff;
      if (video.held === 'bandwidth' && ++video.fits >= releaseAfter) releasing.push(video);
    }
    // A tile comes back only in the room others leave: those the plan no longer grants are held
    // first (their pause reaches the worker before the resume), even on a link that lost nothing
    // lately; else a new speaker's tile would be sent beside the one it replaces.
    for (const video of ranked) {
      if (granted.has(video) || video.held !== null) continue;
      const misfit = congested && ++video.misfits >= holdAfterTicks;
      if (misfit || releasing.length > 0) void this.#hold(video, 'bandwidth');
    }
    for (const video of releasing) void this.#hold(video, null);
    for (const video of ranked) {
      const layer = granted.get(video);
      if (layer === undefined || video.held !== null) continue;
      void this.#setLayer(video, layer);
      if (video.releasedAt && now - video.releasedAt >= settledMs) video.relapses = 0;
    }
  }

  /** No congestion and nothing held back: each tile at the layer it asks for, mediasoup's estimate unbounded. */
  #unplanned(ranked: Video[]): void {
    for (const video of ranked) {
      video.misfits = 0;
      video.fits = 0;
      void this.#setLayer(video, video.wantedLayer);
    }
    this.#probe.planned(0, [], true, 0, 0);
  }

  #followAudioOnly(available: number, losing: boolean): void {
    const threshold = this.#options.audioOnlyBelowBps;
    this.#lowTicks = available < threshold && losing ? this.#lowTicks + 1 : 0;
    this.#highTicks = available >= threshold * audioOnlyOffFactor ? this.#highTicks + 1 : 0;
    if (this.#highTicks >= audioOnlyOffAfterTicks) {
      this.#autoSuppressed = false;
      if (this.#audioOnly.enabled && this.#audioOnly.reason === 'bandwidth') this.#setAudioOnly(false, 'bandwidth');
    }
    if (!this.#autoSuppressed && !this.#audioOnly.enabled && this.#lowTicks >= audioOnlyAfterTicks) {
      this.#setAudioOnly(true, 'bandwidth');
    }
  }

  /** Video consumers in the order bandwidth goes to them. */
  #ranked(): Video[] {
    const { room } = this.#options;
    const speaker = room.speaker();
    const rank = (video: Video): number => {
      const track = room.track(video.consumer.producerId);
      if (track?.participantId === speaker && track?.source === 'camera') return 0;
      return track?.source === 'screen' ? 1 : 2;
    };
    const spoke = (video: Video) => room.lastSpoke(room.track(video.consumer.producerId)?.participantId ?? '');
    const candidates = [...this.#videos.values()].filter(
      (v) => !v.clientPaused && !v.consumer.producerPaused && v.held !== 'audioOnly',
    );
    const ranked = candidates.sort((a, b) => rank(a) - rank(b) || spoke(b) - spoke(a));
    this.#speakerTile = ranked[0] && rank(ranked[0]) === 0 ? ranked[0] : undefined;
    for (const video of ranked) {
      const source = room.track(video.consumer.producerId)?.source;
      const priority =
        rank(video) === 0 ? priorities.speaker : source === 'screen' ? priorities.screen : priorities.camera;
      if (video.consumer.priority !== priority) void video.consumer.setPriority(priority).catch(() => {});
    }
    return ranked;
  }

  /**
   * A consumer's spatial layers: its producer's encodings (a simulcast consumer itself has one
   * encoding, whose scalability mode tells the layers).
   */
  #layers(consumer: Consumer): number {
    return consumer.type === 'simulcast' ? (this.#options.room.track(consumer.producerId)?.layers ?? 1) : 1;
  }

  /** What a video costs at `layer` (a simulcast layer's own rate; a single encoding's whole rate). */
  #layerCost(video: Video, layer: number): number {
    const rate = this.#options.room.rates.of(video.consumer.producerId);
    const bitrate = rate?.layers[Math.min(layer, rate.layers.length - 1)]?.bitrate ?? 0;
    return bitrate > 0 ? bitrate : unknownLayerBps;
  }

  async #hold(video: Video, reason: ConsumerPauseReason | null): Promise<void> {
    if (video.held === reason) return;
    const now = this.#now();
    if (reason === 'bandwidth' && video.releasedAt && now - video.releasedAt < settledMs) video.relapses++;
    if (reason === null) video.releasedAt = now;
    video.held = reason;
    video.misfits = 0;
    video.fits = 0;
    await this.#apply(video.consumer, video.clientPaused || reason !== null);
    this.#options.onPaused(video.consumer.id, reason);
  }

  async #setLayer(video: Video, layer: number): Promise<void> {
    if (video.consumer.type !== 'simulcast' || video.appliedLayer === layer || video.consumer.closed) return;
    video.appliedLayer = layer;
    await video.consumer.setPreferredLayers({ spatialLayer: layer, temporalLayer: 2 }).catch(() => {});
  }

  async #apply(consumer: Consumer, paused: boolean): Promise<void> {
    if (consumer.closed || consumer.paused === paused) return;
    await (paused ? consumer.pause() : consumer.resume()).catch(() => {});
  }
}
