/**
 * What billing counts (README: Attendance): seconds in the session, truncated, never time at the
 * consent gate or in the waiting room; lateness runs to the admission.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { computeAttendance } from '../../server/attendance/compute.ts';
import type { AttendanceEvent, AttendanceEventType } from '../../server/attendance/event.ts';
import { weeklyTotals } from '../../server/attendance/weekly.ts';

const start = Date.parse('2026-12-01T17:00:00-05:00');
const room = {
  id: 'grp-bill',
  schedule: { start: '2026-12-01T17:00:00-05:00', end: '2026-12-01T20:00:00-05:00', timeZone: 'America/New_York' },
};

/** One participant's events, `at` in ms after the scheduled start, ids in order. */
function attendance(...steps: [AttendanceEventType, number][]) {
  const events: AttendanceEvent[] = steps.map(([type, ms], seq) => ({
    id: `${start + ms}-${seq}`,
    type,
    room: room.id,
    at: start + ms,
    ...(type === 'sessionStarted' || type === 'sessionEnded' ? {} : { participant: 'p' }),
  }));
  const result = computeAttendance({ room, events, reconnectGraceMs: 30_000, now: start + 4 * 3_600_000 });
  return { session: result, p: result.participants.find((x) => x.participant === 'p') };
}

test('presentSeconds truncates: 3.997 s present is 3, 0.999 s is 0', () => {
  const { p } = attendance(['sessionStarted', 0], ['admitted', 0], ['left', 3_997]);
  assert.is(p?.presentSeconds, 3);
  assert.is(attendance(['sessionStarted', 0], ['admitted', 0], ['left', 999]).p?.presentSeconds, 0);
});

test('presentSeconds truncates the total, not each interval: 1.6 s twice is 3', () => {
  const { p } = attendance(
    ['sessionStarted', 0],
    ['admitted', 0],
    ['left', 1_600],
    ['admitted', 10_000],
    ['left', 11_600],
  );
  assert.is(p?.presentSeconds, 3);
  assert.equal(p?.intervals.length, 2);
});

test('time in the waiting room is never billed; it counts as lateness', () => {
  const { session, p } = attendance(
    ['sessionStarted', -600_000],
    ['waiting', -300_000],
    ['admitted', 120_000],
    ['left', 3_720_500],
  );
  assert.is(p?.waitingSeconds, 420);
  assert.is(p?.presentSeconds, 3_600);
  assert.is(p?.lateArrivalSeconds, 120, 'on time at the door, admitted 2 min after the start');
  assert.is(weeklyTotals([session], 'p', 'America/New_York')[0]?.presentSeconds, 3_600, 'weeks sum presentSeconds');
});

test.run();
