/**
 * The retention anchor, `<prefix>audit-anchor:<room>`: what retention leaves of the entries it
 * removed from a chain's start (seq, hash and `at` of the last one removed, how many in all),
 * with an HMAC so that nobody without the audit key can cut the start and write a matching one.
 * The chain that remains starts right after it; when retention removed every entry, the empty
 * stream and the anchor stay, and the next entry goes on from the anchor's seq.
 */
import { z } from 'zod';
import type { ChainBreak } from './chain.ts';
import type { AuditKeys } from './keys.ts';

export interface AuditAnchor {
  /** Seq of the last entry removed: the first one left is seq + 1. */
  seq: number;
  /** Hash of the last entry removed: the first one left has it as `prev`. */
  hash: string;
  /** `at` of the last entry removed. */
  at: string;
  /** Entries removed by retention in all (equal to `seq` while the chain is intact). */
  trimmed: number;
  /** Audit key id and HMAC over room, seq, hash and at. */
  kid?: string;
  mac?: string;
}

/** The room's retention anchor (a hash). */
export const auditAnchorKey = (room: string, prefix = 'haven:') => `${prefix}audit-anchor:${room}`;

export const anchorLabel = 'haven-audit-anchor-v1';

export function anchorMacParts(room: string, anchor: Pick<AuditAnchor, 'seq' | 'hash' | 'at'>): (string | number)[] {
  return [room, anchor.seq, anchor.hash, anchor.at];
}

const countProblem = 'retention anchor malformed: seq or trimmed is not a number';
const count = z
  .string({ error: countProblem })
  .regex(/^\d{1,15}$/, countProblem)
  .transform(Number);
const anchorFields = z.object({
  seq: count,
  trimmed: count,
  hash: z
    .string({ error: 'retention anchor malformed: hash is not a SHA-256' })
    .regex(/^[0-9a-f]{64}$/, 'retention anchor malformed: hash is not a SHA-256'),
  at: z.string().default(''),
  kid: z.string().optional(),
  mac: z.string().optional(),
});

/** Parses an anchor hash; undefined when there is none, a string saying what is wrong otherwise. */
export function parseAnchor(fields: Record<string, string>): AuditAnchor | undefined | string {
  if (Object.keys(fields).length === 0) return undefined;
  const parsed = anchorFields.safeParse(fields);
  if (!parsed.success) return parsed.error.issues[0]?.message ?? 'retention anchor malformed';
  const { seq, hash, at, trimmed, kid, mac } = parsed.data;
  return {
    seq,
    hash,
    at,
    trimmed,
    ...(kid === undefined ? {} : { kid }),
    ...(mac === undefined ? {} : { mac }),
  };
}

/**
 * What is wrong with an anchor: with `keys`, an HMAC that does not match (a forged anchor); and
 * retention removes a chain's entries from seq 1 on, so its count of them is its seq (a count
 * bumped to hide entries deleted from the end does not match).
 */
export function checkAnchor(room: string, anchor: AuditAnchor | undefined, keys?: AuditKeys): ChainBreak | undefined {
  if (!anchor) return undefined;
  const brokenAt = anchor.seq + 1;
  if (keys) {
    if (anchor.kid === undefined || anchor.mac === undefined) {
      return { brokenAt, reason: 'retention anchor has no HMAC (written without the audit key)' };
    }
    const valid = keys.checkMac(anchor.kid, anchor.mac, anchorLabel, anchorMacParts(room, anchor));
    if (valid === undefined) {
      return { brokenAt, reason: `retention anchor is signed with key ${anchor.kid}, which was not given` };
    }
    if (!valid) return { brokenAt, reason: 'retention anchor’s HMAC does not match (anchor forged or edited)' };
  }
  if (anchor.trimmed === anchor.seq) return undefined;
  return {
    brokenAt,
    reason: `retention anchor inconsistent: ${anchor.trimmed} entries trimmed through seq ${anchor.seq}`,
  };
}

/**
 * KEYS[1] the room's stream, KEYS[2] its anchor; ARGV[1] the stream id of the last entry to remove
 * (checked by the caller), ARGV[2..4] its seq, hash and at, ARGV[5..6] the anchor's kid and mac;
 * ARGV[7] the id of the first entry kept, or '' when none is. Answers how many entries went, or -1
 * if the stream changed since the caller checked it (the caller tries again). One script, so that
 * no reader ever sees a trimmed stream without its anchor, nor an anchor without its trim. An
 * emptied stream is kept (XTRIM, not DEL): Redis' count of entries ever added stays with it.
 */
export const purgeScript = `
local n
if ARGV[7] == '' then
  local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
  if #top == 0 or top[1][1] ~= ARGV[1] then return -1 end
  n = redis.call('XTRIM', KEYS[1], 'MAXLEN', 0)
else
  local before = redis.call('XREVRANGE', KEYS[1], '(' .. ARGV[7], '-', 'COUNT', 1)
  if #before == 0 or before[1][1] ~= ARGV[1] then return -1 end
  n = redis.call('XTRIM', KEYS[1], 'MINID', ARGV[7])
end
redis.call('HSET', KEYS[2], 'seq', ARGV[2], 'hash', ARGV[3], 'at', ARGV[4], 'kid', ARGV[5], 'mac', ARGV[6])
redis.call('HINCRBY', KEYS[2], 'trimmed', n)
return n
`;
