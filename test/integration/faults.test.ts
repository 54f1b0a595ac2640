/**
 * Faults under a running session, each followed by an exact attendance check: a media worker
 * SIGKILLed, the embedded Redis SIGKILLed, an external Redis gone for 30 s, the node itself
 * SIGKILLed. Real node processes, WebRTC peers in Node, real redis-servers. After each fault the
 * attendance computed from the stream must equal, to the second, the span the events' own times
 * give: an outage inside a living node is no gap, and no event is lost or written twice.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { embeddedRedisClient, type NodeProcess, startNodeProcess } from '../../bench/node-process.ts';
import { commandOf, descendants, isAlive, redisServersIn, waitFor } from '../../bench/processes.ts';
import { computeAttendance } from '../../server/attendance/compute.ts';
import { type AttendanceEvent, readAttendanceEvents } from '../../server/attendance/event.ts';
import { lastServedAt } from '../../server/cluster/leases.ts';
import { freePort } from '../helpers/ports.ts';
import { admin, testAdminKey, testSecret, token } from '../helpers/signaling-client.ts';
import { createNodeSessionClient, type NodeSession, type Reception, receiveFrom } from '../helpers/wrtc-session.ts';

const graceS = 8;
const outageMs = 30_000;
const nodeEnv = {
  HAVEN_AUTH_SECRET: testSecret,
  HAVEN_ADMIN_API_KEY: testAdminKey,
  HAVEN_MEDIA_WEBRTC_PORT: '0',
  HAVEN_ROOMS_RECONNECT_GRACE_S: String(graceS),
};
const nodes: NodeProcess[] = [];
const sessions: NodeSession[] = [];
const clients: Redis[] = [];
const children: ChildProcess[] = [];
const dirs: string[] = [];
let roomSeq = 0;

test.after(async () => {
  await Promise.all(sessions.map((s) => s.close()));
  for (const client of clients) client.disconnect();
  for (const node of nodes) node.kill();
  for (const child of children) child.kill('SIGKILL');
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function tempDir(name: string): string {
  const dir = mkdtempSync(join(tmpdir(), `haven-faults-${name}-`));
  dirs.push(dir);
  return dir;
}

async function startNode(env: Record<string, string>): Promise<NodeProcess> {
  const node = await startNodeProcess({ ...nodeEnv, ...env });
  nodes.push(node);
  return node;
}

function keep(client: Redis): Redis {
  clients.push(client);
  return client;
}

/** A running session: a facilitator and two participants, each publishing; everyone receives everyone. */
interface Session {
  room: string;
  people: Map<string, NodeSession>;
  /** What `listener` receives from `publisher`. */
  rx: (listener: string, publisher: string) => Reception;
  /** `participantLeft` seen by anyone, as `seer:left`. */
  leaves: string[];
}

async function runningSession(node: NodeProcess, label: string): Promise<Session> {
  const room = `faults-${label}-${++roomSeq}`;
  const body = { id: room, kind: 'group', title: 'Fault test', waitingRoom: false };
  assert.is((await admin(node.url, 'POST', '/v1/rooms', body)).status, 201);
  const people = new Map<string, NodeSession>();
  const leaves: string[] = [];
  const receptions = new Map<string, Reception>();
  for (const [sub, role] of [
    [`${label}-fac`, 'facilitator'],
    [`${label}-pt1`, 'participant'],
    [`${label}-pt2`, 'participant'],
  ] as const) {
    const session = createNodeSessionClient(node.url, token(room, sub, role));
    sessions.push(session);
    await session.client.connect();
    await session.client.join();
    session.client.on('participantLeft', (p) => leaves.push(`${sub}:${p.id}`));
    people.set(sub, session);
  }
  for (const session of people.values()) {
    await session.client.publishMicrophone(session.audioTrack());
    await session.client.publishCamera(session.videoTrack());
  }
  for (const [listener, session] of people)
    for (const publisher of people.keys())
      if (publisher !== listener) receptions.set(`${listener}<${publisher}`, receiveFrom(session, publisher));
  const rx = (listener: string, publisher: string) => receptions.get(`${listener}<${publisher}`) as Reception;
  await allFlowing({ room, people, rx, leaves }, 'media before the fault');
  return { room, people, rx, leaves };
}

/** More frames and audible samples arrive, from everyone to everyone. */
async function allFlowing(session: Session, what: string): Promise<void> {
  const ids = [...session.people.keys()];
  const pairs = ids.flatMap((l) => ids.filter((p) => p !== l).map((p) => session.rx(l, p)));
  const start = pairs.map((rx) => [rx.frames(), rx.audible()] as const);
  await waitFor(
    () => pairs.every((rx, i) => rx.frames() > (start[i]?.[0] ?? 0) + 5 && rx.audible() > (start[i]?.[1] ?? 0) + 4_800),
    20_000,
    what,
  );
}

async function endSession(session: Session, redis: Redis): Promise<AttendanceEvent[]> {
  const facilitator = [...session.people.values()][0] as NodeSession;
  await facilitator.client.moderation.endSession();
  return waitFor(
    async () => {
      const events = await readAttendanceEvents(redis, session.room);
      return events.some((e) => e.type === 'sessionEnded') ? events : undefined;
    },
    10_000,
    'sessionEnded in the stream',
  );
}

/**
 * The exact check: every event once, in id order; nobody disconnected; and each participant's
 * computed presence is one interval from their admission to their leave (or the session's end, or
 * `until`), to the millisecond, with presentSeconds its floor in seconds.
 */
function assertExactAttendance(events: AttendanceEvent[], people: string[], until?: number): void {
  const ids = events.map((e) => e.id);
  assert.is(new Set(ids).size, ids.length, 'no event written twice');
  const facts = events.map((e) => `${e.type}|${e.participant ?? ''}|${e.at}`);
  assert.is(new Set(facts).size, facts.length, 'no event recorded twice under two ids');
  assert.equal(
    events.map((e) => e.at),
    [...events.map((e) => e.at)].sort((a, b) => a - b),
    'stream order is time order',
  );
  const ended = events.find((e) => e.type === 'sessionEnded');
  const now = ended?.at ?? Date.now();
  const result = computeAttendance({
    room: { id: events[0]?.room as string },
    events,
    reconnectGraceMs: graceS * 1000,
    now,
    ...(ended ? {} : { servedUntil: until }),
  });
  for (const person of people) {
    const own = events.filter((e) => e.participant === person);
    assert.equal(
      own.filter((e) => e.type === 'disconnected' || e.type === 'reconnected'),
      [],
      `${person}: no disconnection`,
    );
    const from = own.find((e) => e.type === 'admitted')?.at as number;
    const to = own.find((e) => e.type === 'left' || e.type === 'removed')?.at ?? ended?.at ?? (until as number);
    const figures = result.participants.find((p) => p.participant === person);
    assert.ok(figures, `${person} in the attendance`);
    assert.equal(figures.intervals, [{ from, to }], `${person}: one interval, admission to leave`);
    assert.is(figures.presentSeconds, Math.floor((to - from) / 1000), `${person}: present seconds`);
  }
}

async function status(url: string): Promise<number> {
  return (await fetch(url)).status;
}

// (a), (b) and (d) share one node on the embedded Redis; (c) has its own, on an external Redis.
let node: NodeProcess;
let redis: Redis;

test('a media worker SIGKILLed: replaced, media back for everyone, nobody leaves, no gap', async () => {
  node = await startNode({ HAVEN_MEDIA_WORKERS: '1' });
  redis = keep(embeddedRedisClient(node.dataDir));
  const session = await runningSession(node, 'worker');
  const [worker] = descendants(node.child.pid as number).filter((pid) => commandOf(pid).includes('mediasoup-worker'));
  assert.ok(worker, 'the media worker');
  const killedAt = Date.now();
  process.kill(worker, 'SIGKILL');
  await allFlowing(session, 'media from everyone to everyone after the worker died');
  console.log(`    media back for all 6 directions ${Date.now() - killedAt} ms after the worker was killed`);
  assert.not.ok(isAlive(worker));
  assert.equal(session.leaves, [], 'nobody saw anyone leave');
  for (const person of session.people.values()) assert.is(person.client.connectionState, 'joined');
  const events = await endSession(session, redis);
  assertExactAttendance(events, [...session.people.keys()]);
});

test('the embedded Redis SIGKILLed: restarted, events of the outage written once, no gap', async () => {
  const session = await runningSession(node, 'redis');
  const [redisPid] = redisServersIn(join(node.dataDir, 'redis'));
  assert.ok(redisPid, 'the embedded redis-server');
  // Frozen first, so that a leave surely happens while Redis answers nothing; then killed.
  process.kill(redisPid, 'SIGSTOP');
  const leaver = session.people.get('redis-pt2') as NodeSession;
  await leaver.close();
  await waitFor(() => session.leaves.includes('redis-fac:redis-pt2'), 5_000, 'the facilitator to see the leave');
  const leftBy = Date.now();
  process.kill(redisPid, 'SIGKILL');
  await waitFor(
    () => node.logs.some((l) => l.msg === 'embedded redis ready' && l.pid !== redisPid && Number(l.time) > leftBy),
    10_000,
    'the embedded Redis restarted',
  );
  await waitFor(async () => (await status(`${node.url}/readyz`)) === 200, 10_000, '/readyz 200');
  session.people.delete('redis-pt2');
  await allFlowing(session, 'media after the Redis restart');
  const events = await endSession(session, redis);
  const left = events.filter((e) => e.type === 'left' && e.participant === 'redis-pt2');
  assert.is(left.length, 1, 'the leave recorded during the outage, once');
  assert.ok((left[0]?.at as number) < leftBy, 'with the time it happened, not the time Redis came back');
  assertExactAttendance(events, ['redis-fac', 'redis-pt1', 'redis-pt2']);
});

test('an external Redis gone for 30 s: /healthz 200, /readyz 503, media flows; every event once when back', async () => {
  const dir = tempDir('external');
  const port = await freePort();
  const redisArgs = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', ''];
  const startRedis = () => {
    const child = spawn('redis-server', [...redisArgs, '--appendonly', 'yes'], { stdio: 'ignore' });
    children.push(child);
    return child;
  };
  let server = startRedis();
  const external = keep(new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 2 }));
  external.on('error', () => {});
  await waitFor(() => external.ping().catch(() => undefined), 10_000, 'the external Redis');
  const outer = await startNode({
    REDIS_URL: `redis://127.0.0.1:${port}`,
    HAVEN_MEDIA_WORKERS: '1',
  });
  const session = await runningSession(outer, 'ext');
  // The default 5 s lease, six times over: suspended while Redis is unreachable, never lost.
  const states: string[] = [];
  for (const [sub, person] of session.people) {
    person.client.on('connectionStateChanged', (state) => states.push(`${sub}:${state}`));
  }
  // The outage: the process is killed (a crash) and started again on its AOF 30 s later. A real
  // stop rather than SIGSTOP: connections are refused and every client must reconnect, so a reply
  // lost with its connection and a retried write are exercised, not just a late answer.
  const exited = new Promise((resolve) => server.once('exit', resolve));
  server.kill('SIGKILL');
  await exited;
  const downAt = Date.now();
  await waitFor(async () => (await status(`${outer.url}/readyz`)) === 503, 5_000, '/readyz 503');
  const leaver = session.people.get('ext-pt2') as NodeSession;
  await leaver.close();
  session.people.delete('ext-pt2');
  const facilitator = session.people.get('ext-fac') as NodeSession;
  const raised = new Promise((resolve) => facilitator.client.once('handRaised', resolve));
  await (session.people.get('ext-pt1') as NodeSession).client.raiseHand();
  await raised;
  let polls = 0;
  let midway = false;
  while (Date.now() - downAt < outageMs) {
    assert.is(await status(`${outer.url}/healthz`), 200, '/healthz during the outage');
    assert.is(await status(`${outer.url}/readyz`), 503, '/readyz during the outage');
    polls++;
    if (!midway && Date.now() - downAt > outageMs / 2) {
      midway = true;
      await allFlowing(session, 'media halfway through the outage');
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  await allFlowing(session, 'media at the end of the outage');
  const upAt = Date.now();
  server = startRedis();
  await waitFor(async () => (await status(`${outer.url}/readyz`)) === 200, 15_000, '/readyz 200 again');
  // The hand raised while Redis was away is stored once it is back (the room's state written again).
  const hands = `haven:room-state:${session.room}:hands`;
  await waitFor(async () => (await external.zscore(hands, 'ext-pt1')) !== null, 15_000, 'the hand stored');
  console.log(`    ${polls} polls in ${upAt - downAt} ms: /healthz 200, /readyz 503 throughout`);
  assert.equal(session.leaves.sort(), ['ext-fac:ext-pt2', 'ext-pt1:ext-pt2'], 'only the one who left, left');
  assert.equal(
    states.filter((s) => !s.startsWith('ext-pt2:')),
    [],
    'nobody was moved or reconnected',
  );
  assert.not.ok(
    outer.logs.some((l) => String(l.msg).startsWith('room lease lost')),
    'the lease was never lost',
  );
  assert.ok(
    outer.logs.some((l) => l.msg === 'room lease suspended: Redis unreachable; serving on' && l.room === session.room),
    'the lease was suspended',
  );
  const events = await endSession(session, external);
  const left = events.filter((e) => e.type === 'left' && e.participant === 'ext-pt2');
  assert.is(left.length, 1, 'the leave recorded during the outage, once');
  assert.ok((left[0]?.at as number) > downAt && (left[0]?.at as number) < upAt, 'dated inside the outage');
  assert.equal(
    events.filter((e) => e.type === 'restored'),
    [],
    'the session never changed hands',
  );
  assertExactAttendance(events, ['ext-fac', 'ext-pt1', 'ext-pt2']);
});

test('the node SIGKILLed: its Redis gone within seconds; the restart keeps every acknowledged event', async () => {
  const session = await runningSession(node, 'node');
  const key = `haven:attendance:${session.room}`;
  const acknowledged = (await redis.xrange(key, '-', '+')).map(([id]) => id);
  assert.ok(acknowledged.length >= 4, 'sessionStarted and three admissions');
  const redisDir = join(node.dataDir, 'redis');
  const [redisPid] = redisServersIn(redisDir);
  const workers = descendants(node.child.pid as number).filter((pid) => commandOf(pid).includes('mediasoup-worker'));
  assert.is(workers.length, 1);
  redis.disconnect();
  const killedAt = Date.now();
  await node.killNodeOnly();
  await waitFor(() => !isAlive(redisPid as number), 5_000, 'its redis-server to stop');
  console.log(`    redis-server gone ${Date.now() - killedAt} ms after its node was killed`);
  await waitFor(() => !workers.some(isAlive), 5_000, 'its media worker to stop');
  const restarted = await startNode({ HAVEN_DATA_DIR: node.dataDir, HAVEN_MEDIA_WORKERS: '1' });
  assert.equal(redisServersIn(redisDir).length, 1, 'one redis-server on the folder');
  const after = keep(embeddedRedisClient(restarted.dataDir));
  const events = await readAttendanceEvents(after, session.room);
  assert.equal(
    events.map((e) => e.id).slice(0, acknowledged.length),
    acknowledged,
    'every acknowledged event, once, in order',
  );
  // Nobody came back (the node's port changed): everyone is billed until it last served the room.
  const servedUntil = Math.max((await lastServedAt(after, session.room)) ?? 0, events.at(-1)?.at ?? 0);
  assert.ok(servedUntil <= killedAt, 'not a moment past the kill');
  assertExactAttendance(events, [...session.people.keys()], servedUntil);
});

test.run();
