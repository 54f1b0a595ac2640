/**
 * How Haven reaches Redis: one URL, or a Sentinel set that names the current master (Redis with a
 * replica and automatic failover). Every client is built from here (the node's, the workers
 * process's, BullMQ's queues and workers, `haven audit`), so all of them follow a failover alike.
 *
 * Through Sentinel, ioredis asks the sentinels for the master at each (re)connection and checks
 * its role, so a client never stays on a demoted master. What a failover needs on top:
 * - reconnect often (at most a second apart): the new master answers about a second after the
 *   sentinels promote it, and a longer backoff only adds to the outage;
 * - commands issued meanwhile wait in ioredis' offline queue, long enough to outlast a failover
 *   (the sentinels' `down-after-milliseconds` plus the election), instead of failing at once;
 * - leave the old master as soon as the sentinels announce the new one (`+switch-master`), even
 *   while it still answers (a partition): what it acknowledges then is lost when it is demoted;
 * - a write refused with READONLY (it reached a master just demoted to a replica) reconnects
 *   and is sent again: it was not applied, so sending it again cannot double it.
 */
import type { ConnectionOptions } from 'bullmq';
import { type RedisOptions, SentinelConnector } from 'ioredis';
import type { Config } from '../../config/schema.ts';

export interface SentinelAddress {
  host: string;
  port: number;
}

/** One Redis by URL, or a Sentinel set and the name of the master group it monitors. */
export type RedisConnection =
  | { url: string }
  | { sentinels: SentinelAddress[]; name: string; password?: string; sentinelPassword?: string };

type RedisSettings = Pick<Config['redis'], 'url' | 'sentinels' | 'sentinelName' | 'password' | 'sentinelPassword'>;

/** The configured connection; undefined when neither a URL nor sentinels are set (the embedded Redis). */
export function redisConnectionOf(redis: RedisSettings): RedisConnection | undefined {
  if (redis.sentinels && redis.sentinels.length > 0) {
    return {
      sentinels: redis.sentinels.map(sentinelAddress),
      name: redis.sentinelName,
      ...(redis.password === undefined ? {} : { password: redis.password }),
      ...(redis.sentinelPassword === undefined ? {} : { sentinelPassword: redis.sentinelPassword }),
    };
  }
  return redis.url ? { url: redis.url } : undefined;
}

/** `host:port` or `[v6 address]:port` (validated by the config schema). */
export function sentinelAddress(value: string): SentinelAddress {
  const colon = value.lastIndexOf(':');
  return { host: value.slice(0, colon).replace(/^\[(.*)\]$/, '$1'), port: Number(value.slice(colon + 1)) };
}

const reconnectDelayMs = (attempt: number) => Math.min(attempt * 100, 1_000);

/**
 * ioredis' Sentinel connector with one fix. Its failover detector (subscribed to the sentinels'
 * `+switch-master`) outlives the connection it watched; when the switch is announced while the
 * client is reconnecting, it aborts that attempt, and an aborted attempt ends the client for
 * good: every command then fails with "Connection is closed." (seen here, in some failovers for
 * most clients). So the detector of a closed connection is dropped before each attempt; a new
 * connection gets its own, and until then each attempt asks the sentinels anyway.
 */
class SentinelConnectorForFailover extends SentinelConnector {
  // ioredis builds its `Connector` with the client's whole options (Sentinel's among them).
  constructor(options: unknown) {
    super(options as ConstructorParameters<typeof SentinelConnector>[0]);
  }

  override connect(...args: Parameters<SentinelConnector['connect']>): ReturnType<SentinelConnector['connect']> {
    const internals = this as unknown as { failoverDetector: { cleanup(): void } | null };
    internals.failoverDetector?.cleanup();
    internals.failoverDetector = null;
    return super.connect(...args);
  }
}

/** What a Sentinel client needs to ride out a failover (see the module comment). */
const failoverOptions: RedisOptions = {
  Connector: SentinelConnectorForFailover,
  retryStrategy: reconnectDelayMs,
  sentinelRetryStrategy: reconnectDelayMs,
  failoverDetector: true,
  reconnectOnError: (err) => (err.message.startsWith('READONLY') ? 2 : false),
  enableOfflineQueue: true,
};

/**
 * Reconnections a pending command waits for before it fails. One URL: 3, about a second (as the
 * node always did: a request fails fast while its Redis is down). Sentinel: 20, about 15 s at
 * most a second apart, longer than a failover takes with `down-after-milliseconds` up to 10 s.
 */
const commandRetries = { url: 3, sentinel: 20 };

/**
 * Options for `new Redis(options)`: where Redis is, plus the failover behaviour above for a
 * Sentinel set; `overrides` win (e.g. `lazyConnect`, or fail-fast settings for a CLI).
 */
export function redisOptions(connection: RedisConnection, overrides: RedisOptions = {}): RedisOptions {
  const retries = 'url' in connection ? commandRetries.url : commandRetries.sentinel;
  return { ...whereOptions(connection), maxRetriesPerRequest: retries, ...overrides };
}

/**
 * BullMQ's `connection` option for a Queue or Worker: the same place and failover behaviour;
 * BullMQ sets `maxRetriesPerRequest` itself (a Worker's must be null: see workers/options.ts).
 */
export function bullConnection(connection: RedisConnection): ConnectionOptions {
  // BullMQ hands these to ioredis as they are; its own type only lacks ioredis' exact fields.
  return whereOptions(connection) as ConnectionOptions;
}

function whereOptions(connection: RedisConnection): RedisOptions {
  if ('url' in connection) return urlOptions(connection.url);
  return {
    sentinels: connection.sentinels.map((s) => ({ ...s })),
    name: connection.name,
    ...(connection.password === undefined ? {} : { password: connection.password }),
    ...(connection.sentinelPassword === undefined ? {} : { sentinelPassword: connection.sentinelPassword }),
    ...failoverOptions,
  };
}

/** `redis[s]://[[user]:password@]host[:port][/db][?option=value…]` as ioredis reads it. */
function urlOptions(url: string): RedisOptions {
  const parsed = new URL(url);
  const options: RedisOptions = {
    host: parsed.hostname.replace(/^\[(.*)\]$/, '$1') || 'localhost',
    port: parsed.port ? Number(parsed.port) : 6379,
  };
  if (parsed.username) options.username = decodeURIComponent(parsed.username);
  if (parsed.password) options.password = decodeURIComponent(parsed.password);
  const db = parsed.pathname.slice(1);
  if (db) options.db = Number(db);
  if (parsed.protocol === 'rediss:') options.tls = {};
  const extra = options as Record<string, unknown>;
  for (const [key, value] of parsed.searchParams) extra[key] ??= key === 'family' ? Number(value) : value;
  return options;
}
