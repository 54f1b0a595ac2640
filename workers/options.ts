/** What every Haven BullMQ worker shares: its connection and how fast a dead worker's job is retaken. */
import type { WorkerOptions } from 'bullmq';
import { bullConnection, type RedisConnection } from '../server/redis/connection.ts';

export interface WorkerSettings {
  /**
   * A job whose worker died (crash, SIGKILL, lost host) is run again by another worker once its
   * lock has not been renewed for this long; the lock is renewed every half of it.
   */
  stalledMs: number;
}

export function workerOptions(redis: RedisConnection, settings: WorkerSettings, concurrency: number): WorkerOptions {
  return {
    // null: a worker's blocking reads wait for Redis however long it is away (BullMQ requires it).
    connection: { ...bullConnection(redis), maxRetriesPerRequest: null },
    concurrency,
    lockDuration: settings.stalledMs,
    stalledInterval: settings.stalledMs,
  };
}
