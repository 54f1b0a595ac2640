/**
 * The `attendance` queue: computes a room's attendance from its event stream, at session end and
 * every few minutes while it runs, and stores the result where the admin API reads it. The job
 * carries the room id only; recomputing from the stream makes the processor idempotent (a job
 * run twice, or retried after a crash, stores the same result).
 */
import { type Job, Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { computeAttendance, type SessionAttendance } from '../server/attendance/compute.ts';
import type { AttendanceEvent } from '../server/attendance/recorder.ts';
import { isRoomLeased, lastServedAt } from '../server/cluster/leases.ts';
import type { Logger } from '../server/logger.ts';
import { bullConnection, type RedisConnection } from '../server/redis/connection.ts';
import type { RoomStore } from '../server/rooms/room-store.ts';
import { type WorkerSettings, workerOptions } from './options.ts';
import type { WebhookEventInput, WebhookEventType } from './webhooks.ts';
import { checkClosedWeek, weeklyCheckEveryMs, weeklyJobName } from './weekly.ts';

export const attendanceQueueName = 'haven-attendance';

/** Job data: ids only. */
export interface AttendanceJob {
  room: string;
}

export const attendanceResultKey = (room: string, prefix = 'haven:') => `${prefix}attendance-result:${room}`;
/** Per participant: the rooms they have attendance in, scored by the session's time. */
const participantSessionsKey = (participant: string, prefix = 'haven:') =>
  `${prefix}participant-sessions:${participant}`;

/** Every computed session, scored by its time (for the weekly threshold check). */
const sessionsIndexKey = (prefix = 'haven:') => `${prefix}attendance-sessions`;
const readPageSize = 1_000;

/** Reads a room's attendance events from its stream, oldest first, a page at a time. */
export async function readAttendanceEvents(redis: Redis, room: string, prefix = 'haven:'): Promise<AttendanceEvent[]> {
  const key = `${prefix}attendance:${room}`;
  const entries: [string, string[]][] = [];
  for (let start = '-'; ; ) {
    const page = await redis.xrange(key, start, '+', 'COUNT', readPageSize);
    entries.push(...page);
    if (page.length < readPageSize) break;
    start = `(${(page[page.length - 1] as [string, string[]])[0]}`;
  }
  return entries.map(([id, fields]) => {
    const f = new Map<string, string>();
    for (let i = 0; i + 1 < fields.length; i += 2) f.set(fields[i] as string, fields[i + 1] as string);
    const details = f.get('details');
    return {
      id,
      room,
      type: f.get('type') as AttendanceEvent['type'],
      at: Number(f.get('at')),
      ...(f.has('participant') ? { participant: f.get('participant') } : {}),
      ...(details ? { details: JSON.parse(details) } : {}),
    };
  });
}

export interface AttendanceDeps {
  redis: Redis;
  store: RoomStore;
  reconnectGraceMs: number;
  now?: () => number;
  /** Queues a webhook event; rejects if it could not (the job is then retried). */
  emit?: (type: WebhookEventType, input: WebhookEventInput) => Promise<void>;
  /** The program's time zone (weeks) and weekly threshold, for the weekly check. */
  program: { timeZone: string; weeklyThresholdHours: number };
}

/** Computes and stores one room's attendance; returns it. */
export async function processAttendance(deps: AttendanceDeps, room: string): Promise<SessionAttendance | undefined> {
  const definition = await deps.store.get(room);
  if (!definition) return undefined;
  const events = await readAttendanceEvents(deps.redis, room);
  // Retention purged the events of an old session: its stored records are final, keep them.
  if (events.length === 0 && (await deps.redis.exists(attendanceResultKey(room)))) return undefined;
  const result = computeAttendance({
    room: definition,
    events,
    reconnectGraceMs: deps.reconnectGraceMs,
    now: (deps.now ?? Date.now)(),
    ...(await orphaned(deps.redis, room, events)),
  });
  const at = result.scheduled?.start ?? result.sessionStartedAt ?? (deps.now ?? Date.now)();
  const writes = deps.redis
    .multi()
    .set(attendanceResultKey(room), JSON.stringify({ ...result, computedAt: new Date().toISOString() }));
  for (const p of result.participants) writes.zadd(participantSessionsKey(p.participant), at, room);
  writes.zadd(sessionsIndexKey(), at, room);
  await writes.exec();
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

/** A participant's computed sessions with a time in [fromMs, toMs]. */
export function participantSessions(
  redis: Redis,
  participant: string,
  fromMs: number,
  toMs: number,
): Promise<SessionAttendance[]> {
  return sessionsIn(redis, participantSessionsKey(participant), fromMs, toMs);
}

/** Every computed session with a time in [fromMs, toMs]. */
export function sessionsBetween(redis: Redis, fromMs: number, toMs: number): Promise<SessionAttendance[]> {
  return sessionsIn(redis, sessionsIndexKey(), fromMs, toMs);
}

async function sessionsIn(redis: Redis, index: string, fromMs: number, toMs: number): Promise<SessionAttendance[]> {
  const rooms = await redis.zrangebyscore(index, fromMs, toMs);
  if (rooms.length === 0) return [];
  const results = await redis.mget(rooms.map((room) => attendanceResultKey(room)));
  return results.flatMap((json) => (json ? [JSON.parse(json) as SessionAttendance] : []));
}

/**
 * The producer side, used by the node: a job at session end, a schedule while a room is open, and
 * the hourly weekly threshold check.
 */
export class AttendanceQueue {
  readonly #queue: Queue<AttendanceJob>;
  readonly #intervalMs: number;

  constructor(connection: RedisConnection, intervalMs: number) {
    this.#queue = new Queue<AttendanceJob>(attendanceQueueName, { connection: bullConnection(connection) });
    this.#intervalMs = intervalMs;
  }

  /** Schedules the weekly threshold check (idempotent: every node may call it). */
  async scheduleWeeklyCheck(): Promise<void> {
    await this.#queue.upsertJobScheduler(weeklyJobName, { every: weeklyCheckEveryMs }, { name: weeklyJobName });
  }

  /** Recomputes every `intervalMs` while the room is open. */
  async roomOpened(room: string): Promise<void> {
    await this.#queue.upsertJobScheduler(`periodic:${room}`, { every: this.#intervalMs }, { data: { room } });
  }

  /** Stops the periodic job and computes once more, now that the session is over. */
  async roomClosed(room: string): Promise<void> {
    await this.#queue.removeJobScheduler(`periodic:${room}`);
    await this.#queue.add('session-end', { room }, { attempts: 5, backoff: { type: 'exponential', delay: 1_000 } });
  }

  close(): Promise<void> {
    return this.#queue.close();
  }
}

/** The consumer side: runs in the node by default, or alone (`npm run workers`). */
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
      const result = await processAttendance(deps, job.data.room);
      if (result && job.name === 'session-end') {
        // Keyed by the session, so a job retried after a crash queues the webhook once.
        await deps.emit?.('attendance.ready', { room: job.data.room, onceKey: String(result.sessionStartedAt) });
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
