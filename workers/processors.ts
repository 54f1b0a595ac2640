/**
 * Every Haven processor, started together, on the queues the nodes fill: by the node's process
 * (app/haven-node.ts, unless `workers.inProcess` is false) or alone (`npm run workers`).
 */
import type { Redis } from 'ioredis';
import type { Config } from '../config/schema.ts';
import type { AuditKeys } from '../server/audit/keys.ts';
import type { Logger } from '../server/logger.ts';
import type { RedisConnection } from '../server/redis/connection.ts';
import type { RoomStore } from '../server/rooms/room-store.ts';
import type { WebhookQueue } from '../server/webhooks/queue.ts';
import { startAttendanceWorker } from './attendance.ts';
import { startRetentionWorker } from './retention.ts';
import { startWebhookWorker } from './webhooks.ts';

export interface ProcessorDeps {
  connection: RedisConnection;
  redis: Redis;
  store: RoomStore;
  /** Where the processors' own webhook events go (`attendance.ready`, `threshold.missed`). */
  webhooks: WebhookQueue;
  /** The audit keys as the nodes have them: retention checks HMACs and signs the anchor. */
  auditKeys: AuditKeys;
  config: Config;
  logger: Logger;
}

/** Starts them; `close()` stops them without waiting for the jobs they run (jobs are idempotent). */
export function startProcessors(deps: ProcessorDeps): { close(): Promise<void> } {
  const { connection, redis, store, webhooks, auditKeys, config, logger } = deps;
  const settings = { stalledMs: config.workers.stalledS * 1000 };
  const workers = [
    startAttendanceWorker(
      connection,
      {
        redis,
        store,
        reconnectGraceMs: config.rooms.reconnectGraceS * 1000,
        emit: (type, input) => webhooks.emit(type, input),
        program: config.attendance,
      },
      settings,
      logger,
    ),
    startWebhookWorker(connection, redis, config.webhooks, settings, logger),
    // Its schedule is upserted by the nodes at start.
    startRetentionWorker(connection, { redis, settings: config.retention, auditKeys }, settings, logger),
  ];
  return {
    close: async () => {
      await Promise.all(workers.map((w) => w.close(true)));
    },
  };
}
