import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { computeLiveAttendance } from '../../server/attendance/compute.ts';
import { lateWritesBeforeRestores } from '../../server/attendance/outages.ts';
import type { AttendanceEvent, AttendanceEventType } from '../../server/attendance/recorder.ts';
import { compute, grace, H, presence, room, script, T } from './attendance-fixture.ts';

/* ---- Node outages: billed from the last moment the old owner served the room ---------------- */

/** a, b, c, w admitted or waiting; d dropped before the outage; the node dies after 80 s, the room is restored at 100 s. */
function outage(lastServedAt: number | null = T(80)) {
  const { events, ev } = script();
  ev('sessionStarted', undefined, 0);
  for (const p of ['a', 'b', 'c', 'd']) ev('admitted', p, 0, { role: 'participant' });
  ev('waiting', 'w', 10);
  ev('disconnected', 'd', 70, { stage: 'admitted' });
  ev('restored', undefined, 100, lastServedAt === null ? undefined : { lastServedAt });
  return { events, ev };
}

test('outage: back within the grace from the last-served moment is one interval; later, a gap from it; never, ends there', () => {
  const { events, ev } = outage();
  ev('reconnected', 'd', 104, { stage: 'admitted' }); // dropped at 70: 34 s, its own grace ran out
  ev('reconnected', 'a', 105, { stage: 'admitted' }); // 25 s after 80: within the 30 s grace
  ev('reconnected', 'w', 108, { stage: 'waiting' }); // waiting: 28 s
  ev('reconnected', 'b', 115, { stage: 'admitted' }); // 35 s after: a gap from 80 to 115
  ev('left', 'c', 130, { reason: 'disconnected', stage: 'admitted' }); // the restored room's grace timer
  ev('sessionEnded', undefined, 200);
  const r = compute(events);
  assert.equal(presence(r, 'a')?.intervals, [{ from: T(0), to: T(200) }]);
  assert.equal(presence(r, 'b')?.intervals, [
    { from: T(0), to: T(80) },
    { from: T(115), to: T(200) },
  ]);
  assert.equal(presence(r, 'c')?.intervals, [{ from: T(0), to: T(80) }]);
  assert.is(presence(r, 'c')?.lastLeftAt, T(80));
  assert.equal(presence(r, 'd')?.intervals, [
    { from: T(0), to: T(70) },
    { from: T(104), to: T(200) },
  ]);
  assert.is(presence(r, 'w')?.waitingSeconds, 190);
  assert.equal(
    ['a', 'b', 'c', 'd'].map((p) => presence(r, p)?.presentSeconds),
    [200, 165, 80, 166],
  );
  // The outage counts as a disconnection of everyone it cut (d's was counted when it happened).
  assert.equal(
    ['a', 'b', 'c', 'd'].map((p) => presence(r, p)?.disconnections),
    [1, 1, 1, 1],
  );
});

test('outage: the moment is the later of the last lease renewal and the last event before the restore', () => {
  for (const [lastServedAt, cutoff] of [
    [T(80), 80], // renewed after the last event
    [T(50), 70], // the last event (d's drop at 70) is later
    [null, 70], // no renewal known: the last event
    [T(150), 100], // a clock ahead of the restoring node's: never after the restore itself
  ] as const) {
    const { events, ev } = outage(lastServedAt);
    ev('sessionEnded', undefined, 200);
    const r = compute(events);
    assert.equal(presence(r, 'a')?.intervals, [{ from: T(0), to: T(cutoff) }], `lastServedAt ${lastServedAt}`);
  }
});

test('outage: a second restore before anyone is back dates nobody twice; the first grace still counts', () => {
  const { events, ev } = outage();
  ev('restored', undefined, 106, { lastServedAt: T(104) }); // the new owner died too, before anyone came back
  ev('reconnected', 'a', 109, { stage: 'admitted' });
  ev('sessionEnded', undefined, 200);
  const r = compute(events);
  assert.equal(presence(r, 'a')?.intervals, [{ from: T(0), to: T(200) }], 'back 29 s after 80: recovered');
  assert.is(presence(r, 'a')?.disconnections, 1);
  assert.equal(presence(r, 'b')?.intervals, [{ from: T(0), to: T(80) }]);
});

test('outage: an event of the old owner written after the restore counts where it happened, not after', () => {
  const { events, ev } = outage();
  ev('reconnected', 'a', 104, { stage: 'admitted' });
  // Recorded by the old owner at 75 (a dropped), written late: the recorder puts it after the top.
  const late: AttendanceEvent = { id: `${T(104)}-1`, type: 'disconnected', room: room.id, participant: 'a', at: T(75) };
  events.push(late, { id: `${T(200)}-0`, type: 'sessionEnded', room: room.id, at: T(200) });
  const r = compute(events);
  assert.equal(presence(r, 'a')?.intervals, [{ from: T(0), to: T(200) }], 'dropped at 75, back at 104: recovered');
  assert.is(presence(r, 'a')?.disconnections, 1, 'one disconnection, the real one');
  assert.equal(presence(r, 'b')?.intervals, [{ from: T(0), to: T(80) }]);
});

test('outage: a later owner with a slower clock is not taken for a late writer', () => {
  const at = (id: number, type: AttendanceEventType, s: number, participant?: string): AttendanceEvent => ({
    id: `${T(200)}-${id}`,
    type,
    room: room.id,
    at: T(s),
    ...(participant ? { participant } : {}),
  });
  const events = [
    at(0, 'admitted', 0, 'a'),
    at(1, 'restored', 100), // node B
    at(2, 'reconnected', 101, 'a'),
    at(3, 'restored', 90), // node C, its clock 20 s behind B's
    at(4, 'reconnected', 95, 'a'), // C's own event, earlier than B's restore by the clocks: stays
  ];
  assert.equal(lateWritesBeforeRestores(events), events);
});

test('no node serves the session: nobody is billed past the last-served moment, whatever "now" is', () => {
  const s = script();
  s.ev('sessionStarted', undefined, 0);
  s.ev('admitted', 'a', 0, { role: 'participant' });
  s.ev('waiting', 'w', 5);
  s.ev('admitted', 'b', 10, { role: 'participant' });
  s.ev('disconnected', 'b', 20, { stage: 'admitted' });
  const orphan = compute(s.events, T(H), { servedUntil: T(60) });
  assert.equal(presence(orphan, 'a')?.intervals, [{ from: T(0), to: T(60) }]);
  assert.is(presence(orphan, 'a')?.lastLeftAt, T(60));
  assert.equal(presence(orphan, 'b')?.intervals, [{ from: T(10), to: T(20) }]);
  assert.is(presence(orphan, 'w')?.waitingSeconds, 55);
  // Served (no `servedUntil`): still present at "now".
  assert.equal(presence(compute(s.events, T(H)), 'a')?.intervals, [{ from: T(0), to: T(H) }]);
  // An ended session is what it is.
  s.ev('sessionEnded', undefined, 30);
  assert.equal(presence(compute(s.events, T(H), { servedUntil: T(60) }), 'a')?.intervals, [{ from: T(0), to: T(30) }]);
});

test('outage, live view: present while the grace from the last-served moment is open, then not', () => {
  const { events } = outage();
  const live = (now: number) =>
    computeLiveAttendance({ room, events, reconnectGraceMs: grace, now, openGraceAsPresent: true });
  assert.is(live(T(105)).presentSince.get('a'), T(0), '25 s after the last-served moment: place kept');
  const later = live(T(115));
  assert.is(later.presentSince.get('a'), undefined, '35 s after: gone');
  assert.equal(presence(later.attendance, 'a')?.intervals, [{ from: T(0), to: T(80) }]);
});

test.run();
