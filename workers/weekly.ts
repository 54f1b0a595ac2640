/**
 * The weekly threshold check. Once an ISO week of the program (in its time zone) has closed,
 * every participant with a session in it (attended or on its roster) whose hours fall below the
 * weekly threshold gets a `threshold.missed` webhook. It runs hourly as a job of the attendance
 * queue (scheduled by server/attendance/queue.ts); the event's id is fixed by participant and
 * week, so checking a week again (a job retried after a crash, two nodes' schedules) sends
 * nothing twice.
 */
import type { Redis } from 'ioredis';
import type { SessionAttendance } from '../server/attendance/compute.ts';
import { isoWeekOf, weeklyTotals } from '../server/attendance/weekly.ts';
import type { EmitWebhook } from '../server/webhooks/events.ts';

const dayMs = 86_400_000;
/** A week is checked this long after it closes: a session ending near midnight is final by then. */
const settleMs = 2 * 3_600_000;
/** Marks a week as checked; kept long enough to outlive every re-check. */
const checkedKey = (week: string, prefix = 'haven:') => `${prefix}threshold-checked:${week}`;
const checkedTtlS = 60 * 86_400;

export interface WeeklyCheckDeps {
  redis: Redis;
  program: { timeZone: string; weeklyThresholdHours: number };
  emit?: EmitWebhook;
  /** Computed sessions with a time in [fromMs, toMs]. */
  sessionsBetween: (fromMs: number, toMs: number) => Promise<SessionAttendance[]>;
}

/**
 * The latest week that closed at least `settleMs` ago. Checked hourly, every week is seen during
 * the week after it (a daylight-saving hour may make one run look two weeks back: already done).
 */
export function lastClosedWeek(now: number, timeZone: string): string {
  return isoWeekOf(now - 7 * dayMs - settleMs, timeZone);
}

export interface WeeklyCheck {
  week: string;
  /** False when the week had already been checked. */
  checked: boolean;
  participants: number;
  missed: number;
}

export async function checkClosedWeek(deps: WeeklyCheckDeps, now: number): Promise<WeeklyCheck> {
  const { timeZone, weeklyThresholdHours } = deps.program;
  const week = lastClosedWeek(now, timeZone);
  if (await deps.redis.exists(checkedKey(week))) return { week, checked: false, participants: 0, missed: 0 };
  // Every session of that week has a time within the last 16 days.
  const sessions = await deps.sessionsBetween(now - 16 * dayMs, now);
  const participants = new Set(sessions.flatMap((s) => s.participants.map((p) => p.participant)));
  let inWeek = 0;
  let missed = 0;
  for (const participant of participants) {
    const total = weeklyTotals(sessions, participant, timeZone, weeklyThresholdHours).find((t) => t.week === week);
    if (!total) continue;
    inWeek++;
    if (total.meetsThreshold) continue;
    missed++;
    await deps.emit?.('threshold.missed', {
      participant,
      data: {
        week,
        presentSeconds: total.presentSeconds,
        sessions: total.sessions,
        thresholdHours: weeklyThresholdHours,
      },
      onceKey: week,
    });
  }
  await deps.redis.set(checkedKey(week), String(now), 'EX', checkedTtlS);
  return { week, checked: true, participants: inWeek, missed };
}
