/**
 * Connection quality: the classifier's thresholds, the hysteresis (a downgrade after 2 samples,
 * an upgrade after 3, never flapping on alternating samples), and the sampler over stand-ins for
 * mediasoup's objects (missing simulcast layers, silence, transport-wide loss).
 */
import fc from 'fast-check';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { ConnectionQuality } from '../../client-sdk/src/protocol/index.ts';
import {
  classify,
  classifyDirection,
  downgradeSamples,
  excellent,
  layerGraceMs,
  MediaQualitySampler,
  QualityTracker,
  type QualityVerdict,
  rateStaleMs,
  type SampledMedia,
  silenceLostMs,
  type TrackRateSource,
  upgradeSamples,
} from '../../server/media/connection-quality.ts';

const poorUpload: QualityVerdict = { quality: 'poor', reason: 'upload' };
const goodDownload: QualityVerdict = { quality: 'good', reason: 'download' };

test('thresholds: excellent, good and poor by loss, round trip, jitter, bandwidth and layers', () => {
  assert.is(classifyDirection({ loss: 0.01, rttMs: 100, jitterMs: 10, bandwidthRatio: 1 }), 'excellent');
  assert.is(classifyDirection({ loss: 0.03 }), 'good');
  assert.is(classifyDirection({ rttMs: 400 }), 'good');
  assert.is(classifyDirection({ jitterMs: 45 }), 'good');
  assert.is(classifyDirection({ bandwidthRatio: 0.6 }), 'good');
  assert.is(classifyDirection({ missingLayers: 'some' }), 'good');
  assert.is(classifyDirection({ loss: 0.15 }), 'poor');
  assert.is(classifyDirection({ rttMs: 800 }), 'poor');
  assert.is(classifyDirection({ bandwidthRatio: 0.3 }), 'poor');
  assert.is(classifyDirection({ missingLayers: 'all' }), 'poor');
  assert.is(classifyDirection({ heldBack: 'held' }), 'good', 'tiles held back for bandwidth');
  assert.is(classifyDirection({ heldBack: 'audioOnly' }), 'poor', 'audio only for bandwidth');
  assert.is(classifyDirection(undefined), 'excellent', 'nothing to measure is nothing wrong');
});

test('the worse direction wins; the reason names it, or both when they are alike', () => {
  assert.equal(classify({}), excellent);
  assert.equal(classify({ upload: { loss: 0.15 }, download: { loss: 0.03 } }), poorUpload);
  assert.equal(classify({ upload: {}, download: { rttMs: 400 } }), goodDownload);
  assert.equal(classify({ upload: { loss: 0.1 }, download: { loss: 0.1 } }), { quality: 'poor', reason: 'both' });
  assert.equal(classify({ silentForMs: silenceLostMs }), { quality: 'lost', reason: 'both' });
  assert.equal(classify({ silentForMs: silenceLostMs - 1 }), excellent);
});

test('hysteresis: a downgrade shows on the 2nd sample, an upgrade on the 3rd', () => {
  const tracker = new QualityTracker();
  assert.is(tracker.update(poorUpload), undefined);
  assert.equal(tracker.update(poorUpload), poorUpload);
  assert.is(tracker.update(excellent), undefined);
  assert.is(tracker.update(excellent), undefined);
  assert.equal(tracker.update(excellent), excellent);
  assert.equal(tracker.shown, excellent);
});

test('hysteresis: a downgrade shows the latest sample; an upgrade the least good of its streak', () => {
  const tracker = new QualityTracker();
  tracker.update(goodDownload);
  assert.equal(tracker.update(poorUpload), poorUpload, 'good then poor: poor');
  tracker.update(excellent);
  tracker.update(goodDownload);
  assert.equal(tracker.update(excellent), goodDownload, 'excellent, good, excellent: good');
});

test('hysteresis: a sample like the one shown breaks a streak', () => {
  const tracker = new QualityTracker();
  tracker.update(poorUpload);
  tracker.update(excellent);
  assert.is(tracker.update(poorUpload), undefined);
  assert.equal(tracker.update(poorUpload), poorUpload);
});

const qualities: ConnectionQuality[] = ['excellent', 'good', 'poor', 'lost'];
const verdict = fc
  .record({ quality: fc.constantFrom(...qualities), reason: fc.constantFrom('upload', 'download', 'both') })
  .map((v): QualityVerdict => (v.quality === 'excellent' ? excellent : (v as QualityVerdict)));

test('property: the shown quality changes only after enough samples calling for it, to one of them', () => {
  fc.assert(
    fc.property(fc.array(verdict, { maxLength: 60 }), (samples) => {
      const tracker = new QualityTracker();
      const seen: QualityVerdict[] = [];
      for (const sample of samples) {
        const before = tracker.shown;
        const shown = tracker.update(sample);
        seen.push(sample);
        if (!shown) continue;
        const worse = qualities.indexOf(shown.quality) >= qualities.indexOf(before.quality);
        const needed = worse ? downgradeSamples : upgradeSamples;
        const last = seen.slice(-needed);
        assert.is(last.length, needed);
        assert.ok(last.some((s) => s.quality === shown.quality && s.reason === shown.reason));
        assert.ok(last.every((s) => s.quality !== before.quality || s.reason !== before.reason));
      }
    }),
  );
});

test('property: samples alternating with the shown one never change it (no flapping)', () => {
  fc.assert(
    fc.property(fc.array(verdict, { maxLength: 40 }), (others) => {
      const tracker = new QualityTracker();
      for (const other of others) {
        assert.is(tracker.update(other), undefined);
        tracker.update(excellent);
      }
      assert.equal(tracker.shown, excellent);
    }),
  );
});

/* ---- The sampler, over stand-ins for mediasoup's objects ---- */

interface FakeStats {
  bytesReceived?: number;
  /** What the room's reading says each encoding sends (in encoding order). */
  layers?: { bitrate: number; lossFraction?: number; jitterMs?: number }[];
  consumer?: { fractionLost: number; roundTripTime?: number };
  downlink?: SampledMedia['downlink'];
}

function fakeMedia(stats: FakeStats, appData: object = {}, encodings: { maxBitrate?: number }[] = []) {
  const transport = {
    id: 't1',
    closed: false,
    appData: { direction: 'send' },
    getStats: async () => [{ bytesReceived: stats.bytesReceived ?? 0 }],
  };
  const producer = { id: 'p1', kind: 'video', closed: false, paused: false, appData, rtpParameters: { encodings } };
  const consumer = {
    id: 'c1',
    closed: false,
    paused: false,
    producerPaused: false,
    getStats: async () => (stats.consumer ? [{ type: 'outbound-rtp', ...stats.consumer }] : []),
  };
  const media = {
    transports: new Map([['t1', transport]]),
    tracks: new Map([['p1', { producer, source: 'camera' }]]),
    consumers: new Map(stats.consumer ? [['c1', consumer]] : []),
    get downlink() {
      return stats.downlink ?? { audioOnly: { enabled: false, reason: null } };
    },
  } as unknown as SampledMedia;
  /** The room's reading, as of `at`. */
  const rates = (at: number): TrackRateSource => ({
    of: () => {
      const layers = (stats.layers ?? []).map((l) => ({ lossFraction: 0, jitterMs: 0, ...l }));
      return { layers, bitrate: layers.reduce((sum, l) => sum + l.bitrate, 0), sampledAt: at };
    },
  });
  return { media, sample: (sampler: MediaQualitySampler, at: number) => sampler.sample(media, rates(at), at) };
}

const simulcast = [{ maxBitrate: 150_000 }, { maxBitrate: 500_000 }, { maxBitrate: 1_500_000 }];
const rates = (...bitrates: number[]) => bitrates.map((bitrate) => ({ bitrate }));

test('sampler: a layer that arrived and stops counts against upload; one never sent does not', async () => {
  // A 640×480 capture: the browser sends two of the three layers.
  const stats: FakeStats = { bytesReceived: 1, layers: rates(150_000, 400_000, 0) };
  const { sample } = fakeMedia(stats, {}, simulcast);
  const sampler = new MediaQualitySampler();
  const t0 = 1_000_000;
  assert.is((await sample(sampler, t0)).upload?.missingLayers, undefined, 'a new producer gets its grace');
  const steady = await sample(sampler, t0 + layerGraceMs);
  assert.is(steady.upload?.missingLayers, undefined, 'the top layer never came: not expected');
  assert.equal(classify(steady), excellent);
  stats.layers = rates(150_000, 0, 0);
  const short = await sample(sampler, t0 + layerGraceMs + 1000);
  assert.is(short.upload?.missingLayers, 'some');
  assert.ok(Math.abs((short.upload?.bandwidthRatio ?? 0) - 150 / 650) < 1e-9, 'what arrives of 150 + 500 kbit/s');
  assert.equal(classify(short), poorUpload);
  stats.layers = rates(0, 0, 0);
  assert.is((await sample(sampler, t0 + layerGraceMs + 2000)).upload?.missingLayers, 'all');
});

test('sampler: a camera of which nothing ever arrives is missing all, once its grace is over', async () => {
  const { sample } = fakeMedia({ bytesReceived: 1, layers: rates(0, 0, 0) }, {}, simulcast);
  const sampler = new MediaQualitySampler();
  await sample(sampler, 0);
  assert.is((await sample(sampler, layerGraceMs)).upload?.missingLayers, 'all');
});

test('sampler: layers dynacast turned off are not expected; those turned on again get their grace', async () => {
  const stats: FakeStats = { bytesReceived: 1, layers: rates(150_000, 450_000, 1_400_000) };
  const appData: { maxSpatialLayer?: number } = {};
  const { sample } = fakeMedia(stats, appData, simulcast);
  const sampler = new MediaQualitySampler();
  await sample(sampler, 0);
  appData.maxSpatialLayer = 0;
  stats.layers = rates(150_000, 0, 0);
  const lowered = await sample(sampler, layerGraceMs);
  assert.is(lowered.upload?.missingLayers, undefined);
  assert.equal(classify(lowered), excellent);
  appData.maxSpatialLayer = 2;
  assert.is((await sample(sampler, layerGraceMs + 1000)).upload?.missingLayers, undefined, 'its grace');
  assert.is((await sample(sampler, 2 * layerGraceMs + 1000)).upload?.missingLayers, 'some');
});

test('sampler: loss and jitter of the layers arriving; round trip from the consumer; stale readings ignored', async () => {
  const stats: FakeStats = {
    bytesReceived: 1,
    layers: [{ bitrate: 500_000, lossFraction: 0.15, jitterMs: 10 }],
    consumer: { fractionLost: 5, roundTripTime: 120 },
  };
  const { media, sample } = fakeMedia(stats);
  const sampled = await sample(new MediaQualitySampler(), 0);
  assert.is(sampled.upload?.loss, 0.15);
  assert.is(sampled.upload?.jitterMs, 5, 'video jitter at half');
  assert.ok(Math.abs((sampled.download?.loss ?? 0) - 5 / 256) < 1e-9, 'RTCP’s 0–255 fraction');
  assert.is(sampled.download?.rttMs, 120);
  assert.equal(classify(sampled), poorUpload);
  const stale: TrackRateSource = { of: () => ({ layers: [], bitrate: 0, sampledAt: 0 }) };
  const later = await new MediaQualitySampler().sample(media, stale, rateStaleMs);
  assert.is(later.upload?.loss, undefined);
});

test('sampler: a downlink the allocator holds back is good at best; audio only for bandwidth is poor', async () => {
  const stats: FakeStats = { downlink: { audioOnly: { enabled: false, reason: null }, heldForBandwidth: 2 } };
  const { sample } = fakeMedia(stats);
  assert.equal(classify(await sample(new MediaQualitySampler(), 0)), goodDownload);
  stats.downlink = { audioOnly: { enabled: true, reason: 'bandwidth' } };
  assert.equal(classify(await sample(new MediaQualitySampler(), 0)), { quality: 'poor', reason: 'download' });
  stats.downlink = { audioOnly: { enabled: true, reason: 'self' } };
  assert.equal(classify(await sample(new MediaQualitySampler(), 0)), excellent, 'the person’s own choice');
});

test('sampler: nothing arriving on the transports for 5 s is lost; traffic again ends it', async () => {
  const stats: FakeStats = { bytesReceived: 100, layers: [{ bitrate: 500_000 }] };
  const { sample } = fakeMedia(stats);
  const sampler = new MediaQualitySampler();
  assert.is((await sample(sampler, 0)).silentForMs, 0);
  assert.is((await sample(sampler, silenceLostMs)).silentForMs, silenceLostMs);
  assert.equal(classify(await sample(sampler, silenceLostMs)).quality, 'lost');
  stats.bytesReceived = 200;
  assert.is((await sample(sampler, silenceLostMs + 1000)).silentForMs, 0);
});

test('sampler: a send transport with nothing to send hears only ICE checks: its silence says nothing', async () => {
  const stats: FakeStats = { bytesReceived: 100, layers: rates(500_000) };
  const { media, sample } = fakeMedia(stats);
  const producer = [...media.tracks.values()][0]?.producer as { paused: boolean };
  const sampler = new MediaQualitySampler();
  await sample(sampler, 0);
  producer.paused = true;
  assert.is((await sample(sampler, 2 * silenceLostMs)).silentForMs, undefined, 'camera off: nothing is due');
  producer.paused = false;
  assert.is((await sample(sampler, 2 * silenceLostMs + 1000)).silentForMs, 0, 'on again: its 5 s start now');
  assert.is((await sample(sampler, 3 * silenceLostMs + 1000)).silentForMs, silenceLostMs);
});

test('sampler: a transport that never received anything says nothing (a receive-only plain transport)', async () => {
  const { sample } = fakeMedia({ bytesReceived: 0 });
  assert.is((await sample(new MediaQualitySampler(), 60_000)).silentForMs, undefined);
});

test.run();
