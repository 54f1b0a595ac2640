/**
 * A node outage is never billed as presence. Real node processes on one real Redis, raw signaling
 * clients, a short grace (10 s) and short leases (2 s). Each fault is followed by an exact
 * attendance check: the bill is computed from the room's stream as the workers do, and compared
 * with what the rules give for the moments the nodes themselves wrote down — the last moment the
 * old owner is known to have served the room (its last lease renewal or its last event, whichever
 * is later), the returns, the end. Whole intervals are compared to the millisecond; seconds are the
 * floor of their sum, as billed.
 *
 * - `SIGKILL` of the node, restarted on the same Redis: one person back within the grace, one
 *   back after it, one never back; and, while no node serves the room, the bill already ends
 *   everyone at the last-served moment (not at "now");
 * - `SIGKILL` of the owner, the room taken over by another node (failover): the same three;
 * - `SIGSTOP` of the owner past its lease, another node takes the room, `SIGCONT`: what the woken
 *   node saw (its clients gone) changes nothing in the bill.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { type NodeProcess, startNodeProcess } from '../../bench/node-process.ts';
import { waitFor } from '../../bench/processes.ts';
import { protocolVersion } from '../../client-sdk/src/protocol/index.ts';
import { computeAttendance, type Interval, type SessionAttendance } from '../../server/attendance/compute.ts';
import { type AttendanceEvent, readAttendanceEvents } from '../../server/attendance/event.ts';
import { lastServedAt } from '../../server/cluster/leases.ts';
import { EmbeddedRedis } from '../../server/redis/embedded-redis.ts';
import { RoomStore } from '../../server/rooms/room-store.ts';
import { processAttendance } from '../../workers/attendance.ts';
import { admin, connect, ok, type TestSocket, testAdminKey, testSecret, token } from '../helpers/signaling-client.ts';

const graceS = 10;
const graceMs = graceS * 1000;
const leaseS = 2;
const dir = mkdtempSync(join(tmpdir(), 'haven-outage-'));
let embedded: EmbeddedRedis;
let redis: Redis;
const nodes = new Map<string, NodeProcess>();
const sockets: TestSocket[] = [];

async function startNode(id: string): Promise<NodeProcess> {
  const node = await startNodeProcess({
    REDIS_URL: embedded.url,
    HAVEN_NODE_ID: id,
    HAVEN_CLUSTER_NODE_TIMEOUT_S: String(leaseS),
    HAVEN_ROOMS_RECONNECT_GRACE_S: String(graceS),
    HAVEN_WORKERS_IN_PROCESS: 'false',
    HAVEN_AUTH_SECRET: testSecret,
    HAVEN_ADMIN_API_KEY: testAdminKey,
    HAVEN_MEDIA_WEBRTC_PORT: '0',
  });
  nodes.set(id, node);
  return node;
}

/** SIGKILLs the node; resolves once it is gone, with that moment (it served nothing after it). */
async function killNode(id: string): Promise<number> {
  const node = nodes.get(id);
  nodes.delete(id);
  if (!node) return Date.now();
  node.kill();
  const { child } = node;
  await waitFor(() => child.exitCode !== null || child.signalCode !== null, 10_000, `${id} to be gone`);
  return Date.now();
}

test.before(async () => {
  embedded = await EmbeddedRedis.start({ dataDir: dir });
  redis = new Redis(embedded.url);
});

test.after(async () => {
  for (const s of sockets) s.close();
  for (const node of nodes.values()) {
    wakeUp(node.child.pid as number);
    node.kill();
  }
  redis?.disconnect();
  await embedded?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** A process's state letter (`T`: stopped), from /proc. */
const stateOf = (pid: number): string => {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
};

/** A frozen node (a failed test) must not outlive the file. */
function wakeUp(pid: number): void {
  try {
    process.kill(pid, 'SIGCONT');
  } catch {} // gone already
}

const urlOf = (id: string) => (nodes.get(id) as NodeProcess).url;
const idOfUrl = (url: string) => [...nodes].find(([, n]) => n.url === url)?.[0];

/**
 * Connects and joins through `url`, following redirects as the SDK does. While the room's old
 * owner is dead (or frozen) but its lease runs, nodes answer `UNAVAILABLE` or redirect to it
 * (`avoid`): tried again until the room is placed on a live node.
 */
async function joinVia(url: string, room: string, sub: string, role = 'participant', avoid?: string) {
  const attempt = async (): Promise<{ socket: TestSocket; landed: string } | undefined> => {
    let target = url;
    for (let hop = 0; hop < 3; hop++) {
      try {
        const socket = await connect(target, token(room, sub, role as 'participant'));
        sockets.push(socket);
        return { socket, landed: target };
      } catch (err) {
        const data = (err as { data?: { code?: string; url?: string } }).data;
        if (data?.code === 'UNAVAILABLE' || (data?.code === 'REDIRECT' && data.url === avoid)) return undefined;
        if (data?.code !== 'REDIRECT' || !data.url) throw err;
        target = data.url;
      }
    }
    throw new Error('redirected too many times');
  };
  const joined = await waitFor(attempt, (leaseS + 10) * 1000, `${sub} in the room`);
  await ok(joined.socket, 'join', { protocolVersion });
  return joined;
}

async function newRoom(id: string, via: string): Promise<string> {
  const res = await admin(via, 'POST', '/v1/rooms', { id, title: 'Group', waitingRoom: false });
  assert.is(res.status, 201);
  return id;
}

const events = (room: string) => readAttendanceEvents(redis, room);
const bill = (room: string, all: AttendanceEvent[], now = Date.now()): SessionAttendance =>
  computeAttendance({ room: { id: room }, events: all, reconnectGraceMs: graceMs, now });
const intervalsOf = (result: SessionAttendance, participant: string): Interval[] =>
  result.participants.find((p) => p.participant === participant)?.intervals ?? [];
const secondsOf = (result: SessionAttendance, participant: string): number =>
  result.participants.find((p) => p.participant === participant)?.presentSeconds ?? -1;

/** The first event of `participant` of one of `types` at or after stream position `from`. */
function firstAfter(all: AttendanceEvent[], from: number, participant: string, types: string[]): AttendanceEvent {
  const found = all.slice(from).find((e) => e.participant === participant && types.includes(e.type));
  if (!found) throw new Error(`no ${types.join('/')} of ${participant} after #${from}`);
  return found;
}

/**
 * The moment the old owner is last known to have served `room`, as it wrote it down: its last
 * lease renewal for the room, or its last event in the stream, whichever is later. Read while no
 * node serves the room, so nothing changes it meanwhile.
 */
async function lastServed(room: string): Promise<{ at: number; streamLength: number }> {
  const all = await events(room);
  const lastEvent = Math.max(...all.map((e) => e.at));
  return { at: Math.max(lastEvent, (await lastServedAt(redis, room)) ?? 0), streamLength: all.length };
}

/**
 * What the rules bill someone admitted at `admittedAt` whose connection the outage cut at
 * `cutoff`, back at `backAt` (null: never), until `end`: one interval if back within the grace
 * counted from the cutoff, else a gap from the cutoff until the return.
 */
function expected(admittedAt: number, cutoff: number, backAt: number | null, end: number): Interval[] {
  if (backAt === null) return [{ from: admittedAt, to: cutoff }];
  if (backAt - cutoff <= graceMs) return [{ from: admittedAt, to: end }];
  return [
    { from: admittedAt, to: cutoff },
    { from: backAt, to: end },
  ];
}
const billed = (intervals: Interval[]) => Math.floor(intervals.reduce((s, i) => s + i.to - i.from, 0) / 1000);

/** Until `ms` after `from` (a server time on this machine's clock), waiting on the clock itself. */
const until = (from: number, ms: number, what: string) => waitFor(() => Date.now() > from + ms, ms + 60_000, what);

/**
 * Runs one outage: `fac`, `pt-in`, `pt-late` and `pt-never` in the room on `owner`; `fault` takes
 * the owner down; `fac` and `pt-in` rejoin through `rejoinVia()` as soon as the room is served
 * again, `pt-late` once the grace (from the last-served moment) is over, `pt-never` never. Then
 * `beforeEnd`, and the session is ended and billed.
 */
async function outage(
  room: string,
  owner: string,
  fault: (joined: TestSocket[]) => Promise<number>,
  rejoinVia: () => string,
  avoid?: string,
  beforeEnd?: () => Promise<void>,
): Promise<void> {
  const people = ['fac', 'pt-in', 'pt-late', 'pt-never'];
  const joined: TestSocket[] = [];
  for (const sub of people) {
    const { socket, landed } = await joinVia(urlOf(owner), room, sub, sub === 'fac' ? 'facilitator' : 'participant');
    assert.is(idOfUrl(landed), owner, `${sub} on the owner`);
    joined.push(socket);
  }
  // Some presence before the fault, a few lease renewals' worth.
  await until(Date.now(), 2_000, 'two seconds in the session');
  // The fault answers the moment the owner was surely down (dead, or stopped): it can have served
  // nothing after that, whatever it was in the middle of when the signal came.
  const killedAt = await fault(joined);
  const served = await lastServed(room);
  assert.ok(served.at <= killedAt, 'served no later than the fault');
  // Renewed every third of the lease: the last renewal is at most one period (plus a busy machine) before.
  assert.ok(killedAt - served.at < leaseS * 1000, `last served ${killedAt - served.at} ms before the fault`);

  const back = (sub: string, role = 'participant') => joinVia(rejoinVia(), room, sub, role, avoid);
  await back('fac', 'facilitator');
  await back('pt-in');
  await until(served.at, graceMs + 500, 'the grace to run out, counted from the last-served moment');
  await back('pt-late');
  await beforeEnd?.();
  const lastBack = await waitFor(async () => (await events(room)).at(-1)?.at, 5_000, 'the last return recorded');
  await until(lastBack, 2_000, 'two seconds more in the session');
  const ended = await admin(rejoinVia(), 'POST', `/v1/rooms/${room}/end`);
  assert.is(ended.status, 200);

  const all = await waitFor(
    async () => {
      const read = await events(room);
      return read.some((e) => e.type === 'sessionEnded') ? read : undefined;
    },
    10_000,
    'the session end in the stream',
  );
  const result = bill(room, all);
  const end = result.sessionEndedAt as number;
  const admittedAt = (sub: string) => firstAfter(all, 0, sub, ['admitted']).at;
  const backAt = (sub: string) => firstAfter(all, served.streamLength, sub, ['reconnected', 'admitted']).at;
  const cases: [string, number | null][] = [
    ['fac', backAt('fac')],
    ['pt-in', backAt('pt-in')],
    ['pt-late', backAt('pt-late')],
    ['pt-never', null],
  ];
  assert.ok(backAt('pt-in') - served.at <= graceMs, 'pt-in back within the grace');
  assert.ok(backAt('pt-late') - served.at > graceMs, 'pt-late back after it');
  for (const [sub, at] of cases) {
    const want = expected(admittedAt(sub), served.at, at, end);
    assert.equal(intervalsOf(result, sub), want, `${sub}: presence`);
    assert.is(secondsOf(result, sub), billed(want), `${sub}: seconds billed`);
  }
  console.log(
    `    ${room}: last served ${killedAt - served.at} ms before the fault; back after ${backAt('pt-in') - served.at} ms` +
      ` (in) and ${backAt('pt-late') - served.at} ms (late); billed ${cases.map(([s]) => `${s} ${secondsOf(result, s)} s`).join(', ')}`,
  );
}

test('SIGKILL of the node, restarted on the same Redis: nobody is billed for the outage', async () => {
  await startNode('n1');
  const room = await newRoom('restart', urlOf('n1'));
  await outage(
    room,
    'n1',
    async () => {
      const goneAt = await killNode('n1');
      // Nobody serves the room now: the bill already ends everyone at the last-served moment.
      await waitFor(async () => (await redis.exists(`haven:room-owner:${room}`)) === 0, 10_000, 'the lease to run out');
      const { at } = await lastServed(room);
      const store = new RoomStore(redis);
      const program = { timeZone: 'UTC', weeklyThresholdHours: 9 };
      const orphan = await processAttendance({ redis, store, reconnectGraceMs: graceMs, program }, room);
      for (const sub of ['fac', 'pt-in', 'pt-late', 'pt-never']) {
        const intervals = orphan?.participants.find((p) => p.participant === sub)?.intervals ?? [];
        assert.is(
          intervals.at(-1)?.to,
          at,
          `${sub}: billed until the last-served moment while no node serves the room`,
        );
      }
      await startNode('n1');
      return goneAt;
    },
    () => urlOf('n1'),
  );
});

test('SIGKILL of the owner, the room taken over by another node: nobody is billed for the outage', async () => {
  if (!nodes.has('n1')) await startNode('n1');
  await startNode('n2');
  const room = await newRoom('failover', urlOf('n1'));
  const { socket: placer, landed } = await joinVia(urlOf('n1'), room, 'placer', 'observer');
  placer.close();
  const owner = idOfUrl(landed) as string;
  const other = [...nodes.keys()].find((id) => id !== owner) as string;
  const deadUrl = urlOf(owner);
  await outage(
    room,
    owner,
    () => killNode(owner),
    () => urlOf(other),
    deadUrl,
  );
});

test('SIGSTOP of the owner past its lease: what the woken node sees changes nothing in the bill', async () => {
  for (const id of ['n3', 'n4']) if (nodes.size < 2) await startNode(id);
  const [first] = [...nodes.keys()] as [string];
  const room = await newRoom('frozen', urlOf(first));
  const { socket: placer, landed } = await joinVia(urlOf(first), room, 'placer', 'observer');
  placer.close();
  const owner = idOfUrl(landed) as string;
  const frozen = nodes.get(owner) as NodeProcess;
  const pid = frozen.child.pid as number;
  const other = [...nodes.keys()].find((id) => id !== owner) as string;
  const wake = async () => {
    process.kill(pid, 'SIGCONT');
    // Awake, it finds its clients' connections closed and its lease gone; stopped cleanly, it has
    // written whatever it was going to write before the session ends.
    await waitFor(
      () => frozen.logs.some((l) => l.msg === 'room lease lost: no longer serving the room'),
      10_000,
      'the woken node to find its lease lost',
    );
    frozen.child.kill('SIGTERM');
    await waitFor(() => frozen.child.exitCode !== null, 15_000, 'the woken node to stop');
    nodes.delete(owner);
    const dropped = frozen.logs.filter((l) => l.msg === 'attendance event dropped: room not served here').length;
    console.log(`    frozen: the woken node dropped ${dropped} attendance events of the room it had lost`);
  };
  await outage(
    room,
    owner,
    async (joined) => {
      // Its clients give up on it as it freezes: their goodbyes reach it as it stops, and it acts
      // on them only when it wakes, its lease long gone.
      process.kill(pid, 'SIGSTOP');
      for (const socket of joined) socket.close();
      await waitFor(() => stateOf(pid) === 'T', 5_000, 'the owner stopped');
      const stoppedAt = Date.now();
      await waitFor(async () => (await redis.exists(`haven:room-owner:${room}`)) === 0, 10_000, 'the lease to run out');
      return stoppedAt;
    },
    () => urlOf(other),
    frozen.url,
    wake,
  ).finally(() => wakeUp(pid));
});

test.run();
