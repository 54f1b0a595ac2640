/**
 * The webhook processor: POSTs each queued event (server/webhooks/queue.ts) to its endpoint,
 * signed, and records every outcome as the delivery's state (server/webhooks/deliveries.ts).
 *
 * Signed with `signWebhook` of server-sdk/src/webhooks.ts, the module whose `verifyWebhook` a
 * portal's receiver checks deliveries with.
 */
import { type Job, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from '../server/logger.ts';
import type { RedisConnection } from '../server/redis/connection.ts';
import { type Delivery, saveDelivery } from '../server/webhooks/deliveries.ts';
import { type WebhookJob, type WebhookSettings, webhookJobOf, webhookQueueName } from '../server/webhooks/queue.ts';
import { signWebhook } from '../server-sdk/src/webhooks.ts';
import { type WorkerSettings, workerOptions } from './options.ts';

const requestTimeoutMs = 10_000;

/** POSTs each event, signed; records every outcome. */
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
      const { event, url } = webhookJobOf(job.data);
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
