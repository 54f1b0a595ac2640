/**
 * A worker process killed (SIGKILL) in the middle of a session's final attendance job: a worker
 * started afterwards takes the job over once its lock lapses and stores the same records, once;
 * the `attendance.ready` webhook reaches the clinic once, even when the job runs again.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { waitFor } from '../../bench/processes.ts';
import { computeAttendance } from '../../server/attendance/compute.ts';
import { readAttendanceEvents } from '../../server/attendance/event.ts';
import { AttendanceQueue, attendanceQueueName } from '../../server/attendance/queue.ts';
import { attendanceResultKey } from '../../server/attendance/results.ts';
import { RoomStore } from '../../server/rooms/room-store.ts';
import { testRedisFor } from '../helpers/test-redis.ts';

const root = join(import.meta.dirname, '..', '..');
const room = 'crash-room';
const minute = 60_000;
/** Events that change nothing (media reconnects of a present participant) but make the job long. */
const padding = 100_000;

const testRedis = testRedisFor(test);
const { server: embedded } = testRedis;
const redis = testRedis.client();
const received: { type: string; id: string }[] = [];
const receiver = createServer(async (req, res) => {
  let body = '';
  for await (const chunk of req) body += chunk;
  const event = JSON.parse(body);
  received.push({ type: event.type, id: event.id });
  res.end();
});

test.before(async () => {
  receiver.listen(0, '127.0.0.1');
  await once(receiver, 'listening');
});
testRedis.atEnd(() => receiver.close());

/** A one-hour session two hours ago: pt-a on time, pt-b late and leaving early, pt-c never comes. */
async function seedSession(): Promise<number> {
  const start = Date.now() - 2 * 60 * minute;
  await new RoomStore(redis).create({
    id: room,
    kind: 'group',
    origin: 'admin',
    title: 'Group',
    roster: ['pt-a', 'pt-b', 'pt-c'],
    schedule: {
      start: new Date(start).toISOString(),
      end: new Date(start + 60 * minute).toISOString(),
      timeZone: 'UTC',
    },
  });
  const key = `haven:attendance:${room}`;
  const add = (at: number, seq: number, type: string, participant?: string) =>
    redis.xadd(
      key,
      `${at}-${seq}`,
      'type',
      type,
      'at',
      String(at),
      ...(participant ? ['participant', participant] : []),
    );
  await add(start, 0, 'sessionStarted');
  await add(start + 10_000, 0, 'admitted', 'pt-a');
  await add(start + 5 * minute, 0, 'admitted', 'pt-b');
  for (let i = 0; i < padding; i += 5_000) {
    const batch = redis.pipeline();
    for (let j = i; j < i + 5_000; j++) {
      const at = start + 6 * minute + j * 20;
      batch.xadd(key, `${at}-0`, 'type', 'mediaConnected', 'at', String(at), 'participant', 'pt-a');
    }
    await batch.exec();
  }
  await add(start + 45 * minute, 0, 'left', 'pt-b');
  await add(start + 60 * minute, 0, 'sessionEnded');
  return start;
}

function startWorkers(webhookUrl: string): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', 'workers/main.ts'], {
    cwd: root,
    env: {
      ...process.env,
      REDIS_URL: embedded.url,
      HAVEN_LOG_FORMAT: 'json',
      HAVEN_WORKERS_STALLED_S: '2',
      HAVEN_WEBHOOK_URLS: webhookUrl,
      HAVEN_WEBHOOK_SECRET: 'clinic-webhook-secret-0123',
    },
    stdio: 'ignore',
  });
}

async function stop(child: ChildProcess | undefined, signal: NodeJS.Signals): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  child.kill(signal);
  await once(child, 'exit');
}

test('a worker killed mid-job: the next one stores the same records, once', async () => {
  const start = await seedSession();
  const webhookUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks`;
  const queue = new Queue(attendanceQueueName, { connection: { url: embedded.url } });
  const producer = new AttendanceQueue({ url: embedded.url }, 60_000);
  let first: ChildProcess | undefined;
  let second: ChildProcess | undefined;
  try {
    first = startWorkers(webhookUrl);
    await producer.roomClosed(room);
    await waitFor(async () => (await queue.getActiveCount()) === 1, 20_000, 'the job to start');
    first.kill('SIGKILL');
    await once(first, 'exit');
    assert.is(await redis.exists(attendanceResultKey(room)), 0, 'killed before it stored anything');
    assert.is(await queue.getActiveCount(), 1, 'the job is still held by the dead worker');

    second = startWorkers(webhookUrl);
    const stored = await waitFor(() => redis.get(attendanceResultKey(room)), 30_000, 'the job to be taken over');
    const result = JSON.parse(stored as string);
    const byId = Object.fromEntries(result.participants.map((p: { participant: string }) => [p.participant, p]));
    assert.is(byId['pt-a'].presentSeconds, 60 * 60 - 10);
    assert.is(byId['pt-a'].status, 'attended');
    assert.is(byId['pt-b'].presentSeconds, 40 * 60);
    assert.is(byId['pt-b'].lateArrivalSeconds, 5 * 60);
    assert.is(byId['pt-b'].earlyDepartureSeconds, 15 * 60);
    assert.is(byId['pt-c'].status, 'no-show');
    const reference = computeAttendance({
      room: (await new RoomStore(redis).get(room)) as never,
      events: await readAttendanceEvents(redis, room),
      reconnectGraceMs: 30_000,
      now: Date.now(),
    });
    const { computedAt: _, ...records } = result;
    assert.equal(records, JSON.parse(JSON.stringify(reference)), 'the records of a clean run');
    for (const p of ['pt-a', 'pt-b', 'pt-c']) {
      assert.equal(await redis.zrange(`haven:participant-sessions:${p}`, '0', '-1', 'WITHSCORES'), [
        room,
        String(start),
      ]);
    }
    await waitFor(() => received.some((r) => r.type === 'attendance.ready'), 15_000, 'attendance.ready');

    // The same job once more (a duplicate, or a retry after the webhook was queued): no second webhook.
    await producer.roomClosed(room);
    await waitFor(async () => (await queue.getCompletedCount()) >= 2, 20_000, 'the second run');
    await new Promise((r) => setTimeout(r, 1_000));
    assert.is(received.filter((r) => r.type === 'attendance.ready').length, 1, 'the clinic is told once');
    const { computedAt: __, ...again } = JSON.parse((await redis.get(attendanceResultKey(room))) as string);
    assert.equal(again, records);
  } finally {
    await stop(first, 'SIGKILL');
    await stop(second, 'SIGTERM');
    await producer.close();
    await queue.close();
  }
});

test.run();
