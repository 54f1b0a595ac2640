import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { waitFor } from '../../bench/processes.ts';
import { ConfigError, loadConfig } from '../../config/load.ts';
import {
  type AuditCheckpoint,
  AuditLog,
  type AuditLogOptions,
  type AuditRecordInput,
  genesisHash,
  hashEntry,
} from '../../server/audit/audit-log.ts';
import { AuditKeys, auditKeysOf, keyId } from '../../server/audit/keys.ts';
import { createLogger } from '../../server/logger.ts';
import { rejects } from '../helpers/assert.ts';
import { testRedisFor } from '../helpers/test-redis.ts';

const root = join(import.meta.dirname, '..', '..');
const testRedis = testRedisFor(test);
const { server: redisServer, dir: dataDir } = testRedis;
const prefix = `haven-test-${randomUUID()}:`;
const silent = pino({ level: 'silent' });
/** The node's audit secret: in its configuration, never in Redis. */
const secret = 'audit-secret-of-the-node-0123456789';
const keys = new AuditKeys([secret]);
const keyFile = join(dataDir, 'audit.key');
writeFileSync(keyFile, `# audit secrets, the signing one first\n${secret}\n`);
/** A log with the node's keys (what records), unless options say otherwise. */
const keyedLog = (options: AuditLogOptions = {}) => new AuditLog(redis, silent, { prefix, keys, ...options });
const redis = testRedis.client();
const other = testRedis.client();

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
  const log = keyedLog({ now });
  const room = newRoom();
  assert.equal(await log.verify(room), { ok: true, entries: 0, keyed: true });
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
  assert.equal(await log.verify(room), { ok: true, entries: 10, keyed: true });
  // Each entry carries the key's id and an HMAC; without the key, only hashes and links are checked.
  assert.is(first.kid, keyId(secret));
  assert.match(first.mac ?? '', /^[0-9a-f]{64}$/);
  assert.equal(await new AuditLog(redis, silent, { prefix }).verify(room), { ok: true, entries: 10, keyed: false });
  // One stream per room, under the prefix.
  assert.is(await redis.xlen(`${prefix}audit:${room}`), 10);
  assert.equal(await log.verify(newRoom()), { ok: true, entries: 0, keyed: true });
});

test('details refuse text, objects and anything but small ids, numbers and booleans (TypeError)', async () => {
  const log = keyedLog();
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
  const a = keyedLog();
  const b = new AuditLog(other, silent, { prefix, keys });
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
  assert.equal(await b.verify(room), { ok: true, entries: 20, keyed: true });
});

test('verify finds an edited field (stream rewritten by hand) at that seq', async () => {
  const log = keyedLog();
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
    keyed: true,
    brokenAt: 4,
    reason: 'hash does not match the entry (entry edited or hash forged)',
  });
});

test('verify finds a forged hash, a reordering and a removed entry', async () => {
  const log = keyedLog();
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
  assert.is(!result.ok && result.brokenAt, 2);
  assert.is(!result.ok && result.reason, 'HMAC does not match (entry forged or chain rewritten)');
  // Without the key the re-hashed entry checks out; the next one's prev does not.
  const unkeyed = await new AuditLog(redis, silent, { prefix }).verify(forged);
  assert.is(!unkeyed.ok && unkeyed.brokenAt, 3);
  assert.match(!unkeyed.ok ? unkeyed.reason : '', /prev does not match/);

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
    keyed: true,
    brokenAt: 5,
    reason: 'expected seq 5, found seq 6 (entry removed or reordered)',
  });

  // The last entry removed: the rest is a valid chain, but Redis counted one more append.
  const truncated = newRoom();
  await fill(log, truncated, 4);
  const [last] = await redis.xrevrange(`${prefix}audit:${truncated}`, '+', '-', 'COUNT', 1);
  await redis.xdel(`${prefix}audit:${truncated}`, last?.[0] as string);
  const cut = await log.verify(truncated);
  assert.equal(cut, {
    ok: false,
    entries: 3,
    keyed: true,
    brokenAt: 4,
    reason: '1 entry was deleted from the end of the stream',
  });
  // A later append still chains, and the deletion stays visible.
  await log.record({ room: truncated, actor: 'f-1', action: 'unlock' });
  assert.is((await log.verify(truncated)).ok, false);
});

/* ---- A Redis writer without the key: what the chain, the key and checkpoints each catch ---- */

/** A room of `n` entries and the checkpoint of its head, as the node emits it. */
async function checkpointed(n: number): Promise<{ room: string; log: AuditLog; checkpoint: AuditCheckpoint }> {
  const emitted: AuditCheckpoint[] = [];
  const log = keyedLog({ checkpoints: { intervalMs: 3_600_000, emit: (cp) => emitted.push(cp) } });
  const room = newRoom();
  await fill(log, room, n);
  log.checkpoint(room);
  log.close();
  const [checkpoint] = emitted;
  assert.ok(checkpoint && emitted.length === 1, 'one checkpoint');
  return { room, log, checkpoint };
}

const streamEntries = async (key: string) => (await redis.xrange(key, '-', '+')) as [string, string[]][];
const fieldsOf = (fields: string[]): Record<string, string | undefined> =>
  Object.fromEntries(Array.from({ length: fields.length / 2 }, (_, i) => [fields[2 * i], fields[2 * i + 1]]));

test('(a) the stream rebuilt without its newest entry: caught against a checkpoint, not without', async () => {
  const { room, log, checkpoint } = await checkpointed(4);
  assert.is(checkpoint.seq, 4);
  const key = `${prefix}audit:${room}`;
  const all = await streamEntries(key);
  await redis.del(key);
  for (const [, fields] of all.slice(0, -1)) await redis.xadd(key, '*', ...fields);
  // What a chain alone cannot show: the rest is intact, and Redis counts only the rebuilt stream.
  assert.equal(await log.verify(room), { ok: true, entries: 3, keyed: true });
  assert.equal(await log.verify(room, { checkpoints: [checkpoint] }), {
    ok: false,
    entries: 3,
    keyed: true,
    brokenAt: 4,
    reason: 'truncated (checkpoint seq 4, chain ends at 3)',
  });
});

test('(b) XDEL of the newest entry plus XSETID … ENTRIESADDED: caught against a checkpoint', async () => {
  const { room, log, checkpoint } = await checkpointed(4);
  const key = `${prefix}audit:${room}`;
  const all = await streamEntries(key);
  const newest = (all.at(-1) as [string, string[]])[0];
  await redis.xdel(key, newest);
  await redis.call('XSETID', key, newest, 'ENTRIESADDED', '3');
  assert.is((await log.verify(room)).ok, true, 'Redis’ own count was reset with it');
  const result = await log.verify(room, { checkpoints: [checkpoint] });
  assert.is(!result.ok && result.reason, 'truncated (checkpoint seq 4, chain ends at 3)');
});

test('(c) the whole chain rewritten with recomputed hashes: caught with the key', async () => {
  const { room, checkpoint } = await checkpointed(4);
  const key = `${prefix}audit:${room}`;
  const all = await streamEntries(key);
  await redis.del(key);
  let prev = genesisHash;
  for (const [, fields] of all) {
    const { hash: _hash, kid, mac, details, ...entry } = fieldsOf(fields) as Record<string, string>;
    const edited = {
      ...entry,
      seq: Number(entry.seq),
      at: '2026-01-05T09:00:00.000Z', // every entry moved to another day
      prev,
      ...(details ? { details: JSON.parse(details) } : {}),
    };
    const hash = hashEntry(edited as never);
    prev = hash;
    const rewritten = { ...edited, details, hash, kid, mac };
    await redis.xadd(
      key,
      '*',
      ...Object.entries(rewritten).flatMap(([k, v]) => (v === undefined ? [] : [k, String(v)])),
    );
  }
  // Hashes and links check out: without the key, nothing shows.
  assert.equal(await new AuditLog(redis, silent, { prefix }).verify(room), { ok: true, entries: 4, keyed: false });
  assert.equal(await keyedLog().verify(room), {
    ok: false,
    entries: 4,
    keyed: true,
    brokenAt: 1,
    reason: 'HMAC does not match (entry forged or chain rewritten)',
  });
  // The checkpoint names a hash no rewritten entry has (the rewrite is caught first here: seq 1).
  const against = await keyedLog().verify(room, { checkpoints: [checkpoint] });
  assert.is(!against.ok && against.brokenAt, 1);
  // Entries without an HMAC at all are refused too.
  await redis.del(key);
  for (const [, fields] of all) {
    const { kid: _kid, mac: _mac, ...rest } = fieldsOf(fields) as Record<string, string>;
    await redis.xadd(key, '*', ...Object.entries(rest).flat());
  }
  const bare = await keyedLog().verify(room);
  assert.is(!bare.ok && bare.reason, 'entry has no HMAC (written without the audit key)');
});

test('(d) the whole stream deleted: caught against a checkpoint', async () => {
  const { room, log, checkpoint } = await checkpointed(3);
  await redis.del(`${prefix}audit:${room}`);
  assert.equal(await log.verify(room), { ok: true, entries: 0, keyed: true });
  assert.equal(await log.verify(room, { checkpoints: [checkpoint] }), {
    ok: false,
    entries: 0,
    keyed: true,
    brokenAt: 1,
    reason: 'truncated (checkpoint seq 3, chain ends at 0)',
  });
});

test('(e) the head cut and an anchor forged for it: caught with the key', async () => {
  const { room, log } = await checkpointed(5);
  const key = `${prefix}audit:${room}`;
  const all = await streamEntries(key);
  const second = fieldsOf((all[1] as [string, string[]])[1]);
  await redis.xdel(key, (all[0] as [string, string[]])[0], (all[1] as [string, string[]])[0]);
  const anchorKey = `${prefix}audit-anchor:${room}`;
  // Seq, hash and `at` copied from the entry removed: the links check out.
  await redis.hset(anchorKey, 'seq', '2', 'hash', second.hash as string, 'at', second.at as string, 'trimmed', '2');
  assert.equal(await new AuditLog(redis, silent, { prefix }).verify(room), {
    ok: true,
    entries: 3,
    keyed: false,
    trimmed: 2,
  });
  const unsigned = await log.verify(room);
  assert.is(!unsigned.ok && unsigned.reason, 'retention anchor has no HMAC (written without the audit key)');
  await redis.hset(anchorKey, 'kid', keys.kid, 'mac', 'ab'.repeat(32));
  const forged = await log.verify(room);
  assert.is(!forged.ok && forged.brokenAt, 3);
  assert.is(!forged.ok && forged.reason, 'retention anchor’s HMAC does not match (anchor forged or edited)');
});

test('checkpoints are signed: an edited one, or one of an unknown key, is refused', async () => {
  const { room, log, checkpoint } = await checkpointed(3);
  assert.equal(Object.keys(checkpoint).sort(), ['at', 'hash', 'kid', 'room', 'seq', 'signature']);
  assert.is(checkpoint.kid, keys.kid);
  assert.equal(await log.verify(room, { checkpoints: [checkpoint] }), {
    ok: true,
    entries: 3,
    keyed: true,
    checkpoint: 3,
  });
  // Moved back to hide a cut: the signature no longer matches.
  const edited = await log.verify(room, { checkpoints: [{ ...checkpoint, seq: 2 }] });
  assert.is(!edited.ok && edited.reason, 'checkpoint seq 2: signature does not match (checkpoint forged or edited)');
  const stranger = new AuditKeys(['some-other-deployment-secret-000000']);
  const other = await new AuditLog(redis, silent, { prefix, keys: stranger }).verify(room, {
    checkpoints: [checkpoint],
  });
  assert.is(!other.ok && other.brokenAt, 1); // its entries are of an unknown key first
  // Other rooms' checkpoints are not this room's business; the newest one decides.
  assert.is((await log.verify(newRoom(), { checkpoints: [checkpoint] })).ok, true);
  await log.record({ room, actor: 'f-1', action: 'unlock' });
  assert.is((await log.verify(room, { checkpoints: [checkpoint] })).ok, true, 'a chain may grow past a checkpoint');
  // The checkpointed entry replaced by another at the same seq (possible only with the key).
  const all = await streamEntries(`${prefix}audit:${room}`);
  await redis.xdel(`${prefix}audit:${room}`, ...all.slice(2).map(([id]) => id));
  await keyedLog().record({ room, actor: 'f-9', action: 'lock' });
  const replaced = await log.verify(room, { checkpoints: [checkpoint] });
  assert.is(!replaced.ok && replaced.reason, 'entry seq 3 is not the one checkpointed (chain rewritten)');
});

test('checkpoints: every interval for rooms with new entries, at once after endSession, and at close', async () => {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line));
      done();
    },
  });
  const logger = createLogger({ env: 'production', log: { level: 'info', format: 'json' } } as never, sink);
  const emitted: AuditCheckpoint[] = [];
  const periodic = new AuditLog(redis, logger, {
    prefix,
    keys,
    checkpoints: { intervalMs: 20, emit: (cp) => emitted.push(cp) },
  });
  const room = newRoom();
  await fill(periodic, room, 3);
  await waitFor(() => emitted.some((cp) => cp.seq === 3), 10_000, 'a periodic checkpoint');
  const count = emitted.length;
  periodic.close();
  assert.is(emitted.length, count, 'nothing new: nothing to checkpoint');

  const sessions = keyedLog({ checkpoints: { intervalMs: 3_600_000, emit: (cp) => emitted.push(cp) } });
  const ended = newRoom();
  await sessions.record({ room: ended, actor: 'f-1', action: 'admit', target: 'p-1' });
  assert.ok(!emitted.some((cp) => cp.room === ended));
  await sessions.record({ room: ended, actor: 'f-1', action: 'endSession' });
  assert.equal(
    emitted.filter((cp) => cp.room === ended).map((cp) => cp.seq),
    [2],
  );
  await sessions.record({ room: ended, actor: 'admin-api', action: 'room.delete' });
  sessions.close();
  assert.equal(
    emitted.filter((cp) => cp.room === ended).map((cp) => cp.seq),
    [2, 3],
  );
  // In the audit log stream too, ids and hashes only.
  await new Promise((r) => setImmediate(r));
  const logged = lines.filter((l) => l.msg === 'audit checkpoint');
  assert.ok(logged.length >= 1);
  assert.is(logged[0]?.stream, 'audit');
  assert.equal((logged[0]?.checkpoint as AuditCheckpoint | undefined)?.room, room);
});

test('key rotation: the first key signs, every key given verifies; a key left out is named', async () => {
  const room = newRoom();
  await fill(keyedLog(), room, 2);
  const next = new AuditKeys(['the-next-audit-secret-0123456789abc', secret]);
  const rotated = new AuditLog(redis, silent, { prefix, keys: next });
  const entry = await rotated.record({ room, actor: 'f-1', action: 'lock' });
  assert.is(entry.kid, next.kid);
  assert.equal(await rotated.verify(room), { ok: true, entries: 3, keyed: true });
  const onlyNew = new AuditKeys(['the-next-audit-secret-0123456789abc']);
  const result = await new AuditLog(redis, silent, { prefix, keys: onlyNew }).verify(room);
  assert.is(!result.ok && result.reason, `entry signed with key ${keys.kid}, which was not given`);
  // Without keys a log verifies, but never records.
  await rejects(() => new AuditLog(redis, silent, { prefix }).record({ room, actor: 'f-1', action: 'mute' }), /keys/);
  assert.throws(() => new AuditKeys(['short']), /32 characters/);
});

test('the node’s keys: required in production, derived from auth.secret in development, rotated by file', () => {
  // Refused by the configuration itself (exit 2 at start), and by the keys should a config get past it.
  try {
    loadConfig({ HAVEN_ENV: 'production', HAVEN_AUTH_SECRET: 'x'.repeat(32) });
    assert.unreachable('production without an audit key');
  } catch (err) {
    assert.instance(err, ConfigError);
    assert.is((err as ConfigError).problems[0]?.env, 'HAVEN_AUDIT_HMAC_KEY');
  }
  const unchecked = { ...loadConfig({ HAVEN_AUTH_SECRET: 'x'.repeat(32) }), env: 'production' as const };
  try {
    auditKeysOf(unchecked, silent);
    assert.unreachable('production without an audit key');
  } catch (err) {
    assert.instance(err, ConfigError);
    assert.is((err as ConfigError).problems[0]?.env, 'HAVEN_AUDIT_HMAC_KEY');
  }
  const dev = loadConfig({ HAVEN_AUTH_SECRET: 'y'.repeat(32) });
  assert.is(auditKeysOf(dev, silent).kid, auditKeysOf(dev, silent).kid, 'the same key at every start');
  const configured = auditKeysOf(
    loadConfig({ HAVEN_ENV: 'production', HAVEN_AUTH_SECRET: 'x'.repeat(32), HAVEN_AUDIT_HMAC_KEY: secret }),
    silent,
  );
  assert.is(configured.kid, keys.kid);
  const rotation = join(dataDir, 'rotation.key');
  writeFileSync(rotation, `the-next-audit-secret-0123456789abc\n\n${secret}\n`);
  const rotated = auditKeysOf(loadConfig({ HAVEN_AUDIT_HMAC_KEY_FILE: rotation }), silent);
  assert.is(rotated.kid, keyId('the-next-audit-secret-0123456789abc'));
  assert.ok(rotated.has(keys.kid));
  writeFileSync(rotation, 'short\n');
  assert.throws(() => auditKeysOf(loadConfig({ HAVEN_AUDIT_HMAC_KEY_FILE: rotation }), silent), /32 characters/);
  assert.is(keyId(secret).length, 16);
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
    { prefix, keys },
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
  const log = new AuditLog(redis, logger, { prefix, keys });
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
    'kid',
    'mac',
  ] as const) {
    assert.equal(first[field], entry[field], field);
  }
  const text = JSON.stringify(lines);
  assert.not.match(text, /Dr\.|Jane|token|"name"/);
});

test('CLI: audit verify exits 0 on a good chain, 1 with BROKEN on a tampered one; show prints JSON lines', async () => {
  const log = new AuditLog(redis, silent, { keys }); // default prefix haven:, as the CLI
  const room = newRoom();
  await fill(log, room, 5);
  const unkeyed = cli(['verify', '--room', room, '--redis', redisServer.url]);
  assert.is(unkeyed.status, 0, unkeyed.stderr);
  assert.is(
    unkeyed.stdout,
    'ok: 5 entries; HMACs NOT checked (no --key): a Redis writer could have rewritten the whole chain; ' +
      'tail truncation after the last checkpoint cannot be detected without one (--checkpoint)\n',
  );
  const good = cli(['verify', '--room', room, '--redis', redisServer.url, '--key', keyFile]);
  assert.is(good.status, 0, good.stderr);
  assert.is(
    good.stdout,
    'ok: 5 entries, HMACs checked; tail truncation after the last checkpoint cannot be detected without one (--checkpoint)\n',
  );

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

  // A checkpoint as the audit log stream ships it (a JSON line), then the newest entry cut.
  const lines: string[] = [];
  const shipped = new Writable({
    write(chunk, _encoding, done) {
      lines.push(...String(chunk).split('\n').filter(Boolean));
      done();
    },
  });
  const logger = createLogger({ env: 'production', log: { level: 'info', format: 'json' } } as never, shipped);
  const node = new AuditLog(redis, logger, { keys, checkpoints: { intervalMs: 3_600_000 } });
  const cut = newRoom();
  await fill(node, cut, 4);
  node.close();
  await new Promise((r) => setImmediate(r));
  const logFile = join(dataDir, 'audit.jsonl');
  writeFileSync(logFile, `${lines.join('\n')}\nnot json\n`);
  const line = lines.find((l) => JSON.parse(l).msg === 'audit checkpoint') as string;
  const reached = cli(['verify', '--room', cut, '--redis', redisServer.url, '--key', keyFile, '--checkpoint', line]);
  assert.is(reached.status, 0, reached.stderr);
  assert.is(
    reached.stdout,
    'ok: 4 entries, HMACs checked, reaches checkpoint seq 4; entries after it could be cut undetected\n',
  );
  const [newest] = await redis.xrevrange(`haven:audit:${cut}`, '+', '-', 'COUNT', 1);
  await redis.xdel(`haven:audit:${cut}`, newest?.[0] as string);
  await redis.call('XSETID', `haven:audit:${cut}`, newest?.[0] as string, 'ENTRIESADDED', '3');
  for (const given of [
    ['--checkpoint', line],
    ['--checkpoints', logFile],
  ]) {
    const truncated = cli(['verify', '--room', cut, '--redis', redisServer.url, '--key', keyFile, ...given]);
    assert.is(truncated.status, 1, truncated.stderr);
    assert.is(truncated.stdout, 'BROKEN at seq 4: truncated (checkpoint seq 4, chain ends at 3)\n');
  }
  // A checkpoint needs the key; a bad one, or another room's, is a usage error.
  for (const args of [
    ['--checkpoint', line],
    ['--checkpoint', '{"seq":1}', '--key', keyFile],
    ['--checkpoint', line.replace(cut, 'other-room'), '--key', keyFile],
    ['--key', join(dataDir, 'missing.key')],
  ]) {
    const refused = cli(['verify', '--room', cut, '--redis', redisServer.url, ...args]);
    assert.is(refused.status, 2, `${args.join(' ')}: ${refused.stdout}`);
    assert.match(refused.stderr, /^haven audit: (checking checkpoints needs|--checkpoint|cannot read --key)/);
  }
  await redis.del(`haven:audit:${cut}`);

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
