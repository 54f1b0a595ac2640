/**
 * The background workers as their own process (`npm run workers`), for deployments that scale
 * them apart from the nodes (then set `HAVEN_WORKERS_IN_PROCESS=false` on the nodes). Needs
 * `REDIS_URL` or `HAVEN_REDIS_SENTINELS`: the embedded Redis belongs to a node.
 */
import { Redis } from 'ioredis';
import { ConfigError, loadConfig } from '../config/load.ts';
import { auditKeysOf } from '../server/audit/keys.ts';
import { createLogger } from '../server/logger.ts';
import { redisConnectionOf, redisOptions } from '../server/redis/connection.ts';
import { RoomStore } from '../server/rooms/room-store.ts';
import { WebhookQueue } from '../server/webhooks/queue.ts';
import { startProcessors } from './processors.ts';

let config: ReturnType<typeof loadConfig>;
try {
  config = loadConfig();
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  process.stderr.write(`haven workers: ${err.message}\n`);
  process.exit(2);
}
const connection = redisConnectionOf(config.redis);
if (!connection) {
  process.stderr.write('haven workers: set REDIS_URL or HAVEN_REDIS_SENTINELS to the Redis the nodes use\n');
  process.exit(2);
}

const logger = createLogger(config);
let auditKeys: ReturnType<typeof auditKeysOf>;
try {
  auditKeys = auditKeysOf(config, logger);
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  process.stderr.write(`haven workers: ${err.message}\n`);
  process.exit(2);
}
const redis = new Redis(redisOptions(connection));
redis.on('error', (err: Error) => logger.warn({ err: { message: err.message } }, 'redis error'));
const webhooks = new WebhookQueue(connection, redis, config.webhooks);
const processors = startProcessors({
  connection,
  redis,
  store: new RoomStore(redis),
  webhooks,
  auditKeys,
  config,
  logger,
});
logger.info('haven workers running');

async function shutdown(): Promise<void> {
  await processors.close();
  await webhooks.close();
  redis.disconnect();
  process.exit(0);
}
process.on('SIGINT', shutdown);
process.on('SIGTERM', shutdown);
