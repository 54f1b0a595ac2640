/**
 * Retention against a real Redis: old attendance events, kept chat, audit entries and webhook
 * deliveries are purged, recent ones kept, per kind and period (0: forever), twice without effect;
 * the audit chain still verifies after trimming, and tampering after trimming is still found. Then
 * the node's job scheduler running the processor through BullMQ, with nothing in the job's data.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Queue } from 'bullmq';
import { pino } from 'pino';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { waitFor } from '../../bench/processes.ts';
import { ConfigError, loadConfig } from '../../config/load.ts';
import { AuditLog } from '../../server/audit/audit-log.ts';
import { AuditKeys } from '../../server/audit/keys.ts';
import { createLogger } from '../../server/logger.ts';
import { RetentionQueue, type RetentionSettings, retentionQueueName } from '../../server/retention/queue.ts';
import { listDeliveries } from '../../server/webhooks/deliveries.ts';
import { WebhookQueue } from '../../server/webhooks/queue.ts';
import { processRetention, startRetentionWorker } from '../../workers/retention.ts';
import { rejects } from '../helpers/assert.ts';
import { testRedisFor } from '../helpers/test-redis.ts';

const root = join(import.meta.dirname, '..', '..');
const day = 86_400_000;
const silent = pino({ level: 'silent' });
const auditSecret = 'retention-test-audit-secret-0123456789';
const auditKeys = new AuditKeys([auditSecret]);
/** The defaults: events 90 days, chat 30, audit 2190 (six years), deliveries 30. */
const defaults: RetentionSettings = {
  eventsDays: 90,
  chatDays: 30,
  auditDays: 2190,
  deliveriesDays: 30,
  intervalS: 3600,
};
/** What a patient might write: must never reach a log line or a job. */
const chatText = 'I relapsed on Friday and feel unsafe at home';
const testRedis = testRedisFor(test);
const { server: redisServer } = testRedis;
const redis = testRedis.client();

let rooms = 0;
/** Audit entries for the tampering tests start here: recent, so that no retention run at the real time takes them. */
const recent = Date.now();
const newRoom = (kind: string) => `${kind}-${++rooms}-${process.pid}`;

/** A JSON logger into an array (what a log collector would receive). */
function capture(): { logger: ReturnType<typeof createLogger>; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line));
      done();
    },
  });
  return { logger: createLogger({ env: 'production', log: { level: 'info', format: 'json' } } as never, sink), lines };
}

/** Attendance events at explicit times (stream ids `<ms>-<n>`, as the recorder writes them). */
async function seedEvents(room: string, times: number[]): Promise<void> {
  for (const [n, at] of times.entries()) {
    await redis.xadd(
      `haven:attendance:${room}`,
      `${at}-${n}`,
      'type',
      'admitted',
      'at',
      String(at),
      'participant',
      'p-1',
    );
  }
}

async function seedChat(room: string, times: number[]): Promise<string[]> {
  const ids = times.map((_, i) => `m-${room}-${i}`);
  for (const [i, sentAt] of times.entries()) {
    const message = { id: ids[i], from: 'p-1', to: 'everyone', text: chatText, sentAt };
    await redis.hset(`haven:chat:${room}`, ids[i] as string, JSON.stringify(message));
  }
  return ids;
}

/** Audit entries recorded at the given times (through AuditLog, with its clock). */
async function seedAudit(room: string, times: number[]): Promise<AuditLog> {
  let i = 0;
  const now = () => new Date(times[Math.min(i++, times.length - 1)] as number);
  const log = new AuditLog(redis, silent, { now, keys: auditKeys });
  for (const [n] of times.entries()) await log.record({ room, actor: 'f-1', action: 'mute', target: `p-${n}` });
  return new AuditLog(redis, silent, { keys: auditKeys });
}

/** Two webhook deliveries a few ms apart (pending: no worker here); their event times. */
async function seedDeliveries(): Promise<[number, number]> {
  const hooks = new WebhookQueue({ url: redisServer.url }, redis, {
    urls: ['http://127.0.0.1:9/hook'],
    secret: 'x'.repeat(16),
    maxAttempts: 1,
    backoffMs: 1000,
  });
  try {
    await hooks.emit('session.started', { room: 'hook-old' });
    await new Promise((r) => setTimeout(r, 20));
    await hooks.emit('session.started', { room: 'hook-new' });
  } finally {
    await hooks.close();
  }
  const { deliveries } = await listDeliveries(redis, { limit: 100 });
  const at = (room: string) => Date.parse(deliveries.find((d) => d.event.room === room)?.event.occurredAt ?? '');
  return [at('hook-old'), at('hook-new')];
}

const deliveryRooms = async () => (await listDeliveries(redis, { limit: 100 })).deliveries.map((d) => d.event.room);

function cli(args: string[]) {
  return spawnSync(process.execPath, ['--import', 'tsx', join(root, 'bin/haven.ts'), 'audit', ...args], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, REDIS_URL: undefined, HAVEN_AUDIT_HMAC_KEY: auditSecret },
  });
}

test('purges what is past its period, keeps the rest; the audit chain still verifies; twice changes nothing', async () => {
  // Deliveries get the real time: `now` puts the 30-day cutoff between the two.
  const [oldDelivery, newDelivery] = await seedDeliveries();
  assert.ok(newDelivery > oldDelivery);
  const now = newDelivery + 30 * day;

  const events = newRoom('ev');
  const eventsGone = newRoom('ev');
  await seedEvents(events, [now - 120 * day, now - 100 * day, now - 91 * day, now - 89 * day, now - day]);
  await seedEvents(eventsGone, [now - 200 * day, now - 100 * day]);
  await redis.set(`haven:attendance-result:${eventsGone}`, '{"room":"kept"}'); // the billing record

  const chat = newRoom('ch');
  const chatGone = newRoom('ch');
  const chatIds = await seedChat(chat, [now - 40 * day, now - 31 * day, now - 29 * day, now - 1000]);
  await redis.hset(`haven:chat:${chat}`, 'm-unreadable', 'not json'); // no sentAt: kept, never guessed old
  await seedChat(chatGone, [now - 60 * day]);

  const audit = newRoom('au');
  const auditGone = newRoom('au');
  const log = await seedAudit(audit, [
    now - 2300 * day,
    now - 2200 * day,
    now - 2191 * day,
    now - 2189 * day,
    now - 10 * day,
    now - day,
  ]);
  await seedAudit(auditGone, [now - 2500 * day, now - 2400 * day]);
  const before = await log.entries(audit);

  const { logger, lines } = capture();
  const first = await processRetention({ redis, settings: defaults, logger, now: () => now, auditKeys });
  assert.equal(first, {
    events: 5,
    eventStreamsDeleted: 1,
    chat: 3,
    audit: 5,
    auditRefused: 0,
    deliveries: 1,
  });

  // Events: ids older than 90 days gone, the emptied stream deleted, the computed result kept.
  const left = (await redis.xrange(`haven:attendance:${events}`, '-', '+')).map(([id]) => id);
  assert.equal(left, [`${now - 89 * day}-3`, `${now - day}-4`]);
  assert.is(await redis.exists(`haven:attendance:${eventsGone}`), 0);
  assert.is(await redis.get(`haven:attendance-result:${eventsGone}`), '{"room":"kept"}');

  // Chat: message by message; a room with nothing left has no key.
  assert.equal((await redis.hkeys(`haven:chat:${chat}`)).sort(), [chatIds[2], chatIds[3], 'm-unreadable'].sort());
  assert.is(await redis.exists(`haven:chat:${chatGone}`), 0);

  // Audit: the first three gone, an anchor in their place; the chain verifies.
  assert.equal(
    (await log.entries(audit)).map((e) => e.seq),
    [4, 5, 6],
  );
  const { kid, mac, ...anchor } = (await log.anchor(audit)) ?? {};
  assert.equal(anchor, { seq: 3, hash: before[2]?.hash, at: before[2]?.at, trimmed: 3 });
  assert.is(kid, auditKeys.kid);
  assert.match(mac ?? '', /^[0-9a-f]{64}$/);
  assert.equal(await log.verify(audit), { ok: true, entries: 3, keyed: true, trimmed: 3 });
  // Every entry expired: the stream is kept empty with its anchor; the next entry goes on from it.
  assert.is(await redis.xlen(`haven:audit:${auditGone}`), 0);
  assert.is(await redis.exists(`haven:audit:${auditGone}`, `haven:audit-anchor:${auditGone}`), 2);
  assert.equal(await log.verify(auditGone), { ok: true, entries: 0, keyed: true, trimmed: 2 });
  assert.is((await log.record({ room: auditGone, actor: 'f-1', action: 'lock' })).seq, 3);
  assert.equal(await log.verify(auditGone), { ok: true, entries: 1, keyed: true, trimmed: 2 });

  // Deliveries: the older one only.
  assert.equal(await deliveryRooms(), ['hook-new']);

  // Idempotent: the same run again removes nothing.
  const again = await processRetention({ redis, settings: defaults, logger, now: () => now, auditKeys });
  assert.equal(again, { events: 0, eventStreamsDeleted: 0, chat: 0, audit: 0, auditRefused: 0, deliveries: 0 });
  assert.is(await redis.xlen(`haven:attendance:${events}`), 2);
  assert.is(await redis.hlen(`haven:chat:${chat}`), 3);
  assert.equal(await log.verify(audit), { ok: true, entries: 3, keyed: true, trimmed: 3 });

  // Appends after the trim chain on; the CLI reports the trimmed entries.
  const next = await log.record({ room: audit, actor: 'f-1', action: 'unlock' });
  assert.is(next.seq, 7);
  assert.equal(await log.verify(audit), { ok: true, entries: 4, keyed: true, trimmed: 3 });
  const verified = cli(['verify', '--room', audit, '--redis', redisServer.url]);
  assert.is(verified.status, 0, verified.stderr);
  assert.match(verified.stdout, /^ok: 4 entries \(after 3 removed by retention\), HMACs checked;/);
  const shown = cli(['show', '--room', audit, '--redis', redisServer.url]);
  assert.equal(
    shown.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line).seq),
    [4, 5, 6, 7],
  );

  // Later, the next ones expire, once.
  const later = await processRetention({ redis, settings: defaults, logger, now: () => now + 5 * day, auditKeys });
  assert.is(later.audit, 1);
  assert.is(later.events, 1); // the one 89 days old then
  assert.equal(await log.verify(audit), { ok: true, entries: 3, keyed: true, trimmed: 4 });

  assert.not.match(JSON.stringify(lines), /relapsed|unsafe/);
});

/** A room whose first `trim` of `total` entries retention removed. */
async function trimmedRoom(total = 6, trim = 3): Promise<{ room: string; log: AuditLog }> {
  const room = newRoom('tamper');
  const log = await seedAudit(
    room,
    Array.from({ length: total }, (_, i) => recent + i * day),
  );
  assert.is(await log.purgeBefore(room, new Date(recent + trim * day - 1)), trim);
  assert.equal(await log.verify(room), { ok: true, entries: total - trim, keyed: true, trimmed: trim });
  return { room, log };
}

test('trimming twice keeps the chain verifiable; purgeBefore is idempotent', async () => {
  const { room, log } = await trimmedRoom(9, 3);
  assert.is(await log.purgeBefore(room, new Date(recent + 3 * day - 1)), 0);
  assert.is(await log.purgeBefore(room, new Date(recent + 7 * day - 1)), 4);
  const anchor = await log.anchor(room);
  assert.is(anchor?.seq, 7);
  assert.is(anchor?.trimmed, 7);
  assert.equal(await log.verify(room), { ok: true, entries: 2, keyed: true, trimmed: 7 });
  assert.is(await log.purgeBefore(room, new Date(recent + 7 * day - 1)), 0);
  assert.is(await log.purgeBefore(room, new Date(Number.NaN)).catch((e) => e.name), 'TypeError');
});

test('tampering after trimming is still found: the anchor or what remains', async () => {
  const anchorOf = (room: string) => `haven:audit-anchor:${room}`;
  const streamOf = (room: string) => `haven:audit:${room}`;
  const ids = async (room: string) => (await redis.xrange(streamOf(room), '-', '+')).map(([id]) => id);

  // The anchor deleted: the chain must start at seq 1 again.
  let { room, log } = await trimmedRoom();
  await redis.del(anchorOf(room));
  assert.equal(await log.verify(room), {
    ok: false,
    entries: 3,
    keyed: true,
    brokenAt: 1,
    reason: 'expected seq 1, found seq 4 (entry removed or reordered)',
  });

  // The anchor's hash forged.
  ({ room, log } = await trimmedRoom());
  await redis.hset(anchorOf(room), 'hash', 'ab'.repeat(32));
  const forged = await log.verify(room);
  assert.is(!forged.ok && forged.brokenAt, 4);
  assert.match(!forged.ok ? forged.reason : '', /retention anchor’s hash/);

  // The anchor moved back, as if fewer entries had been trimmed.
  ({ room, log } = await trimmedRoom());
  await redis.hset(anchorOf(room), 'seq', '2', 'trimmed', '2');
  const moved = await log.verify(room);
  assert.is(!moved.ok && moved.brokenAt, 3);
  assert.match(!moved.ok ? moved.reason : '', /expected seq 3, found seq 4/);

  // The anchor made unreadable.
  ({ room, log } = await trimmedRoom());
  await redis.hset(anchorOf(room), 'seq', 'three');
  const unreadable = await log.verify(room);
  assert.is(unreadable.ok, false);
  assert.match(!unreadable.ok ? unreadable.reason : '', /retention anchor malformed/);

  // The first entry kept deleted by hand (a trim without the anchor's knowledge).
  ({ room, log } = await trimmedRoom());
  await redis.xdel(streamOf(room), (await ids(room))[0] as string);
  const cut = await log.verify(room);
  assert.is(!cut.ok && cut.brokenAt, 4);
  assert.match(!cut.ok ? cut.reason : '', /expected seq 4, found seq 5/);

  // The last entry deleted; then also hidden in the anchor's trimmed count.
  ({ room, log } = await trimmedRoom());
  await redis.xdel(streamOf(room), (await ids(room)).at(-1) as string);
  assert.equal(await log.verify(room), {
    ok: false,
    entries: 2,
    keyed: true,
    brokenAt: 6,
    reason: '1 entry was deleted from the end of the stream',
    trimmed: 3,
  });
  await redis.hincrby(anchorOf(room), 'trimmed', 1);
  const hidden = await log.verify(room);
  assert.is(hidden.ok, false);
  assert.match(!hidden.ok ? hidden.reason : '', /retention anchor inconsistent/);

  // An entry kept edited (the stream rewritten by hand).
  ({ room, log } = await trimmedRoom());
  const kept = await redis.xrange(streamOf(room), '-', '+');
  await redis.del(streamOf(room));
  for (const [index, [, fields]] of kept.entries()) {
    if (index === 1) fields[fields.indexOf('target') + 1] = 'p-other';
    await redis.xadd(streamOf(room), '*', ...fields);
  }
  const edited = await log.verify(room);
  assert.is(!edited.ok && edited.brokenAt, 5);
  assert.match(!edited.ok ? edited.reason : '', /hash does not match/);

  // Entries cut from the start by hand, with an anchor forged to match (seq, hash, at copied from
  // the entry before the cut): links check out, the anchor's HMAC does not.
  ({ room, log } = await trimmedRoom());
  const [firstKept] = await redis.xrange(streamOf(room), '-', '+', 'COUNT', 1);
  const fields = firstKept?.[1] as string[];
  const cutEntry = Object.fromEntries(
    Array.from({ length: fields.length / 2 }, (_, i) => [fields[2 * i], fields[2 * i + 1]]),
  );
  await redis.xdel(streamOf(room), firstKept?.[0] as string);
  const realAnchor = await redis.hgetall(anchorOf(room));
  await redis.hset(anchorOf(room), 'seq', '4', 'trimmed', '4', 'hash', cutEntry.hash, 'at', cutEntry.at);
  const reanchored = await log.verify(room);
  assert.is(!reanchored.ok && reanchored.brokenAt, 5);
  assert.is(!reanchored.ok && reanchored.reason, 'retention anchor’s HMAC does not match (anchor forged or edited)');
  assert.ok(realAnchor.mac, 'the real anchor is keyed');
  // Nor does retention trim such a chain.
  await rejects(
    () => log.purgeBefore(room, new Date(recent + 5 * day)),
    /anchor’s HMAC does not match.*nothing purged/,
  );
  // Without the audit keys, retention purges nothing.
  const keyless = new AuditLog(redis, silent);
  await rejects(() => keyless.purgeBefore(room, new Date()), /no audit keys/);

  // The stream deleted, its anchor left behind.
  ({ room, log } = await trimmedRoom());
  await redis.del(streamOf(room));
  const gone = await log.verify(room);
  assert.is(!gone.ok && gone.brokenAt, 4);
  assert.match(!gone.ok ? gone.reason : '', /stream was deleted/);
});

test('a broken chain is not purged: the evidence stays, the run goes on and logs the room', async () => {
  const room = newRoom('broken');
  const t0 = Date.now() - 3000 * day;
  const log = await seedAudit(
    room,
    Array.from({ length: 5 }, (_, i) => t0 + i * day),
  );
  // Seq 2 edited, by rewriting the stream.
  const key = `haven:audit:${room}`;
  const all = await redis.xrange(key, '-', '+');
  await redis.del(key);
  for (const [index, [, fields]] of all.entries()) {
    if (index === 1) fields[fields.indexOf('action') + 1] = 'admit';
    await redis.xadd(key, '*', ...fields);
  }
  await rejects(() => log.purgeBefore(room, new Date()), /broken at seq 2: hash does not match.*nothing purged/);
  assert.is(await redis.xlen(key), 5);
  assert.is(await redis.exists(`haven:audit-anchor:${room}`), 0);

  // Everything expired, but the last entry was deleted by hand: not erased either.
  const truncated = newRoom('broken');
  await seedAudit(
    truncated,
    Array.from({ length: 3 }, (_, i) => t0 + i * day),
  );
  const [last] = await redis.xrevrange(`haven:audit:${truncated}`, '+', '-', 'COUNT', 1);
  await redis.xdel(`haven:audit:${truncated}`, last?.[0] as string);

  const { logger, lines } = capture();
  const only: RetentionSettings = { ...defaults, eventsDays: 0, chatDays: 0, deliveriesDays: 0 };
  const result = await processRetention({ redis, settings: only, logger, auditKeys });
  assert.is(result.auditRefused, 2);
  assert.is(await redis.xlen(key), 5);
  assert.is(await redis.xlen(`haven:audit:${truncated}`), 2);
  const errors = lines.filter((l) => l.level === 50);
  assert.equal(errors.map((l) => l.room).sort(), [room, truncated].sort());
  assert.match(JSON.stringify(errors), /deleted from the end/);
});

test('a period of 0 keeps that kind forever', async () => {
  const now = Date.now();
  const events = newRoom('ev');
  const chat = newRoom('ch');
  const audit = newRoom('au');
  await seedEvents(events, [now - 5000 * day]);
  await seedChat(chat, [now - 5000 * day]);
  const log = await seedAudit(audit, [now - 5000 * day]);
  const [, newest] = await seedDeliveries();
  const forever: RetentionSettings = { eventsDays: 0, chatDays: 0, auditDays: 0, deliveriesDays: 0, intervalS: 60 };
  const result = await processRetention({ redis, settings: forever, logger: silent, now: () => newest + 5000 * day });
  assert.equal(result, { events: 0, eventStreamsDeleted: 0, chat: 0, audit: 0, auditRefused: 0, deliveries: 0 });
  assert.is(await redis.xlen(`haven:attendance:${events}`), 1);
  assert.is(await redis.hlen(`haven:chat:${chat}`), 1);
  assert.equal(await log.verify(audit), { ok: true, entries: 1, keyed: true });
  assert.ok((await deliveryRooms()).includes('hook-old'));
  // One kind at 0, the others purge.
  const someForever = await processRetention({
    redis,
    settings: { ...forever, chatDays: 30 },
    logger: silent,
    now: () => newest + 5000 * day,
  });
  assert.ok(someForever.chat >= 1);
  assert.is(await redis.exists(`haven:chat:${chat}`), 0);
  assert.is(await redis.xlen(`haven:attendance:${events}`), 1);
});

test('configuration: defaults, environment variables, 0 allowed for periods but not the interval', () => {
  assert.equal(loadConfig({}).retention, defaults);
  const set = loadConfig({
    HAVEN_RETENTION_EVENTS_DAYS: '0',
    HAVEN_RETENTION_CHAT_DAYS: '7',
    HAVEN_RETENTION_AUDIT_DAYS: '3650',
    HAVEN_RETENTION_DELIVERIES_DAYS: '14',
    HAVEN_RETENTION_INTERVAL_S: '600',
  }).retention;
  assert.equal(set, { eventsDays: 0, chatDays: 7, auditDays: 3650, deliveriesDays: 14, intervalS: 600 });
  for (const [env, value] of [
    ['HAVEN_RETENTION_INTERVAL_S', '0'],
    ['HAVEN_RETENTION_CHAT_DAYS', '-1'],
    ['HAVEN_RETENTION_AUDIT_DAYS', '1.5'],
  ] as const) {
    try {
      loadConfig({ [env]: value });
      assert.unreachable(`${env}=${value} accepted`);
    } catch (err) {
      assert.instance(err, ConfigError);
      assert.is((err as ConfigError).problems[0]?.env, env);
    }
  }
});

test('the node’s schedule runs it through BullMQ; the job carries no data, its result counts only', async () => {
  await redis.flushdb(); // this Redis is the file's own: only this test's data now
  const room = newRoom('bull');
  await seedEvents(room, [Date.now() - 100 * day, Date.now() - 99 * day]);
  await seedChat(room, [Date.now() - 31 * day]);
  const settings: RetentionSettings = { ...defaults, intervalS: 1 };
  const schedule = new RetentionQueue({ url: redisServer.url }, settings);
  const inspect = new Queue(retentionQueueName, { connection: { url: redisServer.url } });
  const { logger, lines } = capture();
  const worker = startRetentionWorker({ url: redisServer.url }, { redis, settings }, { stalledMs: 30_000 }, logger);
  try {
    // Every node upserts it at start: one scheduler however many times.
    await schedule.schedule();
    await schedule.schedule();
    assert.is((await inspect.getJobSchedulers()).length, 1);
    // One run purges events, then chat: wait for the run to finish both.
    await waitFor(
      async () => (await redis.exists(`haven:attendance:${room}`, `haven:chat:${room}`)) === 0,
      10_000,
      'the scheduled run',
    );
    // The next run comes a second later, and finds nothing more.
    const completed = await waitFor(
      async () => {
        const jobs = await inspect.getJobs(['completed']);
        return jobs.length >= 2 ? jobs : undefined;
      },
      10_000,
      'a second run',
    );
    for (const job of completed) {
      assert.is(job.name, 'purge');
      assert.equal(job.data, {});
      assert.equal(Object.keys(job.returnvalue).sort(), [
        'audit',
        'auditRefused',
        'chat',
        'deliveries',
        'eventStreamsDeleted',
        'events',
      ]);
    }
    const totals = completed.reduce((sum, job) => sum + job.returnvalue.events, 0);
    assert.is(totals, 2, 'the two events, purged once');
    const runs = lines.filter((l) => l.msg === 'retention run');
    assert.ok(runs.length >= 2);
    assert.ok(typeof runs[0]?.ms === 'number');
    // Nothing of the chat, nor names, in the logs or anywhere in the queue's keys.
    const queueKeys = await redis.keys(`bull:${retentionQueueName}:*`); // a test may; retention never does
    const stored: unknown[] = [];
    for (const key of queueKeys) {
      if ((await redis.type(key)) === 'hash') stored.push(await redis.hgetall(key));
    }
    assert.not.match(JSON.stringify([lines, stored]), /relapsed|unsafe/);
  } finally {
    await worker.close();
    await schedule.close();
    await inspect.close();
  }
});

test.run();
