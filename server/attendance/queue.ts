/**
 * The producer side of the `attendance` queue (the processor is workers/attendance.ts): a job at
 * session end, a schedule while a room is open, and the hourly weekly threshold check. Jobs carry
 * the room id only.
 */
import { Queue } from 'bullmq';
import { z } from 'zod';
import { idPattern } from '../../client-sdk/src/protocol/index.ts';
import type { Logger } from '../logger.ts';
import { bullConnection, type RedisConnection } from '../redis/connection.ts';

export const attendanceQueueName = 'haven-attendance';
/** The job that computes a session once more when it is over (and then sends `attendance.ready`). */
export const sessionEndJobName = 'session-end';
/** The weekly threshold check's job, and how often it runs. */
export const weeklyJobName = 'weekly-threshold';
export const weeklyCheckEveryMs = 3_600_000;

/** Job data: ids only. */
export interface AttendanceJob {
  room: string;
}

const attendanceJobSchema = z.object({ room: z.string().regex(idPattern) }) satisfies z.ZodType<AttendanceJob>;

/** A room job's data as the processor takes it; throws (the job fails) when it names no room. */
export function attendanceJobOf(data: unknown): AttendanceJob {
  const parsed = attendanceJobSchema.safeParse(data);
  if (!parsed.success) throw new Error('malformed attendance job');
  return parsed.data;
}

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
    await this.#queue.add(sessionEndJobName, { room }, { attempts: 5, backoff: { type: 'exponential', delay: 1_000 } });
  }

  /** `roomOpened` and `roomClosed` for callers that do not wait: a job not queued is logged, never thrown. */
  inBackground(logger: Logger): { roomOpened(room: string): void; roomClosed(room: string): void } {
    const logged = (room: string, work: Promise<void>) =>
      void work.catch((err: Error) =>
        logger.error({ room, err: { message: err.message } }, 'attendance job not queued'),
      );
    return {
      roomOpened: (room) => logged(room, this.roomOpened(room)),
      roomClosed: (room) => logged(room, this.roomClosed(room)),
    };
  }

  close(): Promise<void> {
    return this.#queue.close();
  }
}
