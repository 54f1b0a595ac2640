/**
 * Attendance events: a session's presence changes land in the room's Redis stream, in order, with
 * the server's time and ids only; with Redis gone for 10 s (and more events than fit in memory)
 * none is lost and none doubled.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import pino from 'pino';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { type NodeProcess, startNodeProcess } from '../../bench/node-process.ts';
import { waitFor } from '../../bench/processes.ts';
import { protocolVersion } from '../../client-sdk/src/protocol/index.ts';
import { AttendanceRecorder } from '../../server/attendance/recorder.ts';
import { EmbeddedRedis } from '../../server/redis/embedded-redis.ts';
import {
  admin,
  connect,
  next,
  ok,
  type TestSocket,
  testAdminKey,
  testSecret,
  token,
} from '../helpers/signaling-client.ts';

const dir = mkdtempSync(join(tmpdir(), 'haven-attendance-'));
let redis: EmbeddedRedis;
let client: Redis;
const quiet = pino({ level: 'silent' });

test.before(async () => {
  redis = await EmbeddedRedis.start({ dataDir: join(dir, 'redis') });
  client = new Redis(redis.url, { maxRetriesPerRequest: 2 });
  client.on('error', () => {});
});

test.after(async () => {
  client?.disconnect();
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function streamOf(room: string): Promise<Record<string, string>[]> {
  const entries = await client.xrange(`haven:attendance:${room}`, '-', '+');
  return entries.map(([id, fields]) => {
    const f: Record<string, string> = {};
    for (let i = 0; i < fields.length; i += 2) f[fields[i] as string] = fields[i + 1] as string;
    f.id = id;
    return f;
  });
}

test('a session’s presence changes, in order, ids only', async () => {
  const node: NodeProcess = await startNodeProcess({
    REDIS_URL: redis.url,
    HAVEN_AUTH_SECRET: testSecret,
    HAVEN_ADMIN_API_KEY: testAdminKey,
    HAVEN_MEDIA_WEBRTC_PORT: '0',
    HAVEN_ROOMS_RECONNECT_GRACE_S: '5',
  });
  const sockets: TestSocket[] = [];
  const as = async (sub: string, role: 'facilitator' | 'participant' = 'participant') => {
    const s = await connect(node.url, token('att-1', sub, role));
    sockets.push(s);
    return s;
  };
  try {
    await admin(node.url, 'POST', '/v1/rooms', { id: 'att-1', title: 'Group', consentText: 'Confidential.' });
    const facilitator = await as('fac', 'facilitator');
    await ok(facilitator, 'join', { protocolVersion });
    let pt = await as('pt');
    await ok(pt, 'join', { protocolVersion });
    await ok(pt, 'acceptConsent', { version: 1 });
    await ok(facilitator, 'admit', { participantId: 'pt' });
    pt.close(); // a short drop…
    await new Promise((r) => setTimeout(r, 300));
    pt = await as('pt'); // …and back within the grace window
    await ok(pt, 'join', { protocolVersion });
    await ok(facilitator, 'moveToWaitingRoom', { participantId: 'pt' });
    await ok(facilitator, 'admit', { participantId: 'pt' });
    const removed = next(pt, 'removed');
    await ok(facilitator, 'remove', { participantId: 'pt' });
    await removed;
    await ok(facilitator, 'endSession', {});
    await waitFor(async () => (await streamOf('att-1')).some((e) => e.type === 'sessionEnded'), 5_000, 'the end');
    const events = await streamOf('att-1');
    assert.equal(
      events.filter((e) => e.participant === 'pt').map((e) => e.type),
      ['consented', 'waiting', 'admitted', 'disconnected', 'reconnected', 'movedToWaitingRoom', 'admitted', 'removed'],
    );
    assert.equal(
      events.filter((e) => !('participant' in e)).map((e) => e.type),
      ['sessionStarted', 'sessionEnded'],
    );
    const consented = events.find((e) => e.type === 'consented');
    assert.is(JSON.parse(consented?.details ?? '{}').version, 1);
    const times = events.map((e) => Number(e.at));
    assert.equal(
      times,
      [...times].sort((a, b) => a - b),
      'server times in order',
    );
    assert.not.match(JSON.stringify(events), /Name of|Confidential/, 'no names, no text');
  } finally {
    for (const s of sockets) s.close();
    node.kill();
  }
});

test('Redis down for 10 s with more events than fit in memory: none lost, none doubled', async () => {
  const spillFile = join(dir, 'spill.jsonl');
  const recorder = new AttendanceRecorder(client, quiet, { spillFile, maxBuffered: 20 });
  const recorded: string[] = [];
  const record = (n: number) => {
    for (let i = 0; i < n; i++)
      recorded.push(recorder.record({ type: 'mediaConnected', room: 'att-2', participant: `p${i}` }).id);
  };
  record(10);
  await recorder.flush();
  // Redis goes away (its process stopped, as a crash or a restart would) …
  const conf = join(dir, 'redis', 'redis.conf');
  await redis.stop();
  const outageStarted = Date.now();
  while (Date.now() - outageStarted < 10_000) {
    record(5);
    await new Promise((r) => setTimeout(r, 500));
  }
  assert.ok(recorder.pending >= 100, `pending ${recorder.pending}`);
  assert.ok(existsSync(spillFile), 'past 20 in memory, events spill to disk');
  // … and comes back on the same port and data.
  const revived = spawn('redis-server', [conf], { stdio: 'ignore' });
  try {
    await recorder.flush(20_000);
    const ids = (await streamOf('att-2')).map((e) => e.id);
    assert.is(ids.length, recorded.length, 'every event is in the stream');
    assert.equal(ids, recorded, 'in the order recorded, each once');
    assert.not.ok(existsSync(spillFile), 'the spill file is gone once written');
  } finally {
    revived.kill('SIGTERM');
    await once(revived, 'exit');
    redis = await EmbeddedRedis.start({ dataDir: join(dir, 'redis') });
    client.disconnect();
    client = new Redis(redis.url, { maxRetriesPerRequest: 2 });
    client.on('error', () => {});
  }
});

test('a write whose reply was lost is not doubled; events left at close are written at the next start', async () => {
  const spillFile = join(dir, 'spill-2.jsonl');
  const first = new AttendanceRecorder(client, quiet, { spillFile });
  const written = first.record({ type: 'admitted', room: 'att-3', participant: 'p1' });
  await first.flush();
  // A second recorder finds that event in its spill file (as after a crash between the write and
  // its acknowledgement), plus one never written.
  const { writeFileSync } = await import('node:fs');
  const unwritten = { ...written, id: `${written.at + 1}-0`, at: written.at + 1, type: 'left' };
  writeFileSync(spillFile, `${JSON.stringify(written)}\n${JSON.stringify(unwritten)}\n`);
  const second = new AttendanceRecorder(client, quiet, { spillFile });
  await second.flush();
  const events = await streamOf('att-3');
  assert.equal(
    events.map((e) => e.type),
    ['admitted', 'left'],
  );
});

test.run();
