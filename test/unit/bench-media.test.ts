import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  epochMs,
  isRtcp,
  keyFrameRequests,
  OpusSource,
  ReceiverStats,
  readSendTime,
  rtpPayloadOffset,
  Vp8Source,
} from '../../bench/media.ts';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

/** Polls `source` every `stepMs` for `seconds` of simulated time from `start`. */
function run(source: { poll(now: number): Buffer[] }, seconds: number, start = 1_700_000_000_000, stepMs = 10) {
  const packets: Buffer[] = [];
  for (let t = 0; t < seconds * 1000; t += stepMs) packets.push(...source.poll(start + t));
  return packets;
}

/** Groups packets into frames by RTP timestamp, in order. */
function frames(packets: Buffer[]): Buffer[][] {
  const byTimestamp = new Map<number, Buffer[]>();
  for (const p of packets) {
    const ts = p.readUInt32BE(4);
    byTimestamp.set(ts, [...(byTimestamp.get(ts) ?? []), p]);
  }
  return [...byTimestamp.values()];
}

const isKeyFrame = (first: Buffer) => ((first[16] ?? 0) & 0x01) === 0;

test('Opus: 50 packets/s, 80–120-byte payloads, timestamps +960, consecutive sequence numbers', () => {
  const source = new OpusSource({ ssrc: 1111, payloadType: 100 });
  const packets = run(source, 1);
  assert.is(packets.length, 50);
  assert.is(source.packets, 50);
  for (const [i, p] of packets.entries()) {
    assert.ok(p.length - 12 >= 80 && p.length - 12 <= 120, `payload ${p.length - 12}`);
    assert.is(p[0], 0x80);
    assert.is((p[1] ?? 0) & 0x7f, 100);
    assert.is(p.readUInt32BE(8), 1111);
    if (i === 0) continue;
    const prev = packets[i - 1] as Buffer;
    assert.is(p.readUInt16BE(2), (prev.readUInt16BE(2) + 1) & 0xffff);
    assert.is(p.readUInt32BE(4), (prev.readUInt32BE(4) + 960) >>> 0);
  }
});

test('sources start their sequence numbers below 2^15, so 32,767 lost packets cannot hide a wrap', () => {
  const firsts = Array.from({ length: 1_000 }, (_, i) => {
    const source = i % 2 ? new OpusSource({ ssrc: i, payloadType: 100 }) : new Vp8Source({ ssrc: i, payloadType: 101 });
    return (source.poll(1_700_000_000_000)[0] as Buffer).readUInt16BE(2);
  });
  assert.ok(
    firsts.every((seq) => seq < 0x8000),
    `first sequence numbers up to ${Math.max(...firsts)}`,
  );
  assert.ok(new Set(firsts).size > 900, 'random');
  assert.is(
    new OpusSource({ ssrc: 1, payloadType: 100, firstSequenceNumber: 65_530 }).poll(0)[0]?.readUInt16BE(2),
    65_530,
  );
});

test('a late poll catches up a few frames, not a burst of everything missed', () => {
  const source = new OpusSource({ ssrc: 1, payloadType: 100 });
  assert.is(source.poll(0).length, 1);
  assert.is(source.poll(2000).length, 5);
  assert.is(source.poll(2020).length, 1);
});

test('VP8: descriptor bits, key frame header, marker on the last packet, sizes ≤ 1,200', () => {
  const source = new Vp8Source({ ssrc: 2222, payloadType: 101, bitrate: 1_500_000 });
  const all = frames(run(source, 3));
  assert.ok(all.length >= 89 && all.length <= 91, `${all.length} frames`);
  let pictureId: number | undefined;
  for (const frame of all) {
    const first = frame[0] as Buffer;
    assert.ok(frame.length >= 2, 'frames of 6 kB span several packets');
    for (const [i, p] of frame.entries()) {
      assert.ok(p.length <= 1200, `packet of ${p.length} bytes`);
      assert.is((p[1] ?? 0) & 0x7f, 101);
      assert.is(((p[1] ?? 0) & 0x80) !== 0, i === frame.length - 1, 'marker on the last packet only');
      assert.is(p[12], i === 0 ? 0x90 : 0x80, 'X bit; S bit on the first packet; partition 0');
      assert.is(p[13], 0x80, 'I bit');
      assert.ok(((p[14] ?? 0) & 0x80) !== 0, 'M bit: 15-bit PictureID');
      assert.is(p.readUInt16BE(14) & 0x7fff, first.readUInt16BE(14) & 0x7fff, 'one PictureID per frame');
    }
    const id = first.readUInt16BE(14) & 0x7fff;
    if (pictureId !== undefined) assert.is(id, (pictureId + 1) & 0x7fff);
    pictureId = id;
    assert.is(((first[16] ?? 0) >> 4) & 0x01, 1, 'show_frame');
    if (isKeyFrame(first)) {
      assert.equal([...first.subarray(19, 22)], [0x9d, 0x01, 0x2a], 'start code');
      assert.is(first.readUInt16LE(22), 640);
      assert.is(first.readUInt16LE(24), 360);
    }
  }
  // Key frames: the first, then every 2.5 s (frame 75).
  assert.equal(
    all.flatMap((frame, i) => (isKeyFrame(frame[0] as Buffer) ? [i] : [])),
    [0, 75],
  );
  assert.is(source.keyFrames, 2);
  const timestamps = all.map((frame) => (frame[0] as Buffer).readUInt32BE(4));
  assert.is(((timestamps[1] ?? 0) - (timestamps[0] ?? 0)) >>> 0, 3000, '90 kHz at 30 frames/s');
});

test('VP8: the bitrate of each simulated second is within ±15 % of the target', () => {
  for (const bitrate of [800_000, 300_000, 2_500_000]) {
    const source = new Vp8Source({ ssrc: 1, payloadType: 101, bitrate });
    const start = 1_000_000;
    for (let second = 0; second < 5; second++) {
      const bytes = run(source, 1, start + second * 1000).reduce((sum, p) => sum + p.length, 0);
      const ratio = (bytes * 8) / bitrate;
      assert.ok(ratio > 0.85 && ratio < 1.15, `${bitrate} bit/s, second ${second}: ${ratio.toFixed(3)}`);
    }
  }
});

test('VP8: a requested key frame comes with the next frame, at most one per 500 ms', () => {
  const source = new Vp8Source({ ssrc: 1, payloadType: 101, keyFrameIntervalMs: 0 });
  const keyFrameBy = (now: number) => {
    const before = source.keyFrames;
    source.poll(now);
    return source.keyFrames > before;
  };
  assert.ok(keyFrameBy(0), 'the first frame');
  assert.not.ok(keyFrameBy(34));
  source.requestKeyFrame();
  assert.not.ok(keyFrameBy(67), 'too soon after the first');
  let t = 100;
  while (!keyFrameBy(t)) t += 1000 / 30;
  assert.ok(t > 499.9 && t < 540, `key frame at ${t} ms`);
  assert.not.ok(keyFrameBy(t + 2000), 'no periodic key frames');
  source.requestKeyFrame();
  assert.ok(keyFrameBy(t + 2034));
  assert.is(source.keyFrames, 3);
});

test('every payload ends with the send time; the receiver finds it behind header extensions and padding', () => {
  const now = epochMs();
  const [opus] = new OpusSource({ ssrc: 1, payloadType: 100 }).poll(now);
  const [vp8] = new Vp8Source({ ssrc: 2, payloadType: 101 }).poll(now);
  assert.is(readSendTime(opus as Buffer), now);
  assert.is(readSendTime(vp8 as Buffer), now);
  // As the SFU may forward it: a one-byte-header extension (2 words) and 3 bytes of padding.
  const payload = (opus as Buffer).subarray(12);
  const forwarded = Buffer.concat([
    hex('b0e40001 00000000 00000001 bede0002 10ff2201 02030000'),
    payload,
    hex('000003'),
  ]);
  assert.is(rtpPayloadOffset(forwarded), 24);
  assert.is(readSendTime(forwarded), now);
  const stats = new ReceiverStats();
  assert.ok(stats.recordDelay(forwarded, now + 1.25));
  assert.not.ok(stats.recordDelay(hex('80640001 00000000 00000001 0102030405060708090a0b0c'), now), 'no stamp');
  assert.not.ok(stats.recordDelay(hex('80640001 00000000 00000001'), now), 'no payload');
  assert.equal(stats.snapshot().oneWayDelayMs, { count: 1, p50: 1.25, p95: 1.25, p99: 1.25, max: 1.25 });
});

function rtp(seq: number, ssrc = 5, length = 100): Buffer {
  const p = Buffer.alloc(length);
  p[0] = 0x80;
  p[1] = 96;
  p.writeUInt16BE(seq & 0xffff, 2);
  p.writeUInt32BE(ssrc, 8);
  return p;
}

test('ReceiverStats: loss from sequence gaps, per SSRC', () => {
  const stats = new ReceiverStats();
  for (let seq = 100; seq < 200; seq++) if (seq % 10 !== 3) stats.record(rtp(seq));
  for (let seq = 0; seq < 50; seq++) stats.record(rtp(seq, 6, 50));
  for (let seq = 0; seq < 50; seq += 2) stats.record(rtp(seq, 1234, 300)); // mediasoup's probation padding
  const five = stats.stream(5);
  assert.equal(five, {
    ssrc: 5,
    received: 90,
    expected: 100,
    lost: 10,
    loss: 0.1,
    bytes: 9000,
    highestSeq: 0x10000 + 199,
  });
  assert.is(stats.stream(6)?.loss, 0);
  assert.is(stats.stream(1234), undefined);
  const total = stats.snapshot();
  assert.is(total.streams, 2);
  assert.is(total.received, 140);
  assert.is(total.expected, 150);
  assert.is(total.lost, 10);
  assert.ok(Math.abs(total.loss - 10 / 150) < 1e-12);
  assert.is(total.maxStreamLoss, 0.1);
  assert.is(total.bytes, 9000 + 2500);
  assert.equal(total.oneWayDelayMs, { count: 0, p50: null, p95: null, p99: null, max: null });
});

test('ReceiverStats: wrap of the 16-bit sequence number, reordering, a reordered first packet', () => {
  const stats = new ReceiverStats();
  const order = [65530, 65529, 65531, 65533, 65532, 65535, 0, 65534, 2, 1, 4, 3, 5];
  for (const seq of order) stats.record(rtp(seq));
  assert.equal(stats.stream(5), {
    ssrc: 5,
    received: 13,
    expected: 13,
    lost: 0,
    loss: 0,
    bytes: 1300,
    highestSeq: 0x10000 + 65536 + 5,
  });
  // Three wraps with every fifth packet lost.
  const long = new ReceiverStats();
  for (let n = 0; n < 3 * 65536; n++) if (n % 5 !== 0) long.record(rtp(40000 + n));
  const s = long.stream(5);
  assert.is(s?.expected, 3 * 65536 - 1);
  assert.ok(Math.abs((s?.loss ?? 0) - 0.2) < 1e-4);
});

test('ReceiverStats: reset starts a new window; late packets of the old one do not count', () => {
  const stats = new ReceiverStats();
  for (let seq = 0; seq < 100; seq++) if (seq !== 50) stats.record(rtp(seq));
  stats.recordDelay(new OpusSource({ ssrc: 5, payloadType: 96 }).poll(1000)[0] as Buffer, 1002);
  stats.reset();
  assert.equal(stats.snapshot().received, 0);
  assert.is(stats.snapshot().oneWayDelayMs.count, 0);
  stats.record(rtp(50)); // late, from before the reset
  for (let seq = 100; seq < 110; seq++) if (seq !== 105) stats.record(rtp(seq));
  assert.equal(stats.stream(5), {
    ssrc: 5,
    received: 9,
    expected: 10,
    lost: 1,
    loss: 0.1,
    bytes: 900,
    highestSeq: 0x10000 + 109,
  });
});

test('ReceiverStats: delay percentiles from a bounded sample', () => {
  const stats = new ReceiverStats({ delaySamples: 1000 });
  const source = new OpusSource({ ssrc: 1, payloadType: 100 });
  for (let i = 0; i < 20_000; i++) {
    const [p] = source.poll(i * 20);
    assert.ok(stats.recordDelay(p as Buffer, i * 20 + (i % 100) + 0.5));
  }
  const { count, p50, p95, p99, max } = stats.snapshot().oneWayDelayMs;
  assert.is(count, 20_000);
  assert.is(max, 99.5);
  assert.ok(Math.abs((p50 ?? 0) - 50) < 6, `p50 ${p50}`);
  assert.ok(Math.abs((p95 ?? 0) - 95) < 3, `p95 ${p95}`);
  assert.ok((p99 ?? 0) >= 96 && (p99 ?? 0) <= 99.5, `p99 ${p99}`);
});

test('RTCP: demultiplexing, and PLI/FIR parsing in a compound packet', () => {
  // mediasoup to a producer: RR, then PLI for 0x11111111, then FIR for 0x22222222 and 0x33333333.
  const rtcp = hex(`
    81c90007 00000001 aaaaaaaa 00000000 00000000 00000000 00000000 00000000
    81ce0002 00000001 11111111
    84ce0006 00000001 00000000 22222222 01000000 33333333 02000000
    8fce0005 00000001 00000000 52454d42 01000000 44444444`);
  assert.ok(isRtcp(rtcp));
  assert.not.ok(isRtcp(new OpusSource({ ssrc: 1, payloadType: 100 }).poll(0)[0] as Buffer));
  assert.not.ok(isRtcp(new Vp8Source({ ssrc: 1, payloadType: 101 }).poll(0).at(-1) as Buffer), 'with the marker bit');
  assert.equal(keyFrameRequests(rtcp), [0x11111111, 0x22222222, 0x33333333]);
  assert.equal(keyFrameRequests(hex('81cd0003 00000001 11111111 00010000')), [], 'a NACK is no key frame request');
  assert.equal(keyFrameRequests(hex('81ce0002 00000001')), [], 'truncated');
});

test.run();
