/**
 * Redis highly available: one master, one replica and three sentinels on loopback (Debian's
 * `redis-server` and `redis-sentinel`), a node that reaches Redis through the sentinels. The
 * master is SIGKILLed during a live session and, while the sentinels fail over, people leave,
 * join, are admitted and raise hands, and the admin API is read. The node follows the new
 * master, the session goes on, and every attendance event is in the room's stream on the new
 * master, once each, in order.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import type { Socket } from 'socket.io-client';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { type NodeProcess, startNodeProcess } from '../../bench/node-process.ts';
import { waitFor } from '../../bench/processes.ts';
import { type Ack, protocolVersion, type RequestName, type ResponseOf } from '../../client-sdk/src/protocol/index.ts';
import { AttendanceRecorder } from '../../server/attendance/recorder.ts';
import { redisOptions } from '../../server/redis/connection.ts';
import { freePort } from '../helpers/ports.ts';
import {
  admin,
  connect,
  next,
  ok,
  type TestSocket,
  testAdminKey,
  testSecret,
  token,
} from '../helpers/signaling-client.ts';

const dir = mkdtempSync(join(tmpdir(), 'haven-sentinel-'));
const children: ChildProcess[] = [];
const clients: Redis[] = [];
const sockets: TestSocket[] = [];
let node: NodeProcess | undefined;

function cleanUp(): void {
  node?.kill();
  for (const s of sockets) s.close();
  for (const c of clients) c.disconnect();
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
}
process.once('exit', cleanUp);

function start(bin: string, args: string[]): ChildProcess {
  const child = spawn(bin, args, { cwd: dir, stdio: 'ignore' });
  children.push(child);
  return child;
}

function client(port: number): Redis {
  const c = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 1, retryStrategy: () => 200 });
  c.on('error', () => {});
  clients.push(c);
  return c;
}

/** `SENTINEL MASTER mymaster` as an object. */
async function masterSeenBy(sentinel: Redis): Promise<Record<string, string>> {
  const reply = (await sentinel.call('SENTINEL', 'MASTER', 'mymaster')) as string[];
  const fields: Record<string, string> = {};
  for (let i = 0; i < reply.length; i += 2) fields[reply[i] as string] = reply[i + 1] as string;
  return fields;
}

interface RedisSet {
  master: ChildProcess;
  replica: ChildProcess;
  masterPort: number;
  replicaPort: number;
  sentinelPorts: number[];
  sentinels: Redis[];
}

/** Master, replica in sync, three sentinels that know the replica and each other. */
async function startRedisSet(name: string): Promise<RedisSet> {
  const [masterPort, replicaPort, ...sentinelPorts] = await Promise.all([1, 2, 3, 4, 5].map(freePort));
  const common = ['--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--repl-diskless-sync-delay', '0'];
  const master = start('redis-server', ['--port', String(masterPort), ...common]);
  const replicaProcess = start('redis-server', [
    '--port',
    String(replicaPort),
    ...common,
    '--replicaof',
    '127.0.0.1',
    String(masterPort),
  ]);
  const replica = client(replicaPort as number);
  await waitFor(
    async () => /master_link_status:up/.test(await replica.info('replication').catch(() => '')),
    10_000,
    'the replica in sync',
  );
  for (const [i, port] of sentinelPorts.entries()) {
    const conf = join(dir, `${name}-sentinel-${i}.conf`);
    writeFileSync(
      conf,
      [
        `port ${port}`,
        'bind 127.0.0.1',
        `dir ${dir}`,
        `logfile ${join(dir, `${name}-sentinel-${i}.log`)}`,
        `sentinel monitor mymaster 127.0.0.1 ${masterPort} 2`,
        'sentinel down-after-milliseconds mymaster 1000',
        'sentinel failover-timeout mymaster 5000',
        '',
      ].join('\n'),
    );
    start('redis-sentinel', [conf]);
  }
  const sentinels = sentinelPorts.map(client);
  await waitFor(
    async () => {
      const views = await Promise.all(sentinels.map((s) => masterSeenBy(s).catch(() => undefined)));
      return views.every((v) => v?.['num-slaves'] === '1' && v['num-other-sentinels'] === '2');
    },
    15_000,
    'the sentinels to know the replica and each other',
  );
  return {
    master,
    replica: replicaProcess,
    masterPort: masterPort as number,
    replicaPort: replicaPort as number,
    sentinelPorts,
    sentinels,
  };
}

/** Resolves once the sentinels name the replica as the master. */
function promotion(set: RedisSet): Promise<boolean> {
  return waitFor(
    async () => {
      const reply = await set.sentinels[0]?.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', 'mymaster');
      return Number((reply as string[] | undefined)?.[1]) === set.replicaPort;
    },
    20_000,
    'the sentinels to promote the replica',
  );
}

/** A request that may wait out a failover (the helpers' `ok` gives up after 5 s). */
async function slowOk<K extends RequestName>(socket: TestSocket, name: K, payload: unknown): Promise<ResponseOf<K>> {
  const ack = (await (socket.timeout(20_000) as unknown as Socket).emitWithAck(name, payload)) as Ack<ResponseOf<K>>;
  if (!ack.ok) throw new Error(`${name} failed: ${ack.error.code} ${ack.error.message}`);
  return ack.data;
}

async function streamOf(redis: Redis, room: string): Promise<{ id: string; type: string; participant?: string }[]> {
  const entries = await redis.xrange(`haven:attendance:${room}`, '-', '+');
  return entries.map(([id, fields]) => {
    const f: Record<string, string> = {};
    for (let i = 0; i < fields.length; i += 2) f[fields[i] as string] = fields[i + 1] as string;
    return { id, type: f.type as string, ...(f.participant ? { participant: f.participant } : {}) };
  });
}

/** On failure, what the node logged at warn and above (its last lines). */
async function explained(run: () => Promise<void>): Promise<void> {
  try {
    await run();
  } catch (err) {
    const lines = (node?.logs ?? []).filter((l) => Number(l.level) >= 40);
    for (const l of lines.slice(-25))
      console.log(`  node: ${l.component ?? ''} ${l.msg} ${JSON.stringify(l.err ?? '')}`);
    throw err;
  }
}

test('master SIGKILLed mid-session: the node follows the new master, the session goes on, no attendance event lost', () =>
  explained(async () => {
    const set = await startRedisSet('a');
    node = await startNodeProcess({
      HAVEN_REDIS_SENTINELS: set.sentinelPorts.map((p) => `127.0.0.1:${p}`).join(','),
      HAVEN_REDIS_SENTINEL_NAME: 'mymaster',
      HAVEN_AUTH_SECRET: testSecret,
      HAVEN_ADMIN_API_KEY: testAdminKey,
      HAVEN_MEDIA_WEBRTC_PORT: '0',
    });
    const url = node.url;
    const room = 'ha-group';
    assert.is((await admin(url, 'POST', '/v1/rooms', { id: room, title: 'Group' })).status, 201);
    const as = async (sub: string, role: 'facilitator' | 'participant' = 'participant') => {
      const s = await connect(url, token(room, sub, role));
      sockets.push(s);
      return s;
    };
    const enter = async (socket: TestSocket, facilitator: TestSocket, id: string, request = ok) => {
      const joined = await request(socket, 'join', { protocolVersion });
      if (joined.stage === 'admitted') return;
      const entering = next(socket, 'admitted', 20_000);
      entering.catch(() => {}); // awaited below, unless the admission itself fails
      await request(facilitator, 'admit', { participantId: id });
      await entering;
    };
    const facilitator = await as('fac', 'facilitator');
    await ok(facilitator, 'join', { protocolVersion });
    const p1 = await as('p1');
    await enter(p1, facilitator, 'p1');
    const p2 = await as('p2');
    await enter(p2, facilitator, 'p2');

    // The master dies; admin reads go on in the background all through the failover.
    set.master.kill('SIGKILL');
    const killedAt = Date.now();
    const reads: Promise<{ status: number; ms: number }>[] = [];
    const read = () => {
      const startedAt = Date.now();
      reads.push(
        admin(url, 'GET', `/v1/rooms/${room}`).then(
          (res) => ({ status: res.status, ms: Date.now() - startedAt }),
          () => ({ status: 0, ms: Date.now() - startedAt }),
        ),
      );
    };
    read();
    const reader = setInterval(read, 250);
    // Presence changes while Redis is unreachable (the sentinels need a second to notice).
    await slowOk(p1, 'raiseHand', {});
    await slowOk(p2, 'leave', {});
    const movedBack = next(p1, 'waiting', 20_000);
    await slowOk(facilitator, 'moveToWaitingRoom', { participantId: 'p1' });
    await movedBack;
    const readmitted = next(p1, 'admitted', 20_000);
    await slowOk(facilitator, 'admit', { participantId: 'p1' });
    await readmitted;
    const p3 = await as('p3');
    await enter(p3, facilitator, 'p3', slowOk);
    await promotion(set);
    const failoverMs = Date.now() - killedAt;
    // …and right after the switch, while the node's clients reconnect.
    const p4 = await as('p4');
    await enter(p4, facilitator, 'p4', slowOk);
    await slowOk(p1, 'raiseHand', {});
    await slowOk(p3, 'raiseHand', {});
    await slowOk(facilitator, 'lowerHand', { participantId: 'p1' });
    clearInterval(reader);
    const answered = await Promise.all(reads);

    // The node is on the new master: ready, the admin API answers, the room is as it should be.
    await waitFor(async () => (await fetch(`${url}/readyz`)).status === 200, 10_000, '/readyz 200');
    const roomNow = await admin(url, 'GET', `/v1/rooms/${room}`);
    assert.is(roomNow.status, 200);
    assert.is(roomNow.body.data.live.participants, 4, 'fac, p1, p3 and p4 in the room');
    assert.ok(
      answered.filter((r) => r.ms > 500).length >= 2,
      'reads were made while Redis was unreachable (they waited for the new master)',
    );
    assert.equal(
      answered.filter((r) => r.status !== 200),
      [],
      `every admin read during the failover (${failoverMs} ms) answered 200`,
    );
    for (const s of [facilitator, p1, p3, p4]) assert.ok(s.connected, 'nobody was dropped');
    await slowOk(facilitator, 'endSession', {});

    // Every event the node recorded is on the new master, once, in order.
    const promoted = client(set.replicaPort);
    assert.match(await promoted.info('replication'), /role:master/);
    await waitFor(
      async () => (await streamOf(promoted, room)).some((e) => e.type === 'sessionEnded'),
      15_000,
      'the session end in the stream',
    );
    const events = await streamOf(promoted, room);
    const waited = Math.max(...answered.map((r) => r.ms));
    console.log(`  failover took ${failoverMs} ms; ${answered.length} admin reads, the longest waited ${waited} ms`);
    const ids = events.map((e) => e.id);
    assert.equal(ids, [...new Set(ids)], 'each once');
    // Within down-after-milliseconds of the kill no sentinel could even have noticed, let alone promoted.
    const recordedAt = (id: string) => Number(id.split('-')[0]);
    assert.ok(
      ids.filter((id) => recordedAt(id) > killedAt && recordedAt(id) < killedAt + 1_000).length >= 3,
      'events were recorded while no master was reachable',
    );
    assert.equal(
      events.map((e) => (e.participant ? `${e.participant} ${e.type}` : e.type)),
      [
        'sessionStarted',
        'fac admitted',
        'p1 waiting',
        'p1 admitted',
        'p2 waiting',
        'p2 admitted',
        // Recorded while Redis was unreachable, written once the node was on the new master:
        'p2 left',
        'p1 movedToWaitingRoom',
        'p1 admitted',
        'p3 waiting',
        'p3 admitted',
        'p4 waiting',
        'p4 admitted',
        'sessionEnded',
      ],
      'every event, in the order recorded',
    );
    // BullMQ followed too: the session-end job queued after the switch ran on the in-node worker.
    await waitFor(
      async () => (await admin(url, 'GET', `/v1/rooms/${room}/attendance`)).status === 200,
      10_000,
      'the attendance computed',
    );
  }));

test('an event the master acknowledged but had not passed to its lagging replica is not lost when it dies', async () => {
  node?.kill();
  for (const child of children.splice(0)) child.kill('SIGKILL');
  const set = await startRedisSet('b');
  const connection = { sentinels: set.sentinelPorts.map((port) => ({ host: '127.0.0.1', port })), name: 'mymaster' };
  const redis = new Redis(redisOptions(connection));
  redis.on('error', () => {});
  clients.push(redis);
  const quiet = pino({ level: 'silent' });
  // Side by side: the recorder as configured through Sentinel, and one that takes the master's word.
  const recorders = {
    waits: new AttendanceRecorder(redis, quiet, { spillFile: join(dir, 'spill-1.jsonl') }),
    trusts: new AttendanceRecorder(redis, quiet, { spillFile: join(dir, 'spill-2.jsonl'), waitForReplica: false }),
  };
  const recorded = { waits: [] as string[], trusts: [] as string[] };
  const record = (type: 'admitted' | 'left', participant: string) => {
    for (const which of ['waits', 'trusts'] as const)
      recorded[which].push(recorders[which].record({ type, room: which, participant }).id);
  };
  record('admitted', 'p1');
  await Promise.all([recorders.waits.flush(), recorders.trusts.flush()]);
  // The replica falls behind (stopped, with more replication traffic than the sockets between
  // them hold: the rest waits in the master's memory), two more events, then the master dies.
  set.replica.kill('SIGSTOP');
  const master = client(set.masterPort);
  const filler = 'x'.repeat(1 << 20);
  for (let i = 0; i < 32; i++) await master.set(`filler:${i}`, filler);
  record('left', 'p1');
  record('admitted', 'p2');
  await recorders.trusts.flush(2_000);
  await new Promise((r) => setTimeout(r, 200));
  assert.ok(recorders.waits.pending > 0, 'not written until a replica has it');
  set.master.kill('SIGKILL');
  set.replica.kill('SIGCONT');
  await promotion(set);
  await recorders.waits.flush(20_000);
  const promoted = client(set.replicaPort);
  const onNewMaster = async (room: string) => (await streamOf(promoted, room)).map((e) => e.id);
  assert.equal(await onNewMaster('waits'), recorded.waits, 'every event on the new master, once, in order');
  // What WAIT prevents: the events the old master acknowledged alone died with it.
  assert.equal(await onNewMaster('trusts'), recorded.trusts.slice(0, 1), 'without WAIT, both are lost');
  for (const r of Object.values(recorders)) r.close();
});

test.after(cleanUp);

test.run();
