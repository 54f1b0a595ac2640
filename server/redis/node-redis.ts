/**
 * A node's Redis: the configured one (a URL or a Sentinel set), else its own `redis-server`
 * started in the data folder (embedded-redis.ts). Connected and answering before it is returned.
 */
import { join } from 'node:path';
import { Redis } from 'ioredis';
import type { Config } from '../../config/schema.ts';
import type { Logger } from '../logger.ts';
import { type RedisConnection, redisConnectionOf, redisOptions } from './connection.ts';
import { EmbeddedRedis } from './embedded-redis.ts';

export interface NodeRedis {
  /** Where it is, for the other clients (BullMQ's queues and workers). */
  connection: RedisConnection;
  /** The node's own client. */
  redis: Redis;
  /** The node's own `redis-server`, when none is configured. */
  embedded: EmbeddedRedis | undefined;
}

export async function openNodeRedis(settings: Config['redis'], dataDir: string, logger: Logger): Promise<NodeRedis> {
  const configured = redisConnectionOf(settings);
  const embedded = configured
    ? undefined
    : await EmbeddedRedis.start({ dataDir: join(dataDir, 'redis'), serverBin: settings.serverBin, logger });
  const connection = configured ?? { url: (embedded as EmbeddedRedis).url };
  try {
    return { connection, redis: await connectRedis(connection, logger), embedded };
  } catch (err) {
    await embedded?.stop();
    throw err;
  }
}

/** Connects to Redis and waits until it answers; passwords (in the URL or not) are never logged. */
async function connectRedis(connection: RedisConnection, logger: Logger): Promise<Redis> {
  const redis = new Redis(redisOptions(connection, { lazyConnect: true }));
  redis.on('error', (err: Error) => logger.warn({ component: 'redis', err: { message: err.message } }, 'redis error'));
  await redis.connect();
  return redis;
}
