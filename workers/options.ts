/** What every Haven BullMQ worker shares: its connection and how fast a dead worker's job is retaken. */
import type { WorkerOptions } from 'bullmq';

export interface WorkerSettings {
  /**
   * A job whose worker died (crash, SIGKILL, lost host) is run again by another worker once its
   * lock has not been renewed for this long; the lock is renewed every half of it.
   */
  stalledMs: number;
}

export function workerOptions(redisUrl: string, settings: WorkerSettings, concurrency: number): WorkerOptions {
  return {
    connection: { url: redisUrl, maxRetriesPerRequest: null },
    concurrency,
    lockDuration: settings.stalledMs,
    stalledInterval: settings.stalledMs,
  };
}
