/**
 * A room's facilitation state survives its node (issue 7, item 5): the store on its own (write
 * and read back, TTL, fencing, clear), then two node processes sharing one Redis — node A runs a
 * session and is killed (SIGKILL), node B takes the room back when its people reconnect: the
 * admitted straight in, the waiting still waiting since the same time, the hand up, the room
 * locked, the banned refused, controlled audio; attendance shows a reconnection, not a second
 * admission; who does not come back leaves after the grace.
 */
import { Redis } from 'ioredis';
import pino from 'pino';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { NodeProcess } from '../../bench/node-process.ts';
import { waitFor } from '../../bench/processes.ts';
import { protocolVersion } from '../../client-sdk/src/protocol/index.ts';
import type { HavenError } from '../../server/errors.ts';
import { RoomStateStore } from '../../server/rooms/room-state.ts';
import { opusAudioParameters } from '../helpers/rtp.ts';
import { sessionNode } from '../helpers/session-node.ts';
import {
  admin,
  codeOf,
  collect,
  connect,
  connectWhenServed,
  joinAs,
  next,
  ok,
  admitted as session,
  type TestSocket,
  token,
} from '../helpers/signaling-client.ts';

// Two nodes, started by the tests themselves, share this file's Redis.
const haven = sessionNode(test, { redis: true, start: false });
const { sockets } = haven;
const client = haven.redisClient({ maxRetriesPerRequest: 2 });
/** Log lines of the store under test (pino JSON). */
const logLines: Record<string, unknown>[] = [];
const logger = pino({ level: 'info' }, { write: (line: string) => logLines.push(JSON.parse(line)) });

/* ---- the store ---- */

test('store: what a room writes is read back; every key has the TTL', async () => {
  const store = new RoomStateStore(client, logger, { ttlS: 3_600 });
  const room = `rs-unit-${process.pid}`;
  assert.is(await store.load(room), undefined, 'nothing stored yet');
  const w = store.writer(room);
  w.member({ participantId: 'pt-1', role: 'participant', stage: 'admitted', waitingSince: 1_000, dropped: false });
  w.member({
    participantId: 'pt-2',
    role: 'participant',
    stage: 'waiting',
    waitingSince: 2_000,
    dropped: true,
    jti: 'j-2',
    expiresAtMs: 9_999_999_999_999,
  });
  w.member({ participantId: 'fac', role: 'facilitator', stage: 'admitted', waitingSince: 500, dropped: false });
  w.hand('pt-2', 30);
  w.hand('pt-1', 20);
  w.audioMode('controlled');
  w.unmuteGranted('pt-1', true);
  w.spotlight('pt-1');
  w.alias('pt-1', 'J.');
  w.consent('pt-1', { version: 1, hash: 'a'.repeat(64) });
  const breakouts = {
    status: 'planned' as const,
    groups: [{ id: 'b1', name: 'Pairs', planned: ['pt-1'] }],
    startedAt: null,
    endsAt: null,
    noticeS: 60,
    noticed: false,
    help: [],
    nextId: 2,
  };
  w.breakouts(breakouts);
  await w.locked(true);
  await w.ban('pt-3');
  const saved = await store.load(room);
  assert.ok(saved);
  assert.is(saved.locked, true);
  assert.is(saved.audioMode, 'controlled');
  assert.is(saved.spotlight, 'pt-1');
  assert.equal(
    saved.members.map((m) => [m.participantId, m.stage, m.role, m.waitingSince, m.dropped]),
    [
      ['fac', 'admitted', 'facilitator', 500, false],
      ['pt-1', 'admitted', 'participant', 1_000, false],
      ['pt-2', 'waiting', 'participant', 2_000, true],
    ],
    'oldest in the waiting room first',
  );
  assert.is(saved.members[2]?.jti, 'j-2');
  assert.equal(saved.hands, [
    { participantId: 'pt-1', raisedAt: 20 },
    { participantId: 'pt-2', raisedAt: 30 },
  ]);
  assert.equal(saved.bans, ['pt-3']);
  assert.equal(saved.unmuteGranted, ['pt-1']);
  assert.equal([...saved.aliases], [['pt-1', 'J.']]);
  assert.equal([...saved.consents], [['pt-1', { version: 1, hash: 'a'.repeat(64) }]]);
  assert.equal(saved.breakouts, breakouts);

  for (const key of Object.values(store.keys(room))) {
    assert.ok(key.startsWith(`haven:room-state:${room}:`), key);
    const ttl = await client.ttl(key);
    assert.ok(ttl > 3_500 && ttl <= 3_600, `${key}: ttl ${ttl}`);
  }
  // Someone leaves: their member, hand, alias and unmute grant go; the consent record stays.
  w.memberGone('pt-1');
  // A new audio mode withdraws every grant.
  w.unmuteGranted('pt-2', true);
  w.audioMode('open');
  await w.locked(false);
  const after = await store.load(room);
  assert.equal(
    after?.members.map((m) => m.participantId),
    ['fac', 'pt-2'],
  );
  assert.equal(
    after?.hands.map((h) => h.participantId),
    ['pt-2'],
  );
  assert.equal(after?.unmuteGranted, []);
  assert.is(after?.aliases.size, 0);
  assert.is(after?.consents.get('pt-1')?.version, 1);
  assert.is(after?.audioMode, 'open');
  assert.is(after?.locked, false);

  // The session ends: nothing left.
  await store.clear(room);
  assert.is(await store.load(room), undefined);
  assert.is(await client.exists(...Object.values(store.keys(room))), 0);
});

test('store: a node without the lease, or whose lease moved on in Redis, writes nothing and says so', async () => {
  const store = new RoomStateStore(client, logger);
  const room = `rs-fenced-${process.pid}`;
  const lease = { key: `haven:room-owner:${room}`, value: 'node-a|7' };
  let allowed = true;
  const fence = () => (allowed ? lease : null);
  const w = store.writer(room, { fence });
  allowed = false;
  logLines.length = 0;
  w.member({ participantId: 'pt-1', role: 'participant', stage: 'admitted', waitingSince: 1, dropped: false });
  w.hand('pt-1', 1);
  w.consent('pt-1', { version: 1, hash: 'b'.repeat(64) });
  w.clear();
  await w.locked(true);
  await w.ban('pt-1');
  await store.clear(room, fence);
  await client.ping(); // anything issued is in Redis by now
  assert.is(await client.exists(...Object.values(store.keys(room))), 0, 'nothing written');
  assert.is(await store.load(room), undefined);
  const warned = logLines.filter((l) => l.level === 40 && l.room === room);
  assert.is(warned.length, 7, 'each skipped write logged at warn, with the room id');
  // The node believes it holds the lease, but Redis names a newer one (another node took over):
  // the token does not match, nothing is applied, and an awaited write fails (the facilitator is
  // not told a lock holds that only this node's memory has).
  allowed = true;
  await client.set(lease.key, 'node-b|8');
  const refused = (write: Promise<void>) =>
    write.then(
      () => 'answered ok',
      (err: HavenError) => err.code,
    );
  assert.is(await refused(w.locked(true)), 'UNAVAILABLE');
  assert.is(await refused(w.ban('pt-1')), 'UNAVAILABLE');
  assert.is(await store.load(room), undefined, 'a stale token writes nothing');
  // With its lease in Redis, writes go through again.
  await client.set(lease.key, lease.value);
  await w.locked(true);
  assert.is((await store.load(room))?.locked, true);
  await store.clear(room);
  await client.del(lease.key);
});

test('store: a failed write is logged (ids only) and reported; replace writes the whole state again', async () => {
  const room = `rs-replace-${process.pid}`;
  // A Redis that is not there: writes fail at once.
  const down = new Redis({ port: 1, lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0 });
  down.on('error', () => {});
  let failures = 0;
  logLines.length = 0;
  new RoomStateStore(down, logger).writer(room, { onFailure: () => failures++ }).alias('pt-1', 'Secret Alias');
  await waitFor(() => failures === 1, 2_000, 'the failure reported');
  const line = logLines.find((l) => l.level === 50 && l.room === room);
  assert.is(line?.participant, 'pt-1');
  assert.not.match(JSON.stringify(logLines), /Secret Alias/, 'no alias in the log');
  down.disconnect();

  const store = new RoomStateStore(client, logger);
  const w = store.writer(room);
  w.hand('pt-old', 1);
  await w.ban('pt-old');
  const state = {
    locked: true,
    audioMode: 'controlled' as const,
    spotlight: 'pt-1',
    members: [
      {
        participantId: 'pt-1',
        role: 'participant' as const,
        stage: 'admitted' as const,
        waitingSince: 5,
        dropped: true,
        breakout: 'b2',
      },
    ],
    hands: [{ participantId: 'pt-1', raisedAt: 7 }],
    bans: ['pt-9'],
    unmuteGranted: ['pt-1'],
    aliases: new Map([['pt-1', 'J.']]),
    consents: new Map([['pt-1', { version: 2, hash: 'c'.repeat(64) }]]),
    breakouts: {
      status: 'running' as const,
      groups: [
        { id: 'b1', name: 'Pairs', planned: [] },
        { id: 'b2', name: 'Threes', planned: ['pt-1'] },
      ],
      startedAt: 10,
      endsAt: 610,
      noticeS: 60,
      noticed: false,
      help: [{ breakoutId: 'b2', participantId: 'pt-1', at: 11 }],
      nextId: 3,
    },
  };
  await w.replace(state);
  assert.equal(await store.load(room), state, 'what was there before is gone');
  assert.ok((await client.ttl(store.keys(room).members)) > 86_000);
  await store.clear(room);
});

test('store: the default TTL is 24 h, refreshed by every write', async () => {
  const store = new RoomStateStore(client, logger);
  const room = `rs-ttl-${process.pid}`;
  const { meta, bans } = store.keys(room);
  await store.writer(room).ban('pt-x');
  await client.expire(bans, 60);
  await store.writer(room).locked(true);
  for (const key of [meta, bans]) {
    const ttl = await client.ttl(key);
    assert.ok(ttl > 86_300 && ttl <= 86_400, `${key}: ttl ${ttl}`);
  }
  await store.clear(room);
});

/* ---- a session across a node's death ---- */

const opusAudio = opusAudioParameters(22222222, 'haven-room-state');

const startNode = (graceS: number): Promise<NodeProcess> =>
  haven.startNode({ HAVEN_ROOMS_RECONNECT_GRACE_S: String(graceS) });

async function connectTo(node: NodeProcess, accessToken: string): Promise<TestSocket> {
  const socket = await connectWhenServed(node.url, accessToken);
  sockets.push(socket);
  return socket;
}

async function streamOf(room: string): Promise<{ type: string; participant?: string; details?: string }[]> {
  const entries = await client.xrange(`haven:attendance:${room}`, '-', '+');
  return entries.map(([, fields]) => {
    const f: Record<string, string> = {};
    for (let i = 0; i < fields.length; i += 2) f[fields[i] as string] = fields[i + 1] as string;
    return { type: f.type as string, participant: f.participant, details: f.details };
  });
}

const typesOf = (events: { type: string; participant?: string }[], participant: string) =>
  events.filter((e) => e.participant === participant && e.type !== 'mediaConnected').map((e) => e.type);

test('kill -9 of the node running a session: another node takes it back, state and all', async () => {
  // Counted from the last moment node A is known to have served the room: long enough for node B
  // to start and everyone to be back within it on a busy machine.
  const graceS = 10;
  const room = `rs-${process.pid}`;
  const a = await startNode(graceS);
  const created = await admin(a.url, 'POST', '/v1/rooms', {
    id: room,
    title: 'Thursday group',
    consentText: 'What is said in group stays in group.',
  });
  assert.is(created.status, 201, JSON.stringify(created.body));

  /* Node A: the session. Each person's token is kept: they reconnect to node B with it. */
  const tokens = new Map<string, string>();
  const tokenOf = (sub: string, role: 'facilitator' | 'participant' = 'participant') => {
    if (!tokens.has(sub)) tokens.set(sub, token(room, sub, role));
    return tokens.get(sub) as string;
  };
  const onA = async (sub: string, role: 'facilitator' | 'participant' = 'participant') => {
    const s = await connect(a.url, tokenOf(sub, role));
    sockets.push(s);
    return s;
  };
  const fac = await onA('fac', 'facilitator');
  session(await joinAs(fac));
  const waitingLists = collect(fac, 'waitingRoomChanged');
  /** Through consent into the waiting room; admitted by the facilitator unless `stay`. */
  const enter = async (sub: string, stay = false) => {
    const s = await onA(sub);
    assert.is((await joinAs(s)).stage, 'consent');
    assert.is((await ok(s, 'acceptConsent', { version: 1 })).stage, 'waiting');
    if (!stay) {
      const admitted = next(s, 'admitted');
      await ok(fac, 'admit', { participantId: sub });
      await admitted;
    }
    return s;
  };
  const ptA = await enter('pt-a');
  await ok(fac, 'setAudioMode', { mode: 'controlled' });
  await ok(fac, 'requestUnmute', { participantId: 'pt-a' });
  await ok(ptA, 'raiseHand', {});
  await enter('pt-gone');
  await enter('pt-b');
  await ok(fac, 'remove', { participantId: 'pt-b', ban: true });
  const ptW = await onA('pt-w');
  await joinAs(ptW);
  await ok(ptW, 'acceptConsent', { version: 1 });
  await ok(fac, 'lockRoom', { locked: true });
  const waitingSince = await waitFor(
    () => waitingLists.flatMap(([l]) => l.waiting).find((w) => w.participantId === 'pt-w')?.waitingSince,
    5_000,
    'pt-w in the waiting list',
  );

  // What a kill -9 may lose is the last instant's writes: wait until the state is in Redis.
  const key = (k: string) => `haven:room-state:${room}:${k}`;
  await waitFor(
    async () =>
      (await client.hget(key('meta'), 'locked')) === '1' &&
      (await client.sismember(key('bans'), 'pt-b')) === 1 &&
      (await client.zscore(key('hands'), 'pt-a')) !== null &&
      (await client.hexists(key('members'), 'pt-w')) === 1 &&
      (await client.hexists(key('members'), 'pt-b')) === 0 &&
      typesOf(await streamOf(room), 'pt-w').includes('waiting'),
    5_000,
    'the session state in Redis',
  );
  const raisedAt = Number(await client.zscore(key('hands'), 'pt-a'));
  // Ids only in the stored state.
  for (const k of ['members', 'hands', 'bans', 'unmute', 'consents', 'meta']) {
    const type = await client.type(key(k));
    const content =
      type === 'hash'
        ? await client.hgetall(key(k))
        : type === 'set'
          ? await client.smembers(key(k))
          : await client.zrange(key(k), '0', '-1');
    assert.not.match(JSON.stringify(content), /Name of/, k);
  }

  /* Node A dies. */
  a.kill();
  for (const s of sockets.splice(0)) s.close();

  /* Node B: everyone reconnects with the same tokens. */
  const b = await startNode(graceS);
  const facB = await connectTo(b, tokenOf('fac'));
  const restored = session(await joinAs(facB));
  const gone = next(facB, 'participantLeft', (graceS + 5) * 1000);
  gone.catch(() => {}); // awaited below; no unhandled rejection if the test fails before

  assert.is(restored.resumed, true, 'the facilitator takes their place back');
  assert.is(restored.locked, true);
  assert.is(restored.audioMode, 'controlled');
  assert.equal(restored.hands, [{ participantId: 'pt-a', raisedAt }]);
  assert.equal(
    restored.participants.map((p) => [p.id, p.name, p.role]).sort(),
    [
      ['pt-a', 'pt-a', 'participant'],
      ['pt-gone', 'pt-gone', 'participant'],
    ],
    'the admitted are still in, shown by id until they rejoin',
  );
  assert.equal(restored.waiting, [{ participantId: 'pt-w', name: 'pt-w', waitingSince }]);
  const live = await ok(facB, 'liveAttendance', {});
  const liveA = live.participants.find((p) => p.participantId === 'pt-a');
  assert.is(liveA?.present, true);
  assert.is(liveA?.reconnecting, true);
  assert.is(liveA?.name, null, 'the name is unknown until they rejoin');

  // The admitted participant: straight back in (no consent, no waiting room), hand still up.
  const renamed = next(facB, 'displayNameChanged');
  const ptAB = await connectTo(b, tokenOf('pt-a'));
  const back = session(await joinAs(ptAB));
  assert.is(back.resumed, true);
  assert.equal(back.hands, [{ participantId: 'pt-a', raisedAt }]);
  assert.is(back.audioMode, 'controlled');
  assert.equal((await renamed)[0], { participantId: 'pt-a', name: 'Name of pt-a' });
  // Controlled audio, and pt-a was asked to unmute on A: their microphone goes live.
  const published = next(facB, 'trackPublished');
  const send = await ok(ptAB, 'createTransport', { direction: 'send' });
  await ok(ptAB, 'produce', { transportId: send.id, kind: 'audio', source: 'microphone', rtpParameters: opusAudio });
  assert.is((await published)[0].paused, false, 'the unmute grant survived');

  // The one waiting: still waiting, since the same time.
  const waitingNamed = next(facB, 'waitingRoomChanged');
  const ptWB = await connectTo(b, tokenOf('pt-w'));
  assert.equal(await joinAs(ptWB), {
    stage: 'waiting',
    waiting: { facilitatorPresent: true },
    reconnectGraceMs: graceS * 1000,
  });
  assert.equal((await waitingNamed)[0].waiting, [{ participantId: 'pt-w', name: 'Name of pt-w', waitingSince }]);
  assert.is(await codeOf(ptWB, 'createTransport', { direction: 'recv' }), 'FORBIDDEN', 'still not in the session');

  // Locked for a newcomer.
  const newcomer = await connectTo(b, token(room, 'pt-new'));
  assert.is(await codeOf(newcomer, 'join', { protocolVersion }), 'ROOM_LOCKED');

  // The banned one: their token is revoked, and a new token is refused too.
  const revoked = await connect(b.url, tokenOf('pt-b')).then(
    (s) => {
      sockets.push(s);
      return 'connected';
    },
    (err: { data?: { code?: string } }) => err.data?.code,
  );
  assert.is(revoked, 'UNAUTHORIZED');
  const banned = await connectTo(b, token(room, 'pt-b'));
  assert.is(await codeOf(banned, 'join', { protocolVersion }), 'FORBIDDEN');

  // The one who does not come back leaves after the grace, as after any dropped connection.
  assert.equal((await gone)[0], { participantId: 'pt-gone', reason: 'disconnected' });

  // Attendance: one session; pt-a and pt-w reconnected (no second admission), pt-gone left.
  const events = await waitFor(
    async () => {
      const all = await streamOf(room);
      return typesOf(all, 'pt-gone').includes('left') && typesOf(all, 'pt-w').includes('reconnected') ? all : undefined;
    },
    5_000,
    'the attendance events from node B',
  );
  assert.is(events.filter((e) => e.type === 'sessionStarted').length, 1, 'one session, not two');
  // One `restored` stands for everyone's disconnection, dated by the old node's last lease renewal.
  assert.is(events.filter((e) => e.type === 'restored').length, 1, 'the session taken back once');
  assert.equal(typesOf(events, 'pt-a'), ['consented', 'waiting', 'admitted', 'reconnected']);
  assert.equal(typesOf(events, 'pt-w'), ['consented', 'waiting', 'reconnected']);
  assert.equal(typesOf(events, 'pt-gone'), ['consented', 'waiting', 'admitted', 'left']);
  assert.equal(typesOf(events, 'fac'), ['admitted', 'reconnected']);
  assert.not.ok(typesOf(events, 'pt-new').length, 'a newcomer refused at the lock is not in attendance');

  // Consent records survived too: back after the grace, pt-gone is not asked again.
  await ok(facB, 'lockRoom', { locked: false });
  const again = await connectTo(b, token(room, 'pt-gone'));
  assert.is((await joinAs(again)).stage, 'waiting', 'accepted version 1 on node A: no consent gate');

  // The session ends: its state is cleared.
  await ok(facB, 'endSession', {});
  await waitFor(
    async () =>
      (await client.exists(...['meta', 'members', 'hands', 'bans', 'unmute', 'aliases', 'consents'].map(key))) === 0,
    5_000,
    'the state cleared at the end',
  );
  b.kill();
});

test.run();
