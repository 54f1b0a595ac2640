/**
 * The producer side of webhooks: one BullMQ job per event and configured endpoint, carrying ids
 * only, retried with exponential backoff and dead-lettered after the last attempt (the processor
 * is workers/webhooks.ts). Each delivery is claimed in Redis before it is queued, so an event
 * emitted again (same id) is queued once.
 */
import { createHash, randomUUID } from 'node:crypto';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import type { Logger } from '../logger.ts';
import { bullConnection, type RedisConnection } from '../redis/connection.ts';
import { claimDelivery, type Delivery, saveDelivery } from './deliveries.ts';
import { type WebhookEvent, type WebhookEventInput, type WebhookEventType, webhookEventSchema } from './events.ts';

export const webhookQueueName = 'haven-webhooks';

/** Job data: the event and the endpoint it goes to. */
export interface WebhookJob {
  event: WebhookEvent;
  url: string;
}

const webhookJobSchema = z.object({ event: webhookEventSchema, url: z.string() }) satisfies z.ZodType<WebhookJob>;

/** A job's data as the processor takes it; throws (the job fails) when it is not a webhook job. */
export function webhookJobOf(data: unknown): WebhookJob {
  const parsed = webhookJobSchema.safeParse(data);
  if (!parsed.success) throw new Error('malformed webhook job');
  return parsed.data;
}

export interface WebhookSettings {
  urls: string[];
  secret?: string;
  maxAttempts: number;
  backoffMs: number;
}

function eventId(type: WebhookEventType, input: WebhookEventInput): string {
  if (input.onceKey === undefined) return randomUUID();
  const hex = createHash('sha256')
    .update(JSON.stringify([type, input.room ?? null, input.participant ?? null, input.onceKey]))
    .digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

export class WebhookQueue {
  readonly #queue: Queue<WebhookJob>;
  readonly #settings: WebhookSettings;
  readonly #redis: Redis;

  constructor(connection: RedisConnection, redis: Redis, settings: WebhookSettings) {
    this.#queue = new Queue<WebhookJob>(webhookQueueName, { connection: bullConnection(connection) });
    this.#redis = redis;
    this.#settings = settings;
  }

  async emit(type: WebhookEventType, input: WebhookEventInput = {}): Promise<void> {
    if (this.#settings.urls.length === 0 || !this.#settings.secret) return;
    const { room, participant, data } = input;
    const event: WebhookEvent = {
      id: eventId(type, input),
      type,
      ...(room === undefined ? {} : { room }),
      ...(participant === undefined ? {} : { participant }),
      occurredAt: new Date().toISOString(),
      ...(data === undefined ? {} : { data }),
    };
    for (const [index, url] of this.#settings.urls.entries()) {
      const jobId = `${event.id}-${index}`; // BullMQ ids may not contain ":"
      const pending: Delivery = { id: jobId, event, url, status: 'pending', attempts: 0, updatedAt: event.occurredAt };
      // Claimed first: an event emitted again (same id) finds its delivery and is not queued twice.
      if (!(await claimDelivery(this.#redis, pending))) continue;
      await saveDelivery(this.#redis, pending);
      await this.#queue.add(
        type,
        { event, url },
        {
          jobId,
          attempts: this.#settings.maxAttempts,
          backoff: { type: 'exponential', delay: this.#settings.backoffMs },
          removeOnComplete: true,
          removeOnFail: true,
        },
      );
    }
  }

  /** `emit` for callers that do not wait: a failure is logged (room and type only), never thrown. */
  emitInBackground(type: WebhookEventType, input: WebhookEventInput, logger: Logger): void {
    this.emit(type, input).catch((err: Error) => {
      logger.error({ room: input.room, type, err: { message: err.message } }, 'webhook not queued');
    });
  }

  close(): Promise<void> {
    return this.#queue.close();
  }
}
