/**
 * The `attendance` processor (its queue: server/attendance/queue.ts): computes a room's
 * attendance from its event stream, at session end and every few minutes while it runs, and
 * stores the result where the admin API reads it (server/attendance/results.ts). The job carries
 * the room id only; recomputing from the stream makes the processor idempotent (a job run twice,
 * or retried after a crash, stores the same result).
 */
import { type Job, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { computeAttendance, type SessionAttendance } from '../server/attendance/compute.ts';
import { type AttendanceEvent, readAttendanceEvents } from '../server/attendance/event.ts';
import {
  type AttendanceJob,
  attendanceJobOf,
  attendanceQueueName,
  sessionEndJobName,
  weeklyJobName,
} from '../server/attendance/queue.ts';
import { hasAttendance, sessionsBetween, storeAttendance } from '../server/attendance/results.ts';
import { isRoomLeased, lastServedAt } from '../server/cluster/leases.ts';
import type { Logger } from '../server/logger.ts';
import type { RedisConnection } from '../server/redis/connection.ts';
import type { RoomStore } from '../server/rooms/room-store.ts';
import type { EmitWebhook } from '../server/webhooks/events.ts';
import { type WorkerSettings, workerOptions } from './options.ts';
import { checkClosedWeek } from './weekly.ts';

export interface AttendanceDeps {
  redis: Redis;
  store: RoomStore;
  reconnectGraceMs: number;
  now?: () => number;
  /** Queues a webhook event; rejects if it could not (the job is then retried). */
  emit?: EmitWebhook;
  /** The program's time zone (weeks) and weekly threshold, for the weekly check. */
  program: { timeZone: string; weeklyThresholdHours: number };
}

/** Computes and stores one room's attendance; returns it. */
export async function processAttendance(deps: AttendanceDeps, room: string): Promise<SessionAttendance | undefined> {
  const definition = await deps.store.get(room);
  if (!definition) return undefined;
  const events = await readAttendanceEvents(deps.redis, room);
  // Retention purged the events of an old session: its stored records are final, keep them.
  if (events.length === 0 && (await hasAttendance(deps.redis, room))) return undefined;
  const result = computeAttendance({
    room: definition,
    events,
    reconnectGraceMs: deps.reconnectGraceMs,
    now: (deps.now ?? Date.now)(),
    ...(await orphaned(deps.redis, room, events)),
  });
  const at = result.scheduled?.start ?? result.sessionStartedAt ?? (deps.now ?? Date.now)();
  await storeAttendance(deps.redis, room, result, at);
  return result;
}

/**
 * A session not ended that no node serves (its node died and nobody has rejoined it anywhere):
 * billed until the last moment it was known to be served, not until now.
 */
async function orphaned(redis: Redis, room: string, events: AttendanceEvent[]): Promise<{ servedUntil?: number }> {
  const last = events.findLast((e) => e.type === 'sessionStarted' || e.type === 'sessionEnded');
  if (last?.type !== 'sessionStarted' || (await isRoomLeased(redis, room))) return {};
  return { servedUntil: (await lastServedAt(redis, room)) ?? 0 };
}

/** Runs in the node by default, or alone (`npm run workers`). */
export function startAttendanceWorker(
  connection: RedisConnection,
  deps: AttendanceDeps,
  settings: WorkerSettings,
  logger: Logger,
): Worker<AttendanceJob> {
  const log = logger.child({ component: 'attendance-worker' });
  const worker = new Worker<AttendanceJob>(
    attendanceQueueName,
    async (job: Job<AttendanceJob>) => {
      if (job.name === weeklyJobName) {
        const sessions = (fromMs: number, toMs: number) => sessionsBetween(deps.redis, fromMs, toMs);
        return checkClosedWeek({ ...deps, sessionsBetween: sessions }, (deps.now ?? Date.now)());
      }
      const { room } = attendanceJobOf(job.data);
      const result = await processAttendance(deps, room);
      if (result && job.name === sessionEndJobName) {
        // Keyed by the session, so a job retried after a crash queues the webhook once.
        await deps.emit?.('attendance.ready', { room, onceKey: String(result.sessionStartedAt) });
      }
      return { participants: result?.participants.length ?? 0 };
    },
    workerOptions(connection, settings, 2),
  );
  worker.on('failed', (job, err) =>
    log.error({ job: job?.id, room: job?.data.room, err: { message: err.message } }, 'attendance job failed'),
  );
  worker.on('completed', (job) => log.debug({ job: job.id, room: job.data.room }, 'attendance computed'));
  worker.on('error', (err) => log.warn({ err: { message: err.message } }, 'attendance worker error'));
  return worker;
}
