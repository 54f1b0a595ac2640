import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { computeAttendance, type SessionAttendance } from '../../server/attendance/compute.ts';
import { attendanceCsv, parseCsv } from '../../server/attendance/csv.ts';
import type { AttendanceEvent } from '../../server/attendance/recorder.ts';
import { isoWeekOf, weeklyTotals } from '../../server/attendance/weekly.ts';
import { compute, end, grace, H, room, script, start, T } from './attendance-fixture.ts';

/** The session of the brief, events up to `until` seconds (all of it by default). */
function tuesday(until = Number.POSITIVE_INFINITY): AttendanceEvent[] {
  const { events, ev } = script();
  ev('sessionStarted', undefined, -300); // 16:55
  ev('consented', 'a', -120, { version: 1, hash: 'h' });
  ev('waiting', 'a', -120);
  ev('waiting', 'b', -90);
  ev('waiting', 'f', -60);
  ev('waiting', 'e', -30);
  ev('admitted', 'a', 0, { role: 'participant' });
  ev('admitted', 'b', 0, { role: 'participant' });
  ev('admitted', 'e', 0, { role: 'participant' });
  ev('admitted', 'f', 0, { role: 'participant' });
  ev('mediaConnected', 'a', 2, { direction: 'send' });
  ev('consented', 'g', 240, { version: 1, hash: 'h' });
  ev('waiting', 'g', 240);
  ev('denied', 'g', 300); // 17:05
  ev('waiting', 'c', 1150);
  ev('admitted', 'c', 1200, { role: 'participant' }); // 17:20, late
  ev('disconnected', 'a', 1800, { stage: 'admitted' }); // 17:30, back 10 s later
  ev('reconnected', 'a', 1810, { stage: 'admitted' });
  ev('disconnected', 'b', 3600, { stage: 'admitted' }); // 18:00, gone 2 minutes
  ev('movedToWaitingRoom', 'f', 3600); // 18:00
  ev('left', 'b', 3630, { reason: 'disconnected', stage: 'admitted' }); // grace expired
  ev('consented', 'b', 3720, { version: 1, hash: 'h' });
  ev('waiting', 'b', 3720);
  ev('admitted', 'b', 3730, { role: 'participant' });
  ev('admitted', 'f', 3900, { role: 'participant' }); // 18:05
  ev('removed', 'e', 5400, { reason: 'removed', stage: 'admitted' }); // 18:30
  ev('left', 'a', 3 * H, { reason: 'left', stage: 'admitted' }); // 20:00
  ev('sessionEnded', undefined, 3 * H, { reason: 'ended' });
  return events.filter((e) => e.at <= T(until));
}

const expected: SessionAttendance = {
  room: 'grp-42',
  sessionStartedAt: T(-300),
  sessionEndedAt: end,
  scheduled: { start, end },
  participants: [
    {
      participant: 'a',
      firstSeenAt: T(-120),
      admittedAt: start,
      lastLeftAt: end,
      presentSeconds: 3 * H,
      waitingSeconds: 120,
      disconnections: 1,
      lateArrivalSeconds: 0,
      earlyDepartureSeconds: 0,
      status: 'attended',
      intervals: [{ from: start, to: end }],
      moves: [],
    },
    {
      participant: 'b',
      firstSeenAt: T(-90),
      admittedAt: start,
      lastLeftAt: end,
      presentSeconds: 3 * H - 130,
      waitingSeconds: 90 + 10,
      disconnections: 1,
      lateArrivalSeconds: 0,
      earlyDepartureSeconds: 0,
      status: 'attended',
      intervals: [
        { from: start, to: T(3600) },
        { from: T(3730), to: end },
      ],
      moves: [],
    },
    {
      participant: 'c',
      firstSeenAt: T(1150),
      admittedAt: T(1200),
      lastLeftAt: end,
      presentSeconds: 3 * H - 1200,
      waitingSeconds: 50,
      disconnections: 0,
      lateArrivalSeconds: 1200,
      earlyDepartureSeconds: 0,
      status: 'attended',
      intervals: [{ from: T(1200), to: end }],
      moves: [],
    },
    {
      participant: 'd',
      firstSeenAt: null,
      admittedAt: null,
      lastLeftAt: null,
      presentSeconds: 0,
      waitingSeconds: 0,
      disconnections: 0,
      lateArrivalSeconds: 0,
      earlyDepartureSeconds: 0,
      status: 'no-show',
      intervals: [],
      moves: [],
    },
    {
      participant: 'e',
      firstSeenAt: T(-30),
      admittedAt: start,
      lastLeftAt: T(5400),
      presentSeconds: 5400,
      waitingSeconds: 30,
      disconnections: 0,
      lateArrivalSeconds: 0,
      earlyDepartureSeconds: 5400,
      status: 'removed',
      intervals: [{ from: start, to: T(5400) }],
      moves: [],
    },
    {
      participant: 'f',
      firstSeenAt: T(-60),
      admittedAt: start,
      lastLeftAt: end,
      presentSeconds: 3 * H - 300,
      waitingSeconds: 60 + 300,
      disconnections: 0,
      lateArrivalSeconds: 0,
      earlyDepartureSeconds: 0,
      status: 'attended',
      intervals: [
        { from: start, to: T(3600) },
        { from: T(3900), to: end },
      ],
      moves: [],
    },
    {
      participant: 'g',
      firstSeenAt: T(240),
      admittedAt: null,
      lastLeftAt: null,
      presentSeconds: 0,
      waitingSeconds: 60,
      disconnections: 0,
      lateArrivalSeconds: 0,
      earlyDepartureSeconds: 0,
      status: 'denied',
      intervals: [],
      moves: [],
    },
  ],
};

test('the scripted session: every field of every participant, to the second', () => {
  assert.equal(compute(tuesday()), expected);
});

/** A deterministic shuffle (mulberry32). */
function shuffled<T>(items: T[], seed: number): T[] {
  const out = [...items];
  let s = seed;
  const random = (): number => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

test('duplicated and shuffled events give the same result; other rooms are ignored', () => {
  const events = tuesday();
  for (const seed of [1, 2, 3, 42]) {
    const noisy = shuffled([...events, ...events.slice(5, 20), ...events], seed);
    assert.equal(compute(noisy), expected);
  }
  const other = events.map((e) => ({ ...e, room: 'other', participant: 'zz' }));
  assert.equal(compute([...events, ...other]), expected);
  assert.equal(compute(events), compute(events)); // no state kept between calls
});

test('a session still running closes intervals at now', () => {
  const now = T(2 * H); // 19:00, no sessionEnded yet
  const live = compute(tuesday(2 * H), now);
  assert.is(live.sessionEndedAt, null);
  const by = Object.fromEntries(live.participants.map((p) => [p.participant, p]));
  assert.equal(by.a?.intervals, [{ from: start, to: now }]);
  assert.is(by.a?.presentSeconds, 2 * H);
  assert.is(by.a?.lastLeftAt, null);
  assert.is(by.a?.earlyDepartureSeconds, 0);
  assert.is(by.a?.status, 'partial'); // 2 h of the 3 h scheduled so far
  assert.is(by.b?.presentSeconds, 2 * H - 130);
  assert.is(by.e?.status, 'removed');
  assert.is(by.e?.earlyDepartureSeconds, 5400);
  // Later, the same events plus the end: the final figures.
  assert.equal(compute(tuesday(), now), expected);
});

test('a disconnection still within its grace at now counts only once recovered', () => {
  const pending = compute(tuesday(3610), T(3610)); // b dropped at 18:00, 10 s ago
  const b = pending.participants.find((p) => p.participant === 'b');
  assert.equal(b?.intervals, [{ from: start, to: T(3600) }]);
  assert.is(b?.disconnections, 1);
  const { events, ev } = script();
  ev('admitted', 'b', 0);
  ev('disconnected', 'b', 3600, { stage: 'admitted' });
  ev('reconnected', 'b', 3630, { stage: 'admitted' }); // exactly at the grace: recovered
  ev('disconnected', 'b', 4000, { stage: 'admitted' });
  ev('reconnected', 'b', 4031, { stage: 'admitted' }); // 1 s late (grace timer lagged): gap counted
  ev('disconnected', 'b', 5000, { stage: 'admitted' });
  ev('sessionEnded', undefined, 5010); // ended within the grace, never back
  const r = compute(events).participants.find((p) => p.participant === 'b');
  assert.equal(r?.intervals, [
    { from: start, to: T(4000) },
    { from: T(4031), to: T(5000) },
  ]);
  assert.is(r?.presentSeconds, 5000 - 31);
  assert.is(r?.disconnections, 3);
  assert.is(r?.lastLeftAt, T(5000));
  assert.is(r?.earlyDepartureSeconds, 10); // the session itself ended at T(5010)
});

test('durations are floored whole seconds of the exact union; no schedule uses the session length', () => {
  const { events, ev } = script();
  ev('sessionStarted', undefined, 0);
  ev('admitted', 'x', 0.4);
  ev('admitted', 'y', 1);
  ev('movedToWaitingRoom', 'x', 10.9);
  ev('admitted', 'x', 10.9); // back at once: a touching interval, merged
  ev('left', 'x', 20.3, { reason: 'left', stage: 'admitted' });
  ev('sessionEnded', undefined, 21);
  const r = computeAttendance({ room: { id: room.id, roster: [] }, events, reconnectGraceMs: grace, now: T(99) });
  assert.is(r.scheduled, null);
  const [x, y] = r.participants;
  assert.equal(x?.intervals, [{ from: T(0.4), to: T(20.3) }]);
  assert.is(x?.presentSeconds, 19);
  assert.is(x?.waitingSeconds, 0);
  assert.is(x?.lateArrivalSeconds, 0);
  assert.is(x?.status, 'attended'); // 19 ≥ 0.75 × 21
  assert.is(y?.presentSeconds, 20);
  assert.is(y?.status, 'attended');
  const strict = computeAttendance({
    room: { id: room.id, roster: [] },
    events,
    reconnectGraceMs: grace,
    now: T(99),
    attendedRatio: 0.95,
  });
  assert.equal(
    strict.participants.map((p) => p.status),
    ['partial', 'attended'],
  );
});

test('CSV: RFC 4180, parses back to the same figures', () => {
  const a = compute(tuesday());
  const csv = attendanceCsv(a);
  assert.ok(csv.endsWith('\r\n'));
  assert.not.match(csv.replaceAll('\r\n', ''), /[\r\n]/);
  const [header, ...rows] = parseCsv(csv);
  assert.equal(header, [
    'room',
    'participant',
    'status',
    'first_seen',
    'admitted_at',
    'last_left_at',
    'present_seconds',
    'waiting_seconds',
    'disconnections',
    'late_arrival_seconds',
    'early_departure_seconds',
    'breakout_moves',
  ]);
  const ms = (s: string | undefined): number | null => (s ? Date.parse(s) : null);
  const back = rows.map((r) => ({
    room: r[0],
    participant: r[1],
    status: r[2],
    firstSeenAt: ms(r[3]),
    admittedAt: ms(r[4]),
    lastLeftAt: ms(r[5]),
    presentSeconds: Number(r[6]),
    waitingSeconds: Number(r[7]),
    disconnections: Number(r[8]),
    lateArrivalSeconds: Number(r[9]),
    earlyDepartureSeconds: Number(r[10]),
  }));
  assert.equal(
    back,
    a.participants.map(({ intervals: _, moves: __, ...p }) => ({ room: a.room, ...p })),
  );
  assert.equal(
    rows.map((r) => r[11]),
    a.participants.map(() => ''),
    'nobody moved (attendance-breakouts.test.ts has moves)',
  );
  assert.is(rows[0]?.[4], '2026-12-01T22:00:00.000Z');
  assert.is(rows[3]?.[3], ''); // d never came
  const odd = attendanceCsv({ ...a, room: 'a,"b"\nc', participants: a.participants.slice(0, 1) });
  assert.ok(odd.includes('"a,""b""\nc"'));
  assert.is(parseCsv(odd)[1]?.[0], 'a,"b"\nc');
  assert.equal(parseCsv('x,y\n"1",\r\n'), [
    ['x', 'y'],
    ['1', ''],
  ]);
});

test('isoWeekOf: year boundary and time zone boundary', () => {
  const ny = 'America/New_York';
  assert.is(isoWeekOf(start, ny), '2026-W49');
  assert.is(isoWeekOf(Date.parse('2026-12-31T12:00:00-05:00'), ny), '2026-W53');
  assert.is(isoWeekOf(Date.parse('2027-01-03T12:00:00-05:00'), ny), '2026-W53'); // Sunday
  assert.is(isoWeekOf(Date.parse('2027-01-04T12:00:00-05:00'), ny), '2027-W01');
  assert.is(isoWeekOf(Date.parse('2024-12-30T12:00:00Z'), 'UTC'), '2025-W01');
  // Sunday 6 Dec 23:30 in New York is Monday 7 Dec 04:30 UTC.
  const sundayNight = Date.parse('2026-12-06T23:30:00-05:00');
  assert.is(isoWeekOf(sundayNight, ny), '2026-W49');
  assert.is(isoWeekOf(sundayNight, 'UTC'), '2026-W50');
  // New Year's Eve 2027 night in New York, already 2028 in UTC (2027 has 52 weeks).
  const nye = Date.parse('2027-12-31T22:00:00-05:00');
  assert.is(isoWeekOf(nye, ny), '2027-W52');
  assert.is(isoWeekOf(nye, 'UTC'), '2027-W52'); // Saturday 1 Jan 2028 is still 2027-W52
  assert.throws(() => isoWeekOf(start, 'Not/AZone'));
});

test('weeklyTotals sums hours per week and flags the 9 h threshold', () => {
  const base = compute(tuesday()); // a: 3 h
  const at = (iso: string, id: string): SessionAttendance => {
    const s = Date.parse(iso);
    return { ...base, room: id, scheduled: { start: s, end: s + 3 * H * 1000 } };
  };
  const tue = at('2026-12-01T17:00:00-05:00', 'tue');
  const sessions = [
    at('2026-12-10T17:00:00-05:00', 'thu2'),
    tue,
    at('2026-12-03T17:00:00-05:00', 'thu'),
    at('2026-12-06T23:00:00-05:00', 'sun-late'), // Monday in UTC, still W49 in New York
    tue, // the same session twice counts once
    {
      ...at('2026-12-15T17:00:00-05:00', 'absent'),
      participants: base.participants.filter((p) => p.participant !== 'a'),
    },
  ];
  assert.equal(weeklyTotals(sessions, 'a', 'America/New_York'), [
    { week: '2026-W49', presentSeconds: 9 * H, sessions: 3, meetsThreshold: true },
    { week: '2026-W50', presentSeconds: 3 * H, sessions: 1, meetsThreshold: false },
  ]);
  assert.equal(weeklyTotals(sessions, 'a', 'UTC'), [
    { week: '2026-W49', presentSeconds: 6 * H, sessions: 2, meetsThreshold: false },
    { week: '2026-W50', presentSeconds: 6 * H, sessions: 2, meetsThreshold: false },
  ]);
  assert.equal(weeklyTotals(sessions, 'a', 'America/New_York', 6)[1]?.meetsThreshold, false);
  assert.equal(weeklyTotals(sessions, 'a', 'UTC', 6)[1]?.meetsThreshold, true);
  // A no-show week shows 0 h; without a schedule the session counts from when it started.
  const d = weeklyTotals([{ ...tue, scheduled: null }], 'd', 'America/New_York');
  assert.equal(d, [{ week: '2026-W49', presentSeconds: 0, sessions: 0, meetsThreshold: false }]);
  assert.equal(weeklyTotals(sessions, 'nobody', 'UTC'), []);
});

test.run();
