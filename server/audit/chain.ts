/**
 * Checking a room's chain as read from Redis: entry by entry (seq, room, hash, prev and, given
 * the keys, the HMAC), then against checkpoints (the chain must reach each one's seq with its
 * hash), then Redis' count of entries ever added (a cheap extra: a Redis writer can reset it).
 */
import type { Redis } from 'ioredis';
import type { AuditAnchor } from './anchor.ts';
import { type AuditCheckpoint, checkpointProblem } from './checkpoint.ts';
import { type AuditEntry, fromFields, genesisHash, hashEntry } from './entry.ts';
import type { AuditKeys } from './keys.ts';

/** Where a chain stops being intact: the first seq that is not, and why. */
export interface ChainBreak {
  brokenAt: number;
  reason: string;
}

/**
 * `entries` counts the entries in the stream; `trimmed`, present once retention removed some,
 * those before them. `keyed`: whether every HMAC was checked (with the audit keys).
 * `checkpoint`: the highest checkpoint seq the chain was found to reach.
 */
export type AuditVerification =
  | { ok: true; entries: number; keyed: boolean; trimmed?: number; checkpoint?: number }
  | { ok: false; entries: number; keyed: boolean; brokenAt: number; reason: string; trimmed?: number };

export const entryLabel = 'haven-audit-entry-v1';

export function entryMacParts(entry: Pick<AuditEntry, 'room' | 'seq' | 'prev' | 'hash'>): (string | number)[] {
  return [entry.room, entry.seq, entry.prev, entry.hash];
}

export interface ChainCheck {
  entries: number;
  /** The seq after the last intact one. */
  nextSeq: number;
  /** The last intact entry before `kept`. */
  last?: { id: string; entry: AuditEntry };
  /** Stream id of the first entry `keep` accepted. */
  kept?: string;
  broken?: ChainBreak;
  /** Hashes at the seqs asked for (checkpoints'). */
  hashes: Map<number, string>;
}

/** What is wrong with one entry at its place in the chain; undefined when nothing is. */
function entryProblem(
  entry: AuditEntry,
  room: string,
  expectedSeq: number,
  prevHash: string,
  anchor: AuditAnchor | undefined,
  keys: AuditKeys | undefined,
): ChainBreak | undefined {
  if (entry.seq !== expectedSeq) {
    const why = entry.seq > expectedSeq ? 'entry removed or reordered' : 'entry reordered or duplicated';
    return { brokenAt: expectedSeq, reason: `expected seq ${expectedSeq}, found seq ${entry.seq} (${why})` };
  }
  if (entry.room !== room) return { brokenAt: entry.seq, reason: `entry belongs to room ${entry.room}` };
  if (hashEntry(entry) !== entry.hash) {
    return { brokenAt: entry.seq, reason: 'hash does not match the entry (entry edited or hash forged)' };
  }
  if (entry.prev !== prevHash) {
    const reason =
      anchor && entry.seq === anchor.seq + 1
        ? 'prev does not match the retention anchor’s hash (anchor edited, or entries removed)'
        : 'prev does not match the previous entry’s hash (entry removed, replaced or reordered)';
    return { brokenAt: entry.seq, reason };
  }
  if (!keys) return undefined;
  if (entry.kid === undefined || entry.mac === undefined) {
    return { brokenAt: entry.seq, reason: 'entry has no HMAC (written without the audit key)' };
  }
  const valid = keys.checkMac(entry.kid, entry.mac, entryLabel, entryMacParts(entry));
  if (valid === undefined)
    return { brokenAt: entry.seq, reason: `entry signed with key ${entry.kid}, which was not given` };
  return valid ? undefined : { brokenAt: entry.seq, reason: 'HMAC does not match (entry forged or chain rewritten)' };
}

/**
 * Checks the chain from `anchor` (or genesis). Without `keep`, walks every entry (`entries`
 * counts them all, after a break too). With it, stops at the first break or after checking the
 * first entry `keep` accepts (its id is `kept`); `last` is the last intact entry before it.
 */
export async function checkChain(
  stream: AsyncIterable<[string, string[]]>,
  room: string,
  anchor: AuditAnchor | undefined,
  options: { keys?: AuditKeys; keep?: (entry: AuditEntry) => boolean; hashesAt?: ReadonlySet<number> } = {},
): Promise<ChainCheck> {
  const { keys, keep, hashesAt } = options;
  const hashes = new Map<number, string>();
  let entries = 0;
  let expectedSeq = (anchor?.seq ?? 0) + 1;
  let prevHash = anchor?.hash ?? genesisHash;
  let last: { id: string; entry: AuditEntry } | undefined;
  let broken: ChainBreak | undefined;
  for await (const [id, fields] of stream) {
    entries++;
    if (broken) continue;
    const entry = fromFields(fields);
    broken =
      typeof entry === 'string'
        ? { brokenAt: expectedSeq, reason: `${entry} (stream id ${id})` }
        : entryProblem(entry, room, expectedSeq, prevHash, anchor, keys);
    if (broken || typeof entry === 'string') {
      if (keep) break;
      continue;
    }
    prevHash = entry.hash;
    expectedSeq++;
    if (hashesAt?.has(entry.seq)) hashes.set(entry.seq, entry.hash);
    if (keep?.(entry)) return { entries, nextSeq: expectedSeq, last, kept: id, hashes };
    last = { id, entry };
  }
  return { entries, nextSeq: expectedSeq, last, hashes, ...(broken ? { broken } : {}) };
}

/**
 * Whether an intact chain (ending at `nextSeq` - 1) reaches every checkpoint, with its hash. A
 * checkpoint at or before the anchor was reached before retention removed it (the keyed anchor
 * says so); one at the anchor has the anchor's hash.
 */
export function checkCheckpoints(
  checkpoints: readonly AuditCheckpoint[],
  check: Pick<ChainCheck, 'nextSeq' | 'hashes'>,
  anchor: AuditAnchor | undefined,
  keys: AuditKeys,
): ChainBreak | undefined {
  const end = check.nextSeq - 1;
  for (const cp of [...checkpoints].sort((a, b) => b.seq - a.seq)) {
    const problem = checkpointProblem(keys, cp);
    if (problem) return { brokenAt: cp.seq, reason: problem };
    if (cp.seq > end)
      return { brokenAt: end + 1, reason: `truncated (checkpoint seq ${cp.seq}, chain ends at ${end})` };
    const hash =
      anchor && cp.seq <= anchor.seq ? (cp.seq === anchor.seq ? anchor.hash : cp.hash) : check.hashes.get(cp.seq);
    if (hash !== cp.hash) {
      return { brokenAt: cp.seq, reason: `entry seq ${cp.seq} is not the one checkpointed (chain rewritten)` };
    }
  }
  return undefined;
}

/**
 * That nothing was deleted from the stream's end, as far as Redis knows: it counts the entries ever
 * added (XINFO STREAM's `entries-added`, Redis 7+); all but those left and those retention trimmed
 * were deleted by hand. XSETID … ENTRIESADDED rewrites that count: checkpoints are the real check.
 */
export async function checkEnd(
  redis: Redis,
  key: string,
  anchor: AuditAnchor | undefined,
  nextSeq: number,
): Promise<ChainBreak | undefined> {
  let info: unknown[];
  try {
    info = (await redis.call('XINFO', 'STREAM', key)) as unknown[];
  } catch (err) {
    if (!/no such key/i.test(String(err))) throw err;
    // Retention keeps an emptied stream with its anchor: an anchor alone means the stream was deleted.
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
    return {
      brokenAt: nextSeq,
      reason: `the stream lost ${-deleted} fewer entries than its retention anchor trimmed (stream rebuilt or anchor edited)`,
    };
  }
  return undefined;
}
