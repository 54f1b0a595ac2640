import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { EmbeddedRedis } from '../../server/redis/embedded-redis.ts';
import { rejects } from '../helpers/assert.ts';
import { commandOf, isAlive, waitFor } from '../helpers/processes.ts';

const dataDir = mkdtempSync(join(tmpdir(), 'haven-redis-'));
const started: EmbeddedRedis[] = [];
const seenPids = new Set<number>();

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
  const socket = connect(redis.port, '127.0.0.1');
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

test('a redis-server left running by a killed node is stopped before a new start', async () => {
  const leftover = await start();
  const leftoverPid = leftover.pid as number;
  // Simulate a node killed outright: its redis-server keeps running, its owner is gone.
  const pidFile = readFileSync(join(dataDir, 'redis.pid'), 'utf8').trim();
  assert.is(Number(pidFile), leftoverPid);
  const fresh = await start();
  assert.not.ok(isAlive(leftoverPid), 'the leftover redis-server was stopped');
  assert.is(await withClient(fresh, (client) => client.ping()), 'PONG');
  await fresh.stop();
});

test('a missing redis-server binary is a clear error', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'haven-redis-missing-'));
  await rejects(
    () => EmbeddedRedis.start({ dataDir: dir, serverBin: '/nonexistent/redis-server' }),
    /cannot start \/nonexistent\/redis-server/,
  );
  rmSync(dir, { recursive: true, force: true });
});

test('no redis-server outlives the tests that started one', async () => {
  for (const redis of started) await redis.stop();
  const survivors = [...seenPids].filter(isAlive);
  assert.ok(seenPids.size >= started.length);
  assert.equal(survivors, []);
});

test.run();
