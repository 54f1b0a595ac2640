/**
 * Speech first for one receiver (server/media/downlink-allocator.ts), over consumers and a
 * transport with mediasoup's shape: what is held back at which estimate, in which order, what
 * comes back and when, audio-only by the person and by the link, and the transport's maximum
 * (server/media/bandwidth-probe.ts) kept near the plan with probes above it.
 */
import { EventEmitter } from 'node:events';
import type { Consumer, WebRtcTransport } from 'mediasoup/node/lib/types.js';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { AudioOnlyState, ConsumerPauseReason, TrackSource } from '../../client-sdk/src/protocol/index.ts';
import { DownlinkAllocator } from '../../server/media/downlink-allocator.ts';
import { priorities } from '../../server/media/downlink-tuning.ts';
import type { TrackRate, TrackRates } from '../../server/media/track-rates.ts';

type FakeConsumer = Consumer & { preferred: { spatialLayer: number } | undefined };

let seq = 0;
function consumer(kind: 'audio' | 'video', producerId: string, layers = 3): FakeConsumer {
  const fake = {
    id: `consumer-${++seq}`,
    kind,
    type: kind === 'video' && layers > 1 ? 'simulcast' : 'simple',
    producerId,
    // A simulcast consumer has one encoding (its scalability mode tells the layers, as its producer's encodings do).
    rtpParameters: { encodings: [{ scalabilityMode: `S${layers}T3` }] },
    paused: true,
    producerPaused: false,
    priority: 1,
    closed: false,
    observer: new EventEmitter(),
    preferred: undefined as { spatialLayer: number } | undefined,
    async pause() {
      fake.paused = true;
    },
    async resume() {
      fake.paused = false;
    },
    async setPriority(priority: number) {
      fake.priority = priority;
    },
    async setPreferredLayers(layers: { spatialLayer: number }) {
      fake.preferred = layers;
    },
  };
  return fake as unknown as FakeConsumer;
}

/** A room of `people` with a camera (layers at 150k, 500k, 1.5M) and a microphone each; `speaker` talks. */
function setting(people: string[], speaker: string | null) {
  const rates = new Map<string, TrackRate>();
  const tracks = new Map<string, { participantId: string; source: TrackSource; layers: number }>();
  const rate = (bitrates: number[]): TrackRate => ({
    layers: bitrates.map((bitrate) => ({ bitrate, lossFraction: 0, jitterMs: 0 })),
    bitrate: bitrates.reduce((a, b) => a + b, 0),
    sampledAt: Date.now(),
  });
  for (const person of people) {
    tracks.set(`${person}-camera`, { participantId: person, source: 'camera', layers: 3 });
    tracks.set(`${person}-mic`, { participantId: person, source: 'microphone', layers: 1 });
    rates.set(`${person}-camera`, rate([150_000, 500_000, 1_500_000]));
    rates.set(`${person}-mic`, rate([person === speaker ? 35_000 : 1_000]));
  }
  // `lossy`: the link drops packets (what makes the allocator take the estimate as its limit).
  const state = { speaker, now: 1_000_000, lossy: true };
  const paused: [string, ConsumerPauseReason | null][] = [];
  const audioOnly: AudioOnlyState[] = [];
  const allocator = new DownlinkAllocator({
    room: {
      rates: { of: (id: string) => rates.get(id) } as unknown as TrackRates,
      speaker: () => state.speaker,
      lastSpoke: (id) => (id === state.speaker ? Date.now() : 0),
      track: (id) => tracks.get(id),
    },
    audioOnlyBelowBps: 120_000,
    onPaused: (id, reason) => paused.push([id, reason]),
    onAudioOnly: (s) => audioOnly.push(s),
    now: () => state.now,
  });
  const caps: number[] = [];
  const transport = Object.assign(new EventEmitter(), {
    closed: false,
    async enableTraceEvent() {},
    async setMaxOutgoingBitrate(bps: number) {
      caps.push(bps);
    },
  });
  allocator.watch(transport as unknown as WebRtcTransport);
  const cameras = new Map<string, FakeConsumer>();
  const mics = new Map<string, FakeConsumer>();
  const receive = async (person: string) => {
    const camera = consumer('video', `${person}-camera`);
    const mic = consumer('audio', `${person}-mic`);
    for (const c of [camera, mic]) {
      allocator.added(c);
      await allocator.setClientPaused(c.id, false);
    }
    cameras.set(person, camera);
    mics.set(person, mic);
  };
  const estimate = (availableBitrate: number) =>
    transport.emit('trace', { type: 'bwe', info: { availableBitrate, desiredBitrate: 4_500_000 } });
  /** `n` ticks at `bps`: a fresh estimate before each (the median of the last 3 s is what counts). */
  const ticks = async (n: number, bps: number) => {
    for (let i = 0; i < n; i++) {
      state.now += 1_000;
      if (state.lossy) allocator.observeLoss(0.05);
      estimate(bps);
      allocator.tick();
      await new Promise((r) => setImmediate(r));
    }
  };
  return { allocator, cameras, mics, paused, audioOnly, caps, receive, estimate, ticks, rates, tracks, state };
}

const others = ['a', 'b', 'c', 'd', 'e', 'f', 'g'];

/** A receiver of `people`'s cameras and microphones (the first of them speaking). */
async function receiving(people: string[]) {
  const s = setting(people, people[0] ?? null);
  for (const person of people) await s.receive(person);
  return s;
}

test('audio consumers get the top priority; the speaker’s camera is above the others', async () => {
  const s = await receiving(others);
  await s.ticks(1, 10_000_000);
  for (const mic of s.mics.values()) assert.is(mic.priority, priorities.audio);
  assert.is(s.cameras.get('a')?.priority, priorities.speaker);
  assert.is(s.cameras.get('b')?.priority, priorities.camera);
  assert.ok(priorities.audio > priorities.speaker && priorities.speaker > priorities.screen);
  assert.ok(priorities.screen > priorities.camera);
});

test('300 kbit/s down with seven others: the speaker’s tile at its lowest layer, the rest held back, no voice', async () => {
  const s = await receiving(others);
  await s.ticks(4, 300_000);
  const held = s.paused.filter(([, reason]) => reason === 'bandwidth').map(([id]) => id);
  const heldPeople = others.filter((p) => held.includes(s.cameras.get(p)?.id ?? ''));
  assert.equal(heldPeople, ['b', 'c', 'd', 'e', 'f', 'g']);
  assert.is(s.cameras.get('a')?.paused, false);
  assert.equal(s.cameras.get('a')?.preferred, { spatialLayer: 0, temporalLayer: 2 });
  for (const person of heldPeople) assert.is(s.cameras.get(person)?.paused, true);
  for (const mic of s.mics.values()) assert.is(mic.paused, false, 'audio is never held back');
  assert.equal(s.audioOnly, []);
});

test('a tile is held only after two plans without room for it, and comes back after two with room', async () => {
  const s = await receiving(['a', 'b']);
  await s.ticks(1, 250_000);
  assert.equal(s.paused, [], 'one plan short is not enough');
  await s.ticks(1, 250_000);
  assert.equal(s.paused, [[s.cameras.get('b')?.id, 'bandwidth']]);
  // The estimate is a median over 3 s: the first good report does not count yet.
  await s.ticks(2, 2_000_000);
  assert.is(s.paused.length, 1, 'one plan with room is not enough');
  await s.ticks(1, 2_000_000);
  assert.equal(s.paused.at(-1), [s.cameras.get('b')?.id, null]);
  assert.is(s.cameras.get('b')?.paused, false);
});

test('a tile that relapses soon after coming back waits twice as long the next time (up to 4×); the speaker’s never does', async () => {
  const s = await receiving(['a', 'b']);
  const b = () => s.paused.filter(([id]) => id === s.cameras.get('b')?.id).length;
  // 420k: audio ~55k, the speaker's lowest layer 150k and b's 150k fit; 250k: only the speaker's.
  await s.ticks(2, 250_000);
  await s.ticks(4, 420_000);
  assert.is(b(), 2, 'held, then back');
  await s.ticks(4, 250_000);
  assert.is(b(), 3, 'held again');
  await s.ticks(4, 420_000);
  assert.is(b(), 3, 'not back after the usual two plans');
  await s.ticks(2, 420_000);
  assert.is(b(), 4, 'back after four');
  for (const wait of [8, 8]) {
    await s.ticks(4, 250_000);
    const held = b();
    await s.ticks(wait + 1, 420_000);
    assert.is(b(), held + 1, `back after ${wait}, no longer`);
  }
  // b speaks: its tile is first, and comes back after the usual two plans whatever it went through.
  await s.ticks(4, 250_000);
  s.state.speaker = 'b';
  const held = b();
  await s.ticks(4, 250_000);
  assert.is(b(), held + 1, 'the speaker’s tile is back');
  assert.is(s.cameras.get('b')?.paused, false);
  assert.is(s.cameras.get('a')?.paused, true, 'the former speaker’s makes room');
});

test('the speaker’s tile comes back only as the one it replaces is held, even with no loss lately', async () => {
  const s = await receiving(['a', 'b']);
  // 250k carries one tile: b is held; then no loss for long enough that congestion ends.
  await s.ticks(2, 250_000);
  assert.is(s.cameras.get('b')?.paused, true);
  s.state.lossy = false;
  await s.ticks(25, 250_000);
  assert.is(s.cameras.get('b')?.paused, true, 'still no room for b');
  s.state.speaker = 'b';
  for (let tick = 0; tick < 6; tick++) {
    await s.ticks(1, 250_000);
    const shown = ['a', 'b'].filter((p) => s.cameras.get(p)?.paused === false);
    assert.ok(shown.length <= 1, `tick ${tick}: both tiles sent on a link that carries one (${shown})`);
  }
  assert.is(s.cameras.get('b')?.paused, false, 'the speaker’s tile is back');
  assert.is(s.cameras.get('a')?.paused, true, 'in the room the other left');
});

test('higher layers go to the speaker first, up to the size each tile is rendered at', async () => {
  const s = await receiving(['a', 'b']);
  await s.allocator.setWantedHeight(s.cameras.get('b')?.id ?? '', 180);
  // Audio ~55k; 150k + 150k for the lowest layers, 350k more for the speaker's middle one.
  await s.ticks(3, 760_000);
  assert.equal(s.cameras.get('a')?.preferred?.spatialLayer, 1);
  assert.equal(s.cameras.get('b')?.preferred?.spatialLayer, 0);
  await s.ticks(4, 10_000_000);
  assert.equal(s.cameras.get('a')?.preferred?.spatialLayer, 2);
  assert.equal(s.cameras.get('b')?.preferred?.spatialLayer, 0, 'never above what its size asks for');
});

test('the estimate is a median: one report far off does not move the plan', async () => {
  const s = await receiving(['a', 'b']);
  for (let i = 0; i < 3; i++) {
    s.state.now += 1_000;
    s.estimate(2_000_000);
    s.estimate(2_000_000);
    s.estimate(100_000);
    s.allocator.tick();
    await new Promise((r) => setImmediate(r));
  }
  assert.equal(s.paused, []);
  assert.equal(s.audioOnly, []);
});

test('below the threshold for 5 s: audio only (reason bandwidth); above 1.5× it for 5 s: video again', async () => {
  const s = await receiving(['a', 'b']);
  await s.ticks(4, 90_000);
  assert.equal(s.audioOnly, [], 'not on the first dip');
  await s.ticks(3, 90_000);
  assert.equal(s.audioOnly, [{ enabled: true, reason: 'bandwidth' }]);
  for (const camera of s.cameras.values()) assert.is(camera.paused, true);
  assert.ok(s.paused.some(([, reason]) => reason === 'audioOnly'));
  for (const mic of s.mics.values()) assert.is(mic.paused, false);
  assert.is(
    s.caps.at(-1),
    240_000,
    'the transport may carry twice the threshold: the estimate can climb above what ends it',
  );
  await s.ticks(3, 170_000);
  assert.is(s.audioOnly.length, 1, '170k is above the threshold but not 1.5× it');
  await s.ticks(7, 2_000_000);
  assert.equal(s.audioOnly.at(-1), { enabled: false, reason: 'bandwidth' });
  assert.is(s.cameras.get('a')?.paused, false);
});

test('the person’s own audio-only holds whatever the estimate; turning it off stops the automatic one until the link recovers', async () => {
  const s = setting(['a'], 'a');
  await s.receive('a');
  s.allocator.setAudioOnly(true);
  await s.ticks(8, 10_000_000);
  assert.equal(s.audioOnly, [{ enabled: true, reason: 'self' }]);
  assert.is(s.cameras.get('a')?.paused, true);
  s.allocator.setAudioOnly(false);
  assert.is(s.cameras.get('a')?.paused, false);
  await s.ticks(7, 90_000);
  assert.equal(s.audioOnly.at(-1), { enabled: true, reason: 'bandwidth' });
  s.allocator.setAudioOnly(false);
  await s.ticks(8, 90_000);
  assert.equal(s.audioOnly.at(-1), { enabled: false, reason: 'self' }, 'not turned on again while still weak');
  await s.ticks(8, 2_000_000);
  await s.ticks(7, 90_000);
  assert.equal(s.audioOnly.at(-1), { enabled: true, reason: 'bandwidth' }, 'once recovered, it may come on again');
});

test('a video consumer added while audio-only (a rejoin keeps the choice) is held back and its receiver told why at once', async () => {
  const s = setting(['a', 'b'], 'a');
  s.allocator.setAudioOnly(true);
  await s.receive('b');
  assert.equal(s.paused, [[s.cameras.get('b')?.id, 'audioOnly']]);
  assert.is(s.cameras.get('b')?.paused, true);
  assert.is(s.mics.get('b')?.paused, false);
});

test('a low estimate without loss (a busy receiver, not a weak link) holds nothing back and never goes audio-only', async () => {
  const s = setting(others, 'a');
  s.state.lossy = false;
  for (const person of others) await s.receive(person);
  await s.allocator.setWantedHeight(s.cameras.get('a')?.id ?? '', 720);
  await s.ticks(10, 90_000);
  assert.equal(s.paused, []);
  assert.equal(s.audioOnly, []);
  assert.equal(s.cameras.get('a')?.preferred?.spatialLayer, 2, 'the layer asked for: mediasoup shares its estimate');
  assert.is(s.caps.at(-1) ?? 0, 0, 'the transport is not limited');
  s.allocator.observeLoss(0.01);
  await s.ticks(3, 90_000);
  assert.equal(s.paused, [], '1 % loss is no congestion');
});

test('congestion ends 20 s after the last loss: once nothing is held back, every tile gets its layer again', async () => {
  const s = await receiving(['a', 'b']);
  await s.allocator.setWantedHeight(s.cameras.get('a')?.id ?? '', 720);
  await s.ticks(3, 400_000);
  assert.equal(s.cameras.get('a')?.preferred?.spatialLayer, 0, 'capped to what the link carries');
  s.state.lossy = false;
  await s.ticks(19, 400_000);
  assert.equal(s.cameras.get('a')?.preferred?.spatialLayer, 0, 'still congested');
  await s.ticks(2, 400_000);
  assert.equal(s.cameras.get('a')?.preferred?.spatialLayer, 2);
  assert.is(s.caps.at(-1), 0);
});

test('a consumer the receiver paused stays paused when bandwidth would send it', async () => {
  const s = await receiving(['a', 'b']);
  await s.allocator.setClientPaused(s.cameras.get('b')?.id ?? '', true);
  await s.ticks(2, 250_000);
  await s.ticks(6, 10_000_000);
  assert.is(s.cameras.get('b')?.paused, true);
  await s.allocator.setClientPaused(s.cameras.get('b')?.id ?? '', false);
  assert.is(s.cameras.get('b')?.paused, false);
});

test('while short, the transport’s maximum is the plan (just after a loss), then the plan and one and a half of its next step; with room, no limit', async () => {
  const s = await receiving(others);
  await s.ticks(6, 300_000);
  // The speaker's lowest layer and every microphone (the speaker's 35k, six silent ones at 1k).
  const plan = 150_000 + (35_000 * 1.5 + 1_000) + 6 * (1_000 * 1.5 + 1_000);
  assert.is(s.caps.at(-1), Math.max(240_000, Math.round(plan * 1.05 + 30_000)), 'the link just lost packets');
  s.state.lossy = false;
  await s.ticks(5, 300_000);
  // Quiet for 5 s: room for the next tile's lowest layer (150k) and a half.
  assert.is(s.caps.at(-1), Math.round(plan + 150_000 * 1.5 + 30_000));
  await s.ticks(12, 20_000_000);
  assert.is(s.caps.at(-1), 0);
});

test('a link that carries the step it was given gets twice as many the next time; a loss starts again at one', async () => {
  const s = await receiving(others);
  await s.ticks(6, 300_000);
  s.state.lossy = false;
  await s.ticks(5, 300_000);
  // The speaker's lowest layer and every microphone, as above; each held tile's lowest layer is 150k.
  const audio = 35_000 * 1.5 + 1_000 + 6 * (1_000 * 1.5 + 1_000);
  const plan = (tiles: number) => audio + tiles * 150_000;
  assert.is(s.caps.at(-1), Math.round(plan(1) + 150_000 * 1.5 + 30_000), 'one step ahead');
  // The estimate climbs to the maximum (the median needs two reports): the next tile fits (a held
  // one needs 15 % to spare), and the next maximum looks two steps ahead.
  await s.ticks(2, s.caps.at(-1) ?? 0);
  assert.is(s.caps.at(-1), Math.round(plan(2) + 2 * 150_000 * 1.5 + 30_000), 'two steps ahead');
  await s.ticks(2, s.caps.at(-1) ?? 0);
  // Four steps: the two tiles still held (150k each), then two tiles' next layers (350k each).
  assert.is(s.caps.at(-1), Math.round(plan(5) + (2 * 150_000 + 2 * 350_000) * 1.5 + 30_000), 'four steps ahead');
  s.state.lossy = true;
  await s.ticks(1, 1_000_000);
  s.state.lossy = false;
  await s.ticks(5, 1_000_000);
  const granted = plan(6);
  assert.is(s.caps.at(-1), Math.round(granted + 150_000 * 1.5 + 30_000), 'one step ahead again after the loss');
});

test('an estimate above a maximum it was at already (the floor) is no proof: the look-ahead stays one step', async () => {
  const s = await receiving(['a', 'b', 'c']);
  // The speaker's lowest layer (150k) and the microphones (~58.5k) fit 240k; the floor is 240k (twice the audio-only threshold).
  await s.ticks(6, 240_000);
  s.state.lossy = false;
  for (let i = 0; i < 8; i++) await s.ticks(1, 260_000);
  assert.is(s.caps.at(-1), Math.round(35_000 * 1.5 + 1_000 + 2 * 2_500 + 150_000 + 150_000 * 1.5 + 30_000));
});

test('while recovering, a tile that relapsed before comes back after one plan with room, without its back-off', async () => {
  const s = await receiving(['a', 'b']);
  const b = () => s.paused.filter(([id]) => id === s.cameras.get('b')?.id).length;
  await s.ticks(2, 250_000);
  await s.ticks(4, 420_000);
  await s.ticks(4, 250_000);
  assert.is(b(), 3, 'held, back, held again: its next wait is doubled');
  s.state.lossy = false;
  await s.ticks(5, 250_000);
  // Quiet for 5 s, and an estimate that carries every tile: b is back after one plan with room (the median needs two reports).
  await s.ticks(3, 10_000_000);
  assert.is(b(), 4, 'back at once');
  assert.is(s.cameras.get('b')?.paused, false);
});

test('a low estimate after the loss has stopped (a receiver starved of CPU) does not bring audio-only on', async () => {
  const s = await receiving(['a', 'b']);
  await s.ticks(2, 300_000);
  s.state.lossy = false;
  await s.ticks(5, 300_000);
  await s.ticks(8, 90_000);
  assert.equal(s.audioOnly, [], 'still congested (lost 15 s ago), but no longer losing');
  s.state.lossy = true;
  await s.ticks(5, 90_000);
  assert.equal(s.audioOnly, [{ enabled: true, reason: 'bandwidth' }], 'losing again at the low estimate');
});

test.run();
