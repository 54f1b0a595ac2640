/**
 * How well one member's connection carries the session, from what the SFU sees of it: the
 * classifier (pure functions from a measurement to excellent/good/poor/lost), the hysteresis that
 * keeps the shown quality from flapping (`QualityTracker`), and the sampler that measures a
 * member's media from mediasoup's stats (`MediaQualitySampler`; what producers send comes from
 * the room's shared reading, server/media/track-rates.ts). Which room members are told is
 * the room's business (server/rooms/connection-quality-feed.ts).
 */
import type { Consumer, Producer, Transport } from 'mediasoup/node/lib/types.js';
import type {
  AudioOnlyState,
  ConnectionQuality,
  ConnectionQualityReason,
  TrackSource,
} from '../../client-sdk/src/protocol/index.ts';
import type { LayerRate, TrackRate } from './track-rates.ts';

/* ---- Thresholds ------------------------------------------------------------------------------
 * Loss is what the far end does not get of what was sent (0–1), the worse of the RTCP receiver
 * reports and the transport-wide congestion feedback. Round trip and jitter are in ms (video's
 * jitter counts at 1/`videoJitterAllowance`: a frame's packets leave the sender's pacer spread
 * over the frame, which is no fault of the link). Upload bandwidth is what arrives of a camera
 * whose layers are missing against what those layers would send. Download bandwidth is judged by
 * what the downlink allocator does with the estimate (it takes a 3 s median and holds tiles back
 * with hysteresis): the raw estimate against `desiredBitrate` swings between 0.2 and 1.35 on a
 * healthy loopback link (measured with libwebrtc peers), too noisy to call anyone's link weak.
 *
 * - excellent: loss < 2 %, RTT < 300 ms, jitter < 30 ms, nothing held back for bandwidth, and
 *   every simulcast layer that should arrive does. Opus with FEC and a jitter buffer hide this.
 * - good: loss < 8 %, RTT < 600 ms, jitter < 100 ms, a camera short of layers still sending half
 *   of what they would: speech stays clear, video drops a layer or a few frames, or some tiles
 *   are held back.
 * - poor: worse than that, a camera that is on but of which nothing arrives, or a downlink so weak
 *   that it gets audio only: speech breaks up, or would without speech first.
 * - lost: the signaling connection is down, or nothing arrived for 5 s on the media transports
 *   that should be receiving (see `#silence`).
 */
export const excellentMaxLoss = 0.02;
export const excellentMaxRttMs = 300;
export const excellentMaxJitterMs = 30;
/** A camera short of layers but sending 85 % of what they would (a layer just gone) is still excellent. */
export const excellentMinBandwidthRatio = 0.85;
export const goodMaxLoss = 0.08;
export const goodMaxRttMs = 600;
export const goodMaxJitterMs = 100;
export const goodMinBandwidthRatio = 0.5;
/** Nothing received on any of a member's transports for this long: `lost`. */
export const silenceLostMs = 5_000;
/** A downgrade is shown after this many consecutive samples say so; an upgrade after `upgradeSamples`. */
export const downgradeSamples = 2;
export const upgradeSamples = 3;
/** Video's jitter counts at this fraction of audio's (see above). */
export const videoJitterAllowance = 2;
/** A layer just asked for (or a new producer) gets this long to arrive before it counts as missing. */
export const layerGraceMs = 3_000;
/** A reading of what a producer sends older than this says nothing any more. */
export const rateStaleMs = 3_000;
/** Consumers sampled per member and tick (rotating): the downlink is one path, a few tell of it. */
export const consumersPerSample = 4;

/** Upload or download as measured in one sample; absent fields were not measured. */
export interface DirectionSample {
  /** Fraction of packets lost on the way (0–1). */
  loss?: number;
  rttMs?: number;
  jitterMs?: number;
  /** Upload: what arrives of a camera short of layers over their `maxBitrate`s. */
  bandwidthRatio?: number;
  /** Upload: some simulcast layers that should arrive do not (`some`), or nothing at all does (`all`). */
  missingLayers?: 'some' | 'all';
  /**
   * Download: the downlink allocator holds video tiles back for bandwidth (`held`), or the
   * receiver gets audio only because of it (`audioOnly`).
   */
  heldBack?: 'held' | 'audioOnly';
}

/** One sample of a member's media; a direction is absent when nothing was there to measure. */
export interface MediaSample {
  upload?: DirectionSample;
  download?: DirectionSample;
  /** How long nothing has arrived on its transports that should be receiving (undefined: none should, yet). */
  silentForMs?: number;
}

export interface QualityVerdict {
  quality: ConnectionQuality;
  reason: ConnectionQualityReason | null;
}

export const excellent: QualityVerdict = { quality: 'excellent', reason: null };
/** The signaling connection is down: nothing goes either way. */
export const lostConnection: QualityVerdict = { quality: 'lost', reason: 'both' };

const rank: Record<ConnectionQuality, number> = { excellent: 0, good: 1, poor: 2, lost: 3 };

/** The level of one direction. */
export function classifyDirection(sample: DirectionSample | undefined): 'excellent' | 'good' | 'poor' {
  if (!sample) return 'excellent';
  const { loss = 0, rttMs = 0, jitterMs = 0, bandwidthRatio = 1, missingLayers, heldBack } = sample;
  if (
    missingLayers === 'all' ||
    heldBack === 'audioOnly' ||
    loss >= goodMaxLoss ||
    rttMs >= goodMaxRttMs ||
    jitterMs >= goodMaxJitterMs ||
    bandwidthRatio < goodMinBandwidthRatio
  ) {
    return 'poor';
  }
  if (
    missingLayers === 'some' ||
    heldBack === 'held' ||
    loss >= excellentMaxLoss ||
    rttMs >= excellentMaxRttMs ||
    jitterMs >= excellentMaxJitterMs ||
    bandwidthRatio < excellentMinBandwidthRatio
  ) {
    return 'good';
  }
  return 'excellent';
}

/**
 * The member's quality: the worse of upload and download, the reason naming the direction(s) at
 * that level; `lost` when its media has been silent for `silenceLostMs`.
 */
export function classify(sample: MediaSample): QualityVerdict {
  if (sample.silentForMs !== undefined && sample.silentForMs >= silenceLostMs) {
    return { quality: 'lost', reason: 'both' };
  }
  const upload = classifyDirection(sample.upload);
  const download = classifyDirection(sample.download);
  const quality = rank[upload] >= rank[download] ? upload : download;
  if (quality === 'excellent') return excellent;
  const reason = upload === download ? 'both' : upload === quality ? 'upload' : 'download';
  return { quality, reason };
}

function same(a: QualityVerdict, b: QualityVerdict): boolean {
  return a.quality === b.quality && a.reason === b.reason;
}

/**
 * The quality shown for one member: a change is shown once enough consecutive samples call for
 * it, so one bad second or one good one changes nothing. A downgrade (or a new reason) needs
 * `downgradeSamples` samples worse than shown and shows the latest of them (a link going bad
 * must reach facilitators fast: a first sample often covers only part of the bad interval); an
 * upgrade needs `upgradeSamples` better ones and shows the least good of them (no flapping back).
 */
export class QualityTracker {
  #shown: QualityVerdict = excellent;
  #streak: QualityVerdict[] = [];
  #direction: 'worse' | 'better' | undefined;

  get shown(): QualityVerdict {
    return this.#shown;
  }

  /** Takes one sample's verdict; returns the newly shown one when it changed. */
  update(measured: QualityVerdict): QualityVerdict | undefined {
    if (same(measured, this.#shown)) {
      this.#streak = [];
      this.#direction = undefined;
      return undefined;
    }
    const direction = rank[measured.quality] < rank[this.#shown.quality] ? 'better' : 'worse';
    if (direction !== this.#direction) this.#streak = [];
    this.#direction = direction;
    this.#streak.push(measured);
    const needed = direction === 'worse' ? downgradeSamples : upgradeSamples;
    if (this.#streak.length < needed) return undefined;
    if (direction === 'worse') return this.force(measured);
    // The least good of the better ones; ties go to the latest (its reason).
    const next = this.#streak.slice(-needed).reduce((a, b) => (rank[b.quality] >= rank[a.quality] ? b : a));
    return this.force(next);
  }

  /** Shows `verdict` at once (a fact rather than a measurement: the connection dropped, or is back). */
  force(verdict: QualityVerdict): QualityVerdict | undefined {
    this.#streak = [];
    this.#direction = undefined;
    if (same(verdict, this.#shown)) return undefined;
    this.#shown = verdict;
    return verdict;
  }
}

/* ---- Sampling mediasoup's stats ---------------------------------------------------------------- */

/** The room's one reading of what each producer sends (`TrackRates`, read once a second). */
export interface TrackRateSource {
  of(producerId: string): TrackRate | undefined;
}

/** What the sampler reads of a member's media (`MemberMedia` has it). */
export interface SampledMedia {
  readonly transports: ReadonlyMap<string, Transport>;
  readonly tracks: ReadonlyMap<string, { producer: Producer; source: TrackSource }>;
  readonly consumers: ReadonlyMap<string, Consumer>;
  /** What the downlink allocator holds back for bandwidth (`heldForBandwidth`: video tiles). */
  readonly downlink: { readonly audioOnly: AudioOnlyState; readonly heldForBandwidth?: number };
}

/** What a camera's layers say: some or all of those due are missing, and what arrives of what they would send. */
interface CameraLayers {
  missing?: 'some' | 'all';
  ratio?: number;
}

/** The worst (largest) of numbers, undefined when there are none. */
function worst(values: readonly (number | undefined)[]): number | undefined {
  const known = values.filter((v): v is number => v !== undefined && Number.isFinite(v));
  return known.length ? Math.max(...known) : undefined;
}

/** Stats of a closed (or closing) object answer nothing: that is no measurement. */
async function statsOf<T>(object: { closed: boolean; getStats(): Promise<T[]> }): Promise<T[]> {
  if (object.closed) return [];
  try {
    return await object.getStats();
  } catch {
    return [];
  }
}

/**
 * Measures one member's media, one sample per call. It keeps what spans samples: when something
 * last arrived on its transports, when a camera's expected layers last changed, which consumers
 * were sampled last.
 */
export class MediaQualitySampler {
  /** Per transport: bytes received so far, when they last grew, whether something should arrive. */
  readonly #arrivals = new Map<string, { bytes: number; at: number; due: boolean }>();
  /** Per camera: the layers expected, since when, and the highest that has arrived. */
  readonly #layers = new Map<string, { expected: number; since: number; seen: number }>();
  #consumerTurn = 0;

  /** One sample; what producers send is read from the room's shared reading (`rates`). */
  async sample(media: SampledMedia, rates: TrackRateSource, now = Date.now()): Promise<MediaSample> {
    const transports = [...media.transports.values()];
    const [transportStats, download] = await Promise.all([
      Promise.all(transports.map((t) => statsOf(t))),
      this.#download(media),
    ]);
    const upload = this.#upload(media, rates, now);
    const byDirection = (direction: string, key: 'rtpPacketLossReceived' | 'rtpPacketLossSent') =>
      transports.flatMap((t, i) =>
        t.appData.direction === direction ? (transportStats[i] ?? []).map((s) => s[key]) : [],
      );
    // Transport-wide congestion feedback (browsers): loss of everything on the transport.
    if (upload) upload.loss = worst([upload.loss, ...byDirection('send', 'rtpPacketLossReceived')]);
    if (download) download.loss = worst([download.loss, ...byDirection('recv', 'rtpPacketLossSent')]);
    return { upload, download, silentForMs: this.#silence(media, transports, transportStats, now) };
  }

  /**
   * How long nothing has arrived on any transport that should be receiving: a send transport
   * while a track is published and not paused, a receive transport while something is sent to
   * it (its receiver answers with RTCP). A transport idle otherwise hears only the ICE checks a
   * browser sends every few seconds, and one that never received a byte (a plain transport that
   * sends no RTCP) says nothing; a transport that just became due gets `silenceLostMs` from then.
   * Undefined when no transport is due.
   */
  #silence(media: SampledMedia, transports: Transport[], stats: { bytesReceived: number }[][], now: number) {
    const ids = new Set(transports.map((t) => t.id));
    for (const id of this.#arrivals.keys()) if (!ids.has(id)) this.#arrivals.delete(id);
    const sending = [...media.tracks.values()].some((t) => !t.producer.closed && !t.producer.paused);
    const receiving = [...media.consumers.values()].some((c) => !c.closed && !c.paused && !c.producerPaused);
    const due: number[] = [];
    transports.forEach((transport, i) => {
      const bytes = stats[i]?.[0]?.bytesReceived;
      if (bytes === undefined) return;
      const state = this.#arrivals.get(transport.id) ?? { bytes: 0, at: now, due: false };
      const isDue = transport.appData.direction === 'send' ? sending : receiving;
      if (bytes > state.bytes || (isDue && !state.due)) state.at = now;
      state.bytes = bytes;
      state.due = isDue;
      this.#arrivals.set(transport.id, state);
      if (isDue && bytes > 0) due.push(state.at);
    });
    return due.length ? now - Math.max(...due) : undefined;
  }

  #upload(media: SampledMedia, rates: TrackRateSource, now: number): DirectionSample | undefined {
    const live = [...media.tracks.values()].filter((t) => !t.producer.closed && !t.producer.paused);
    for (const id of this.#layers.keys()) if (!media.tracks.has(id)) this.#layers.delete(id);
    if (live.length === 0) return undefined;
    const arriving: LayerRate[] = [];
    const cameras: CameraLayers[] = [];
    for (const track of live) {
      const rate = rates.of(track.producer.id);
      const fresh = rate && now - rate.sampledAt < rateStaleMs ? rate : undefined;
      const scale = track.producer.kind === 'video' ? 1 / videoJitterAllowance : 1;
      for (const layer of fresh?.layers ?? []) {
        if (layer.bitrate > 0) arriving.push({ ...layer, jitterMs: layer.jitterMs * scale });
      }
      if (track.source === 'camera' && fresh) cameras.push(this.#cameraLayers(track.producer, fresh.layers, now));
    }
    const sample: DirectionSample = {
      loss: worst(arriving.map((layer) => layer.lossFraction)),
      jitterMs: worst(arriving.map((layer) => layer.jitterMs)),
    };
    const missing = cameras.map((c) => c.missing);
    if (missing.includes('all')) sample.missingLayers = 'all';
    else if (missing.includes('some')) sample.missingLayers = 'some';
    const ratios = cameras.flatMap((c) => (c.ratio === undefined ? [] : [c.ratio]));
    if (ratios.length) sample.bandwidthRatio = Math.min(...ratios);
    return sample;
  }

  /**
   * A camera's simulcast layers that should arrive and do not: those up to the layer dynacast
   * lets it send (`appData.maxSpatialLayer`, else all) that have arrived before (a browser sends
   * no layer its capture is too small for: a 640×480 camera sends two of three), with nothing
   * received in the last reading; nothing at all counts once its grace is over. A layer newly
   * expected (or a new producer) gets `layerGraceMs` first. With layers missing, what arrives
   * against their `maxBitrate`s says how short the uplink is.
   */
  #cameraLayers(producer: Producer, layers: readonly LayerRate[], now: number): CameraLayers {
    const max = producer.appData.maxSpatialLayer;
    const expected = Math.max(1, Math.min(layers.length, typeof max === 'number' ? max + 1 : layers.length));
    const state = this.#layers.get(producer.id) ?? { expected, since: now, seen: -1 };
    // More layers asked for: they get their grace; fewer: nothing new to wait for.
    if (expected > state.expected) state.since = now;
    state.expected = expected;
    layers.forEach((layer, i) => {
      if (layer.bitrate > 0) state.seen = Math.max(state.seen, i);
    });
    this.#layers.set(producer.id, state);
    if (now - state.since < layerGraceMs) return {};
    const due = layers.slice(0, Math.min(expected, Math.max(1, state.seen + 1)));
    const missing = due.filter((layer) => layer.bitrate <= 0).length;
    if (missing === 0) return {};
    const encodings = producer.rtpParameters.encodings ?? [];
    const wanted = due.reduce((sum, _, i) => sum + (encodings[i]?.maxBitrate ?? Number.NaN), 0);
    const got = due.reduce((sum, layer) => sum + layer.bitrate, 0);
    return {
      missing: missing === due.length ? 'all' : 'some',
      ...(Number.isFinite(wanted) && wanted > 0 ? { ratio: got / wanted } : {}),
    };
  }

  async #download(media: SampledMedia): Promise<DirectionSample | undefined> {
    const flowing = [...media.consumers.values()].filter((c) => !c.closed && !c.paused && !c.producerPaused);
    const { audioOnly, heldForBandwidth = 0 } = media.downlink;
    const heldBack =
      audioOnly.enabled && audioOnly.reason === 'bandwidth' ? 'audioOnly' : heldForBandwidth > 0 ? 'held' : undefined;
    if (flowing.length === 0 && !heldBack) return undefined;
    const start = this.#consumerTurn % Math.max(1, flowing.length);
    this.#consumerTurn = start + consumersPerSample;
    const picked = [...flowing, ...flowing].slice(start, start + Math.min(consumersPerSample, flowing.length));
    const stats = (await Promise.all(picked.map((c) => statsOf(c)))).flat();
    // The consumer's stream to the member (the producer's own stream is the other entry).
    const outbound = stats.filter((s) => s.type === 'outbound-rtp');
    const sample: DirectionSample = {
      loss: worst(outbound.map((s) => s.fractionLost / 256)),
      rttMs: worst(outbound.map((s) => s.roundTripTime)),
    };
    if (heldBack) sample.heldBack = heldBack;
    return sample;
  }
}
