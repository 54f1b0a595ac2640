/**
 * Synthetic media for the load generator: paced Opus and VP8 RTP sources, what a receiver
 * measures of the streams the SFU forwards (loss, bytes, one-way delay), and the RTCP feedback
 * that asks a sender for a key frame.
 *
 * Every payload ends with a 12-byte stamp: a magic number and the send time (epoch ms, float64).
 * It sits at the end because the SFU may add header extensions in front of the payload and the
 * VP8 payload header length varies; sender and receiver share the machine's clock.
 *
 * No RTCP is sent: mediasoup forwards without sender reports, and keeps forwarding to a receiver
 * that sends no receiver reports (checked in test/integration/bench-media.test.ts).
 */
import { type Percentiles, percentiles } from './result.ts';
import { readUint32, rtpHeaderLength } from './rtp.ts';

/** Milliseconds since the epoch with sub-millisecond resolution: the clock of stamps and delays. */
export function epochMs(): number {
  return performance.timeOrigin + performance.now();
}

export const stampLength = 12;
const stampMagic = 0x48764e31; // "HvN1"

/** Offset of an RTP packet's payload (after CSRCs and a header extension). */
export const rtpPayloadOffset = rtpHeaderLength;

/** The send time stamped at the end of a (decrypted) RTP packet's payload, or undefined if none. */
export function readSendTime(packet: Buffer): number | undefined {
  const padding = (packet[0] ?? 0) & 0x20 ? (packet[packet.length - 1] ?? 0) : 0;
  const end = packet.length - padding;
  if (end - stampLength < rtpPayloadOffset(packet)) return undefined;
  if (packet.readUInt32BE(end - stampLength) !== stampMagic) return undefined;
  return packet.readDoubleBE(end - 8);
}

/** RTCP rather than RTP on a muxed port (RFC 5761: packet types 192–223). */
export function isRtcp(packet: Uint8Array): boolean {
  const type = packet[1] ?? 0;
  return packet.length >= 8 && type >= 192 && type <= 223;
}

/** The media SSRCs a (decrypted, compound) RTCP packet asks key frames of: PLI (206/1) and FIR (206/4). */
export function keyFrameRequests(rtcp: Uint8Array): number[] {
  const ssrcs: number[] = [];
  for (let offset = 0; offset + 4 <= rtcp.length; ) {
    const b0 = rtcp[offset] ?? 0;
    if (b0 >> 6 !== 2) break;
    const end = offset + 4 + 4 * (((rtcp[offset + 2] ?? 0) << 8) | (rtcp[offset + 3] ?? 0));
    if (end > rtcp.length) break;
    if (rtcp[offset + 1] === 206) {
      const format = b0 & 0x1f;
      if (format === 1 && end >= offset + 12) ssrcs.push(readUint32(rtcp, offset + 8));
      // FIR: the media SSRC field is unused; each 8-byte FCI entry names an SSRC.
      if (format === 4) for (let fci = offset + 12; fci + 8 <= end; fci += 8) ssrcs.push(readUint32(rtcp, fci));
    }
    offset = end;
  }
  return ssrcs;
}

/** A paced stream of RTP packets (12-byte headers, the SSRC and payload type the producer was given). */
export interface RtpSource {
  readonly kind: 'audio' | 'video';
  readonly ssrc: number;
  readonly payloadType: number;
  /** Packets produced so far, and their bytes (RTP headers included). */
  readonly packets: number;
  readonly bytes: number;
  /**
   * The packets of every frame due by `nowMs` (epoch ms, see `epochMs()`; the first call starts
   * the clock), stamped with `nowMs`. A caller that fell behind gets at most a few frames: the
   * rest are skipped, as an encoder would.
   */
  poll(nowMs: number): Buffer[];
  /** A key frame soon (for a PLI or FIR). No-op for audio. */
  requestKeyFrame(): void;
}

/** Frames a late `poll` may catch up on; older ones are dropped (their timestamps skipped). */
const maxCatchUpFrames = 5;

abstract class PacedSource implements RtpSource {
  abstract readonly kind: 'audio' | 'video';
  readonly ssrc: number;
  readonly payloadType: number;
  packets = 0;
  bytes = 0;
  protected readonly frameMs: number;
  readonly #ticksPerFrame: number;
  #seq: number;
  readonly #timestamp0 = Math.floor(Math.random() * 0x100000000);
  #start: number | undefined;
  #next = 0;

  constructor(options: SourceOptions, frameMs: number, clockRate: number) {
    const { ssrc, payloadType } = options;
    // Below 2^15, as libwebrtc starts: the receiver takes the first packet it authenticates as
    // rollover counter 0 (RFC 3711), so a stream that wraps before any packet gets through (its
    // first ones lost while a worker's socket overflows) would fail authentication forever.
    this.#seq = (options.firstSequenceNumber ?? Math.floor(Math.random() * 0x8000)) & 0xffff;
    this.ssrc = ssrc >>> 0;
    this.payloadType = payloadType;
    this.frameMs = frameMs;
    this.#ticksPerFrame = (clockRate * frameMs) / 1000;
  }

  poll(nowMs: number): Buffer[] {
    this.#start ??= nowMs;
    const due = Math.floor((nowMs - this.#start) / this.frameMs + 1e-9) + 1;
    if (due - this.#next > maxCatchUpFrames) this.#next = due - maxCatchUpFrames;
    const out: Buffer[] = [];
    for (; this.#next < due; this.#next++) {
      this.frame(this.#next, (this.#timestamp0 + Math.round(this.#next * this.#ticksPerFrame)) >>> 0, nowMs, out);
    }
    return out;
  }

  requestKeyFrame(): void {}

  /** Appends to `out` the packets of frame number `index`. */
  protected abstract frame(index: number, timestamp: number, nowMs: number, out: Buffer[]): void;

  /** A zeroed packet of `length` bytes (header included) with its header and stamp written. */
  protected packet(length: number, marker: boolean, timestamp: number, nowMs: number): Buffer {
    const packet = Buffer.alloc(length);
    packet[0] = 0x80;
    packet[1] = (marker ? 0x80 : 0) | this.payloadType;
    packet.writeUInt16BE(this.#seq, 2);
    packet.writeUInt32BE(timestamp, 4);
    packet.writeUInt32BE(this.ssrc, 8);
    packet.writeUInt32BE(stampMagic, length - stampLength);
    packet.writeDoubleBE(nowMs, length - 8);
    this.#seq = (this.#seq + 1) & 0xffff;
    this.packets++;
    this.bytes += length;
    return packet;
  }
}

export interface SourceOptions {
  ssrc: number;
  /** The payload type in the producer's `rtpParameters`. */
  payloadType: number;
  /** The first RTP sequence number. Default: random below 2^15 (see `PacedSource`). */
  firstSequenceNumber?: number;
}

/** Opus at 20 ms per packet: 50 packets/s of 80–120-byte payloads, timestamps +960 at 48 kHz. */
export class OpusSource extends PacedSource {
  readonly kind = 'audio';

  constructor(options: SourceOptions) {
    super(options, 20, 48_000);
  }

  protected frame(_index: number, timestamp: number, nowMs: number, out: Buffer[]): void {
    const packet = this.packet(12 + 80 + Math.floor(Math.random() * 41), false, timestamp, nowMs);
    packet[12] = 0x78; // TOC: hybrid fullband, 20 ms, mono, one frame
    out.push(packet);
  }
}

export interface Vp8SourceOptions extends SourceOptions {
  /** Target bitrate of the RTP packets (headers included), bits/s. Default 800,000. */
  bitrate?: number;
  /** Default 30. */
  frameRate?: number;
  /** Period of key frames, ms; 0 for none but the first and requested ones. Default 2,500. */
  keyFrameIntervalMs?: number;
  /** Largest RTP packet, bytes. Default 1,200. */
  maxPacketSize?: number;
  /** Written in key frame headers. Defaults 640 × 360. */
  width?: number;
  height?: number;
}

/** A key frame weighs this many delta frames. */
const keyFrameWeight = 4;
/** Requested key frames come no closer than this to the previous one (many consumers, many PLIs). */
const minKeyFrameGapMs = 500;
/** RTP header + VP8 payload descriptor (X, I, 15-bit PictureID). */
const vp8Overhead = 12 + 4;
/** Frame tag, start code, width, height. */
const vp8KeyFrameHeader = 10;

/**
 * VP8 (RFC 7741) frames of synthetic size, split into packets whose payload descriptor and key
 * frame header are well formed: mediasoup forwards video to a consumer only from a key frame it
 * recognises (X bit, S bit and partition 0 on the first packet, frame tag's key frame bit).
 */
export class Vp8Source extends PacedSource {
  readonly kind = 'video';
  keyFrames = 0;
  readonly #deltaFrameBytes: number;
  readonly #framesPerKeyFrame: number;
  readonly #maxPacketSize: number;
  readonly #width: number;
  readonly #height: number;
  #pictureId = Math.floor(Math.random() * 0x8000);
  #lastKeyFrame = Number.NEGATIVE_INFINITY;
  #keyFrameRequested = false;

  constructor(options: Vp8SourceOptions) {
    const frameRate = options.frameRate ?? 30;
    super(options, 1000 / frameRate, 90_000);
    const frameBytes = (options.bitrate ?? 800_000) / 8 / frameRate;
    const interval = options.keyFrameIntervalMs ?? 2500;
    this.#framesPerKeyFrame =
      interval > 0 ? Math.max(1, Math.round(interval / this.frameMs)) : Number.POSITIVE_INFINITY;
    // Periodic key frames are part of the budget: delta frames shrink to make room for them.
    const n = this.#framesPerKeyFrame;
    this.#deltaFrameBytes = Number.isFinite(n) ? (frameBytes * n) / (n - 1 + keyFrameWeight) : frameBytes;
    this.#maxPacketSize = options.maxPacketSize ?? 1200;
    if (this.#maxPacketSize < vp8Overhead + vp8KeyFrameHeader + stampLength)
      throw new RangeError('maxPacketSize too small');
    this.#width = options.width ?? 640;
    this.#height = options.height ?? 360;
  }

  override requestKeyFrame(): void {
    this.#keyFrameRequested = true;
  }

  protected frame(index: number, timestamp: number, nowMs: number, out: Buffer[]): void {
    const sinceKeyFrame = index - this.#lastKeyFrame;
    const key =
      sinceKeyFrame >= this.#framesPerKeyFrame ||
      (this.#keyFrameRequested && sinceKeyFrame * this.frameMs >= minKeyFrameGapMs - 1e-6);
    if (key) {
      this.#lastKeyFrame = index;
      this.#keyFrameRequested = false;
      this.keyFrames++;
    }
    // ±10 % around the target size, so frames are not all alike.
    const size = this.#deltaFrameBytes * (key ? keyFrameWeight : 1) * (0.9 + 0.2 * Math.random());
    const count = Math.ceil(size / this.#maxPacketSize);
    const length = Math.max(Math.ceil(size / count), vp8Overhead + vp8KeyFrameHeader + stampLength);
    const pictureId = this.#pictureId;
    this.#pictureId = (pictureId + 1) & 0x7fff;
    for (let i = 0; i < count; i++) {
      const packet = this.packet(length, i === count - 1, timestamp, nowMs);
      packet[12] = i === 0 ? 0x90 : 0x80; // X; S on the first packet; partition 0
      packet[13] = 0x80; // I: a PictureID follows
      packet[14] = 0x80 | (pictureId >> 8); // M: 15-bit PictureID
      packet[15] = pictureId & 0xff;
      if (i === 0) this.#writeFrameHeader(packet, key, count * (length - vp8Overhead - stampLength));
      out.push(packet);
    }
  }

  /** RFC 6386 §9.1: 3-byte frame tag, then for key frames the start code and dimensions. */
  #writeFrameHeader(packet: Buffer, key: boolean, frameBytes: number): void {
    const firstPartitionSize = Math.min(Math.floor(frameBytes / 4), 0x7ffff);
    // Bit 0: 0 for a key frame; bits 1–3: version 0; bit 4: show_frame; bits 5–23: first partition size.
    const tag = (key ? 0 : 1) | (1 << 4) | (firstPartitionSize << 5);
    packet[16] = tag & 0xff;
    packet[17] = (tag >> 8) & 0xff;
    packet[18] = (tag >> 16) & 0xff;
    if (!key) return;
    packet[19] = 0x9d;
    packet[20] = 0x01;
    packet[21] = 0x2a;
    packet.writeUInt16LE(this.#width & 0x3fff, 22); // scale bits 0
    packet.writeUInt16LE(this.#height & 0x3fff, 24);
  }
}

/** Received, expected and lost packets of one SSRC over the current window. */
export interface StreamStats {
  ssrc: number;
  received: number;
  expected: number;
  lost: number;
  /** lost ÷ expected (0 when nothing was expected). */
  loss: number;
  /** Bytes as given to `record` (with the SRTP tag if recorded encrypted). */
  bytes: number;
  /** Highest extended sequence number (cycles × 65,536 + sequence number, offset by 65,536). */
  highestSeq: number;
}

export interface ReceiverTotals {
  streams: number;
  received: number;
  expected: number;
  lost: number;
  loss: number;
  /** The worst stream's loss. */
  maxStreamLoss: number;
  bytes: number;
  oneWayDelayMs: Percentiles;
}

/** mediasoup's RTP probation stream (`RtpProbationSsrc`); its consumers' SSRCs are 9-digit numbers. */
const probationSsrc = 1234;

interface StreamCounter {
  /** Extended sequence numbers [base, highest] make up the window. */
  base: number;
  highest: number;
  received: number;
  bytes: number;
  /** After `reset()` the window cannot reach back: older packets belong to the previous one. */
  baseFixed: boolean;
}

/** A uniform sample of at most `capacity` values (reservoir sampling), for percentiles in flat memory. */
class Reservoir {
  readonly #samples: Float64Array;
  #seen = 0;
  #max = Number.NEGATIVE_INFINITY;

  constructor(capacity: number) {
    this.#samples = new Float64Array(capacity);
  }

  add(value: number): void {
    const capacity = this.#samples.length;
    const slot = this.#seen < capacity ? this.#seen : Math.floor(Math.random() * (this.#seen + 1));
    if (slot < capacity) this.#samples[slot] = value;
    this.#seen++;
    if (value > this.#max) this.#max = value;
  }

  clear(): void {
    this.#seen = 0;
    this.#max = Number.NEGATIVE_INFINITY;
  }

  /** Percentiles of the sample; the count and the maximum are of every value seen. */
  percentiles(): Percentiles {
    if (this.#seen === 0) return percentiles([]);
    const sample = Array.from(this.#samples.subarray(0, Math.min(this.#seen, this.#samples.length)));
    return { ...percentiles(sample), count: this.#seen, max: this.#max };
  }
}

/**
 * What a receiver measures of the RTP streams it gets, per SSRC: sequence numbers (wrap and
 * reordering handled), loss, bytes; and one-way delays from the payloads' stamps.
 *
 * `record` reads only the RTP header, which SRTP leaves in clear: a receiver can count every
 * packet without decrypting it, and decrypt only a sample for `recordDelay` (the SRTP work is
 * most of the cost of receiving).
 */
export class ReceiverStats {
  readonly #streams = new Map<number, StreamCounter>();
  readonly #delays: Reservoir;

  /** `delaySamples`: delays kept for percentiles (a uniform sample of all). Default 10,000. */
  constructor(options: { delaySamples?: number } = {}) {
    this.#delays = new Reservoir(options.delaySamples ?? 10_000);
  }

  /**
   * Counts an RTP or SRTP packet, except mediasoup's bandwidth probation packets (padding only).
   * Duplicates are not detected (mediasoup does not send them).
   */
  record(packet: Uint8Array): void {
    if (packet.length < 12) return;
    const ssrc = readUint32(packet, 8);
    if (ssrc === probationSsrc) return;
    const seq = ((packet[2] ?? 0) << 8) | (packet[3] ?? 0);
    const stream = this.#streams.get(ssrc);
    if (!stream) {
      // Extended numbers start one cycle up, so a packet reordered before the first stays positive.
      const first = 0x10000 + seq;
      this.#streams.set(ssrc, { base: first, highest: first, received: 1, bytes: packet.length, baseFixed: false });
      return;
    }
    // Signed distance from the highest sequence number so far, in [-32768, 32767].
    const delta = ((seq - (stream.highest & 0xffff) + 0x8000) & 0xffff) - 0x8000;
    const extended = stream.highest + delta;
    if (extended > stream.highest) stream.highest = extended;
    else if (extended < stream.base) {
      if (stream.baseFixed) return;
      stream.base = extended;
    }
    stream.received++;
    stream.bytes += packet.length;
  }

  /** Adds the one-way delay of a decrypted RTP packet; false if it carries no stamp. */
  recordDelay(packet: Buffer, arrivalMs: number): boolean {
    const sent = readSendTime(packet);
    if (sent === undefined) return false;
    this.#delays.add(arrivalMs - sent);
    return true;
  }

  stream(ssrc: number): StreamStats | undefined {
    const stream = this.#streams.get(ssrc);
    if (!stream) return undefined;
    const expected = stream.highest - stream.base + 1;
    const lost = Math.max(0, expected - stream.received);
    return {
      ssrc,
      received: stream.received,
      expected,
      lost,
      loss: expected > 0 ? lost / expected : 0,
      bytes: stream.bytes,
      highestSeq: stream.highest,
    };
  }

  streams(): StreamStats[] {
    return [...this.#streams.keys()].map((ssrc) => this.stream(ssrc) as StreamStats);
  }

  /** Starts a new window (after the ramp-up): counts and delays restart; streams are kept. */
  reset(): void {
    for (const stream of this.#streams.values()) {
      stream.base = stream.highest + 1;
      stream.received = 0;
      stream.bytes = 0;
      stream.baseFixed = true;
    }
    this.#delays.clear();
  }

  /** Totals over the window. */
  snapshot(): ReceiverTotals {
    const streams = this.streams();
    let received = 0;
    let expected = 0;
    let bytes = 0;
    let maxStreamLoss = 0;
    for (const s of streams) {
      received += s.received;
      expected += s.expected;
      bytes += s.bytes;
      maxStreamLoss = Math.max(maxStreamLoss, s.loss);
    }
    const lost = streams.reduce((sum, s) => sum + s.lost, 0);
    return {
      streams: streams.length,
      received,
      expected,
      lost,
      loss: expected > 0 ? lost / expected : 0,
      maxStreamLoss,
      bytes,
      oneWayDelayMs: this.#delays.percentiles(),
    };
  }
}
