/**
 * Webhook deliveries, one per event and endpoint, with their outcome, for the admin API: a hash
 * (id → JSON) and an index of every id and one per status, scored by when the event occurred
 * (the admin API pages through them newest first; retention purges the oldest). The one codec of
 * these keys: the queue, the webhook worker, the admin API and retention use it.
 */
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { parseJson } from '../redis/codec.ts';
import { type WebhookEvent, webhookEventSchema } from './events.ts';

export const deliveryStatuses = ['pending', 'delivered', 'retrying', 'dead'] as const;
export type DeliveryStatus = (typeof deliveryStatuses)[number];

export interface Delivery {
  id: string;
  event: WebhookEvent;
  url: string;
  status: DeliveryStatus;
  attempts: number;
  lastStatus?: number;
  lastError?: string;
  updatedAt: string;
}

const deliverySchema = z.object({
  id: z.string(),
  event: webhookEventSchema,
  url: z.string(),
  status: z.enum(deliveryStatuses),
  attempts: z.number(),
  lastStatus: z.number().optional(),
  lastError: z.string().optional(),
  updatedAt: z.string(),
}) satisfies z.ZodType<Delivery>;

const deliveriesKey = (prefix = 'haven:') => `${prefix}webhook-deliveries`;
const indexKey = (status: DeliveryStatus | 'all', prefix = 'haven:') => `${prefix}webhook-deliveries:${status}`;

/** Claims a delivery's id for a new delivery; false when it exists already (an event emitted again). */
export async function claimDelivery(redis: Redis, delivery: Delivery): Promise<boolean> {
  return (await redis.hsetnx(deliveriesKey(), delivery.id, JSON.stringify(delivery))) === 1;
}

/** Stores a delivery's state and files it under its status. */
export async function saveDelivery(redis: Redis, delivery: Delivery): Promise<void> {
  const score = Date.parse(delivery.event.occurredAt);
  const writes = redis.multi().hset(deliveriesKey(), delivery.id, JSON.stringify(delivery));
  writes.zadd(indexKey('all'), score, delivery.id);
  for (const status of deliveryStatuses) {
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
  options: { status?: DeliveryStatus; limit?: number; cursor?: number } = {},
): Promise<DeliveryPage> {
  const limit = options.limit ?? 20;
  const cursor = options.cursor ?? 0;
  const ids = await redis.zrevrange(indexKey(options.status ?? 'all'), cursor, cursor + limit);
  const page = ids.slice(0, limit);
  const values = page.length ? await redis.hmget(deliveriesKey(), ...page) : [];
  return {
    deliveries: values.flatMap((json) => {
      const delivery = json ? parseJson(deliverySchema, json) : undefined;
      return delivery ? [delivery] : [];
    }),
    nextCursor: ids.length > limit ? cursor + limit : null,
  };
}

export interface EndpointSummary {
  url: string;
  /** Deliveries to it now in each status. */
  deliveries: Record<DeliveryStatus, number>;
}

/**
 * The configured endpoints (URLs only, never the secret) and how their deliveries stand. A
 * delivery's id ends with its endpoint's position in `urls` (`<event id>-<index>`).
 */
export async function endpointSummaries(redis: Redis, urls: readonly string[]): Promise<EndpointSummary[]> {
  const summaries = urls.map((url) => ({
    url,
    deliveries: Object.fromEntries(deliveryStatuses.map((s) => [s, 0])) as Record<DeliveryStatus, number>,
  }));
  for (const status of deliveryStatuses) {
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
    for (const status of ['all', ...deliveryStatuses] as const) writes.zrem(indexKey(status), ...ids);
    await writes.exec();
    purged += ids.length;
  }
}

/** How many deliveries are on record in each status (for metrics). */
export async function deliveryCounts(redis: Redis): Promise<Record<DeliveryStatus, number>> {
  const counts = await Promise.all(deliveryStatuses.map((status) => redis.zcard(indexKey(status))));
  return Object.fromEntries(deliveryStatuses.map((status, i) => [status, counts[i] ?? 0])) as Record<
    DeliveryStatus,
    number
  >;
}
