/**
 * The audit log: one entry for every moderation and admin action (admit, deny, mute, remove, ban,
 * lock, end session, consent accepted, room created, …), kept as a hash chain per room in a Redis
 * stream `<prefix>audit:<room>` and written to its own pino stream (`stream: 'audit'`).
 *
 * Entries hold ids, the action, the result and small `details` (entry.ts): never chat text, names
 * or tokens. Each entry's `hash` is the SHA-256 of its fields, `prev` included, and its `mac` an
 * HMAC-SHA256 over room, seq, prev and hash with the audit key (keys.ts), which lives in the
 * node's configuration, never in Redis: editing, removing, reordering or re-hashing an entry
 * breaks the chain, and so does rewriting all of it without the key. What the chain cannot show
 * by itself is a cut end (or a deleted stream): for that the node signs checkpoints of the heads
 * it wrote and sends them out of Redis (checkpoint.ts); `verify` given one finds a chain shorter
 * than it.
 *
 * Appends are compare-and-append: a Lua script adds the entry only if the stream's last entry (or,
 * on an emptied stream, the retention anchor) is still the one the caller chained to, else it
 * answers with the fresh head and the caller retries (bounded). Several processes may append to
 * the same room concurrently.
 *
 * Retention (`purgeBefore`) removes a room's oldest entries and keeps the rest verifiable with a
 * keyed anchor (anchor.ts); the entries to remove are checked first: a broken chain is left as it
 * is, so retention never erases the evidence of tampering.
 */
import type { Redis } from 'ioredis';
import type { Logger } from '../logger.ts';
import {
  type AuditAnchor,
  anchorLabel,
  anchorMacParts,
  auditAnchorKey,
  checkAnchor,
  parseAnchor,
  purgeScript,
} from './anchor.ts';
import {
  type AuditVerification,
  type ChainBreak,
  checkChain,
  checkCheckpoints,
  checkEnd,
  entryLabel,
  entryMacParts,
} from './chain.ts';
import { type AuditCheckpoint, Checkpointer } from './checkpoint.ts';
import {
  type AuditEntry,
  type AuditRecordInput,
  auditStreamKey,
  checkDetails,
  checkId,
  codePattern,
  fromFields,
  genesisHash,
  hashEntry,
  toFields,
  type UnsignedEntry,
} from './entry.ts';
import type { AuditKeys } from './keys.ts';

export type { AuditAnchor } from './anchor.ts';
export type { AuditVerification } from './chain.ts';
export type { AuditCheckpoint } from './checkpoint.ts';
export * from './entry.ts';

export interface AuditLogOptions {
  /** Redis key prefix. Default `haven:` (streams `haven:audit:<room>`). */
  prefix?: string;
  /** Clock, for tests. Default `() => new Date()`. */
  now?: () => Date;
  /** Compare-and-append attempts before `record` gives up. Default 20. */
  maxAttempts?: number;
  /**
   * The audit keys: needed to record, to purge and to check HMACs. Without them, `verify` checks
   * hashes and links only (`keyed: false`), which someone with Redis write access can recompute.
   */
  keys?: AuditKeys;
  /** Checkpoints of the heads this log appends (needs `keys`): every `intervalMs`, and where else they go. */
  checkpoints?: { intervalMs: number; emit?: (checkpoint: AuditCheckpoint) => void };
}

/** Actions after which a room's head is checkpointed at once. */
const sessionEndActions = new Set(['endSession']);
const pageSize = 500;
const purgeAttempts = 3;

/**
 * KEYS[1] the room's stream, KEYS[2] its anchor; ARGV[1] the `prev` the caller chained to, ARGV[2]
 * the caller's seq, ARGV[3…] the entry's fields. Adds the entry if the head (the stream's last
 * entry; on an empty stream the anchor, else genesis and 0) has hash ARGV[1] and seq ARGV[2] - 1:
 * `{1, id}`; else `{0, headSeq, headHash}`.
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
else
  local anchor = redis.call('HMGET', KEYS[2], 'seq', 'hash')
  if anchor[1] then
    seq = tonumber(anchor[1]) or -1
    hash = anchor[2] or ''
  end
end
if hash ~= ARGV[1] or seq + 1 ~= tonumber(ARGV[2]) then
  return {0, tostring(seq), hash}
end
local id = redis.call('XADD', KEYS[1], '*', unpack(ARGV, 3))
return {1, id}
`;

const commandName = 'havenAuditAppend2';
const purgeCommandName = 'havenAuditPurge2';
type AppendReply = [0, string, string] | [1, string];
interface WithScripts {
  [commandName](key: string, anchorKey: string, ...args: string[]): Promise<AppendReply>;
  [purgeCommandName](key: string, anchorKey: string, ...args: string[]): Promise<number>;
}

export class AuditLog {
  readonly #redis: Redis;
  readonly #logger: Logger;
  readonly #prefix: string;
  readonly #now: () => Date;
  readonly #maxAttempts: number;
  readonly #keys: AuditKeys | undefined;
  readonly #checkpointer: Checkpointer | undefined;
  /** Per room, the tail of this instance's appends: they go one at a time (other processes may race). */
  readonly #queues = new Map<string, Promise<unknown>>();

  constructor(redis: Redis, logger: Logger, options: AuditLogOptions = {}) {
    this.#redis = redis;
    this.#logger = logger.child({ stream: 'audit' });
    this.#prefix = options.prefix ?? 'haven:';
    this.#now = options.now ?? (() => new Date());
    this.#maxAttempts = options.maxAttempts ?? 20;
    this.#keys = options.keys;
    if (options.checkpoints && options.keys) {
      this.#checkpointer = new Checkpointer({
        keys: options.keys,
        logger: this.#logger,
        intervalMs: options.checkpoints.intervalMs,
        emit: options.checkpoints.emit,
        now: this.#now,
      });
    }
    const scripts = redis as unknown as Partial<WithScripts>;
    if (typeof scripts[commandName] !== 'function') {
      redis.defineCommand(commandName, { numberOfKeys: 2, lua: appendScript });
    }
    if (typeof scripts[purgeCommandName] !== 'function') {
      redis.defineCommand(purgeCommandName, { numberOfKeys: 2, lua: purgeScript });
    }
  }

  /** The room's stream key. */
  key(room: string): string {
    return auditStreamKey(checkId('room', room), this.#prefix);
  }

  /** The key of the room's retention anchor. */
  anchorKey(room: string): string {
    return auditAnchorKey(checkId('room', room), this.#prefix);
  }

  /** The room's retention anchor: undefined until retention removed some of its entries. */
  async anchor(room: string): Promise<AuditAnchor | undefined> {
    const anchor = parseAnchor(await this.#redis.hgetall(this.anchorKey(room)));
    if (typeof anchor === 'string') throw new Error(`audit chain of room ${room}: ${anchor}`);
    return anchor;
  }

  /** Checkpoints `room`'s head now, if this log appended to it since its last checkpoint. */
  checkpoint(room: string): void {
    this.#checkpointer?.now(room);
  }

  /** Stops checkpointing, after a last checkpoint of every room appended to since its last one. */
  close(): void {
    this.#checkpointer?.close();
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
    if (!this.#keys) throw new Error('audit log without keys: it can verify, not record');
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

  async #append(base: Omit<UnsignedEntry, 'seq' | 'at' | 'prev'>, at: string): Promise<AuditEntry> {
    const key = this.key(base.room);
    const anchorKey = this.anchorKey(base.room);
    const keys = this.#keys as AuditKeys;
    const ids = { room: base.room, actor: base.actor, action: base.action, target: base.target, result: base.result };
    try {
      let head = await this.#head(key, anchorKey);
      for (let attempt = 1; attempt <= this.#maxAttempts; attempt++) {
        const unsigned: UnsignedEntry = {
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
        const hashed = { ...unsigned, hash: hashEntry(unsigned) };
        const entry: AuditEntry = { ...hashed, ...keys.mac(entryLabel, entryMacParts(hashed)) };
        const args = [entry.prev, String(entry.seq), ...toFields(entry)];
        const reply = await (this.#redis as unknown as WithScripts)[commandName](key, anchorKey, ...args);
        if (reply[0] === 1) {
          this.#logger.info({ ...entry }, 'audit');
          this.#checkpointer?.appended(entry.room, entry.seq, entry.hash);
          if (sessionEndActions.has(entry.action)) this.#checkpointer?.now(entry.room);
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

  async #head(key: string, anchorKey: string): Promise<{ seq: number; hash: string }> {
    const last = (await this.#redis.xrevrange(key, '+', '-', 'COUNT', 1)) as [string, string[]][];
    const top = last[0];
    if (top === undefined) {
      const [seq, hash] = await this.#redis.hmget(anchorKey, 'seq', 'hash');
      return seq ? { seq: Number(seq) || -1, hash: hash ?? '' } : { seq: 0, hash: genesisHash };
    }
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
   * Walks the room's chain from its anchor (or from genesis): each entry's seq, room, hash, `prev`
   * and (with the keys) HMAC; the anchor's HMAC; that the chain reaches every checkpoint given
   * (of this room, signatures checked: they need the keys) with its hash; and Redis' own count of
   * entries deleted from the end. `brokenAt` is the first seq that is not intact (for a removed
   * entry, the seq that is missing).
   */
  async verify(room: string, options: { checkpoints?: readonly AuditCheckpoint[] } = {}): Promise<AuditVerification> {
    const key = this.key(room);
    const keys = this.#keys;
    const keyed = keys !== undefined;
    const checkpoints = (options.checkpoints ?? []).filter((cp) => cp.room === room);
    if (checkpoints.length > 0 && !keys) throw new TypeError('checking checkpoints needs the audit keys');
    const anchor = parseAnchor(await this.#redis.hgetall(this.anchorKey(room)));
    if (typeof anchor === 'string') {
      return { ok: false, entries: await this.#redis.xlen(key), keyed, brokenAt: 1, reason: anchor };
    }
    const trimmed = anchor ? { trimmed: anchor.trimmed } : {};
    const hashesAt = new Set(checkpoints.map((cp) => cp.seq));
    const check = await checkChain(this.#walk(key), room, anchor, { keys, hashesAt });
    const broken: ChainBreak | undefined =
      check.broken ??
      checkAnchor(room, anchor, keys) ??
      (keys && checkCheckpoints(checkpoints, check, anchor, keys)) ??
      (await checkEnd(this.#redis, key, anchor, check.nextSeq));
    if (broken) return { ok: false, entries: check.entries, keyed, ...broken, ...trimmed };
    const reached = checkpoints.length > 0 ? { checkpoint: Math.max(...checkpoints.map((cp) => cp.seq)) } : {};
    return { ok: true, entries: check.entries, keyed, ...trimmed, ...reached };
  }

  /**
   * Retention: removes the room's entries recorded (`at`) before `cutoff`, atomically with the
   * keyed anchor that keeps the rest verifiable (anchor.ts); returns how many went. The entries to
   * remove, HMACs included, and the link to the first one kept, are checked first: a broken chain
   * is left untouched, for inspection, and rejected with an Error saying where it breaks.
   * Idempotent: run again with the same cutoff, it removes nothing more.
   */
  async purgeBefore(room: string, cutoff: Date): Promise<number> {
    const key = this.key(room);
    const cutoffMs = cutoff.getTime();
    if (Number.isNaN(cutoffMs)) throw new TypeError('cutoff must be a valid Date');
    const keys = this.#keys;
    if (!keys)
      throw new Error(`audit chain of room ${room}: no audit keys to check it and sign its anchor; nothing purged`);
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
      const check = await checkChain(this.#walk(key), room, anchor, { keys, keep: (entry) => !expired(entry) });
      // When everything goes, so would the evidence of entries deleted from its end: check that too.
      const broken =
        check.broken ??
        checkAnchor(room, anchor, keys) ??
        (check.kept ? undefined : await checkEnd(this.#redis, key, anchor, check.nextSeq));
      if (broken) {
        throw new Error(
          `audit chain of room ${room} broken at seq ${broken.brokenAt}: ${broken.reason}; nothing purged`,
        );
      }
      const last = check.last;
      if (!last) return 0;
      const { seq, hash, at } = last.entry;
      const { kid, mac } = keys.mac(anchorLabel, anchorMacParts(room, { seq, hash, at }));
      const removed = await (this.#redis as unknown as WithScripts)[purgeCommandName](
        key,
        this.anchorKey(room),
        last.id,
        String(seq),
        hash,
        at,
        kid,
        mac,
        check.kept ?? '',
      );
      if (removed >= 0) return removed;
      // Appended to (or changed) since the check: check again.
    }
    throw new Error(`audit chain of room ${room} busy: not purged after ${purgeAttempts} attempts`);
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
