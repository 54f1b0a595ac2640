/**
 * The attendance queue end to end: a node records a session's events, the BullMQ worker computes
 * the attendance while the session runs and again at its end, and the admin API serves it as
 * JSON and CSV. Also with the worker in its own process (`npm run workers`).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { type NodeProcess, startNodeProcess } from '../../bench/node-process.ts';
import { waitFor } from '../../bench/processes.ts';
import { protocolVersion } from '../../client-sdk/src/protocol/index.ts';
import { parseCsv } from '../../server/attendance/csv.ts';
import { admin, connect, ok, type TestSocket, testAdminKey, testSecret, token } from '../helpers/signaling-client.ts';
import { testRedisFor } from '../helpers/test-redis.ts';

const root = join(import.meta.dirname, '..', '..');
const { server: redis } = testRedisFor(test);

async function attendanceOf(node: NodeProcess, room: string) {
  const res = await admin(node.url, 'GET', `/v1/rooms/${room}/attendance`);
  return res.status === 200 ? res.body.data : undefined;
}

/** A short session: a facilitator and pt-a; pt-b on the roster never comes. */
async function runSession(node: NodeProcess, room: string, whileRunning?: () => Promise<void>) {
  const start = new Date(Date.now() - 60_000).toISOString();
  const end = new Date(Date.now() + 3_600_000).toISOString();
  await admin(node.url, 'POST', '/v1/rooms', {
    id: room,
    title: 'Group',
    waitingRoom: false,
    roster: ['pt-a', 'pt-b'],
    schedule: { start, end, timeZone: 'America/New_York' },
  });
  const sockets: TestSocket[] = [];
  try {
    for (const [sub, role] of [
      ['fac', 'facilitator'],
      ['pt-a', 'participant'],
    ] as const) {
      const s = await connect(node.url, token(room, sub, role));
      sockets.push(s);
      await ok(s, 'join', { protocolVersion });
    }
    await whileRunning?.();
    await ok(sockets[0] as TestSocket, 'endSession', {});
  } finally {
    for (const s of sockets) s.close();
  }
}

test('computed while the session runs, again at its end; JSON and CSV agree', async () => {
  const node = await startNodeProcess({
    REDIS_URL: redis.url,
    HAVEN_AUTH_SECRET: testSecret,
    HAVEN_ADMIN_API_KEY: testAdminKey,
    HAVEN_MEDIA_WEBRTC_PORT: '0',
    HAVEN_ATTENDANCE_INTERVAL_S: '1',
  });
  try {
    const room = `att-w-${process.pid}`;
    await runSession(node, room, async () => {
      const running = await waitFor(() => attendanceOf(node, room), 10_000, 'attendance while the session runs');
      assert.is(running.sessionEndedAt, null);
    });
    const done = await waitFor(
      async () => {
        const a = await attendanceOf(node, room);
        return a?.sessionEndedAt ? a : undefined;
      },
      10_000,
      'attendance after the end',
    );
    const byId = Object.fromEntries(done.participants.map((p: { participant: string }) => [p.participant, p]));
    assert.is(byId['pt-b'].status, 'no-show');
    assert.ok(byId['pt-a'].admittedAt > 0);
    assert.ok(byId['pt-a'].presentSeconds >= 0);
    const res = await fetch(`${node.url}/v1/rooms/${room}/attendance`, {
      headers: { authorization: `Bearer ${testAdminKey}`, accept: 'text/csv' },
    });
    assert.match(res.headers.get('content-type') ?? '', /text\/csv/);
    const [header, ...rows] = parseCsv(await res.text());
    assert.is(header?.[0], 'room');
    const csvB = rows.find((r) => r[1] === 'pt-b');
    assert.is(csvB?.[2], 'no-show');
    const csvA = rows.find((r) => r[1] === 'pt-a');
    assert.is(Number(csvA?.[header?.indexOf('present_seconds') ?? -1]), byId['pt-a'].presentSeconds);
    // The participant's view: sessions in a range, with ISO weeks in the program's time zone.
    const from = new Date(Date.now() - 86_400_000).toISOString();
    const to = new Date(Date.now() + 86_400_000).toISOString();
    const q = `from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}&timeZone=America%2FNew_York`;
    const mine = await admin(node.url, 'GET', `/v1/participants/pt-a/attendance?${q}`);
    assert.is(mine.status, 200);
    assert.equal(
      mine.body.data.sessions.map((x: { room: string }) => x.room),
      [room],
    );
    assert.is(mine.body.data.weeks.length, 1);
    assert.match(mine.body.data.weeks[0].week, /^\d{4}-W\d{2}$/);
    assert.is(mine.body.data.weeks[0].presentSeconds, byId['pt-a'].presentSeconds);
    assert.is(mine.body.data.weeks[0].meetsThreshold, false, 'far below 9 h');
    const bad = await admin(node.url, 'GET', '/v1/participants/pt-a/attendance?from=yesterday&to=today');
    assert.is(bad.status, 400);
  } finally {
    node.kill();
  }
});

test('the worker in its own process (npm run workers) does the same', async () => {
  const node = await startNodeProcess({
    REDIS_URL: redis.url,
    HAVEN_AUTH_SECRET: testSecret,
    HAVEN_ADMIN_API_KEY: testAdminKey,
    HAVEN_MEDIA_WEBRTC_PORT: '0',
    HAVEN_WORKERS_IN_PROCESS: 'false',
  });
  let workers: ChildProcess | undefined;
  try {
    const room = `att-w2-${process.pid}`;
    await runSession(node, room);
    await new Promise((r) => setTimeout(r, 1_000));
    assert.is(await attendanceOf(node, room), undefined, 'no worker in the node: nothing computed yet');
    workers = spawn(process.execPath, ['--import', 'tsx', 'workers/main.ts'], {
      cwd: root,
      env: { ...process.env, REDIS_URL: redis.url, HAVEN_LOG_FORMAT: 'json' },
      stdio: 'ignore',
    });
    const done = await waitFor(() => attendanceOf(node, room), 20_000, 'the separate worker to compute');
    assert.ok(done.sessionEndedAt);
  } finally {
    if (workers && workers.exitCode === null) {
      workers.kill('SIGTERM');
      await once(workers, 'exit');
    }
    node.kill();
  }
});

test.run();
