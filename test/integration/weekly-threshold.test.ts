/**
 * The weekly threshold check with real Redis and BullMQ: once a week of the program (America/New_York)
 * has closed, each participant below the weekly hours gets one signed `threshold.missed` webhook;
 * a week is checked once, and checking it again sends nothing twice.
 */
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Queue, type Worker } from 'bullmq';
import { pino } from 'pino';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { waitFor } from '../../bench/processes.ts';
import { AttendanceQueue, attendanceQueueName, weeklyJobName } from '../../server/attendance/queue.ts';
import { sessionsBetween } from '../../server/attendance/results.ts';
import { RoomStore } from '../../server/rooms/room-store.ts';
import { listDeliveries } from '../../server/webhooks/deliveries.ts';
import { WebhookQueue } from '../../server/webhooks/queue.ts';
import { processAttendance, startAttendanceWorker } from '../../workers/attendance.ts';
import { startWebhookWorker } from '../../workers/webhooks.ts';
import { checkClosedWeek, lastClosedWeek } from '../../workers/weekly.ts';
import { testRedisFor } from '../helpers/test-redis.ts';

const timeZone = 'America/New_York';
const program = { timeZone, weeklyThresholdHours: 9 };
const hour = 3_600_000;

const testRedis = testRedisFor(test);
const { server: embedded } = testRedis;
const redis = testRedis.client();
let hooks: WebhookQueue;
let worker: Worker;
const received: { type: string; participant?: string; data?: Record<string, unknown> }[] = [];
const receiver = createServer(async (req, res) => {
  let body = '';
  for await (const chunk of req) body += chunk;
  received.push(JSON.parse(body));
  res.end();
});

test.before(async () => {
  receiver.listen(0, '127.0.0.1');
  await once(receiver, 'listening');
  const settings = {
    urls: [`http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks`],
    secret: 'clinic-webhook-secret-0123',
    maxAttempts: 3,
    backoffMs: 100,
  };
  hooks = new WebhookQueue({ url: embedded.url }, redis, settings);
  worker = startWebhookWorker({ url: embedded.url }, redis, settings, { stalledMs: 30_000 }, pino({ level: 'silent' }));
});

testRedis.atEnd(async () => {
  await worker?.close();
  await hooks?.close();
  receiver.close();
});

/** A computed session: `present` participants attend from start to end; `roster` may add no-shows. */
async function session(id: string, startIso: string, hours: number, present: string[], roster: string[] = present) {
  const start = Date.parse(startIso);
  const end = start + hours * hour;
  const store = new RoomStore(redis);
  await store.create({
    id,
    kind: 'group',
    origin: 'admin',
    title: 'Group',
    roster,
    schedule: { start: new Date(start).toISOString(), end: new Date(end).toISOString(), timeZone },
  });
  const key = `haven:attendance:${id}`;
  await redis.xadd(key, `${start}-0`, 'type', 'sessionStarted', 'at', String(start));
  for (const [i, p] of present.entries()) {
    await redis.xadd(key, `${start}-${i + 1}`, 'type', 'admitted', 'at', String(start), 'participant', p);
  }
  await redis.xadd(key, `${end}-0`, 'type', 'sessionEnded', 'at', String(end));
  await processAttendance({ redis, store, reconnectGraceMs: 30_000, program }, id);
}

test('the last closed week, in the program’s time zone', () => {
  // Monday 23 November 2026, New York (UTC−5): W48 begins; W47 is checked from 02:00.
  assert.is(lastClosedWeek(Date.parse('2026-11-23T01:00:00-05:00'), timeZone), '2026-W46');
  assert.is(lastClosedWeek(Date.parse('2026-11-23T03:00:00-05:00'), timeZone), '2026-W47');
  assert.is(lastClosedWeek(Date.parse('2026-11-29T23:00:00-05:00'), timeZone), '2026-W47');
  // 03:00 on Monday in UTC is 22:00 on Sunday in New York: W47 has closed in one, not the other.
  assert.is(lastClosedWeek(Date.parse('2026-11-23T03:00:00Z'), 'UTC'), '2026-W47');
  assert.is(lastClosedWeek(Date.parse('2026-11-23T03:00:00Z'), timeZone), '2026-W46');
});

test('participants below the weekly hours get one threshold.missed each', async () => {
  // Week 2026-W47 in New York. pt-a: three 3.5 h sessions (10.5 h). pt-b: one of them, plus a late
  // Sunday hour that is Monday in UTC (4.5 h). pt-c: on the first roster, never came. pt-d: W48 only.
  await session('w47-mon', '2026-11-16T10:00:00-05:00', 3.5, ['pt-a', 'pt-b'], ['pt-a', 'pt-b', 'pt-c']);
  await session('w47-wed', '2026-11-18T10:00:00-05:00', 3.5, ['pt-a']);
  await session('w47-fri', '2026-11-20T10:00:00-05:00', 3.5, ['pt-a']);
  await session('w47-sun-late', '2026-11-22T23:00:00-05:00', 1, ['pt-b']);
  await session('w48-mon', '2026-11-23T10:00:00-05:00', 3.5, ['pt-d']);
  const now = Date.parse('2026-11-24T12:00:00-05:00');
  const deps = { redis, program, emit: hooks.emit.bind(hooks), sessionsBetween: sessionsBetween.bind(null, redis) };

  const check = await checkClosedWeek(deps, now);
  assert.equal(check, { week: '2026-W47', checked: true, participants: 3, missed: 2 });
  await waitFor(() => received.length >= 2, 10_000, 'two webhooks');
  await new Promise((r) => setTimeout(r, 300));
  const missed = received.filter((e) => e.type === 'threshold.missed');
  assert.equal(missed.map((e) => e.participant).sort(), ['pt-b', 'pt-c']);
  const b = missed.find((e) => e.participant === 'pt-b');
  assert.equal(b?.data, { week: '2026-W47', presentSeconds: 4.5 * 3600, sessions: 2, thresholdHours: 9 });
  assert.is(missed.find((e) => e.participant === 'pt-c')?.data?.presentSeconds, 0);

  // Checked once; and a forced re-check (marker lost) queues no second delivery.
  assert.is((await checkClosedWeek(deps, now + hour)).checked, false);
  await redis.del('haven:threshold-checked:2026-W47');
  assert.equal(await checkClosedWeek(deps, now + 2 * hour), { ...check });
  await new Promise((r) => setTimeout(r, 500));
  assert.is(received.length, 2, 'no webhook twice');
  const deliveries = await listDeliveries(redis, { limit: 100 });
  assert.is(deliveries.deliveries.filter((d) => d.event.type === 'threshold.missed').length, 2);
});

test('the node’s hourly schedule runs the check on the attendance worker', async () => {
  const queue = new AttendanceQueue({ url: embedded.url }, 60_000);
  const now = Date.parse('2026-11-24T15:00:00-05:00');
  const attendance = startAttendanceWorker(
    { url: embedded.url },
    {
      redis,
      store: new RoomStore(redis),
      reconnectGraceMs: 30_000,
      program,
      now: () => now,
      emit: hooks.emit.bind(hooks),
    },
    { stalledMs: 30_000 },
    pino({ level: 'silent' }),
  );
  try {
    await queue.scheduleWeeklyCheck();
    await queue.scheduleWeeklyCheck(); // every node does at start: still one schedule
    const bull = new Queue(attendanceQueueName, { connection: { url: embedded.url } });
    const schedulers = await bull.getJobSchedulers();
    assert.equal(
      schedulers.map((s) => [s.key, s.every]),
      [[weeklyJobName, 3_600_000]],
    );
    await redis.del('haven:threshold-checked:2026-W47');
    await bull.add(weeklyJobName, {});
    await waitFor(() => redis.exists('haven:threshold-checked:2026-W47'), 10_000, 'the check through BullMQ');
    await bull.close();
    await new Promise((r) => setTimeout(r, 300));
    assert.is(received.length, 2, 'the week’s webhooks were sent already: none again');
  } finally {
    await attendance.close();
    await queue.close();
  }
});

test.run();
