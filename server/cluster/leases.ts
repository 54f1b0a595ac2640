/**
 * Room ownership: a room is served by the one node holding its lease in Redis
 * (`haven:room-owner:<room>` = `<node>|<fence>`, expiring after `leaseMs`), renewed every third
 * of that while the node lives. Each new lease takes the next fencing token
 * (`haven:room-fence:<room>`), so anything stamped with an older token is known to be stale.
 *
 * A node whose renewal Redis refused, or whose own clock says it went unrenewed past its lease,
 * has lost the room and stops serving it at once: it checks its clock before serving (`holds`),
 * so a node frozen past its lease (SIGSTOP, a long GC, a VM paused) finds out when it wakes,
 * before it answers anything, not at its next renewal.
 *
 * A renewal that could not ask Redis at all (the connection down: Redis stopped, restarting, cut
 * off) suspends the lease instead: the node serves on, since while Redis is down for every node
 * nobody can take the room meanwhile. Once the connection is ready again every suspended lease
 * is renewed at once: still ours, or gone with no acquisition since (the fence counter
 * unchanged), it is ours again under the same fence; held by another node (which reached Redis
 * while this one could not), or the fence moved on, it is lost. So a Redis outage ends no session, and a node cut off alone keeps its room
 * only until it can ask again: a split bounded by the partition.
 *
 * Each renewal of a room this node has open also notes the time (`haven:room-served:<room>`, this
 * node's clock, kept 7 days): the last moment the room is known to have been served, which the
 * node taking the session back after an outage dates everyone's disconnection by (attendance).
 */
import type { Redis } from 'ioredis';
import { TypedEmitter } from '../../client-sdk/src/protocol/typed-emitter.ts';
import type { Logger } from '../logger.ts';
import { nodeRoomsKey } from './registry.ts';

const ownerKey = (room: string) => `haven:room-owner:${room}`;
const fenceKey = (room: string) => `haven:room-fence:${room}`;
const servedKey = (room: string) => `haven:room-served:${room}`;

/**
 * KEYS: owner, fence, this node's room set. ARGV: node id, lease ms, room.
 * `{1, fence}` when this node holds the lease (new or already), `{0, owner}` when another does.
 */
const acquireScript = `
local current = redis.call('GET', KEYS[1])
if current then
  local owner, fence = string.match(current, '^(.*)|(%d+)$')
  if owner == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return {1, fence}
  end
  return {0, owner}
end
local fence = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. fence, 'PX', ARGV[2])
redis.call('SADD', KEYS[3], ARGV[3])
return {1, tostring(fence)}
`;

/** How long the last-served time outlives the room's last renewal (attendance may be computed later). */
const servedTtlMs = 7 * 24 * 3_600_000;

/**
 * KEYS: owner, served, fence. ARGV: `<node>|<fence>`, lease ms, now ms ('' when the room is not
 * open here), fence. 1 if still held, or gone with no acquisition since (the counter still at our
 * fence: set again, the same fence), and extended, the time noted; else 0 (another node took it).
 */
const renewScript = `
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
elseif not current and redis.call('GET', KEYS[3]) == ARGV[4] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
else
  return 0
end
if ARGV[3] ~= '' then redis.call('SET', KEYS[2], ARGV[3], 'PX', ${servedTtlMs}) end
return 1
`;

/**
 * KEYS: owner, this node's room set, served. ARGV: `<node>|<fence>`, room, now ms ('' when the
 * room is not open here). Releases only our own lease; served until now if it was open.
 */
const releaseScript = `
redis.call('SREM', KEYS[2], ARGV[2])
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  if ARGV[3] ~= '' then redis.call('SET', KEYS[3], ARGV[3], 'PX', ${servedTtlMs}) end
  return 1
end
return 0
`;

interface WithScripts {
  havenLeaseAcquire(
    owner: string,
    fence: string,
    rooms: string,
    node: string,
    ms: string,
    room: string,
  ): Promise<[number, string]>;
  havenLeaseRenew(
    owner: string,
    served: string,
    fence: string,
    value: string,
    ms: string,
    now: string,
    fenceValue: string,
  ): Promise<number>;
  havenLeaseRelease(
    owner: string,
    rooms: string,
    served: string,
    value: string,
    room: string,
    now: string,
  ): Promise<number>;
}

interface Held {
  fence: number;
  /** Local monotonic time (ms) it was taken. */
  since: number;
  /** Local monotonic time (ms) until which the lease is surely ours. */
  validUntil: number;
  /** A renewal could not reach Redis: served on until Redis answers whether it is still ours. */
  suspended: boolean;
}

export type LeaseEvents = {
  /** The lease on `room` was lost (not renewed in time, or taken): stop serving it. */
  lost: [room: string];
  /** A renewal went through (Redis kept the lease ours for another `leaseMs`). */
  renewed: [room: string];
};

export type Acquired = { held: true; fence: number } | { held: false; owner: string };

export class RoomLeases extends TypedEmitter<LeaseEvents> {
  readonly #redis: Redis & WithScripts;
  readonly #node: string;
  readonly #leaseMs: number;
  readonly #logger: Logger;
  readonly #held = new Map<string, Held>();
  readonly #serving: (room: string) => boolean;
  readonly #onReady = () => void this.#renewAll();
  #timer: NodeJS.Timeout | undefined;

  /** `serving`: whether the room is open here (a lease alone, taken for a client on its way, serves nothing yet). */
  constructor(
    redis: Redis,
    node: string,
    leaseMs: number,
    logger: Logger,
    serving: (room: string) => boolean = () => true,
  ) {
    super();
    this.#serving = serving;
    this.#redis = redis as Redis & WithScripts;
    this.#node = node;
    this.#leaseMs = leaseMs;
    this.#logger = logger.child({ component: 'cluster', node });
    if (typeof this.#redis.havenLeaseAcquire !== 'function') {
      redis.defineCommand('havenLeaseAcquire', { numberOfKeys: 3, lua: acquireScript });
      redis.defineCommand('havenLeaseRenew', { numberOfKeys: 3, lua: renewScript });
      redis.defineCommand('havenLeaseRelease', { numberOfKeys: 3, lua: releaseScript });
    }
  }

  start(): void {
    this.#timer = setInterval(() => void this.#renewAll(), Math.max(50, Math.floor(this.#leaseMs / 3)));
    this.#timer.unref();
    // Back from an outage: suspended leases are settled at once, not at the next tick.
    this.#redis.on('ready', this.#onReady);
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#redis.off('ready', this.#onReady);
  }

  /**
   * Takes the room's lease if nobody holds it (or keeps ours); else says who holds it. For another
   * node (`node`): placement reserves the room for the node it redirects to, which adopts the
   * lease when the client arrives, or lets it run out if none does.
   */
  async acquire(room: string, node = this.#node): Promise<Acquired> {
    const askedAt = performance.now();
    const [held, value] = await this.#redis.havenLeaseAcquire(
      ownerKey(room),
      fenceKey(room),
      nodeRoomsKey(node),
      node,
      String(this.#leaseMs),
      room,
    );
    if (held !== 1) return { held: false, owner: value };
    if (node !== this.#node) return { held: true, fence: Number(value) };
    const fence = Number(value);
    const since = this.#held.get(room)?.since ?? askedAt;
    this.#held.set(room, { fence, since, validUntil: askedAt + this.#leaseMs, suspended: false });
    return { held: true, fence };
  }

  /** How long the room's current lease has left, in ms (0 when there is none). */
  async expiresInMs(room: string): Promise<number> {
    return Math.max(0, await this.#redis.pttl(ownerKey(room)));
  }

  /** The node holding the room's lease, if any. */
  async ownerOf(room: string): Promise<string | undefined> {
    const value = await this.#redis.get(ownerKey(room));
    return value ? value.slice(0, value.lastIndexOf('|')) : undefined;
  }

  /**
   * Whether this node holds the room's lease now, by its own clock (no Redis round trip), or
   * while it is suspended (Redis unreachable: nobody else can have taken it there).
   */
  holds(room: string): boolean {
    const held = this.#held.get(room);
    if (!held) return false;
    if (held.suspended || performance.now() < held.validUntil) return true;
    this.#lose(room, 'expired before it was renewed');
    return false;
  }

  /** Whether the room's lease is suspended (held on while Redis is unreachable). */
  suspended(room: string): boolean {
    return this.#held.get(room)?.suspended === true;
  }

  /** What a write for the room must find in Redis to be applied: this node's lease, or null without one. */
  fence(room: string): { key: string; value: string } | null {
    const held = this.holds(room) ? this.#held.get(room) : undefined;
    return held ? { key: ownerKey(room), value: `${this.#node}|${held.fence}` } : null;
  }

  /** How long this node has held the room's lease (0 if it does not). */
  heldForMs(room: string): number {
    const held = this.#held.get(room);
    return held ? performance.now() - held.since : 0;
  }

  get rooms(): string[] {
    return [...this.#held.keys()];
  }

  /** Gives the room up (it closed here, or the node drains). */
  async release(room: string): Promise<void> {
    const held = this.#held.get(room);
    this.#held.delete(room);
    if (!held) return;
    await this.#redis.havenLeaseRelease(
      ownerKey(room),
      nodeRoomsKey(this.#node),
      servedKey(room),
      `${this.#node}|${held.fence}`,
      room,
      this.#servedNow(room),
    );
  }

  async #renewAll(): Promise<void> {
    await Promise.all(
      [...this.#held].map(async ([room, held]) => {
        if (!this.holds(room)) return; // lost already: `holds` said so
        // Not connected: Redis cannot be asked, so it cannot have said no (nor can anyone else
        // have taken the room there). Asked again on the connection's `ready`.
        if (this.#redis.status !== 'ready') return this.#suspend(room, held);
        const askedAt = performance.now();
        try {
          const renewed = await this.#redis.havenLeaseRenew(
            ownerKey(room),
            servedKey(room),
            fenceKey(room),
            `${this.#node}|${held.fence}`,
            String(this.#leaseMs),
            this.#servedNow(room),
            String(held.fence),
          );
          if (this.#held.get(room) !== held) return; // released meanwhile
          if (renewed !== 1) return this.#lose(room, 'taken by another node');
          held.validUntil = askedAt + this.#leaseMs;
          this.safeEmit('renewed', room);
          if (held.suspended) this.#logger.info({ room }, 'room lease renewed: Redis reachable again');
          held.suspended = false;
        } catch (err) {
          if (this.#held.get(room) !== held) return;
          const message = (err as Error).message;
          // The connection failed under the renewal: suspended. Redis answering with an error: the
          // lease runs out by the clock unless a renewal gets through in time.
          if (this.#redis.status !== 'ready' || connectionError.test(message)) this.#suspend(room, held);
          else this.#logger.warn({ room, err: { message } }, 'lease not renewed');
        }
      }),
    );
  }

  #suspend(room: string, held: Held): void {
    if (held.suspended) return;
    held.suspended = true;
    this.#logger.warn({ room }, 'room lease suspended: Redis unreachable; serving on');
  }

  /** Now (server ms, the clock attendance events use) if the room is open here, else ''. */
  #servedNow(room: string): string {
    return this.#serving(room) ? String(Date.now()) : '';
  }

  #lose(room: string, why: string): void {
    if (!this.#held.delete(room)) return;
    this.#redis.srem(nodeRoomsKey(this.#node), room).catch(() => {});
    this.#logger.warn({ room, why }, 'room lease lost: no longer serving the room');
    this.safeEmit('lost', room);
  }
}

/** ioredis' errors for a command that never got an answer (the connection failed, not Redis). */
const connectionError =
  /max retries per request|Connection is closed|ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|EHOSTUNREACH/i;

/** The last time (server ms) a node renewed the room's lease while it had the room open, if known. */
export async function lastServedAt(redis: Redis, room: string): Promise<number | undefined> {
  const value = await redis.get(servedKey(room));
  return value ? Number(value) : undefined;
}

/** Whether a node holds the room's lease now (serves it, or is about to). */
export async function isRoomLeased(redis: Redis, room: string): Promise<boolean> {
  return (await redis.exists(ownerKey(room))) === 1;
}
