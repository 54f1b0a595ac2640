/**
 * A room's lease across a Redis outage, with the default 5 s lease: Redis itself gone longer
 * than the lease suspends it (the room is served on, the lease comes back under the same fence,
 * the changes made meanwhile are stored); one node cut off from Redis while another reaches it
 * keeps its room only until it can ask again, then hands its clients to the node that took the
 * room, and none of its writes lands after that; a node frozen past its lease with Redis up still
 * loses the room when it wakes. Real node processes and redis-servers; the partition is a TCP
 * proxy of this test's own, on loopback, between one node and Redis.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import pino from 'pino';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { NodeProcess } from '../../bench/node-process.ts';
import { waitFor } from '../../bench/processes.ts';
import { protocolVersion } from '../../client-sdk/src/protocol/index.ts';
import { lastServedAt, RoomLeases } from '../../server/cluster/leases.ts';
import { freePort } from '../helpers/ports.ts';
import { sessionNode } from '../helpers/session-node.ts';
import { admin, collect, connect, next, ok, request, type TestSocket, token } from '../helpers/signaling-client.ts';

const leaseMs = 5_000; // the default HAVEN_CLUSTER_NODE_TIMEOUT_S
const dir = mkdtempSync(join(tmpdir(), 'haven-outage-lease-'));
// The nodes are started below, each with its own way to Redis.
const haven = sessionNode(test, { start: false });
const { sockets } = haven;
const children: ChildProcess[] = [];
let redisPort = 0;
let redisServer: ChildProcess;
let redis: Redis;
let proxy: CuttableProxy;
let proxyPort = 0;

/** A TCP proxy to Redis that can be cut (every connection dropped, new ones refused) and healed. */
class CuttableProxy {
  readonly #server: Server;
  readonly #open = new Set<Socket>();
  #cut = false;

  constructor(targetPort: number) {
    this.#server = createServer((client) => {
      if (this.#cut) return void client.destroy();
      const upstream = createConnection(targetPort, '127.0.0.1');
      for (const socket of [client, upstream]) {
        this.#open.add(socket);
        socket.on('error', () => {});
        socket.on('close', () => {
          this.#open.delete(socket);
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream).pipe(client);
    });
  }

  async listen(): Promise<number> {
    this.#server.listen(0, '127.0.0.1');
    await new Promise((resolve) => this.#server.once('listening', resolve));
    return (this.#server.address() as { port: number }).port;
  }

  cut(): void {
    this.#cut = true;
    for (const socket of this.#open) socket.destroy();
  }

  heal(): void {
    this.#cut = false;
  }

  close(): void {
    this.cut();
    this.#server.close();
  }
}

/** redis-server on `redisPort`, on its AOF in `dir` (so a restart finds what it had). */
async function startRedis(): Promise<ChildProcess> {
  const args = ['--port', String(redisPort), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'yes'];
  const child = spawn('redis-server', args, { stdio: 'ignore' });
  children.push(child);
  await waitFor(() => redis.ping().catch(() => undefined), 10_000, 'redis-server answering');
  return child;
}

async function stopRedis(): Promise<void> {
  const exited = new Promise((resolve) => redisServer.once('exit', resolve));
  redisServer.kill('SIGKILL');
  await exited;
}

const startNode = (id: string, url: string): Promise<NodeProcess> =>
  haven.startNode({ REDIS_URL: url, HAVEN_NODE_ID: id });

async function joined(url: string, room: string, sub: string, role: 'facilitator' | 'participant') {
  const socket = await connect(url, token(room, sub, role));
  sockets.push(socket);
  await ok(socket, 'join', { protocolVersion });
  return socket;
}

const owner = async (room: string) => (await redis.get(`haven:room-owner:${room}`))?.split('|');
const handsKey = (room: string) => `haven:room-state:${room}:hands`;
const logged = (node: NodeProcess, msg: string, room: string) =>
  node.logs.some((l) => l.msg === msg && l.room === room);
const lostLease = (node: NodeProcess, room: string) =>
  node.logs.some((l) => String(l.msg).startsWith('room lease lost') && l.room === room);

let nodeA: NodeProcess;
let nodeB: NodeProcess;

test.before(async () => {
  redisPort = await freePort();
  redis = new Redis({ port: redisPort, host: '127.0.0.1', maxRetriesPerRequest: 2 });
  redis.on('error', () => {}); // Redis is stopped and restarted below
  redisServer = await startRedis();
  proxy = new CuttableProxy(redisPort);
  proxyPort = await proxy.listen();
  // A reaches Redis through the proxy (the partition below), B directly.
  nodeA = await startNode('node-a', `redis://127.0.0.1:${proxyPort}`);
  nodeB = await startNode('node-b', `redis://127.0.0.1:${redisPort}`);
});

test.after(async () => {
  redis?.disconnect();
  proxy?.close();
  for (const child of children) child.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

async function roomOnA(id: string): Promise<{ room: string; facilitator: TestSocket; participant: TestSocket }> {
  assert.is((await admin(nodeA.url, 'POST', '/v1/rooms', { id, title: 'Group', waitingRoom: false })).status, 201);
  const facilitator = await joined(nodeA.url, id, `${id}-fac`, 'facilitator');
  const participant = await joined(nodeA.url, id, `${id}-pt`, 'participant');
  assert.is((await owner(id))?.[0], 'node-a', 'A serves the room');
  return { room: id, facilitator, participant };
}

test('Redis down three leases long: the room is served on, the lease is back with the same fence, changes stored', async () => {
  const { room, facilitator, participant } = await roomOnA('outage');
  const fence = (await owner(room))?.[1];
  const moved = collect(facilitator, 'moved');
  await stopRedis();
  const downAt = performance.now();
  let upAt = 0;
  let awayMs = 0;
  try {
    // Past the lease by A's clock, the room still answers: a hand goes up and the facilitator sees it.
    await waitFor(() => performance.now() - downAt > 2 * leaseMs, 3 * leaseMs, 'two leases without Redis');
    const [raised] = await Promise.all([next(facilitator, 'handRaised', 10_000), ok(participant, 'raiseHand', {})]);
    assert.is(raised[0].participantId, `${room}-pt`);
    await waitFor(() => performance.now() - downAt > 3 * leaseMs, 2 * leaseMs, 'three leases without Redis');
    assert.equal(moved, [], 'nobody was moved while Redis was away');
    assert.not.ok(lostLease(nodeA, room), 'not lost while Redis was away');
    assert.ok(logged(nodeA, 'room lease suspended: Redis unreachable; serving on', room), 'suspended');
  } finally {
    upAt = Date.now();
    awayMs = Math.round(performance.now() - downAt);
    redisServer = await startRedis();
  }
  await waitFor(() => logged(nodeA, 'room lease renewed: Redis reachable again', room), 10_000, 'the lease renewed');
  console.log(`    Redis away ${awayMs} ms; the lease renewed ${Date.now() - upAt} ms after it restarted`);
  await afterTheReturn(room, [facilitator, participant], async () => {
    assert.equal(await owner(room), ['node-a', fence], 'the same node, the same fence');
    await waitFor(async () => (await redis.zscore(handsKey(room), `${room}-pt`)) !== null, 10_000, 'the hand stored');
    assert.ok(((await lastServedAt(redis, room)) ?? 0) >= upAt, 'noted as served again after the return');
    assert.equal(moved, [], 'nobody was moved');
    assert.ok(facilitator.connected && participant.connected, 'every connection stayed');
    assert.not.ok(lostLease(nodeA, room), 'never lost');
    // Over: A gives the lease up, so the next room is placed on A again (the fewest leases).
    await ok(facilitator, 'endSession', {});
    await waitFor(async () => (await owner(room)) === undefined, 5_000, 'the lease given up');
  });
});

/**
 * Runs the checks after Redis is back; a failure names why a client's connection dropped, if one
 * did, and what node A logged of the room's lease (a CI run once saw a connection drop here).
 */
async function afterTheReturn(room: string, clients: TestSocket[], checks: () => Promise<void>): Promise<void> {
  const dropped: string[] = [];
  for (const c of clients) c.on('disconnect', (reason) => dropped.push(String(reason)));
  try {
    await checks();
  } catch (err) {
    const lease = nodeA.logs
      .filter((l) => l.room === room && /lease|closed|moved/.test(String(l.msg)))
      .map((l) => `${l.time} ${l.msg}${l.why ? ` (${l.why})` : ''}`);
    throw new Error(
      `${(err as Error).message}; dropped: ${dropped.join(', ') || 'none'}; A logged: ${lease.join('; ')}`,
    );
  }
}

test('one node cut off from Redis: B takes the room, A hands its clients over when healed, none of its writes lands', async () => {
  const { room, facilitator, participant } = await roomOnA('partition');
  const fence = Number((await owner(room))?.[1]);
  const moved = next(facilitator, 'moved', 60_000);
  proxy.cut();
  await waitFor(() => logged(nodeA, 'room lease suspended: Redis unreachable; serving on', room), 5_000, 'suspended');
  // A newcomer through B: sent to A (its lease and registration still in Redis) or told the room
  // is moving, until A's lease runs out there; then B takes it. (Not following B to A: that is
  // the split this partition allows, which the test does not need.)
  const newcomer = await waitFor(
    () =>
      connect(nodeB.url, token(room, `${room}-new`)).catch((err) => {
        const data = (err as { data?: { code?: string; url?: string } }).data;
        if (data?.code === 'UNAVAILABLE' || (data?.code === 'REDIRECT' && data.url === nodeA.url)) return undefined;
        throw Object.assign(err, { message: `${(err as Error).message} ${JSON.stringify(data)}` });
      }),
    3 * leaseMs,
    'B to take the room',
  );
  sockets.push(newcomer);
  await ok(newcomer, 'join', { protocolVersion });
  const [ownerNow, fenceNow] = (await owner(room)) as string[];
  assert.is(ownerNow, 'node-b');
  assert.ok(Number(fenceNow) > fence, 'a newer fence');
  // Cut off, A still serves its own clients; what they change there reaches no Redis.
  assert.ok((await request(participant, 'raiseHand', {})).ok, 'A answers while cut off');
  assert.not.ok(lostLease(nodeA, room), 'A cannot know yet');
  proxy.heal();
  const healedAt = Date.now();
  assert.is((await moved)[0].reason, 'failover', 'A moves its clients once it learns');
  console.log(`    A moved its clients ${Date.now() - healedAt} ms after the heal`);
  await waitFor(() => lostLease(nodeA, room), 5_000, 'A to log the loss');
  await waitFor(() => facilitator.disconnected && participant.disconnected, 5_000, 'A to close its connections');
  // Back through A: sent to B, into the same room as the newcomer.
  const back = await connect(nodeA.url, token(room, `${room}-fac`, 'facilitator')).then(
    () => 'served by A',
    (err) => (err as { data?: { code?: string; url?: string } }).data,
  );
  assert.equal(back, { code: 'REDIRECT', message: 'the room is served by another node', url: nodeB.url });
  const socket = await connect(nodeB.url, token(room, `${room}-fac`, 'facilitator'));
  sockets.push(socket);
  const rejoined = await ok(socket, 'join', { protocolVersion });
  assert.is(rejoined.stage, 'admitted');
  const others = rejoined.stage === 'admitted' ? rejoined.session.participants.map((p) => p.id) : [];
  assert.ok(others.includes(`${room}-new`), 'with the newcomer');
  // A's room is closed: whatever it had not written is written nowhere (its lease was B's).
  await waitFor(() => nodeA.logs.some((l) => l.room === room && l.msg === 'room closed'), 5_000, 'A to close the room');
  assert.is(await redis.zscore(handsKey(room), `${room}-pt`), null, "A's hand, raised cut off, never stored");
  assert.equal((await owner(room))?.[0], 'node-b', 'B still serves it');
});

test('a node frozen past its lease with Redis up loses the room when it wakes, though nobody took it', async () => {
  const { room, facilitator } = await roomOnA('frozen');
  const pid = nodeA.child.pid as number;
  process.kill(pid, 'SIGSTOP');
  try {
    await waitFor(
      async () => (await redis.exists(`haven:room-owner:${room}`)) === 0,
      3 * leaseMs,
      'the lease to expire',
    );
  } finally {
    process.kill(pid, 'SIGCONT');
  }
  const moved = next(facilitator, 'moved', 5_000);
  const answer = await request(facilitator, 'raiseHand', {}).then(
    (a) => (a.ok ? 'served' : a.error.code),
    () => 'closed before answering',
  );
  assert.ok(['UNAVAILABLE', 'closed before answering'].includes(answer), `not served (${answer})`);
  assert.is((await moved)[0].reason, 'failover');
  await waitFor(() => lostLease(nodeA, room), 5_000, 'lost, not suspended: Redis answered all along');
});

test('cut off while the room changed hands and was given back: the fence moved on, so the lease is lost', async () => {
  const logger = pino({ level: 'silent' });
  // As the node connects (one URL: a command fails after three reconnections), through the proxy.
  const cutOff = new Redis({ port: proxyPort, host: '127.0.0.1', maxRetriesPerRequest: 3 });
  const direct = new Redis({ port: redisPort, host: '127.0.0.1', maxRetriesPerRequest: 3 });
  for (const client of [cutOff, direct]) client.on('error', () => {});
  const shortMs = 1_000;
  const a = new RoomLeases(cutOff, 'lease-a', shortMs, logger);
  const b = new RoomLeases(direct, 'lease-b', shortMs, logger);
  const lost: string[] = [];
  a.on('lost', (room) => lost.push(room));
  try {
    a.start();
    const [moved, kept] = ['fence-moved', 'fence-kept'];
    for (const room of [moved, kept]) assert.ok((await a.acquire(room)).held);
    const keptFence = (await owner(kept))?.[1];
    const movedFence = Number((await owner(moved))?.[1]);
    proxy.cut();
    await waitFor(() => a.suspended(moved) && a.suspended(kept), 5_000, 'both suspended');
    // B takes `moved` once A's lease expired in Redis, then gives it up: the key is gone again,
    // but the fence counter has moved on. `kept` just expires.
    const taken = await waitFor(
      async () => {
        const answer = await b.acquire(moved);
        return answer.held ? answer : undefined;
      },
      5 * shortMs,
      'B to take the room',
    );
    await b.release(moved);
    await waitFor(async () => (await redis.exists(`haven:room-owner:${kept}`)) === 0, 5 * shortMs, 'expired');
    assert.ok(a.holds(moved) && a.holds(kept), 'A serves on, cut off');
    proxy.heal();
    await waitFor(() => lost.includes(moved), 10_000, 'A to lose the room whose fence moved on');
    await waitFor(() => !a.suspended(kept), 10_000, 'A to renew the other');
    assert.not.ok(a.holds(moved));
    assert.ok(a.holds(kept));
    assert.equal(await owner(kept), ['lease-a', keptFence], 'set again under the same fence');
    assert.is(await redis.exists(`haven:room-owner:${moved}`), 0, 'nobody holds it');
    assert.ok(taken.fence > movedFence, "B's lease took the next fence");
    assert.equal(lost, [moved], 'only that one');
  } finally {
    a.stop();
    b.stop();
    proxy.heal();
    cutOff.disconnect();
    direct.disconnect();
  }
});

test.run();
