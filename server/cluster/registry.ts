/**
 * The nodes sharing one Redis: each registers itself (id, public URL, load) and heart-beats; a
 * node whose heartbeat key expired (`nodeTimeoutMs`, 5 s by default) is gone. Liveness is the
 * key's expiry in Redis, so nodes' clocks never have to agree.
 *
 * Keys: `haven:nodes` (a set of ids, pruned as nodes are found gone) and `haven:node:<id>` (JSON,
 * expiring). A node's rooms are counted by the leases (`haven:node-rooms:<id>`, leases.ts).
 */
import type { Redis } from 'ioredis';
import { z } from 'zod';
import type { Logger } from '../logger.ts';
import { parseJson } from '../redis/codec.ts';

export interface NodeInfo {
  id: string;
  /** Where clients and the other nodes reach this node (HTTP and signaling). */
  url: string;
  /** Not taking new rooms: shutting down. */
  draining: boolean;
  /** Load, for placement and for ops: open rooms, consumers, CPU (share of one core) of this process. */
  rooms: number;
  consumers: number;
  cpu: number;
  startedAt: string;
}

const nodeInfoSchema = z.object({
  id: z.string(),
  url: z.string(),
  draining: z.boolean(),
  rooms: z.number(),
  consumers: z.number(),
  cpu: z.number(),
  startedAt: z.string(),
}) satisfies z.ZodType<NodeInfo>;

export interface LiveNode extends NodeInfo {
  /** Rooms it holds a lease on now (the count placement goes by: it is never stale). */
  leases: number;
}

const nodesKey = 'haven:nodes';
const nodeKey = (id: string) => `haven:node:${id}`;
export const nodeRoomsKey = (id: string) => `haven:node-rooms:${id}`;

export interface RegistryOptions {
  redis: Redis;
  logger: Logger;
  id: string;
  nodeTimeoutMs: number;
  /** This node's load now (read at each heartbeat). */
  load: () => { rooms: number; consumers: number };
}

export class NodeRegistry {
  readonly id: string;
  /** Known once the node listens (unless configured): set by `start`. */
  url: string;
  readonly #options: RegistryOptions;
  readonly #logger: Logger;
  readonly #startedAt = new Date().toISOString();
  #draining = false;
  #timer: NodeJS.Timeout | undefined;
  #cpu = process.cpuUsage();
  #cpuAt = performance.now();
  #cpuShare = 0;

  constructor(options: RegistryOptions) {
    this.#options = options;
    this.id = options.id;
    this.url = '';
    this.#logger = options.logger.child({ component: 'cluster', node: options.id });
  }

  get draining(): boolean {
    return this.#draining;
  }

  /** Registers the node at `url` and heart-beats every fifth of the timeout. */
  async start(url: string): Promise<void> {
    this.url = url;
    await this.beat();
    this.#timer = setInterval(() => {
      this.beat().catch((err: Error) => this.#logger.warn({ err: { message: err.message } }, 'heartbeat failed'));
    }, this.#beatMs);
    this.#timer.unref();
    this.#logger.info({ url: this.url }, 'node registered');
  }

  async beat(): Promise<void> {
    const { redis, nodeTimeoutMs, load } = this.#options;
    const info: NodeInfo = {
      id: this.id,
      url: this.url,
      draining: this.#draining,
      ...load(),
      cpu: this.#sampleCpu(),
      startedAt: this.#startedAt,
    };
    await redis.multi().sadd(nodesKey, this.id).set(nodeKey(this.id), JSON.stringify(info), 'PX', nodeTimeoutMs).exec();
  }

  /** Stops taking new rooms (at once, not at the next heartbeat). */
  async drain(): Promise<void> {
    this.#draining = true;
    await this.beat();
  }

  /** Leaves the cluster: the others stop placing rooms here at once. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#options.redis.multi().srem(nodesKey, this.id).del(nodeKey(this.id)).exec();
  }

  /** The nodes alive now, with the leases each holds. */
  async liveNodes(): Promise<LiveNode[]> {
    const { redis } = this.#options;
    const ids = await redis.smembers(nodesKey);
    if (ids.length === 0) return [];
    const infos = await redis.mget(ids.map(nodeKey));
    const gone = ids.filter((_, i) => !infos[i]);
    if (gone.length > 0) await redis.srem(nodesKey, ...gone);
    // A heartbeat that is not a node's info (not one Haven wrote) is no live node.
    const live = infos.flatMap((json) => {
      const info = json ? parseJson(nodeInfoSchema, json) : undefined;
      return info ? [info] : [];
    });
    const counts = await Promise.all(live.map((n) => redis.scard(nodeRoomsKey(n.id))));
    return live.map((n, i) => ({ ...n, leases: counts[i] ?? 0 }));
  }

  /**
   * A live node's URL, or undefined if it is gone — or has missed two heartbeats in a row (its
   * key has not expired yet, but sending a client there would most likely cost it a failed try).
   */
  async urlOf(id: string): Promise<string | undefined> {
    if (id === this.id) return this.url;
    const [json, ttlMs] = await Promise.all([
      this.#options.redis.get(nodeKey(id)),
      this.#options.redis.pttl(nodeKey(id)),
    ]);
    if (!json || ttlMs < this.#options.nodeTimeoutMs - 2 * this.#beatMs) return undefined;
    return parseJson(nodeInfoSchema, json)?.url;
  }

  get #beatMs(): number {
    return Math.max(100, Math.floor(this.#options.nodeTimeoutMs / 5));
  }

  #sampleCpu(): number {
    const now = performance.now();
    const used = process.cpuUsage(this.#cpu);
    const elapsedUs = (now - this.#cpuAt) * 1000;
    if (elapsedUs > 0) this.#cpuShare = (used.user + used.system) / elapsedUs;
    this.#cpu = process.cpuUsage();
    this.#cpuAt = now;
    return Math.round(this.#cpuShare * 1000) / 1000;
  }
}
