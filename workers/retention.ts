/**
 * The `retention` processor (its schedule: server/retention/queue.ts): each run purges what is
 * older than its configured period, each kind on its own (0 keeps it forever):
 *
 * - raw attendance events (`<prefix>attendance:<room>` streams; ids are `<server ms>-<seq>`, so
 *   XTRIM MINID), the stream deleted once empty; the computed attendance (`attendance-result`),
 *   the billing record, is never touched;
 * - kept chat (`<prefix>chat:<room>` hashes, rooms with `keepChat`), message by message by `sentAt`;
 *   Redis deletes a hash with its last field;
 * - audit entries, through `AuditLog.purgeBefore`, which checks the chain with the audit keys and
 *   leaves a keyed anchor, so the rest stays verifiable;
 * - webhook delivery records (`purgeDeliveries`).
 *
 * Rooms are found with SCAN (never KEYS: it blocks Redis). The job carries no data and logs counts
 * only; purging is idempotent, so a job run twice, or retried after a crash, removes nothing more.
 */
import { Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { attendanceStreamsPrefix } from '../server/attendance/event.ts';
import { AuditLog } from '../server/audit/audit-log.ts';
import { auditStreamsPrefix } from '../server/audit/entry.ts';
import type { AuditKeys } from '../server/audit/keys.ts';
import type { Logger } from '../server/logger.ts';
import type { RedisConnection } from '../server/redis/connection.ts';
import { type RetentionSettings, retentionQueueName } from '../server/retention/queue.ts';
import { chatArchivesPrefix, keptMessageSentAt } from '../server/rooms/chat-archive.ts';
import { purgeDeliveries } from '../server/webhooks/deliveries.ts';
import { type WorkerSettings, workerOptions } from './options.ts';

const dayMs = 86_400_000;
const scanCount = 500;

export interface RetentionDeps {
  redis: Redis;
  settings: RetentionSettings;
  logger: Logger;
  /** Clock (ms), for tests. Default `Date.now`. */
  now?: () => number;
  /** Redis key prefix of the rooms' keys. Default `haven:`. */
  prefix?: string;
  /** Default: an `AuditLog` on `redis` with `prefix` and `auditKeys`. */
  audit?: AuditLog;
  /** The audit keys, to check a chain before trimming it and to sign its anchor (without them, no audit entry is purged). */
  auditKeys?: AuditKeys;
}

/** What one run removed: counts only. */
export interface RetentionResult {
  /** Attendance events removed, and streams deleted because nothing was left in them. */
  events: number;
  eventStreamsDeleted: number;
  /** Kept chat messages removed. */
  chat: number;
  /** Audit entries removed, and rooms whose chain is broken (left untouched; logged at error level). */
  audit: number;
  auditRefused: number;
  /** Webhook delivery records removed. */
  deliveries: number;
}

/**
 * XTRIM MINID, then DEL if nothing is left: in one script, so that an event appended meanwhile is
 * never deleted with the emptied stream.
 */
const trimEventsScript = `
local n = redis.call('XTRIM', KEYS[1], 'MINID', ARGV[1])
if redis.call('XLEN', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[1])
  return {n, 1}
end
return {n, 0}
`;
const trimEventsCommand = 'havenRetentionTrimEvents';
interface WithTrimEvents {
  [trimEventsCommand](key: string, minId: string): Promise<[number, number]>;
}

/** Escapes glob characters, so that a prefix is matched as it is. */
const literal = (text: string) => text.replace(/[*?[\]\\]/g, '\\$&');

/** Every key `<pattern>` of a Redis type, a SCAN page at a time. */
async function* scanKeys(redis: Redis, pattern: string, type: string): AsyncGenerator<string> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', scanCount, 'TYPE', type);
    // SCAN may return a key twice: every purge below is idempotent.
    yield* keys;
    cursor = next;
  } while (cursor !== '0');
}

/** Purges everything past its period, as of `now`; returns the counts. */
export async function processRetention(deps: RetentionDeps): Promise<RetentionResult> {
  const { redis, settings } = deps;
  const prefix = deps.prefix ?? 'haven:';
  const now = (deps.now ?? Date.now)();
  // Never before the epoch: MINID takes no negative id.
  const cutoff = (days: number) => Math.max(0, now - days * dayMs);
  const result: RetentionResult = {
    events: 0,
    eventStreamsDeleted: 0,
    chat: 0,
    audit: 0,
    auditRefused: 0,
    deliveries: 0,
  };

  if (settings.eventsDays > 0) {
    if (typeof (redis as unknown as Partial<WithTrimEvents>)[trimEventsCommand] !== 'function') {
      redis.defineCommand(trimEventsCommand, { numberOfKeys: 1, lua: trimEventsScript });
    }
    const minId = `${cutoff(settings.eventsDays)}-0`;
    for await (const key of scanKeys(redis, `${literal(attendanceStreamsPrefix(prefix))}*`, 'stream')) {
      const [removed, deleted] = await (redis as unknown as WithTrimEvents)[trimEventsCommand](key, minId);
      result.events += removed;
      result.eventStreamsDeleted += deleted;
    }
  }

  if (settings.chatDays > 0) {
    const before = cutoff(settings.chatDays);
    for await (const key of scanKeys(redis, `${literal(chatArchivesPrefix(prefix))}*`, 'hash')) {
      let cursor = '0';
      do {
        const [next, pairs] = await redis.hscan(key, cursor, 'COUNT', scanCount);
        const expired: string[] = [];
        for (let i = 0; i + 1 < pairs.length; i += 2) {
          if (keptMessageSentAt(pairs[i + 1] as string) < before) expired.push(pairs[i] as string);
        }
        // HDEL counts only what it removed: a message deleted meanwhile, or seen twice, is not counted.
        if (expired.length > 0) result.chat += await redis.hdel(key, ...expired);
        cursor = next;
      } while (cursor !== '0');
    }
  }

  if (settings.auditDays > 0) {
    const audit = deps.audit ?? new AuditLog(redis, deps.logger, { prefix, keys: deps.auditKeys });
    const before = new Date(cutoff(settings.auditDays));
    const streams = auditStreamsPrefix(prefix);
    for await (const key of scanKeys(redis, `${literal(streams)}*`, 'stream')) {
      const room = key.slice(streams.length);
      try {
        result.audit += await audit.purgeBefore(room, before);
      } catch (err) {
        // A broken chain stays as it is, as evidence; the message holds ids and seqs only.
        result.auditRefused++;
        deps.logger.error({ room, err: { message: (err as Error).message } }, 'audit entries not purged');
      }
    }
  }

  if (settings.deliveriesDays > 0) {
    result.deliveries = await purgeDeliveries(redis, cutoff(settings.deliveriesDays));
  }
  return result;
}

/** Runs in the node by default, or alone (`npm run workers`). */
export function startRetentionWorker(
  connection: RedisConnection,
  deps: Omit<RetentionDeps, 'logger'>,
  settings: WorkerSettings,
  logger: Logger,
): Worker {
  const log = logger.child({ component: 'retention' });
  const worker = new Worker(
    retentionQueueName,
    async () => {
      const started = Date.now();
      const result = await processRetention({ ...deps, logger: log });
      log.info({ ...result, ms: Date.now() - started }, 'retention run');
      return result;
    },
    workerOptions(connection, settings, 1),
  );
  worker.on('failed', (job, err) => log.error({ job: job?.id, err: { message: err.message } }, 'retention job failed'));
  worker.on('error', (err) => log.warn({ err: { message: err.message } }, 'retention worker error'));
  return worker;
}
