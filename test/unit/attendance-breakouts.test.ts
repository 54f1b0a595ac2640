/**
 * Attendance with breakout rooms: time in a group is presence in the session (one record per
 * person, the same seconds as without the groups), and the record lists the moves, ids only.
 */
import pino from 'pino';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { computeLiveAttendance } from '../../server/attendance/compute.ts';
import { attendanceCsv, attendanceCsvHeader, parseCsv } from '../../server/attendance/csv.ts';
import { liveAttendanceReader } from '../../server/attendance/live.ts';
import type { AttendanceEvent } from '../../server/attendance/recorder.ts';
import { attendanceOf } from '../../server/attendance/results.ts';
import { schemaErrors } from '../helpers/openapi-schemas.ts';
import { compute, grace, H, presence, room, script, T } from './attendance-fixture.ts';

const toGroup = (breakout: string) => ({ breakout });
const toMain = { breakout: 'main' };
const withoutMoves = (events: AttendanceEvent[]) => events.filter((e) => e.type !== 'movedToBreakout');

/**
 * a: main → b1 → b2, drops in b2 and is back within the grace, → main at the recall. b stays in
 * the main room. The facilitator f visits b1 and comes back.
 */
function round(): AttendanceEvent[] {
  const { events, ev } = script();
  ev('sessionStarted', undefined, -60);
  ev('admitted', 'f', -60, { role: 'facilitator' });
  ev('admitted', 'a', 0, { role: 'participant' });
  ev('admitted', 'b', 0, { role: 'participant' });
  ev('movedToBreakout', 'a', 600, toGroup('b1')); // the round starts
  ev('movedToBreakout', 'f', 900, toGroup('b1')); // a visit
  ev('movedToBreakout', 'a', 1200, toGroup('b2')); // moved by the facilitator
  ev('movedToBreakout', 'f', 1300, toMain);
  ev('disconnected', 'a', 1500, { stage: 'admitted' });
  ev('reconnected', 'a', 1520, { stage: 'admitted' }); // within the 30 s grace: back in b2
  ev('movedToBreakout', 'a', 1800, toMain); // recall
  ev('left', 'a', 3 * H, { reason: 'left', stage: 'admitted' });
  ev('sessionEnded', undefined, 3 * H, { reason: 'ended' });
  return events;
}

test('main → b1 → b2 → main, a drop in a group: one record, present throughout, the moves in order', () => {
  const r = compute(round());
  const a = presence(r, 'a');
  assert.equal(a?.moves, [
    { at: T(600), breakout: 'b1' },
    { at: T(1200), breakout: 'b2' },
    { at: T(1800), breakout: null },
  ]);
  assert.is(r.participants.filter((p) => p.participant === 'a').length, 1);
  assert.equal(a?.intervals, [{ from: T(0), to: T(3 * H) }]);
  assert.is(a?.presentSeconds, 3 * H, 'wall-clock presence, the groups included');
  assert.is(a?.disconnections, 1);
  assert.equal(presence(r, 'f')?.moves, [
    { at: T(900), breakout: 'b1' },
    { at: T(1300), breakout: null },
  ]);
  assert.equal(presence(r, 'b')?.moves, []);
  // The moves are the only difference from the same session without them; duplicates count once.
  const strip = (x: typeof r) => ({ ...x, participants: x.participants.map((p) => ({ ...p, moves: [] })) });
  assert.equal(strip(r), compute(withoutMoves(round())));
  assert.equal(compute([...round(), ...round().reverse()]), r);
});

test('a move of someone never admitted, waiting, gone, or after the session ended changes nothing', () => {
  const { events, ev } = script();
  ev('sessionStarted', undefined, 0);
  ev('admitted', 'a', 0, { role: 'participant' });
  ev('waiting', 'w', 10);
  ev('movedToBreakout', 'x', 20, toGroup('b1')); // never seen
  ev('movedToBreakout', 'd', 20, toGroup('b1')); // on the roster, never came
  ev('movedToBreakout', 'w', 30, toGroup('b1')); // waiting
  ev('left', 'a', 100, { reason: 'left', stage: 'admitted' });
  ev('movedToBreakout', 'a', 110, toGroup('b1')); // gone
  ev('sessionEnded', undefined, 200);
  ev('movedToBreakout', 'w', 210, toGroup('b2'));
  const r = compute(events);
  assert.equal(r, compute(withoutMoves(events)));
  assert.is(presence(r, 'x'), undefined, 'no record for a stray move');
  assert.is(presence(r, 'd')?.firstSeenAt, null);
  assert.is(presence(r, 'd')?.status, 'no-show');
  assert.equal(presence(r, 'a')?.moves, []);
});

test('back in the session after leaving from a group (or the waiting room): in the main room again', () => {
  const { events, ev } = script();
  ev('sessionStarted', undefined, 0);
  ev('admitted', 'a', 0, { role: 'participant' });
  ev('admitted', 'b', 0, { role: 'participant' });
  ev('movedToBreakout', 'a', 60, toGroup('b1'));
  ev('movedToBreakout', 'b', 60, toGroup('b2'));
  ev('disconnected', 'a', 100, { stage: 'admitted' });
  ev('left', 'a', 130, { reason: 'disconnected', stage: 'admitted' }); // the grace ran out
  ev('movedToWaitingRoom', 'b', 140);
  ev('waiting', 'a', 200);
  ev('admitted', 'a', 210, { role: 'participant' }); // a newcomer lands in the main room
  ev('admitted', 'b', 220, { role: 'participant' });
  ev('movedToBreakout', 'a', 300, toGroup('b1'));
  ev('sessionEnded', undefined, 400);
  const r = compute(events);
  assert.equal(presence(r, 'a')?.moves, [
    { at: T(60), breakout: 'b1' },
    { at: T(210), breakout: null },
    { at: T(300), breakout: 'b1' },
  ]);
  assert.equal(presence(r, 'b')?.moves, [
    { at: T(60), breakout: 'b2' },
    { at: T(220), breakout: null },
  ]);
  assert.equal(presence(r, 'a')?.intervals, [
    { from: T(0), to: T(100) },
    { from: T(210), to: T(400) },
  ]);
});

test('a move to where one is already, or naming no group id, is not listed', () => {
  const { events, ev } = script();
  ev('admitted', 'a', 0, { role: 'participant' });
  ev('movedToBreakout', 'a', 10, toMain); // in the main room already
  ev('movedToBreakout', 'a', 20, toGroup('b1'));
  ev('movedToBreakout', 'a', 30, toGroup('b1'));
  ev('movedToBreakout', 'a', 40); // no place
  ev('movedToBreakout', 'a', 50, toGroup('Anxiety group')); // a name, not an id
  ev('movedToBreakout', 'a', 60, { breakout: 2 });
  assert.equal(presence(compute(events), 'a')?.moves, [{ at: T(20), breakout: 'b1' }]);
});

test('live view: a move, or a drop inside a group within the grace, never shows anyone absent', async () => {
  const events = round().filter((e) => e.at <= T(1510)); // a dropped in b2 10 s ago
  const live = computeLiveAttendance({ room, events, reconnectGraceMs: grace, now: T(1510), openGraceAsPresent: true });
  assert.is(live.presentSince.get('a'), T(0));
  assert.is(live.presentSince.get('f'), T(-60));
  const read = liveAttendanceReader({
    redis: { xrange: async () => [] } as never, // nothing written yet: the recorder holds them all
    recorder: { pendingFor: () => events },
    reconnectGraceMs: grace,
    logger: pino({ level: 'silent' }),
    now: () => T(1510),
  });
  const view = await read(room);
  const a = view.participants.find((p) => p.participantId === 'a');
  assert.equal(a, { participantId: 'a', role: 'participant', present: true, presentSince: T(0), secondsPresent: 1510 });
  assert.ok(view.participants.filter((p) => p.role !== null).every((p) => p.present));
});

test('CSV: the moves in their own column, main as the events name it', () => {
  const csv = parseCsv(attendanceCsv(compute(round())));
  const column = attendanceCsvHeader.indexOf('breakout_moves');
  assert.is(csv[0]?.[column], 'breakout_moves');
  const rowOf = (p: string) => csv.find((r) => r[1] === p);
  assert.is(
    rowOf('a')?.[column],
    '2026-12-01T22:10:00.000Z b1;2026-12-01T22:20:00.000Z b2;2026-12-01T22:30:00.000Z main',
  );
  assert.is(rowOf('b')?.[column], '');
});

test('docs/openapi.json describes the record with its moves, ids only', () => {
  const answer = { ok: true, data: { ...compute(round()), computedAt: new Date(T(3 * H)).toISOString() } };
  assert.equal(schemaErrors('SessionAttendanceAnswer', answer), []);
  const move = { at: T(600), breakout: 'b1' };
  assert.equal(schemaErrors('BreakoutMove', { ...move, breakout: null }), []);
  assert.ok(schemaErrors('BreakoutMove', { ...move, breakout: 'Anxiety group' }).length > 0, 'a name');
  assert.ok(schemaErrors('BreakoutMove', { ...move, name: 'Pairs' }).length > 0, 'nothing beside the id');
});

test('a record stored before moves were listed reads back with none', async () => {
  const { participants, ...session } = compute(withoutMoves(round()));
  const old = { ...session, participants: participants.map(({ moves: _, ...p }) => p), computedAt: 'then' };
  const redis = { get: async () => JSON.stringify(old) } as never;
  const read = await attendanceOf(redis, room.id);
  assert.equal(
    read?.participants.map((p) => p.moves),
    participants.map(() => []),
  );
});

test.run();
