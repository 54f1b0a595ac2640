/**
 * Webhooks: JSON events POSTed to the clinic's endpoints, signed, retried with exponential
 * backoff, dead-lettered after the last attempt. One BullMQ job per event and endpoint, carrying
 * ids only; every delivery's outcome is kept in Redis for the admin API.
 *
 * Signature: `Haven-Signature: v1=<hex HMAC-SHA256(secret, "<Haven-Timestamp>.<body>")>` with
 * `Haven-Timestamp` in Unix seconds; a receiver recomputes it and refuses old timestamps.
 */
import { createHash, createHmac, randomUUID } from 'node:crypto';
import { type Job, Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { AuditCheckpoint } from '../server/audit/checkpoint.ts';
import type { Logger } from '../server/logger.ts';
import { bullConnection, type RedisConnection } from '../server/redis/connection.ts';
import { type WorkerSettings, workerOptions } from './options.ts';

export const webhookQueueName = 'haven-webhooks';

export const webhookEventTypes = [
  'session.started',
  'session.ended',
  'participant.removed',
  'attendance.ready',
  'threshold.missed',
  'audit.checkpoint',
] as const;
export type WebhookEventType = (typeof webhookEventTypes)[number];

/** Job data and event body: ids, times and numbers only. */
export interface WebhookEvent {
  id: string;
  type: WebhookEventType;
  /** The room (absent for `threshold.missed`, which is about a week). */
  room?: string;
  participant?: string;
  occurredAt: string;
  /** Facts of the event, e.g. `{ week, presentSeconds, thresholdHours }` for `threshold.missed`. */
  data?: Record<string, string | number>;
}

/**
 * An `audit.checkpoint`: the room's audit chain head, signed (Ed25519, checkable with the audit
 * public key alone). Kept by the clinic, it is what `haven audit verify --checkpoint` checks a
 * chain's end against. Sent once per head.
 */
export function checkpointEvent(checkpoint: AuditCheckpoint): WebhookEventInput {
  const { room, seq, hash, at, kid, signature } = checkpoint;
  return { room, data: { seq, hash, at, kid, signature }, onceKey: `${seq}:${hash}` };
}

export interface WebhookEventInput {
  room?: string;
  participant?: string;
  data?: Record<string, string | number>;
  /**
   * Makes the event's id a function of its type, room, participant and this key, so that emitting
   * the same event again (a job retried after a crash) queues nothing: every endpoint gets it once.
   */
  onceKey?: string;
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

const statuses: readonly Delivery['status'][] = ['pending', 'delivered', 'retrying', 'dead'];
/**
 * Deliveries: a hash (id → JSON), an index of every id and one per status, scored by when the
 * event occurred (the admin API pages through them newest first; retention purges the oldest).
 */
const deliveriesKey = (prefix = 'haven:') => `${prefix}webhook-deliveries`;
const indexKey = (status: Delivery['status'] | 'all', prefix = 'haven:') => `${prefix}webhook-deliveries:${status}`;
const requestTimeoutMs = 10_000;

/** The signature header value for a body sent at `timestamp` (Unix seconds). */
export function signWebhook(secret: string, timestamp: number, body: string): string {
  return `v1=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

function eventId(type: WebhookEventType, input: WebhookEventInput): string {
  if (input.onceKey === undefined) return randomUUID();
  const hex = createHash('sha256')
    .update(JSON.stringify([type, input.room ?? null, input.participant ?? null, input.onceKey]))
    .digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

/** Stores a delivery's state and files it under its status. */
async function saveDelivery(redis: Redis, delivery: Delivery): Promise<void> {
  const score = Date.parse(delivery.event.occurredAt);
  const writes = redis.multi().hset(deliveriesKey(), delivery.id, JSON.stringify(delivery));
  writes.zadd(indexKey('all'), score, delivery.id);
  for (const status of statuses) {
    if (status === delivery.status) writes.zadd(indexKey(status), score, delivery.id);
    else writes.zrem(indexKey(status), delivery.id);
  }
  await writes.exec();
}

export interface DeliveryPage {
  deliveries: Delivery[];
  /** Pass as `cursor` for the next page; null on the last. */
  nextCursor: number | null;
}

/** Deliveries, newest event first, optionally of one status; `cursor` is where a page starts. */
export async function listDeliveries(
  redis: Redis,
  options: { status?: Delivery['status']; limit?: number; cursor?: number } = {},
): Promise<DeliveryPage> {
  const limit = options.limit ?? 20;
  const cursor = options.cursor ?? 0;
  const ids = await redis.zrevrange(indexKey(options.status ?? 'all'), cursor, cursor + limit);
  const page = ids.slice(0, limit);
  const values = page.length ? await redis.hmget(deliveriesKey(), ...page) : [];
  return {
    deliveries: values.flatMap((json) => (json ? [JSON.parse(json) as Delivery] : [])),
    nextCursor: ids.length > limit ? cursor + limit : null,
  };
}

export interface EndpointSummary {
  url: string;
  /** Deliveries to it now in each status. */
  deliveries: Record<Delivery['status'], number>;
}

/**
 * The configured endpoints (URLs only, never the secret) and how their deliveries stand. A
 * delivery's id ends with its endpoint's position in `urls` (`<event id>-<index>`).
 */
export async function endpointSummaries(redis: Redis, urls: readonly string[]): Promise<EndpointSummary[]> {
  const summaries = urls.map((url) => ({
    url,
    deliveries: Object.fromEntries(statuses.map((s) => [s, 0])) as Record<Delivery['status'], number>,
  }));
  for (const status of statuses) {
    for (const id of await redis.zrange(indexKey(status), '0', '-1')) {
      const summary = summaries[Number(id.slice(id.lastIndexOf('-') + 1))];
      if (summary) summary.deliveries[status]++;
    }
  }
  return summaries;
}

/** Deletes the deliveries of events that occurred before `beforeMs` (retention); returns how many. */
export async function purgeDeliveries(redis: Redis, beforeMs: number): Promise<number> {
  let purged = 0;
  for (;;) {
    const ids = await redis.zrangebyscore(indexKey('all'), '-inf', `(${beforeMs}`, 'LIMIT', 0, 500);
    if (ids.length === 0) return purged;
    const writes = redis.multi().hdel(deliveriesKey(), ...ids);
    for (const status of ['all', ...statuses] as const) writes.zrem(indexKey(status), ...ids);
    await writes.exec();
    purged += ids.length;
  }
}

/** The producer side: one job per configured endpoint. */
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
      if (!(await this.#redis.hsetnx(deliveriesKey(), jobId, JSON.stringify(pending)))) continue;
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

  close(): Promise<void> {
    return this.#queue.close();
  }
}

/** The consumer side: POSTs each event, signed; records every outcome. */
export function startWebhookWorker(
  connection: RedisConnection,
  redis: Redis,
  settings: WebhookSettings,
  workerSettings: WorkerSettings,
  logger: Logger,
) {
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
    workerOptions(connection, workerSettings, 4),
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
