import { createECDH } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { e2eeComparison, e2eeTable } from '../../bench/e2ee.ts';
import { e2eeFrameOverhead, opaquePacket, syntheticPublicKey } from '../../bench/e2ee-media.ts';
import { OpusSource, ReceiverStats, readSendTime, stampLength, Vp8Source } from '../../bench/media.ts';
import { capacitySvg, renderHtml } from '../../bench/report.ts';
import type { BenchResult, StepMeasures } from '../../bench/result.ts';
import { deriveFrameKey, encryptFrame, frameEpoch } from '../../client-sdk/src/e2ee/frame-crypto.ts';
import { e2eeClearBytes, e2eePublicKeyPattern } from '../../client-sdk/src/protocol/index.ts';

const start = 1_700_000_000_000;

/** Every packet of `source` over `seconds` of simulated time. */
function run(source: { poll(now: number): Buffer[] }, seconds: number): Buffer[] {
  const packets: Buffer[] = [];
  for (let t = 0; t < seconds * 1000; t += 10) packets.push(...source.poll(start + t));
  return packets;
}

/** A VP8 packet's frame bytes: after the 12-byte header and the 4-byte descriptor, before the bench's stamp. */
const frameBytes = (packet: Buffer) => packet.subarray(16, packet.length - stampLength);

test("the overhead is the SDK frame format's: 16-byte AES-GCM tag, 12-byte IV, 4-byte epoch, 1 trailer byte", async () => {
  assert.is(e2eeFrameOverhead, 16 + 12 + 4 + 1);
  const key = await deriveFrameKey(new Uint8Array(32).fill(7));
  for (const length of [1, 100, 3000]) {
    const sealed = await encryptFrame(key, 1, new Uint8Array(length), e2eeClearBytes.audio);
    assert.is(sealed.length, length + e2eeFrameOverhead, `a frame of ${length} bytes`);
  }
});

test('Opus: header and TOC byte kept, the rest random, the tag and trailer added, the stamp last', () => {
  const source = new OpusSource({ ssrc: 1111, payloadType: 100 });
  for (const plain of run(source, 1)) {
    const opaque = opaquePacket(plain, 'audio');
    assert.is(opaque.length, plain.length + e2eeFrameOverhead);
    const clearEnd = 12 + e2eeClearBytes.audio;
    assert.equal(opaque.subarray(0, clearEnd), plain.subarray(0, clearEnd), 'RTP header and TOC');
    const body = plain.length - stampLength - clearEnd;
    assert.not.equal(opaque.subarray(clearEnd, clearEnd + body), plain.subarray(clearEnd, clearEnd + body));
    assert.is(frameEpoch(opaque.subarray(12, opaque.length - stampLength)), 1, 'an SDK frame, as far as one can tell');
    assert.is(readSendTime(opaque), readSendTime(plain), 'the one-way delay still reads');
  }
});

test('VP8: each frame keeps its descriptors and first 10 (key) or 3 (delta) bytes, grows by the overhead in its last packet', () => {
  const source = new Vp8Source({ ssrc: 2222, payloadType: 101, keyFrameIntervalMs: 1000 });
  const plain = run(source, 3);
  const opaque = plain.map((p) => opaquePacket(p, 'video'));
  let keyFrames = 0;
  let frameFirst = 0;
  for (let i = 0; i < plain.length; i++) {
    const p = plain[i] as Buffer;
    const o = opaque[i] as Buffer;
    assert.equal(o.subarray(0, 16), p.subarray(0, 16), 'RTP header and payload descriptor');
    const last = ((p[1] ?? 0) & 0x80) !== 0;
    assert.is(o.length, p.length + (last ? e2eeFrameOverhead : 0));
    assert.is(readSendTime(o), readSendTime(p));
    if (!last) continue;
    // The frame as the receiving SDK would reassemble it: its packets' bytes past the descriptors.
    const frame = Buffer.concat(opaque.slice(frameFirst, i + 1).map(frameBytes));
    const clearFrame = Buffer.concat(plain.slice(frameFirst, i + 1).map(frameBytes));
    const key = ((clearFrame[0] ?? 0) & 0x01) === 0;
    if (key) keyFrames++;
    const clear = key ? e2eeClearBytes.videoKey : e2eeClearBytes.videoDelta;
    assert.is(frame.length, clearFrame.length + e2eeFrameOverhead);
    assert.equal(frame.subarray(0, clear), clearFrame.subarray(0, clear), 'what the SFU reads, in clear');
    assert.not.equal(frame.subarray(clear, clearFrame.length), clearFrame.subarray(clear));
    assert.is(frameEpoch(frame), 1);
    frameFirst = i + 1;
  }
  assert.is(frameFirst, plain.length, 'every frame ended');
  assert.ok(keyFrames >= 3, `${keyFrames} key frames`);
});

test('opaque packets count as their plain ones do (the track check reads only RTP headers)', () => {
  const plainStats = new ReceiverStats();
  const opaqueStats = new ReceiverStats();
  const sources = [new OpusSource({ ssrc: 1, payloadType: 100 }), new Vp8Source({ ssrc: 2, payloadType: 101 })];
  for (const source of sources) {
    for (const packet of run(source, 2)) {
      plainStats.record(packet);
      opaqueStats.record(opaquePacket(packet, source.kind));
    }
  }
  for (const ssrc of [1, 2]) {
    const plain = plainStats.stream(ssrc);
    const opaque = opaqueStats.stream(ssrc);
    assert.ok(plain && plain.received > 0);
    assert.is(opaque?.received, plain.received);
    assert.is(opaque?.lost, 0);
    assert.ok((opaque?.bytes ?? 0) > plain.bytes);
  }
});

test('a synthetic public key is a fresh P-256 point, as the join expects', () => {
  const key = syntheticPublicKey();
  assert.match(key, e2eePublicKeyPattern);
  assert.is(key.length, 88);
  assert.is.not(syntheticPublicKey(), key);
  // A point on the curve: another party derives a shared secret from it.
  const other = createECDH('prime256v1');
  other.generateKeys();
  assert.is(other.computeSecret(Buffer.from(key, 'base64')).length, 32);
});

function step(e2ee: boolean, workers: number, node: number, packets: number, bytes: number): StepMeasures {
  const load = (cpu: number) => ({ cpu, rssBytes: 1e8 });
  return {
    target: 'haven',
    ...(e2ee ? { e2ee: true } : {}),
    rooms: 4,
    participantsPerRoom: 8,
    producers: 64,
    consumers: 448,
    seconds: 30,
    forwardedPacketsPerSecond: packets,
    forwardedBitsPerSecond: packets * bytes * 8,
    sentPacketsPerSecond: packets / 7,
    loss: 0,
    maxConsumerLoss: 0,
    oneWayDelayMs: { count: 0, p50: null, p95: null, p99: null, max: null },
    workers: [load(workers)],
    workersTotal: load(workers),
    node: load(node),
    loadGenerator: load(0.5),
    machineBusy: e2ee ? 0.31 : 0.3,
    workerCpuPerKiloPacket: workers / (packets / 1000),
    errors: 0,
  };
}

test('plain and E2EE rooms at the same load: CPU per packet of each, their ratio, in the report', () => {
  const steps = [step(false, 0.4, 0.1, 30_000, 700), step(true, 0.42, 0.1, 30_000, 715)];
  const [c] = e2eeComparison(steps);
  assert.ok(c);
  assert.is(c.rooms, 4);
  assert.ok(Math.abs(c.plainCpuPerKiloPacket - 0.5 / 30) < 1e-12);
  assert.ok(Math.abs(c.cpuPerPacketRatio - 0.52 / 0.5) < 1e-12, 'workers and node together');
  assert.ok(Math.abs(c.workerCpuPerPacketRatio - 1.05) < 1e-12);
  assert.equal([c.plainPacketBytes, c.e2eePacketBytes], [700, 715]);
  assert.equal([c.machineBusyPlain, c.machineBusyE2ee], [0.3, 0.31], 'how quiet the machine was in each window');
  assert.equal(e2eeComparison([steps[0] as StepMeasures]), [], 'nothing without E2EE steps');
  assert.is(e2eeTable([]), undefined);

  const result: BenchResult = {
    scenario: 'groups',
    startedAt: '2026-01-01T00:00:00.000Z',
    machine: { cpus: 2, cpuModel: 'test', memoryBytes: 8e9, node: 'v20', mediasoup: '3.12.16' },
    options: {},
    steps,
    e2ee: [c],
  };
  const html = renderHtml(result);
  assert.match(html, /E2EE ÷ plain rooms, same load/);
  assert.match(html, /server CPU per forwarded packet: 1\.04×/);
  assert.match(html, /Haven, E2EE/, 'the step is labelled');
  // Plot 1 draws the plain load once: the E2EE repeat has its own table.
  assert.is(capacitySvg(result), capacitySvg({ ...result, steps: [steps[0] as StepMeasures] }));
});

test.run();
