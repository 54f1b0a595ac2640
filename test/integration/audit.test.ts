import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AuditLog, type AuditRecordInput, genesisHash, hashEntry } from '../../server/audit/audit-log.ts';
import { createLogger } from '../../server/logger.ts';
import { EmbeddedRedis } from '../../server/redis/embedded-redis.ts';
import { rejects } from '../helpers/assert.ts';

const root = join(import.meta.dirname, '..', '..');
const dataDir = mkdtempSync(join(tmpdir(), 'haven-audit-'));
const prefix = `haven-test-${randomUUID()}:`;
const silent = pino({ level: 'silent' });
let redisServer: EmbeddedRedis;
let redis: Redis;
let other: Redis;

test.before(async () => {
  redisServer = await EmbeddedRedis.start({ dataDir });
  redis = new Redis(redisServer.url);
  other = new Redis(redisServer.url);
});

test.after(async () => {
  redis?.disconnect();
  other?.disconnect();
  await redisServer?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

let rooms = 0;
const newRoom = () => `grp-${++rooms}-${randomUUID().slice(0, 8)}`;

/** Records `n` typical moderation entries in `room`. */
async function fill(log: AuditLog, room: string, n: number): Promise<void> {
  const actions: Omit<AuditRecordInput, 'room'>[] = [
    { actor: 'admin-api', action: 'room.create', details: { kind: 'group', capacity: 12 } },
    { actor: 'p-a1', action: 'consent.accept', details: { version: 3 } },
    { actor: 'f-1', action: 'admit', target: 'p-a1' },
    { actor: 'f-1', action: 'mute', target: 'p-a1', details: { kind: 'audio', forced: true } },
    { actor: 'f-1', action: 'remove', target: 'p-b2', result: 'NOT_FOUND' },
  ];
  for (let i = 0; i < n; i++) await log.record({ ...(actions[i % actions.length] as AuditRecordInput), room });
}

/** What an attacker with Redis access does: rewrite the stream with one entry changed. */
async function rewrite(key: string, change: (fields: string[], index: number) => string[]): Promise<void> {
  const all = (await redis.xrange(key, '-', '+')) as [string, string[]][];
  await redis.del(key);
  for (const [index, [, fields]] of all.entries()) await redis.xadd(key, '*', ...change([...fields], index));
}

function cli(args: string[]) {
  return spawnSync(process.execPath, ['--import', 'tsx', join(root, 'bin/haven.ts'), 'audit', ...args], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, REDIS_URL: undefined },
  });
}

test('record chains entries; entries reads them back; verify is ok', async () => {
  let clock = Date.parse('2026-03-02T17:00:00Z');
  const now = () => {
    clock += 1000;
    return new Date(clock);
  };
  const log = new AuditLog(redis, silent, { prefix, now });
  const room = newRoom();
  assert.equal(await log.verify(room), { ok: true, entries: 0 });
  const first = await log.record({ room, actor: 'f-1', action: 'lock', details: { locked: true } });
  assert.is(first.seq, 1);
  assert.is(first.prev, genesisHash);
  assert.is(first.result, 'ok');
  assert.is(first.at, '2026-03-02T17:00:01.000Z');
  assert.match(first.hash, /^[0-9a-f]{64}$/);
  const { hash, ...unsigned } = first;
  assert.is(hashEntry(unsigned), hash);
  const second = await log.record({ room, actor: 'f-1', action: 'deny', target: 'p-9', result: 'FORBIDDEN' });
  assert.is(second.seq, 2);
  assert.is(second.prev, first.hash);
  await fill(log, room, 8);

  const entries = await log.entries(room);
  assert.is(entries.length, 10);
  assert.equal(entries[0], first);
  assert.equal(entries[1], second);
  assert.equal(
    entries.map((e) => e.seq),
    [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
  );
  assert.equal(entries[2]?.details, { capacity: 12, kind: 'group' }); // types survive the stream
  assert.equal(
    (await log.entries(room, { from: 4, count: 3 })).map((e) => e.seq),
    [4, 5, 6],
  );
  assert.equal(await log.verify(room), { ok: true, entries: 10 });
  // One stream per room, under the prefix.
  assert.is(await redis.xlen(`${prefix}audit:${room}`), 10);
  assert.equal(await log.verify(newRoom()), { ok: true, entries: 0 });
});

test('details refuse text, objects and anything but small ids, numbers and booleans (TypeError)', async () => {
  const log = new AuditLog(redis, silent, { prefix });
  const room = newRoom();
  const refused: unknown[] = [
    { reason: 'she said she feels unsafe' }, // text with spaces
    { nested: { id: 'x' } },
    { list: ['a'] },
    { long: 'x'.repeat(65) },
    { n: Number.NaN },
    { n: Number.POSITIVE_INFINITY },
    { fn: () => 1 },
    { nothing: null },
    { 'bad key': 1 },
    'details',
    ['a'],
    new Map([['a', 1]]),
  ];
  for (const details of refused) {
    const err = await rejects(() => log.record({ room, actor: 'f-1', action: 'mute', details } as never), /audit/);
    assert.instance(err, TypeError);
  }
  for (const input of [
    { room: 'a room', actor: 'f-1', action: 'mute' },
    { room, actor: 'Dr. Lee', action: 'mute' },
    { room, actor: 'f-1', action: '' },
    { room, actor: 'f-1', action: 'mute', target: 'Jane Doe' },
    { room, actor: 'f-1', action: 'mute', result: 'failed badly' },
  ]) {
    assert.instance(await rejects(() => log.record(input), /must be an id/), TypeError);
  }
  // Nothing was written; allowed values go through.
  assert.is(await redis.exists(`${prefix}audit:${room}`), 0);
  const ok = await log.record({
    room,
    actor: 'f-1',
    action: 'consent.accept',
    details: { version: 2, hash: 'ab'.repeat(32), forced: false, kind: 'screen', empty: '' },
  });
  assert.equal(ok.details, { empty: '', forced: false, hash: 'ab'.repeat(32), kind: 'screen', version: 2 });
});

test('20 concurrent records from two processes (two connections) make one chain, seq 1..20', async () => {
  const room = newRoom();
  const a = new AuditLog(redis, silent, { prefix });
  const b = new AuditLog(other, silent, { prefix });
  const results = await Promise.all(
    Array.from({ length: 20 }, (_, i) =>
      (i % 2 === 0 ? a : b).record({ room, actor: `f-${i % 2}`, action: 'mute', target: `p-${i}` }),
    ),
  );
  assert.equal(
    results.map((e) => e.seq).sort((x, y) => x - y),
    Array.from({ length: 20 }, (_, i) => i + 1),
  );
  const entries = await a.entries(room);
  assert.equal(
    entries.map((e) => e.seq),
    Array.from({ length: 20 }, (_, i) => i + 1),
  );
  assert.equal(new Set(entries.map((e) => e.target)).size, 20); // each call once
  for (let i = 1; i < entries.length; i++) assert.is(entries[i]?.prev, entries[i - 1]?.hash);
  assert.equal(await b.verify(room), { ok: true, entries: 20 });
});

test('verify finds an edited field (stream rewritten by hand) at that seq', async () => {
  const log = new AuditLog(redis, silent, { prefix });
  const room = newRoom();
  await fill(log, room, 6);
  const key = `${prefix}audit:${room}`;
  await rewrite(key, (fields, index) => {
    if (index === 3) fields[fields.indexOf('target') + 1] = 'p-other'; // seq 4 muted someone else
    return fields;
  });
  assert.equal(await log.verify(room), {
    ok: false,
    entries: 6,
    brokenAt: 4,
    reason: 'hash does not match the entry (entry edited or hash forged)',
  });
});

test('verify finds a forged hash, a reordering and a removed entry', async () => {
  const log = new AuditLog(redis, silent, { prefix });
  // Edited and re-hashed: the entry checks out, the next one's prev does not.
  const forged = newRoom();
  await fill(log, forged, 5);
  await rewrite(`${prefix}audit:${forged}`, (fields, index) => {
    if (index !== 1) return fields;
    const entry = Object.fromEntries(
      Array.from({ length: fields.length / 2 }, (_, i) => [fields[2 * i], fields[2 * i + 1]]),
    );
    const edited = { ...entry, seq: Number(entry.seq), details: JSON.parse(entry.details as string), actor: 'p-zz' };
    delete (edited as Record<string, unknown>).hash;
    fields[fields.indexOf('actor') + 1] = 'p-zz';
    fields[fields.indexOf('hash') + 1] = hashEntry(edited as never);
    return fields;
  });
  const result = await log.verify(forged);
  assert.is(result.ok, false);
  assert.is(!result.ok && result.brokenAt, 3);
  assert.match(!result.ok ? result.reason : '', /prev does not match/);

  // Two entries swapped.
  const reordered = newRoom();
  await fill(log, reordered, 5);
  const key = `${prefix}audit:${reordered}`;
  const all = (await redis.xrange(key, '-', '+')) as [string, string[]][];
  await rewrite(key, (_, index) => (all[index === 2 ? 3 : index === 3 ? 2 : index] as [string, string[]])[1]);
  const swapped = await log.verify(reordered);
  assert.is(!swapped.ok && swapped.brokenAt, 3);
  assert.match(!swapped.ok ? swapped.reason : '', /^expected seq 3, found seq 4 \(entry removed or reordered\)$/);

  // One entry removed from the middle with XDEL.
  const removed = newRoom();
  await fill(log, removed, 7);
  const ids = ((await redis.xrange(`${prefix}audit:${removed}`, '-', '+')) as [string, string[]][]).map(([id]) => id);
  await redis.xdel(`${prefix}audit:${removed}`, ids[4] as string);
  assert.equal(await log.verify(removed), {
    ok: false,
    entries: 6,
    brokenAt: 5,
    reason: 'expected seq 5, found seq 6 (entry removed or reordered)',
  });

  // The last entry removed: the rest is a valid chain, but Redis counted one more append.
  const truncated = newRoom();
  await fill(log, truncated, 4);
  const [last] = await redis.xrevrange(`${prefix}audit:${truncated}`, '+', '-', 'COUNT', 1);
  await redis.xdel(`${prefix}audit:${truncated}`, last?.[0] as string);
  const cut = await log.verify(truncated);
  assert.equal(cut, { ok: false, entries: 3, brokenAt: 4, reason: '1 entry was deleted from the end of the stream' });
  // A later append still chains, and the deletion stays visible.
  await log.record({ room: truncated, actor: 'f-1', action: 'unlock' });
  assert.is((await log.verify(truncated)).ok, false);
});

test('a Redis failure rejects record and logs the ids at error level', async () => {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line));
      done();
    },
  });
  const broken = new Redis(redisServer.url, { lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false });
  broken.on('error', () => {});
  const log = new AuditLog(
    broken,
    createLogger({ env: 'production', log: { level: 'info', format: 'json' } } as never, sink),
    {
      prefix,
    },
  );
  const room = newRoom();
  await rejects(() => log.record({ room, actor: 'f-1', action: 'ban', target: 'p-3' }), /./);
  broken.disconnect();
  const failure = lines.find((l) => l.level === 50);
  assert.ok(failure, 'an error line');
  assert.is(failure?.stream, 'audit');
  assert.is(failure?.room, room);
  assert.is(failure?.actor, 'f-1');
  assert.is(failure?.action, 'ban');
  assert.is(failure?.target, 'p-3');
  assert.match(String(failure?.msg), /NOT recorded/);
});

test('each entry is a pino line with stream: audit, ids only', async () => {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line));
      done();
    },
  });
  const logger = createLogger({ env: 'production', log: { level: 'info', format: 'json' } } as never, sink);
  const log = new AuditLog(redis, logger, { prefix });
  const room = newRoom();
  const entry = await log.record({ room, actor: 'f-1', action: 'admit', target: 'p-a1', details: { waitedS: 42 } });
  await log.record({ room, actor: 'f-1', action: 'end', details: { attendees: 5 } });
  await new Promise((r) => setImmediate(r));
  const audit = lines.filter((l) => l.stream === 'audit');
  assert.is(audit.length, 2);
  const first = audit[0] as Record<string, unknown>;
  assert.is(first.level, 30);
  for (const field of [
    'seq',
    'at',
    'room',
    'actor',
    'action',
    'target',
    'result',
    'details',
    'prev',
    'hash',
  ] as const) {
    assert.equal(first[field], entry[field], field);
  }
  const text = JSON.stringify(lines);
  assert.not.match(text, /Dr\.|Jane|token|"name"/);
});

test('CLI: audit verify exits 0 on a good chain, 1 with BROKEN on a tampered one; show prints JSON lines', async () => {
  const log = new AuditLog(redis, silent); // default prefix haven:, as the CLI
  const room = newRoom();
  await fill(log, room, 5);
  const good = cli(['verify', '--room', room, '--redis', redisServer.url]);
  assert.is(good.status, 0, good.stderr);
  assert.is(good.stdout, 'ok: 5 entries\n');

  const shown = cli(['show', '--room', room, '--count', '3', '--redis', redisServer.url]);
  assert.is(shown.status, 0, shown.stderr);
  const printed = shown.stdout
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line));
  assert.equal(printed, (await log.entries(room)).slice(0, 3));

  await rewrite(`haven:audit:${room}`, (fields, index) => {
    if (index === 1) fields[fields.indexOf('at') + 1] = '2020-01-01T00:00:00.000Z';
    return fields;
  });
  const bad = cli(['verify', '--room', room, '--redis', redisServer.url]);
  assert.is(bad.status, 1, bad.stderr);
  assert.match(bad.stdout, /^BROKEN at seq 2: hash does not match/);
  await redis.del(`haven:audit:${room}`);

  // No Redis URL: usage error naming --redis / REDIS_URL; --help documents it.
  const missing = cli(['verify', '--room', room]);
  assert.is(missing.status, 2);
  assert.match(missing.stderr, /--redis.*REDIS_URL/);
  const help = cli(['--help']);
  assert.is(help.status, 0);
  assert.match(help.stdout, /Usage: haven audit verify --room ROOM/);
  assert.match(help.stdout, /embedded\s+Redis generates a new password/);
  // The password never reaches the output when Redis refuses.
  const unreachable = cli(['verify', '--room', room, '--redis', 'redis://:s3cret-pass@127.0.0.1:1']);
  assert.is(unreachable.status, 2);
  assert.not.match(unreachable.stderr + unreachable.stdout, /s3cret/);
});

test.run();
