/**
 * Webhooks: JSON events POSTed to the clinic's endpoints, signed, retried with exponential
 * backoff, dead-lettered after the last attempt. One BullMQ job per event and endpoint, carrying
 * ids only; every delivery's outcome is kept in Redis for the admin API.
 *
 * Signature: `Haven-Signature: v1=<hex HMAC-SHA256(secret, "<Haven-Timestamp>.<body>")>` with
 * `Haven-Timestamp` in Unix seconds; a receiver recomputes it and refuses old timestamps.
 */
import { createHmac, randomUUID } from 'node:crypto';
import { type Job, Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from '../server/logger.ts';

export const webhookQueueName = 'haven-webhooks';

export type WebhookEventType = 'session.started' | 'session.ended' | 'attendance.ready' | 'participant.removed';

/** Job data and event body: ids, times and numbers only. */
export interface WebhookEvent {
  id: string;
  type: WebhookEventType;
  room: string;
  participant?: string;
  occurredAt: string;
}

interface WebhookJob {
  event: WebhookEvent;
  url: string;
}

export interface Delivery {
  id: string;
  event: WebhookEvent;
  url: string;
  status: 'pending' | 'delivered' | 'retrying' | 'dead';
  attempts: number;
  lastStatus?: number;
  lastError?: string;
  updatedAt: string;
}

export interface WebhookSettings {
  urls: string[];
  secret?: string;
  maxAttempts: number;
  backoffMs: number;
}

const deliveriesKey = (prefix = 'haven:') => `${prefix}webhook-deliveries`;
const requestTimeoutMs = 10_000;

/** The signature header value for a body sent at `timestamp` (Unix seconds). */
export function signWebhook(secret: string, timestamp: number, body: string): string {
  return `v1=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

async function saveDelivery(redis: Redis, delivery: Delivery): Promise<void> {
  await redis.hset(deliveriesKey(), delivery.id, JSON.stringify(delivery));
}

/** Deliveries, newest first, optionally of one status. */
export async function listDeliveries(redis: Redis, status?: Delivery['status'], limit = 50): Promise<Delivery[]> {
  const all = Object.values(await redis.hgetall(deliveriesKey())).map((json) => JSON.parse(json) as Delivery);
  return all
    .filter((d) => !status || d.status === status)
    .sort((a, b) => b.updatedAt.localeCompare(a.updatedAt))
    .slice(0, limit);
}

/** The producer side: one job per configured endpoint. */
export class WebhookQueue {
  readonly #queue: Queue<WebhookJob>;
  readonly #settings: WebhookSettings;
  readonly #redis: Redis;

  constructor(redisUrl: string, redis: Redis, settings: WebhookSettings) {
    this.#queue = new Queue<WebhookJob>(webhookQueueName, { connection: { url: redisUrl } });
    this.#redis = redis;
    this.#settings = settings;
  }

  async emit(type: WebhookEventType, room: string, participant?: string): Promise<void> {
    if (this.#settings.urls.length === 0 || !this.#settings.secret) return;
    const event: WebhookEvent = { id: randomUUID(), type, room, participant, occurredAt: new Date().toISOString() };
    for (const url of this.#settings.urls) {
      const jobId = `${event.id}-${this.#settings.urls.indexOf(url)}`; // BullMQ ids may not contain ":"
      const now = new Date().toISOString();
      await saveDelivery(this.#redis, { id: jobId, event, url, status: 'pending', attempts: 0, updatedAt: now });
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

  close(): Promise<void> {
    return this.#queue.close();
  }
}

/** The consumer side: POSTs each event, signed; records every outcome. */
export function startWebhookWorker(redisUrl: string, redis: Redis, settings: WebhookSettings, logger: Logger) {
  const log = logger.child({ component: 'webhooks' });
  const worker = new Worker<WebhookJob>(
    webhookQueueName,
    async (job: Job<WebhookJob>) => {
      const { event, url } = job.data;
      const body = JSON.stringify(event);
      const timestamp = Math.floor(Date.now() / 1000);
      const res = await fetch(url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'haven-timestamp': String(timestamp),
          'haven-signature': signWebhook(settings.secret ?? '', timestamp, body),
          'haven-delivery': job.id ?? '',
        },
        body,
        signal: AbortSignal.timeout(requestTimeoutMs),
      });
      if (!res.ok) throw Object.assign(new Error(`HTTP ${res.status}`), { status: res.status });
      await saveDelivery(redis, {
        id: job.id ?? '',
        event,
        url,
        status: 'delivered',
        attempts: job.attemptsMade + 1,
        lastStatus: res.status,
        updatedAt: new Date().toISOString(),
      });
    },
    { connection: { url: redisUrl, maxRetriesPerRequest: null }, concurrency: 4 },
  );
  worker.on('failed', (job, err) => {
    if (!job) return;
    const dead = job.attemptsMade >= (job.opts.attempts ?? 1);
    const delivery: Delivery = {
      id: job.id ?? '',
      event: job.data.event,
      url: job.data.url,
      status: dead ? 'dead' : 'retrying',
      attempts: job.attemptsMade,
      lastStatus: (err as Error & { status?: number }).status,
      lastError: err.message.slice(0, 200),
      updatedAt: new Date().toISOString(),
    };
    saveDelivery(redis, delivery).catch(() => {});
    const fields = {
      delivery: delivery.id,
      type: delivery.event.type,
      room: delivery.event.room,
      attempts: delivery.attempts,
    };
    if (dead) log.error(fields, 'webhook dead-lettered');
    else log.warn(fields, 'webhook failed; will retry');
  });
  worker.on('error', (err) => log.warn({ err: { message: err.message } }, 'webhook worker error'));
  return worker;
}
