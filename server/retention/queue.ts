/**
 * The producer side of the `retention` queue (the processor is workers/retention.ts): one job
 * scheduler, every `retention.intervalS`, upserted by each node at start, so there is one schedule
 * however many nodes.
 */
import { Queue } from 'bullmq';
import { bullConnection, type RedisConnection } from '../redis/connection.ts';

export const retentionQueueName = 'haven-retention';
const schedulerId = 'retention';
const jobName = 'purge';

/** How long each kind is kept, in days (0: forever), and how often retention runs. */
export interface RetentionSettings {
  eventsDays: number;
  chatDays: number;
  auditDays: number;
  deliveriesDays: number;
  intervalS: number;
}

export class RetentionQueue {
  readonly #queue: Queue;
  readonly #intervalMs: number;

  constructor(connection: RedisConnection, settings: Pick<RetentionSettings, 'intervalS'>) {
    this.#queue = new Queue(retentionQueueName, { connection: bullConnection(connection) });
    this.#intervalMs = settings.intervalS * 1000;
  }

  /** Runs retention now, then every `intervalS` (idempotent: every node may). */
  async schedule(): Promise<void> {
    await this.#queue.upsertJobScheduler(
      schedulerId,
      { every: this.#intervalMs },
      // No data: the job needs none. A day of finished runs is kept for inspection.
      { name: jobName, opts: { removeOnComplete: { count: 24 }, removeOnFail: { count: 100 } } },
    );
  }

  close(): Promise<void> {
    return this.#queue.close();
  }
}
