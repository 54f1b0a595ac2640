/**
 * The audit log: one entry for every moderation and admin action (admit, deny, mute, remove, ban,
 * lock, end session, consent accepted, room created, …), kept as a hash chain per room in a Redis
 * stream `<prefix>audit:<room>` and written to its own pino stream (`stream: 'audit'`).
 *
 * Entries hold ids, the action, the result and small `details` (ids, numbers, booleans, short
 * enums), never chat text, names or tokens: `record` refuses anything else with a TypeError.
 *
 * Each entry's `hash` is the SHA-256 of a canonical serialization of its other fields, `prev`
 * included, so editing, removing or reordering an entry breaks the chain and `verify` finds where.
 * Appends are compare-and-append: a Lua script adds the entry only if the stream's last entry is
 * still the one whose hash the caller chained to, else it answers with the fresh head and the
 * caller retries (bounded). Several processes may append to the same room concurrently.
 *
 * Retention (`purgeBefore`, run by the retention worker) removes a room's oldest entries and keeps
 * the rest verifiable: one Lua script XTRIMs them and records an anchor, `<prefix>audit-anchor:<room>`,
 * holding the seq and hash of the last entry removed and how many retention removed in all. `verify`
 * starts from the anchor (the first entry left must be seq anchor.seq + 1 with prev = anchor.hash)
 * and counts the trimmed entries as deleted on purpose, so deleting or editing the anchor breaks
 * the chain like any other edit. The entries to remove are checked first: a broken chain is left
 * as it is, so retention never erases the evidence of tampering. When every entry of a room has
 * expired, its stream and anchor go together (a later entry starts a new chain at seq 1).
 *
 * What it does not prove: SHA-256 is unkeyed, so someone with write access to Redis who recomputes
 * every hash after the entry they change (or cuts the chain's start and writes a matching anchor)
 * leaves a valid chain, and deleting the whole key leaves an empty one. The `hash` in each pino
 * audit line is the anchor against that: compare the chain's hashes with the shipped logs
 * (`haven audit show`).
 */
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from '../logger.ts';

export type AuditDetails = Record<string, string | number | boolean>;

export interface AuditEntry {
  /** Position in the room's chain, from 1, without gaps. */
  seq: number;
  /** When it was recorded (ISO 8601, UTC). */
  at: string;
  room: string;
  /** Pseudonymous id of who acted (a participant id, or e.g. `admin-api`). */
  actor: string;
  /** What was done, e.g. `admit`, `mute`, `room.create`. */
  action: string;
  /** Pseudonymous id of whom it was done to, if anyone. */
  target?: string;
  /** `ok`, or the error code the action failed with. */
  result: string;
  details?: AuditDetails;
  /** `hash` of the entry before; {@link genesisHash} for the first. */
  prev: string;
  /** SHA-256 (hex) of {@link canonicalEntry} of this entry. */
  hash: string;
}

export interface AuditRecordInput {
  room: string;
  actor: string;
  action: string;
  target?: string;
  /** Default `ok`. */
  result?: string;
  details?: AuditDetails;
}

export interface AuditLogOptions {
  /** Redis key prefix. Default `haven:` (streams `haven:audit:<room>`). */
  prefix?: string;
  /** Clock, for tests. Default `() => new Date()`. */
  now?: () => Date;
  /** Compare-and-append attempts before `record` gives up. Default 20. */
  maxAttempts?: number;
}

/**
 * What retention leaves of a room's removed entries (`<prefix>audit-anchor:<room>`): the chain
 * that remains starts right after it.
 */
export interface AuditAnchor {
  /** Seq of the last entry removed: the first one left is seq + 1. */
  seq: number;
  /** Hash of the last entry removed: the first one left has it as `prev`. */
  hash: string;
  /** `at` of the last entry removed. */
  at: string;
  /** Entries removed by retention in all (equal to `seq` while the chain is intact). */
  trimmed: number;
}

/** `entries` counts the entries in the stream; `trimmed`, present once retention removed some, those before them. */
export type AuditVerification =
  | { ok: true; entries: number; trimmed?: number }
  | { ok: false; entries: number; brokenAt: number; reason: string; trimmed?: number };

/** Where a chain stops being intact: the first seq that is not, and why. */
interface ChainBreak {
  brokenAt: number;
  reason: string;
}

/** `prev` of a room's first entry. */
export const genesisHash = '0'.repeat(64);

/** Room, actor and target ids: the alphabet of token `sub` and `room` claims. */
const idPattern = /^[A-Za-z0-9._:-]{1,128}$/;
/** Actions and results (`admit`, `room.create`, `ROOM_LOCKED`). */
const codePattern = /^[A-Za-z0-9._:-]{1,64}$/;
const detailKeyPattern = /^[A-Za-z_][A-Za-z0-9_]{0,31}$/;
const detailStringPattern = /^[A-Za-z0-9._:-]*$/;
const maxDetailString = 64;
const maxDetailKeys = 16;
const pageSize = 500;

/* ---- Validation ----------------------------------------------------------------------------- */

function checkId(what: string, value: unknown, pattern = idPattern): string {
  if (typeof value !== 'string' || !pattern.test(value)) {
    throw new TypeError(
      `audit ${what} must be an id (letters, digits, . _ : -; at most ${pattern === idPattern ? 128 : 64} characters)`,
    );
  }
  return value;
}

/** Copies `details` in sorted key order after checking every key and value; TypeError otherwise. */
export function checkDetails(details: unknown): AuditDetails | undefined {
  if (details === undefined) return undefined;
  if (typeof details !== 'object' || details === null || Array.isArray(details)) {
    throw new TypeError('audit details must be a plain object');
  }
  const proto = Object.getPrototypeOf(details);
  if (proto !== Object.prototype && proto !== null) throw new TypeError('audit details must be a plain object');
  const keys = Object.keys(details).sort();
  if (keys.length > maxDetailKeys) throw new TypeError(`audit details: at most ${maxDetailKeys} keys`);
  if (keys.length === 0) return undefined;
  const copy: AuditDetails = {};
  for (const key of keys) {
    if (!detailKeyPattern.test(key))
      throw new TypeError('audit details: keys must be identifiers of at most 32 characters');
    const value = (details as Record<string, unknown>)[key];
    if (typeof value === 'string') {
      if (value.length > maxDetailString || !detailStringPattern.test(value)) {
        throw new TypeError(
          `audit details.${key}: strings must be ids or short enums (at most ${maxDetailString} of letters, digits, . _ : -)`,
        );
      }
    } else if (typeof value === 'number') {
      if (!Number.isFinite(value)) throw new TypeError(`audit details.${key}: numbers must be finite`);
    } else if (typeof value !== 'boolean') {
      throw new TypeError(`audit details.${key}: only strings, numbers and booleans are allowed`);
    }
    copy[key] = value;
  }
  return copy;
}

/* ---- Hashing ---------------------------------------------------------------------------------- */

/**
 * The canonical serialization hashed into `hash`: a JSON array of every other field in a fixed
 * order (absent `target` / `details` as null), `details` as `[key, value]` pairs sorted by key.
 */
export function canonicalEntry(entry: Omit<AuditEntry, 'hash'>): string {
  const details =
    entry.details === undefined
      ? null
      : Object.keys(entry.details)
          .sort()
          .map((key) => [key, (entry.details as AuditDetails)[key]]);
  return JSON.stringify([
    'haven-audit-v1',
    entry.seq,
    entry.at,
    entry.room,
    entry.actor,
    entry.action,
    entry.target ?? null,
    entry.result,
    details,
    entry.prev,
  ]);
}

export function hashEntry(entry: Omit<AuditEntry, 'hash'>): string {
  return createHash('sha256').update(canonicalEntry(entry)).digest('hex');
}

/* ---- Stream encoding ---------------------------------------------------------------------------- */

function toFields(entry: AuditEntry): string[] {
  const fields = ['seq', String(entry.seq), 'at', entry.at, 'room', entry.room, 'actor', entry.actor];
  fields.push('action', entry.action);
  if (entry.target !== undefined) fields.push('target', entry.target);
  fields.push('result', entry.result);
  if (entry.details !== undefined) fields.push('details', JSON.stringify(entry.details));
  fields.push('prev', entry.prev, 'hash', entry.hash);
  return fields;
}

/** Parses a stream entry's fields; a string says what is wrong with it. */
function fromFields(fields: string[]): AuditEntry | string {
  const map = new Map<string, string>();
  for (let i = 0; i + 1 < fields.length; i += 2) map.set(fields[i] as string, fields[i + 1] as string);
  for (const name of ['seq', 'at', 'room', 'actor', 'action', 'result', 'prev', 'hash']) {
    if (!map.has(name)) return `malformed entry: no ${name}`;
  }
  const seqText = map.get('seq') as string;
  if (!/^\d{1,15}$/.test(seqText)) return 'malformed entry: seq is not a number';
  let details: AuditDetails | undefined;
  const detailsText = map.get('details');
  if (detailsText !== undefined) {
    try {
      details = JSON.parse(detailsText) as AuditDetails;
      if (typeof details !== 'object' || details === null || Array.isArray(details)) throw new Error();
    } catch {
      return 'malformed entry: details are not a JSON object';
    }
  }
  const entry: AuditEntry = {
    seq: Number(seqText),
    at: map.get('at') as string,
    room: map.get('room') as string,
    actor: map.get('actor') as string,
    action: map.get('action') as string,
    result: map.get('result') as string,
    prev: map.get('prev') as string,
    hash: map.get('hash') as string,
  };
  const target = map.get('target');
  if (target !== undefined) entry.target = target;
  if (details !== undefined) entry.details = details;
  return entry;
}

/* ---- Compare-and-append -------------------------------------------------------------------------- */

/**
 * KEYS[1] the room's stream; ARGV[1] the `prev` the caller chained to, ARGV[2] the caller's seq,
 * ARGV[3…] the entry's fields. Adds the entry if the stream's last entry has hash ARGV[1] and seq
 * ARGV[2] - 1 (an empty stream: the genesis hash and 0): `{1, id}`; else `{0, headSeq, headHash}`.
 */
const appendScript = `
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local seq = 0
local hash = string.rep('0', 64)
if #last > 0 then
  seq = -1
  hash = ''
  local fields = last[1][2]
  for i = 1, #fields, 2 do
    if fields[i] == 'seq' then seq = tonumber(fields[i + 1]) or -1
    elseif fields[i] == 'hash' then hash = fields[i + 1] end
  end
end
if hash ~= ARGV[1] or seq + 1 ~= tonumber(ARGV[2]) then
  return {0, tostring(seq), hash}
end
local id = redis.call('XADD', KEYS[1], '*', unpack(ARGV, 3))
return {1, id}
`;

const commandName = 'havenAuditAppend';
type AppendReply = [0, string, string] | [1, string];
interface WithAppend {
  [commandName](key: string, ...args: string[]): Promise<AppendReply>;
}

/* ---- Retention ----------------------------------------------------------------------------------- */

/**
 * KEYS[1] the room's stream, KEYS[2] its anchor; ARGV[1] the stream id of the last entry to remove
 * (checked by the caller), ARGV[2..4] its seq, hash and at; ARGV[5] the id of the first entry kept,
 * or '' when none is. Answers how many entries went, or -1 if the stream changed since the caller
 * checked it (the caller tries again). One script, so that no reader ever sees a trimmed stream
 * without its anchor, nor an anchor without its trim.
 */
const purgeScript = `
if ARGV[5] == '' then
  local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
  if #top == 0 or top[1][1] ~= ARGV[1] then return -1 end
  local n = redis.call('XLEN', KEYS[1])
  redis.call('DEL', KEYS[1], KEYS[2])
  return n
end
local before = redis.call('XREVRANGE', KEYS[1], '(' .. ARGV[5], '-', 'COUNT', 1)
if #before == 0 or before[1][1] ~= ARGV[1] then return -1 end
local n = redis.call('XTRIM', KEYS[1], 'MINID', ARGV[5])
redis.call('HSET', KEYS[2], 'seq', ARGV[2], 'hash', ARGV[3], 'at', ARGV[4])
redis.call('HINCRBY', KEYS[2], 'trimmed', n)
return n
`;

const purgeCommandName = 'havenAuditPurge';
interface WithPurge {
  [purgeCommandName](key: string, anchorKey: string, ...args: string[]): Promise<number>;
}
const purgeAttempts = 3;

/** Parses an anchor hash; undefined when there is none, a string saying what is wrong otherwise. */
function parseAnchor(fields: Record<string, string>): AuditAnchor | undefined | string {
  if (Object.keys(fields).length === 0) return undefined;
  const { seq, hash, at, trimmed } = fields;
  if (!seq || !/^\d{1,15}$/.test(seq) || !trimmed || !/^\d{1,15}$/.test(trimmed)) {
    return 'retention anchor malformed: seq or trimmed is not a number';
  }
  if (!hash || !/^[0-9a-f]{64}$/.test(hash)) return 'retention anchor malformed: hash is not a SHA-256';
  return { seq: Number(seq), hash, at: at ?? '', trimmed: Number(trimmed) };
}

/**
 * Retention removes a chain's entries from seq 1 on, so the anchor's count of them is its seq: a
 * count bumped to hide entries deleted from the end does not match.
 */
function checkAnchor(anchor: AuditAnchor | undefined): ChainBreak | undefined {
  if (!anchor || anchor.trimmed === anchor.seq) return undefined;
  return {
    brokenAt: anchor.seq + 1,
    reason: `retention anchor inconsistent: ${anchor.trimmed} entries trimmed through seq ${anchor.seq}`,
  };
}

/* ---- The log ----------------------------------------------------------------------------------- */

export class AuditLog {
  readonly #redis: Redis;
  readonly #logger: Logger;
  readonly #prefix: string;
  readonly #now: () => Date;
  readonly #maxAttempts: number;
  /** Per room, the tail of this instance's appends: they go one at a time (other processes may race). */
  readonly #queues = new Map<string, Promise<unknown>>();

  constructor(redis: Redis, logger: Logger, options: AuditLogOptions = {}) {
    this.#redis = redis;
    this.#logger = logger.child({ stream: 'audit' });
    this.#prefix = options.prefix ?? 'haven:';
    this.#now = options.now ?? (() => new Date());
    this.#maxAttempts = options.maxAttempts ?? 20;
    if (typeof (redis as unknown as Partial<WithAppend>)[commandName] !== 'function') {
      redis.defineCommand(commandName, { numberOfKeys: 1, lua: appendScript });
    }
    if (typeof (redis as unknown as Partial<WithPurge>)[purgeCommandName] !== 'function') {
      redis.defineCommand(purgeCommandName, { numberOfKeys: 2, lua: purgeScript });
    }
  }

  /** The room's stream key. */
  key(room: string): string {
    return `${this.#prefix}audit:${checkId('room', room)}`;
  }

  /** The key of the room's retention anchor. */
  anchorKey(room: string): string {
    return `${this.#prefix}audit-anchor:${checkId('room', room)}`;
  }

  /** The room's retention anchor: undefined until retention removed some of its entries. */
  async anchor(room: string): Promise<AuditAnchor | undefined> {
    const anchor = parseAnchor(await this.#redis.hgetall(this.anchorKey(room)));
    if (typeof anchor === 'string') throw new Error(`audit chain of room ${room}: ${anchor}`);
    return anchor;
  }

  /**
   * Appends an entry to the room's chain and writes it to the `audit` log stream. Rejects with a
   * TypeError for input that is not ids (or details that are not small values), and with the Redis
   * error if it cannot be stored (logged with the ids: the entry is never dropped silently).
   */
  async record(input: AuditRecordInput): Promise<AuditEntry> {
    if (typeof input !== 'object' || input === null) throw new TypeError('audit record input must be an object');
    const base = {
      room: checkId('room', input.room),
      actor: checkId('actor', input.actor),
      action: checkId('action', input.action, codePattern),
      target: input.target === undefined ? undefined : checkId('target', input.target),
      result: input.result === undefined ? 'ok' : checkId('result', input.result, codePattern),
      details: checkDetails(input.details),
    };
    const at = this.#now().toISOString();
    const previous = this.#queues.get(base.room) ?? Promise.resolve();
    const run = previous.then(
      () => this.#append(base, at),
      () => this.#append(base, at),
    );
    this.#queues.set(base.room, run);
    try {
      return await run;
    } finally {
      if (this.#queues.get(base.room) === run) this.#queues.delete(base.room);
    }
  }

  /**
   * `record` for callers that do not wait (a room's `audit` setting): nothing is thrown; a refused
   * input or a failed append is logged at error level (ids only, as `record` does).
   */
  recordInBackground(input: AuditRecordInput): void {
    this.record(input).catch((err: Error) => {
      // #append has logged its own failures with the ids; a TypeError was refused before that.
      if (err instanceof TypeError) this.#logger.error({ reason: err.message }, 'audit entry refused (bad input)');
    });
  }

  async #append(base: Omit<AuditEntry, 'seq' | 'at' | 'prev' | 'hash'>, at: string): Promise<AuditEntry> {
    const key = this.key(base.room);
    const ids = { room: base.room, actor: base.actor, action: base.action, target: base.target, result: base.result };
    try {
      let head = await this.#head(key);
      for (let attempt = 1; attempt <= this.#maxAttempts; attempt++) {
        const unsigned: Omit<AuditEntry, 'hash'> = {
          seq: head.seq + 1,
          at,
          room: base.room,
          actor: base.actor,
          action: base.action,
          ...(base.target === undefined ? {} : { target: base.target }),
          result: base.result,
          ...(base.details === undefined ? {} : { details: base.details }),
          prev: head.hash,
        };
        const entry: AuditEntry = { ...unsigned, hash: hashEntry(unsigned) };
        const args = [entry.prev, String(entry.seq), ...toFields(entry)];
        const reply = await (this.#redis as unknown as WithAppend)[commandName](key, ...args);
        if (reply[0] === 1) {
          this.#logger.info({ ...entry }, 'audit');
          return entry;
        }
        head = { seq: Number(reply[1]), hash: String(reply[2]) };
        // Another process appended first: chain to its entry, after a short random pause.
        if (attempt > 2) await new Promise((r) => setTimeout(r, Math.random() * 5 * attempt));
      }
      throw new Error(`audit chain of room ${base.room} busy: no append after ${this.#maxAttempts} attempts`);
    } catch (err) {
      this.#logger.error({ ...ids, at, err }, 'audit entry NOT recorded');
      throw err;
    }
  }

  async #head(key: string): Promise<{ seq: number; hash: string }> {
    const last = (await this.#redis.xrevrange(key, '+', '-', 'COUNT', 1)) as [string, string[]][];
    const top = last[0];
    if (top === undefined) return { seq: 0, hash: genesisHash };
    const parsed = fromFields(top[1]);
    // A malformed head is chained to anyway; the script decides, and `verify` reports it.
    if (typeof parsed === 'string') {
      const fields = top[1];
      const at = (name: string) => fields[fields.indexOf(name) + 1] ?? '';
      return { seq: Number(at('seq')) || -1, hash: at('hash') };
    }
    return { seq: parsed.seq, hash: parsed.hash };
  }

  /**
   * Entries of a room in chain order, from seq `from` (default: the first one kept), at most `count`
   * (default 100). Entries removed by retention are gone: the first one kept follows the anchor.
   */
  async entries(room: string, options: { from?: number; count?: number } = {}): Promise<AuditEntry[]> {
    const from = options.from ?? 1;
    const count = options.count ?? 100;
    if (!Number.isInteger(from) || from < 1) throw new TypeError('from must be a whole number ≥ 1');
    if (!Number.isInteger(count) || count < 1) throw new TypeError('count must be a whole number ≥ 1');
    const out: AuditEntry[] = [];
    for await (const [id, fields] of this.#walk(this.key(room))) {
      const entry = fromFields(fields);
      if (typeof entry === 'string') throw new Error(`audit stream of room ${room}, id ${id}: ${entry}`);
      if (entry.seq < from) continue;
      out.push(entry);
      if (out.length >= count) break;
    }
    return out;
  }

  /**
   * Walks the room's chain from its anchor (or from genesis): recomputes each hash, checks `prev`
   * against the previous entry's hash, that `seq` goes on from the anchor's (1, 2, 3… without one)
   * and that the entry is the room's; and that nothing was deleted from the stream's end (Redis
   * counts entries ever added; retention's trims are counted in the anchor). `brokenAt` is the
   * first seq that is not intact (for a removed entry, the seq that is missing).
   */
  async verify(room: string): Promise<AuditVerification> {
    const key = this.key(room);
    const anchor = parseAnchor(await this.#redis.hgetall(this.anchorKey(room)));
    if (typeof anchor === 'string') {
      return { ok: false, entries: await this.#redis.xlen(key), brokenAt: 1, reason: anchor };
    }
    const trimmed = anchor ? { trimmed: anchor.trimmed } : {};
    const check = await this.#checkChain(room, anchor);
    const broken = check.broken ?? checkAnchor(anchor) ?? (await this.#checkEnd(key, anchor, check.nextSeq));
    return broken
      ? { ok: false, entries: check.entries, ...broken, ...trimmed }
      : { ok: true, entries: check.entries, ...trimmed };
  }

  /**
   * Retention: removes the room's entries recorded (`at`) before `cutoff`, atomically with the
   * anchor that keeps the rest verifiable (see the module comment); returns how many went. The
   * entries to remove, and the link to the first one kept, are checked first: a broken chain is
   * left untouched, for inspection, and rejected with an Error saying where it breaks. Idempotent:
   * run again with the same cutoff, it removes nothing more.
   */
  async purgeBefore(room: string, cutoff: Date): Promise<number> {
    const key = this.key(room);
    const cutoffMs = cutoff.getTime();
    if (Number.isNaN(cutoffMs)) throw new TypeError('cutoff must be a valid Date');
    const expired = (entry: AuditEntry) => Date.parse(entry.at) < cutoffMs;
    for (let attempt = 1; attempt <= purgeAttempts; attempt++) {
      // Cheap first look, for the many rooms with nothing old enough: their chains are not walked.
      const [first] = (await this.#redis.xrange(key, '-', '+', 'COUNT', 1)) as [string, string[]][];
      const head = first && fromFields(first[1]);
      if (head === undefined || (typeof head !== 'string' && !expired(head))) return 0;
      const anchor = parseAnchor(await this.#redis.hgetall(this.anchorKey(room)));
      if (typeof anchor === 'string') throw new Error(`audit chain of room ${room}: ${anchor}; nothing purged`);
      // Stops at (after checking) the first entry recorded at or after the cutoff: entries are in
      // time order, and were they not (clocks of several nodes), an entry would be kept, never lost.
      const check = await this.#checkChain(room, anchor, (entry) => !expired(entry));
      // When everything goes, so would the evidence of entries deleted from its end: check that too.
      const broken =
        check.broken ??
        checkAnchor(anchor) ??
        (check.kept ? undefined : await this.#checkEnd(key, anchor, check.nextSeq));
      if (broken) {
        throw new Error(
          `audit chain of room ${room} broken at seq ${broken.brokenAt}: ${broken.reason}; nothing purged`,
        );
      }
      const last = check.last;
      if (!last) return 0;
      const removed = await (this.#redis as unknown as WithPurge)[purgeCommandName](
        key,
        this.anchorKey(room),
        last.id,
        String(last.entry.seq),
        last.entry.hash,
        last.entry.at,
        check.kept ?? '',
      );
      if (removed >= 0) return removed;
      // Appended to (or changed) since the check: check again.
    }
    throw new Error(`audit chain of room ${room} busy: not purged after ${purgeAttempts} attempts`);
  }

  /**
   * Checks the chain from `anchor` (or genesis). Without `keep`, walks every entry (`entries`
   * counts them all, after a break too). With it, stops at the first break or after checking the
   * first entry `keep` accepts (its id is `kept`); `last` is the last intact entry before it.
   */
  async #checkChain(
    room: string,
    anchor: AuditAnchor | undefined,
    keep?: (entry: AuditEntry) => boolean,
  ): Promise<{
    entries: number;
    nextSeq: number;
    last?: { id: string; entry: AuditEntry };
    kept?: string;
    broken?: ChainBreak;
  }> {
    let entries = 0;
    let expectedSeq = (anchor?.seq ?? 0) + 1;
    let prevHash = anchor?.hash ?? genesisHash;
    let last: { id: string; entry: AuditEntry } | undefined;
    let broken: ChainBreak | undefined;
    for await (const [id, fields] of this.#walk(this.key(room))) {
      entries++;
      if (broken) continue;
      const entry = fromFields(fields);
      if (typeof entry === 'string') {
        broken = { brokenAt: expectedSeq, reason: `${entry} (stream id ${id})` };
      } else if (entry.seq !== expectedSeq) {
        const why = entry.seq > expectedSeq ? 'entry removed or reordered' : 'entry reordered or duplicated';
        broken = { brokenAt: expectedSeq, reason: `expected seq ${expectedSeq}, found seq ${entry.seq} (${why})` };
      } else if (entry.room !== room) {
        broken = { brokenAt: entry.seq, reason: `entry belongs to room ${entry.room}` };
      } else if (hashEntry(entry) !== entry.hash) {
        broken = { brokenAt: entry.seq, reason: 'hash does not match the entry (entry edited or hash forged)' };
      } else if (entry.prev !== prevHash) {
        broken = {
          brokenAt: entry.seq,
          reason:
            anchor && entry.seq === anchor.seq + 1
              ? 'prev does not match the retention anchor’s hash (anchor edited, or entries removed)'
              : 'prev does not match the previous entry’s hash (entry removed, replaced or reordered)',
        };
      } else {
        prevHash = entry.hash;
        expectedSeq++;
        if (keep?.(entry)) return { entries, nextSeq: expectedSeq, last, kept: id };
        last = { id, entry };
      }
      if (broken && keep) break;
    }
    return { entries, nextSeq: expectedSeq, last, ...(broken ? { broken } : {}) };
  }

  /**
   * That nothing was deleted from the stream's end: Redis counts the entries ever added
   * (XINFO STREAM's `entries-added`, Redis 7+); all but those left and those retention trimmed were
   * deleted by hand. The chain before is intact, so they were at its end.
   */
  async #checkEnd(key: string, anchor: AuditAnchor | undefined, nextSeq: number): Promise<ChainBreak | undefined> {
    let info: unknown[];
    try {
      info = (await this.#redis.call('XINFO', 'STREAM', key)) as unknown[];
    } catch (err) {
      if (!/no such key/i.test(String(err))) throw err;
      // Retention deletes a stream together with its anchor: an anchor alone means the rest was deleted.
      return anchor
        ? { brokenAt: nextSeq, reason: `the stream was deleted; only its retention anchor (seq ${anchor.seq}) is left` }
        : undefined;
    }
    if (!info.includes('entries-added')) return undefined; // Redis < 7 does not count
    const field = (name: string) => Number(info[info.indexOf(name) + 1]);
    const deleted = field('entries-added') - field('length') - (anchor?.trimmed ?? 0);
    if (deleted > 0) {
      return {
        brokenAt: nextSeq,
        reason: `${deleted} entr${deleted === 1 ? 'y was' : 'ies were'} deleted from the end of the stream`,
      };
    }
    if (deleted < 0) {
      // Redis counts a stream rebuilt by hand from scratch: it lost fewer than retention trimmed.
      return {
        brokenAt: nextSeq,
        reason: `the stream lost ${-deleted} fewer entries than its retention anchor trimmed (stream rebuilt or anchor edited)`,
      };
    }
    return undefined;
  }

  async *#walk(key: string): AsyncGenerator<[string, string[]]> {
    let start = '-';
    for (;;) {
      const page = (await this.#redis.xrange(key, start, '+', 'COUNT', pageSize)) as [string, string[]][];
      yield* page;
      if (page.length < pageSize) return;
      start = `(${(page[page.length - 1] as [string, string[]])[0]}`;
    }
  }
}
