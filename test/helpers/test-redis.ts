/**
 * An embedded Redis of a test file's own, in a temporary folder, with the clients the file asked
 * for; stopped and removed at the end.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis, type RedisOptions } from 'ioredis';
import type { Test } from 'uvu';
import { EmbeddedRedis } from '../../server/redis/embedded-redis.ts';
import { lateBound, runAll } from './hooks.ts';

export interface TestRedis {
  /** The server (once started). */
  server: EmbeddedRedis;
  /** The temporary folder its data is kept in. */
  dir: string;
  /** A client, connected when the server starts and disconnected before it stops. */
  client(options?: RedisOptions): Redis;
  start(): Promise<void>;
  /** Disconnects the clients, stops the server and removes the folder. */
  stop(): Promise<void>;
}

/** A Redis whose `start` and `stop` the caller runs in its own hooks. */
export function testRedis(): TestRedis {
  const server = lateBound<EmbeddedRedis>('the embedded Redis');
  const dir = mkdtempSync(join(tmpdir(), 'haven-test-redis-'));
  const clients: { client: ReturnType<typeof lateBound<Redis>>; options: RedisOptions }[] = [];
  return {
    server: server.handle,
    dir,
    client(options = {}) {
      const client = lateBound<Redis>('the Redis client');
      clients.push({ client, options });
      return client.handle;
    },
    async start() {
      server.set(await EmbeddedRedis.start({ dataDir: dir }));
      for (const { client, options } of clients) {
        const connection = new Redis(server.handle.url, options);
        connection.on('error', () => {}); // commands still reject; a test may stop Redis on purpose
        client.set(connection);
      }
    },
    stop: () =>
      runAll([
        ...clients.map(
          ({ client }) =>
            () =>
              client.get()?.disconnect(),
        ),
        () => server.get()?.stop(),
        () => rmSync(dir, { recursive: true, force: true }),
      ]),
  };
}

/** A Redis started by uvu's `before` and stopped by its `after`, after the steps given to `atEnd`. */
export function testRedisFor(test: Test): TestRedis & { atEnd(step: () => unknown): void } {
  const redis = testRedis();
  const atEnd: (() => unknown)[] = [];
  test.before(() => redis.start());
  test.after(() => runAll([...atEnd, () => redis.stop()]));
  return { ...redis, atEnd: (step) => void atEnd.push(step) };
}

/** Every key and value in Redis, as one string (to check that something never reached it). */
export async function redisContents(redis: Redis): Promise<string> {
  const parts: string[] = [];
  let cursor = '0';
  do {
    const [nextCursor, keys] = await redis.scan(cursor, 'COUNT', 1_000);
    cursor = nextCursor;
    for (const key of keys) {
      parts.push(key);
      const type = await redis.type(key);
      if (type === 'string') parts.push(String(await redis.get(key)));
      else if (type === 'hash') parts.push(JSON.stringify(await redis.hgetall(key)));
      else if (type === 'list') parts.push(JSON.stringify(await redis.lrange(key, 0, -1)));
      else if (type === 'set') parts.push(JSON.stringify(await redis.smembers(key)));
      else if (type === 'zset') parts.push(JSON.stringify(await redis.zrange(key, '0', '-1')));
      else if (type === 'stream') parts.push(JSON.stringify(await redis.xrange(key, '-', '+')));
      else parts.push(`<${type}>`);
    }
  } while (cursor !== '0');
  return parts.join('\n');
}
