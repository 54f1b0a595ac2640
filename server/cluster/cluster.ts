/**
 * This node's part in a cluster of nodes sharing one Redis (a single node is a cluster of one):
 * it registers and heart-beats (registry.ts), holds the leases of the rooms it serves
 * (leases.ts), and decides where a connection for a room belongs.
 *
 * Placement: a room's first connection places it on the live, non-draining node with the fewest
 * leases (this node on a tie: no needless hop). A connection that reaches a node which does not
 * serve its room is refused with `REDIRECT` and the serving node's URL, which the SDK follows by
 * itself. Redirect rather than relay: media must reach the serving node's own WebRTC ports
 * anyway, so signaling there too keeps one path per client and one failure to handle.
 */
import type { Redis } from 'ioredis';
import { TypedEmitter } from '../../client-sdk/src/protocol/typed-emitter.ts';
import { HavenError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { RoomLeases } from './leases.ts';
import { type LiveNode, NodeRegistry } from './registry.ts';

export interface ClusterOptions {
  redis: Redis;
  logger: Logger;
  nodeId: string;
  /** A node not heard from for this long is gone; also how long a room lease lasts unrenewed. */
  nodeTimeoutMs: number;
  load: () => { rooms: number; consumers: number };
  /** Whether the room is open on this node (its lease renewals then note when it was last served). */
  serving?: (room: string) => boolean;
}

/** A lease taken for a connection whose room never opened here is given up after this. */
const unusedLeaseMs = 30_000;
const unusedLeaseSweepMs = 10_000;

export type ClusterEvents = {
  /** This node no longer serves `room` (its lease ran out or was taken): close it here now. */
  lost: [room: string];
};

export class Cluster extends TypedEmitter<ClusterEvents> {
  readonly registry: NodeRegistry;
  readonly leases: RoomLeases;
  #placing: Promise<void> = Promise.resolve();
  readonly #serving: (room: string) => boolean;
  #unusedLeaseSweep: NodeJS.Timeout | undefined;

  constructor(options: ClusterOptions) {
    super();
    this.registry = new NodeRegistry({
      redis: options.redis,
      logger: options.logger,
      id: options.nodeId,
      nodeTimeoutMs: options.nodeTimeoutMs,
      load: options.load,
    });
    this.leases = new RoomLeases(options.redis, options.nodeId, options.nodeTimeoutMs, options.logger, options.serving);
    this.leases.on('lost', (room) => this.safeEmit('lost', room));
    this.#serving = options.serving ?? (() => true);
  }

  get nodeId(): string {
    return this.registry.id;
  }

  /** Joins the cluster as the node reachable at `url`; gives up unused leases every 10 s from then on. */
  async start(url: string): Promise<void> {
    await this.registry.start(url);
    this.leases.start();
    this.#unusedLeaseSweep = setInterval(() => {
      this.releaseUnused(this.#serving, unusedLeaseMs).catch(() => {});
    }, unusedLeaseSweepMs);
    this.#unusedLeaseSweep.unref();
  }

  /** Gives up leases taken for connections whose room never opened here (after `graceMs`). */
  async releaseUnused(isOpen: (room: string) => boolean, graceMs: number): Promise<void> {
    const stale = this.leases.rooms.filter((room) => !isOpen(room) && this.leases.heldForMs(room) > graceMs);
    await Promise.all(stale.map((room) => this.leases.release(room)));
  }

  /**
   * Admits a connection for `room` here, taking the room's lease if nobody serves it; or throws
   * `REDIRECT` (with the serving node's URL) or `UNAVAILABLE` (its node is gone and its lease
   * has not run out yet: the room moves within seconds).
   */
  async route(room: string): Promise<void> {
    if (this.leases.holds(room)) return;
    const owner = await this.leases.ownerOf(room);
    if (owner && owner !== this.nodeId) return this.#redirectTo(room, owner);
    // Placements one at a time here, each counted at once: rooms placed together spread evenly.
    const placing = this.#placing.then(() => this.#place(room, owner));
    this.#placing = placing.catch(() => {});
    return placing;
  }

  async #place(room: string, owner: string | undefined): Promise<void> {
    let node = this.nodeId;
    if (!owner) {
      const target = await this.#placement();
      if (!target) throw new HavenError('UNAVAILABLE', 'every node is shutting down; try again shortly');
      node = target.id;
    }
    // The lease is taken for the chosen node now (it adopts it when the client arrives).
    const taken = await this.leases.acquire(room, node);
    if (!taken.held) return this.#redirectTo(room, taken.owner);
    if (node !== this.nodeId) return this.#redirectTo(room, node);
  }

  /** Whether this node serves `room` now (checked before every request). */
  serves(room: string): boolean {
    return this.leases.holds(room);
  }

  /** The URL of the node serving `room`, if another live node does (for the admin API to forward to). */
  async remoteOwnerUrl(room: string): Promise<string | undefined> {
    if (this.leases.holds(room)) return undefined;
    const owner = await this.leases.ownerOf(room);
    return owner && owner !== this.nodeId ? this.registry.urlOf(owner) : undefined;
  }

  /** The least-loaded node taking rooms (this one on a tie), or undefined if none does. */
  async #placement(): Promise<LiveNode | undefined> {
    const nodes = (await this.registry.liveNodes()).filter((n) => !n.draining);
    if (!this.registry.draining && !nodes.some((n) => n.id === this.nodeId)) {
      // This node's registration lapsed (Redis was away a moment): it still takes rooms.
      const self = { id: this.nodeId, url: this.registry.url, draining: false, rooms: 0, consumers: 0, cpu: 0 };
      nodes.push({ ...self, startedAt: '', leases: this.leases.rooms.length });
    }
    return leastLoaded(nodes, this.nodeId);
  }

  async #redirectTo(room: string, owner: string): Promise<never> {
    const url = await this.registry.urlOf(owner);
    if (url) throw redirect(url);
    // Its node is gone: the room is placed again once that node's lease runs out.
    const retryAfterMs = Math.max(100, (await this.leases.expiresInMs(room)) + 50);
    throw new HavenError('UNAVAILABLE', 'the room is moving to another node; try again shortly', { retryAfterMs });
  }

  /** Stops taking rooms and gives up the leases of `rooms` (which the node then closes). */
  async drain(rooms: readonly string[]): Promise<void> {
    clearInterval(this.#unusedLeaseSweep);
    await this.registry.drain();
    await Promise.all(rooms.map((room) => this.leases.release(room)));
  }

  async stop(): Promise<void> {
    clearInterval(this.#unusedLeaseSweep);
    this.leases.stop();
    await Promise.all(this.leases.rooms.map((room) => this.leases.release(room)));
    await this.registry.stop();
  }
}

function leastLoaded(nodes: LiveNode[], self: string): LiveNode | undefined {
  return [...nodes].sort(
    (a, b) => a.leases - b.leases || a.consumers - b.consumers || Number(b.id === self) - Number(a.id === self),
  )[0];
}

function redirect(url: string): HavenError {
  return new HavenError('REDIRECT', 'the room is served by another node', { url });
}
