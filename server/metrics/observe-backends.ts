/**
 * What the node depends on and leaves behind: its Redis connection (each command's duration, up
 * or down), the BullMQ queues (depth, failed, stalled), webhook deliveries by status, attendance
 * events not yet in Redis, and its room leases.
 */
import { Queue, QueueEvents } from 'bullmq';
import type { Redis } from 'ioredis';
import { attendanceQueueName } from '../attendance/queue.ts';
import type { AttendanceRecorder } from '../attendance/recorder.ts';
import type { Cluster } from '../cluster/cluster.ts';
import { bullConnection, type RedisConnection } from '../redis/connection.ts';
import { retentionQueueName } from '../retention/queue.ts';
import { deliveryCounts } from '../webhooks/deliveries.ts';
import { webhookQueueName } from '../webhooks/queue.ts';
import type { Series } from './series.ts';

export const queueNames = [attendanceQueueName, webhookQueueName, retentionQueueName] as const;
const jobStates = ['waiting', 'active', 'delayed', 'failed'] as const;

export interface BackendMetrics {
  refresh(): Promise<void>;
  close(): Promise<void>;
}

export interface BackendSources {
  redis: Redis;
  connection: RedisConnection;
  attendance: AttendanceRecorder;
  cluster: Cluster;
}

/** Times every command of `redis` (ioredis sends each one through `sendCommand`). */
function timeCommands(series: Series, redis: Redis): void {
  const send = redis.sendCommand.bind(redis);
  redis.sendCommand = ((command, stream) => {
    const end = series.redisLatency.startTimer();
    // `end` would take the reply for labels: called with nothing.
    const observe = () => void end();
    const reply = send(command, stream);
    command.promise.then(observe, observe);
    return reply;
  }) as Redis['sendCommand'];
}

export function observeBackends(series: Series, sources: BackendSources): BackendMetrics {
  const { redis, attendance, cluster } = sources;
  timeCommands(series, redis);
  cluster.leases.on('renewed', () => series.leaseRenewals.inc());
  cluster.leases.on('lost', () => series.leaseLosses.inc());
  const connection = bullConnection(sources.connection);
  const queues = queueNames.map((name) => new Queue(name, { connection }));
  const events = queueNames.map((name) => {
    const queueEvents = new QueueEvents(name, { connection });
    queueEvents.on('stalled', () => series.stalledJobs.inc({ queue: name }));
    queueEvents.on('error', () => {}); // reconnects by itself; redis_up says when Redis is away
    series.stalledJobs.inc({ queue: name }, 0);
    return queueEvents;
  });
  for (const queue of queues) queue.on('error', () => {});

  return {
    async refresh() {
      series.redisUp.set(redis.status === 'ready' ? 1 : 0);
      series.attendancePending.set(attendance.pending);
      series.attendanceSpilled.set(attendance.spilled);
      if (redis.status !== 'ready') return;
      const [deliveries, ...counts] = await Promise.all([
        deliveryCounts(redis),
        ...queues.map((queue) => queue.getJobCounts(...jobStates)),
      ]);
      for (const [status, n] of Object.entries(deliveries)) series.webhookDeliveries.set({ status }, n);
      counts.forEach((count, i) => {
        for (const state of jobStates) series.queueJobs.set({ queue: queueNames[i], state }, count[state] ?? 0);
      });
    },
    async close() {
      await Promise.all([...events, ...queues].map((c) => c.close().catch(() => {})));
    },
  };
}
