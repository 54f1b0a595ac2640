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
 * What it does not prove: SHA-256 is unkeyed, so someone with write access to Redis who recomputes
 * every hash after the entry they change leaves a valid chain, and deleting the whole key leaves an
 * empty one. The `hash` in each pino audit line is the anchor against that: compare the chain's
 * hashes with the shipped logs (`haven audit show`).
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

export type AuditVerification =
  | { ok: true; entries: number }
  | { ok: false; entries: number; brokenAt: number; reason: string };

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
  }

  /** The room's stream key. */
  key(room: string): string {
    return `${this.#prefix}audit:${checkId('room', room)}`;
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

  /** Entries of a room in chain order, from seq `from` (default 1), at most `count` (default 100). */
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
   * Walks the room's chain: recomputes each hash, checks `prev` against the previous entry's hash,
   * that `seq` goes 1, 2, 3… and that the entry is the room's; and that nothing was deleted from
   * the stream's end (Redis counts entries ever added). `brokenAt` is the first seq that is not
   * intact (for a removed entry, the seq that is missing).
   */
  async verify(room: string): Promise<AuditVerification> {
    const key = this.key(room);
    let entries = 0;
    let expectedSeq = 1;
    let prevHash = genesisHash;
    let broken: { brokenAt: number; reason: string } | undefined;
    for await (const [id, fields] of this.#walk(key)) {
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
          reason: 'prev does not match the previous entry’s hash (entry removed, replaced or reordered)',
        };
      } else {
        prevHash = entry.hash;
        expectedSeq++;
      }
    }
    if (!broken) {
      const deleted = await this.#deletedCount(key);
      if (deleted > 0) {
        // The chain that is left is intact, so what was deleted was at its end.
        broken = {
          brokenAt: expectedSeq,
          reason: `${deleted} entr${deleted === 1 ? 'y was' : 'ies were'} deleted from the end of the stream`,
        };
      }
    }
    return broken ? { ok: false, entries, ...broken } : { ok: true, entries };
  }

  /** Entries ever deleted from the stream: XINFO STREAM's `entries-added` (Redis 7+) minus its `length`. */
  async #deletedCount(key: string): Promise<number> {
    let info: unknown[];
    try {
      info = (await this.#redis.call('XINFO', 'STREAM', key)) as unknown[];
    } catch (err) {
      if (/no such key/i.test(String(err))) return 0;
      throw err;
    }
    const field = (name: string) => Number(info[info.indexOf(name) + 1]);
    if (!info.includes('entries-added')) return 0; // Redis < 7 does not count
    return field('entries-added') - field('length');
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
