import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { embeddedRedisClient, type NodeProcess, startNodeProcess } from '../../bench/node-process.ts';
import { commandOf, isAlive, redisServersIn, waitFor } from '../../bench/processes.ts';
import { protocolVersion } from '../../client-sdk/src/protocol/index.ts';
import { EmbeddedRedis } from '../../server/redis/embedded-redis.ts';
import { rejects } from '../helpers/assert.ts';
import { admin, connect, ok, testAdminKey, testSecret, token } from '../helpers/signaling-client.ts';

const dataDir = mkdtempSync(join(tmpdir(), 'haven-redis-'));
const started: EmbeddedRedis[] = [];
const seenPids = new Set<number>();
const leftovers: ChildProcess[] = [];

async function start(dir = dataDir): Promise<EmbeddedRedis> {
  const redis = await EmbeddedRedis.start({ dataDir: dir });
  started.push(redis);
  seenPids.add(redis.pid as number);
  return redis;
}

async function withClient<T>(redis: EmbeddedRedis, use: (client: Redis) => Promise<T>): Promise<T> {
  const client = new Redis(redis.url, { maxRetriesPerRequest: 20 });
  client.on('error', () => {}); // reconnects on its own while a test restarts redis-server
  try {
    return await use(client);
  } finally {
    client.disconnect();
  }
}

test.after(async () => {
  rmSync(nodeDir, { recursive: true, force: true });
  for (const child of leftovers) child.kill('SIGKILL');
  for (const redis of started) await redis.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

test('starts redis-server on loopback with AOF and a password', async () => {
  const redis = await start();
  assert.ok(redis.pid && isAlive(redis.pid));
  assert.match(commandOf(redis.pid), /redis-server/);
  assert.match(redis.url, /^redis:\/\/:[0-9a-f]{48}@127\.0\.0\.1:\d+$/);
  await withClient(redis, async (client) => {
    assert.is(await client.ping(), 'PONG');
    assert.equal(await client.config('GET', 'appendonly'), ['appendonly', 'yes']);
    assert.equal(await client.config('GET', 'bind'), ['bind', '127.0.0.1']);
  });
  // Without the password nothing is readable.
  const socket = tcpConnect(redis.port, '127.0.0.1');
  socket.write('GET anything\r\n');
  const [reply] = (await once(socket, 'data')) as [Buffer];
  socket.destroy();
  assert.match(reply.toString(), /^-NOAUTH/);
  // The generated configuration (which holds the password) is readable by its owner only.
  assert.is(statSync(join(dataDir, 'redis.conf')).mode & 0o777, 0o600);
  await redis.stop();
});

test('a key written before a restart is there after it', async () => {
  const first = await start();
  await withClient(first, (client) => client.set('haven:test:durable', 'kept'));
  const firstPid = first.pid as number;
  await first.stop();
  assert.not.ok(isAlive(firstPid), 'the first redis-server is gone');
  const second = await start();
  assert.is.not(second.pid, firstPid);
  assert.is(await withClient(second, (client) => client.get('haven:test:durable')), 'kept');
  await second.stop();
});

test('stop ends the process and is idempotent', async () => {
  const redis = await start();
  const pid = redis.pid as number;
  await redis.stop();
  await redis.stop();
  assert.ok(redis.closed);
  assert.not.ok(isAlive(pid));
  assert.is(redis.pid, undefined);
});

test('a redis-server that dies is restarted on the same port and data', async () => {
  const redis = await start();
  await withClient(redis, async (client) => {
    await client.set('haven:test:crash', 'survives');
    // appendfsync everysec: give the AOF its second before the crash.
    await new Promise((r) => setTimeout(r, 1_200));
    const oldPid = redis.pid as number;
    const port = redis.port;
    process.kill(oldPid, 'SIGKILL');
    await waitFor(() => redis.pid && redis.pid !== oldPid, 5_000, 'the restarted redis-server');
    seenPids.add(redis.pid as number);
    assert.is(redis.port, port);
    assert.is(await client.get('haven:test:crash'), 'survives');
  });
  await redis.stop();
});

/** A redis-server working in `dir` that no EmbeddedRedis started: what a node killed outright leaves. */
function leftoverIn(dir: string): number {
  // On a unix socket only: the leftover needs no port.
  const args = ['--port', '0', '--unixsocket', join(dir, 'leftover.sock'), '--dir', dir, '--appendonly', 'yes'];
  const child = spawn('redis-server', [...args, '--save', ''], { stdio: 'ignore' });
  leftovers.push(child);
  return child.pid as number;
}

test('a redis-server left running on the folder is stopped before a new start, pid file or not', async () => {
  for (const pidFile of ['kept', 'lost']) {
    const leftover = leftoverIn(dataDir);
    await waitFor(() => redisServersIn(dataDir).includes(leftover), 5_000, 'the leftover redis-server');
    if (pidFile === 'kept') writeFileSync(join(dataDir, 'redis.pid'), `${leftover}\n`);
    else rmSync(join(dataDir, 'redis.pid'), { force: true });
    const fresh = await start();
    assert.not.ok(isAlive(leftover), `the leftover redis-server was stopped (pid file ${pidFile})`);
    assert.equal(redisServersIn(dataDir), [fresh.pid]);
    assert.is(await withClient(fresh, (client) => client.ping()), 'PONG');
    await fresh.stop();
  }
});

test('a second start on a folder in use is refused and leaves the first alone', async () => {
  const first = await start();
  await rejects(() => EmbeddedRedis.start({ dataDir }), /is in use by another process \(pid \d+\)/);
  assert.equal(redisServersIn(dataDir), [first.pid]);
  assert.is(await withClient(first, (client) => client.ping()), 'PONG');
  await first.stop();
  // Once stopped, the folder is free again.
  const next = await start();
  await next.stop();
});

test('a missing redis-server binary is a clear error', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'haven-redis-missing-'));
  await rejects(
    () => EmbeddedRedis.start({ dataDir: dir, serverBin: '/nonexistent/redis-server' }),
    /cannot start \/nonexistent\/redis-server/,
  );
  rmSync(dir, { recursive: true, force: true });
});

// A node process and its embedded Redis: what `kill -9 <node pid>` leaves behind.

const nodeDir = mkdtempSync(join(tmpdir(), 'haven-redis-node-'));
const nodeRedisDir = join(nodeDir, 'redis');
const nodes: NodeProcess[] = [];
const watchers: NodeJS.Timeout[] = [];

// A test that failed half-way leaves no node or sampler to the next one.
test.after.each(() => {
  for (const node of nodes.splice(0)) node.kill();
  for (const timer of watchers.splice(0)) clearInterval(timer);
});

async function startNode(): Promise<NodeProcess> {
  const node = await startNodeProcess({
    HAVEN_DATA_DIR: nodeDir,
    HAVEN_AUTH_SECRET: testSecret,
    HAVEN_ADMIN_API_KEY: testAdminKey,
    HAVEN_MEDIA_WEBRTC_PORT: '0',
  });
  nodes.push(node);
  return node;
}

/** Samples the redis-servers working in the node's folder until stopped: the most seen at once. */
function watchRedisCount(): { stop(): number } {
  let most = 0;
  const sample = () => {
    most = Math.max(most, redisServersIn(nodeRedisDir).length);
  };
  const timer = setInterval(sample, 10);
  watchers.push(timer);
  return {
    stop() {
      clearInterval(timer);
      sample();
      return most;
    },
  };
}

test('node SIGKILLed alone: its redis-server stops within a few seconds', async () => {
  const node = await startNode();
  const [redisPid] = redisServersIn(nodeRedisDir);
  assert.ok(redisPid, 'the node runs a redis-server in its folder');
  const killedAt = Date.now();
  await node.killNodeOnly();
  await waitFor(() => !isAlive(redisPid), 5_000, 'the orphaned redis-server to stop');
  console.log(`    redis-server gone ${Date.now() - killedAt} ms after its node was killed`);
  assert.equal(redisServersIn(nodeRedisDir), []);
});

test('node SIGKILLed and restarted on its folder: never two redis-servers, every acknowledged event kept', async () => {
  const node = await startNode();
  const room = 'durable-1';
  await admin(node.url, 'POST', '/v1/rooms', { id: room, title: 'Group', consentText: 'Confidential.' });
  const facilitator = await connect(node.url, token(room, 'fac', 'facilitator'));
  const pt = await connect(node.url, token(room, 'pt'));
  const client = embeddedRedisClient(nodeDir);
  let acknowledged: string[];
  try {
    await ok(facilitator, 'join', { protocolVersion });
    await ok(pt, 'join', { protocolVersion });
    await ok(pt, 'acceptConsent', { version: 1 });
    await ok(facilitator, 'admit', { participantId: 'pt' });
    for (let i = 0; i < 20; i++) {
      await ok(facilitator, 'moveToWaitingRoom', { participantId: 'pt' });
      await ok(facilitator, 'admit', { participantId: 'pt' });
    }
    // sessionStarted, the facilitator admitted, pt consented, waiting, admitted; 20 × (movedToWaitingRoom, admitted).
    const expected = 5 + 40;
    const key = `haven:attendance:${room}`;
    await waitFor(async () => (await client.xlen(key)) === expected, 5_000, `${expected} events in Redis`);
    acknowledged = (await client.xrange(key, '-', '+')).map(([id]) => id);
  } finally {
    facilitator.close();
    pt.close();
    client.disconnect();
  }
  const watch = watchRedisCount();
  await node.killNodeOnly();
  const restarted = await startNode();
  assert.is(watch.stop(), 1, 'at most one redis-server on the folder at any moment');
  const after = embeddedRedisClient(nodeDir);
  try {
    const ids = (await after.xrange(`haven:attendance:${room}`, '-', '+')).map(([id]) => id);
    assert.equal(ids.slice(0, acknowledged.length), acknowledged, 'every acknowledged event, once, in order');
  } finally {
    after.disconnect();
  }
  restarted.kill();
});

test('a leftover redis-server with no pid file is stopped before the node starts its own', async () => {
  mkdirSync(nodeRedisDir, { recursive: true });
  rmSync(join(nodeRedisDir, 'redis.pid'), { force: true });
  const leftover = leftoverIn(nodeRedisDir);
  await waitFor(() => redisServersIn(nodeRedisDir).includes(leftover), 5_000, 'the leftover redis-server');
  const watch = watchRedisCount();
  const node = await startNode();
  assert.is(watch.stop(), 1, 'at most one redis-server on the folder at any moment');
  assert.not.ok(isAlive(leftover));
  assert.is(redisServersIn(nodeRedisDir).length, 1);
  node.kill();
});

test('a second node on a data folder in use fails clearly and leaves the first alone', async () => {
  const first = await startNode();
  const [redisPid] = redisServersIn(nodeRedisDir);
  const watch = watchRedisCount();
  await rejects(() => startNode(), /node exited 1: .*is in use by another process \(pid \d+\): two Haven nodes/s);
  assert.is(watch.stop(), 1);
  assert.equal(redisServersIn(nodeRedisDir), [redisPid as number], 'the first node’s Redis untouched');
  assert.is((await fetch(`${first.url}/readyz`)).status, 200);
  first.kill();
});

test('no redis-server outlives the tests that started one', async () => {
  for (const redis of started) await redis.stop();
  const survivors = [...seenPids].filter(isAlive);
  assert.ok(seenPids.size >= started.length);
  assert.equal(survivors, []);
});

test.run();
