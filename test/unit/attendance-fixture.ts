/**
 * The attendance tests' session: a scheduled Tuesday group, a script of events with stream ids as
 * the recorder gives them, and the computation with the room's grace.
 */
import {
  type ComputeAttendanceInput,
  computeAttendance,
  type SessionAttendance,
} from '../../server/attendance/compute.ts';
import type { AttendanceEvent, AttendanceEventType } from '../../server/attendance/recorder.ts';

// Tuesday group, 17:00–20:00 in New York; the clock is the scheduled start plus seconds.
export const start = Date.parse('2026-12-01T17:00:00-05:00');
export const end = Date.parse('2026-12-01T20:00:00-05:00');
export const T = (s: number): number => start + s * 1000;
export const H = 3600;
export const room = {
  id: 'grp-42',
  schedule: { start: '2026-12-01T17:00:00-05:00', end: '2026-12-01T20:00:00-05:00', timeZone: 'America/New_York' },
  roster: ['a', 'b', 'c', 'd', 'e', 'f'],
};
export const grace = 30_000;

/** Events with stream ids as the recorder gives them (`<ms>-<seq>`, increasing). */
export function script() {
  const events: AttendanceEvent[] = [];
  let last: [number, number] = [0, -1];
  const ev = (
    type: AttendanceEventType,
    participant: string | undefined,
    atSeconds: number,
    details?: AttendanceEvent['details'],
  ): void => {
    const at = T(atSeconds);
    if (at < last[0]) throw new Error('script events out of order');
    const [ms, seq] = at > last[0] ? [at, 0] : [last[0], last[1] + 1];
    last = [ms, seq];
    const e: AttendanceEvent = { id: `${ms}-${seq}`, type, room: room.id, at };
    if (participant !== undefined) e.participant = participant;
    if (details !== undefined) e.details = details;
    events.push(e);
  };
  return { events, ev };
}

export const compute = (events: AttendanceEvent[], now = T(4 * H), extra: Partial<ComputeAttendanceInput> = {}) =>
  computeAttendance({ room, events, reconnectGraceMs: grace, now, ...extra });

export const presence = (r: SessionAttendance, p: string) => r.participants.find((x) => x.participant === p);
