/**
 * One room's facilitation state in Redis, written through by its room (`RoomPersistence`), so
 * that a session survives the node running it (issue 7): when the room opens again on another
 * node, it is restored from here. Ids and small values only — never a token's display name, a
 * token, or free text (the waiting room's message stays in memory). Keys, under
 * `haven:room-state:<room>:`:
 *
 * - `meta`     hash: `locked` (`0`/`1`), `audioMode`, `spotlight` (participant id or empty)
 * - `members`  hash: participant id → `{ stage, role, since, dropped?, jti?, exp? }` (everyone at
 *              the consent gate, waiting or admitted; `since`: in the waiting room since)
 * - `hands`    zset: participant id, scored by when the hand went up (the queue's order)
 * - `bans`     set: participant ids removed with a ban
 * - `unmute`   set: participant ids a facilitator asked to unmute (controlled audio mode)
 * - `aliases`  hash: participant id → the alias a facilitator set (a label a facilitator chose
 *              to show, e.g. a pseudonym the person asked for; the token's name is never stored)
 * - `consents` hash: participant id → `{ version, hash }` of the consent text accepted
 * - `breakouts` string: the breakout rounds' plan or running round as JSON (group ids, the names
 *              a facilitator gave the groups, member ids, times); each member's group is in
 *              `members` (`bo`)
 *
 * Every write refreshes the TTL of all of them (24 h by default), so a room whose node died and
 * that nobody reopens does not linger; `clear` removes them when the session ends.
 *
 * Fencing: the cluster layer passes `fence`, this node's lease on the room (the owner key and
 * the `<node>|<token>` it must still hold). Each write is one Lua script that applies the change
 * only if Redis still names that lease, so a node that lost the room — even one frozen between
 * checking its lease and sending the write — cannot overwrite the state its new owner restored.
 * No lease (`fence` answers null) skips the write at once; both are logged at warn. A write
 * refused while this node still holds the lease by its own account (suspended through a Redis
 * outage, the key expired there meanwhile) fails like a write Redis never got: the room writes
 * its whole state again until Redis takes it (the lease set again) or the room closes here (lost).
 */
import type { Redis } from 'ioredis';
import type { AudioMode, BreakoutHelpRequest, Role } from '../../client-sdk/src/protocol/index.ts';
import { lastServedAt } from '../cluster/leases.ts';
import { HavenError } from '../errors.ts';
import type { Logger } from '../logger.ts';

export type StoredStage = 'consent' | 'waiting' | 'admitted';

export interface StoredMember {
  participantId: string;
  role: Role;
  stage: StoredStage;
  /** When this person entered the waiting room (ms since the epoch). */
  waitingSince: number;
  /** Their connection had dropped (its `disconnected` attendance event is recorded already). */
  dropped: boolean;
  /** The token's `jti` and expiry: what a removal revokes for someone who has not rejoined yet. */
  jti?: string;
  expiresAtMs?: number;
  /** The breakout group they are in (absent: the main room). */
  breakout?: string;
}

/** A session's breakouts as the store keeps them (server/rooms/breakouts.ts). */
export interface StoredBreakouts {
  /** `none` between rounds: kept for `nextId`, so that no group id comes back after a failover. */
  status: 'none' | 'planned' | 'running';
  /** `planned`: who goes there at the start (while running, `StoredMember.breakout` says who is). */
  groups: { id: string; name: string; planned: string[] }[];
  startedAt: number | null;
  endsAt: number | null;
  noticeS: number;
  /** Whether the ending notice was told already. */
  noticed: boolean;
  help: BreakoutHelpRequest[];
  /** The number in the next group id. */
  nextId: number;
}

export interface ConsentRecord {
  version: number;
  hash: string;
}

export interface RoomStateSnapshot {
  locked: boolean;
  audioMode: AudioMode;
  spotlight: string | null;
  /** Oldest in the waiting room first. */
  members: StoredMember[];
  /** The raised hands' queue, in order. */
  hands: { participantId: string; raisedAt: number }[];
  bans: string[];
  unmuteGranted: string[];
  aliases: Map<string, string>;
  consents: Map<string, ConsentRecord>;
  /** The breakouts planned or running (or between rounds); null before the session's first plan. */
  breakouts: StoredBreakouts | null;
  /**
   * On load: the last time the room's previous node is known to have served it (its last lease
   * renewal with the room open, cluster/leases.ts), if known. Not stored by `replace`.
   */
  lastServedAt?: number;
}

/**
 * What a room writes through (room-persistence.ts). Presence-driven writes (joins, stages,
 * hands, …) are fire and forget: they follow connections and must never wait for, or fail
 * because of, Redis; a failure is logged (ids only) and reported to `onFailure`, and the room
 * writes its whole state again (`replace`) once Redis answers. `locked` and `ban` are awaited: the facilitator's answer says
 * that nobody new gets in / that this person stays out, and that must hold on the node that takes
 * the room over, so the request fails (`INTERNAL`) rather than answer ok for a decision only this
 * node's memory holds.
 */
export interface RoomStateWriter {
  member(member: StoredMember): void;
  /** Left, denied or removed: the member, its hand, alias and unmute grant go (consent records stay). */
  memberGone(participantId: string): void;
  /** A new mode also withdraws every unmute grant. */
  audioMode(mode: AudioMode): void;
  unmuteGranted(participantId: string, granted: boolean): void;
  spotlight(participantId: string | null): void;
  alias(participantId: string, alias: string): void;
  /** `raisedAt` null: lowered. */
  hand(participantId: string, raisedAt: number | null): void;
  consent(participantId: string, record: ConsentRecord): void;
  /** null: nothing to keep (no plan yet in this session). */
  breakouts(state: StoredBreakouts | null): void;
  locked(locked: boolean): Promise<void>;
  ban(participantId: string): Promise<void>;
  /** The whole state at once, replacing what is stored (after failed writes). */
  replace(state: RoomStateSnapshot): Promise<void>;
  /** The session ended: nothing of it is restored again (fire and forget; the TTL is the fallback). */
  clear(): void;
}

/** A lease a write depends on: applied only while `key` holds `value`. */
export interface Fence {
  key: string;
  value: string;
}

export interface RoomStateWriterOptions {
  /** This node's lease on the room (null: it holds none, the write is skipped). Absent: unfenced. */
  fence?: () => Fence | null;
  /** A fire-and-forget write failed (logged already): what is stored lags behind the room. */
  onFailure?: () => void;
}

export interface RoomStateStoreOptions {
  /** Redis key prefix. Default `haven:`. */
  prefix?: string;
  /** Seconds the state outlives its last write. Default 86,400 (24 h). */
  ttlS?: number;
}

const keyNames = ['meta', 'members', 'hands', 'bans', 'unmute', 'aliases', 'consents', 'breakouts'] as const;
type KeyName = (typeof keyNames)[number];

interface MemberJson {
  stage: StoredStage;
  role: Role;
  since: number;
  dropped?: 1;
  jti?: string;
  exp?: number;
  bo?: string;
}

export class RoomStateStore {
  readonly #redis: Redis;
  readonly #logger: Logger;
  readonly #prefix: string;
  readonly #ttlS: number;

  constructor(redis: Redis, logger: Logger, options: RoomStateStoreOptions = {}) {
    this.#redis = redis;
    if (typeof (redis as unknown as Partial<WithFencedWrite>).havenFencedWrite !== 'function') {
      redis.defineCommand('havenFencedWrite', { numberOfKeys: 1, lua: fencedWriteScript });
    }
    this.#logger = logger.child({ component: 'room-state' });
    this.#prefix = options.prefix ?? 'haven:';
    this.#ttlS = options.ttlS ?? 86_400;
  }

  /** The room's keys, by name. */
  keys(room: string): Record<KeyName, string> {
    const base = `${this.#prefix}room-state:${room}:`;
    return Object.fromEntries(keyNames.map((k) => [k, `${base}${k}`])) as Record<KeyName, string>;
  }

  /** The room's stored state (one consistent read), or undefined if none is stored. */
  async load(room: string): Promise<RoomStateSnapshot | undefined> {
    const k = this.keys(room);
    const results = await this.#redis
      .multi()
      .hgetall(k.meta)
      .hgetall(k.members)
      .zrange(k.hands, '0', '-1', 'WITHSCORES')
      .smembers(k.bans)
      .smembers(k.unmute)
      .hgetall(k.aliases)
      .hgetall(k.consents)
      .get(k.breakouts)
      .exec();
    if (!results) throw new Error('room state read aborted');
    const failed = results.find(([err]) => err);
    if (failed) throw failed[0];
    const [meta, members, hands, bans, unmute, aliases, consents, breakouts] = results.map(([, value]) => value) as [
      Record<string, string>,
      Record<string, string>,
      string[],
      string[],
      string[],
      Record<string, string>,
      Record<string, string>,
      string | null,
    ];
    const stored =
      Object.keys(meta).length +
      Object.keys(members).length +
      hands.length +
      bans.length +
      Object.keys(consents).length;
    if (stored === 0) return undefined;
    const servedAt = await lastServedAt(this.#redis, room);
    const queue: RoomStateSnapshot['hands'] = [];
    for (let i = 0; i < hands.length; i += 2) {
      queue.push({ participantId: hands[i] as string, raisedAt: Number(hands[i + 1]) });
    }
    return {
      locked: meta.locked === '1',
      audioMode: meta.audioMode === 'controlled' ? 'controlled' : 'open',
      spotlight: meta.spotlight || null,
      members: Object.entries(members)
        .map(([participantId, json]) => {
          const m = JSON.parse(json) as MemberJson;
          const member: StoredMember = {
            participantId,
            role: m.role,
            stage: m.stage,
            waitingSince: m.since,
            dropped: m.dropped === 1,
          };
          if (m.jti !== undefined) member.jti = m.jti;
          if (m.exp !== undefined) member.expiresAtMs = m.exp;
          if (m.bo !== undefined) member.breakout = m.bo;
          return member;
        })
        .sort((a, b) => a.waitingSince - b.waitingSince),
      hands: queue,
      bans,
      unmuteGranted: unmute,
      aliases: new Map(Object.entries(aliases)),
      consents: new Map(Object.entries(consents).map(([id, json]) => [id, JSON.parse(json) as ConsentRecord])),
      breakouts: breakouts ? (JSON.parse(breakouts) as StoredBreakouts) : null,
      ...(servedAt === undefined ? {} : { lastServedAt: servedAt }),
    };
  }

  /** Removes the room's state (fenced like any write). */
  clear(room: string, fence?: () => Fence | null): Promise<void> {
    return this.#write(room, fence, 'clear', (tx, k) => tx.del(...Object.values(k)), false);
  }

  /** The write-through handle of a room (`RoomPersistence`); `fence` is the cluster's lease on the room. */
  writer(room: string, options: RoomStateWriterOptions = {}): RoomStateWriter {
    const { fence, onFailure } = options;
    const write = (what: string, build: (tx: Commands, k: Record<KeyName, string>) => void) =>
      this.#write(room, fence, what, build);
    /** Fire and forget: a failure is logged with ids only, and reported. */
    const background = (what: string, participant: string | undefined, build: Parameters<typeof write>[1]) => {
      write(what, build).catch((err: Error) => {
        this.#logger.error({ room, write: what, participant, err: { message: err.message } }, 'room state not written');
        onFailure?.();
      });
    };
    return {
      member: (m) =>
        background('member', m.participantId, (tx, k) => tx.hset(k.members, m.participantId, memberJson(m))),
      memberGone: (id) =>
        background('memberGone', id, (tx, k) =>
          tx.hdel(k.members, id).zrem(k.hands, id).srem(k.unmute, id).hdel(k.aliases, id),
        ),
      audioMode: (mode) =>
        background('audioMode', undefined, (tx, k) => tx.hset(k.meta, 'audioMode', mode).del(k.unmute)),
      unmuteGranted: (id, granted) =>
        background('unmuteGranted', id, (tx, k) => (granted ? tx.sadd(k.unmute, id) : tx.srem(k.unmute, id))),
      spotlight: (id) => background('spotlight', id ?? undefined, (tx, k) => tx.hset(k.meta, 'spotlight', id ?? '')),
      alias: (id, alias) => background('alias', id, (tx, k) => tx.hset(k.aliases, id, alias)),
      hand: (id, raisedAt) =>
        background('hand', id, (tx, k) => (raisedAt === null ? tx.zrem(k.hands, id) : tx.zadd(k.hands, raisedAt, id))),
      consent: (id, record) =>
        background('consent', id, (tx, k) =>
          tx.hset(k.consents, id, JSON.stringify({ version: record.version, hash: record.hash })),
        ),
      breakouts: (state) =>
        background('breakouts', undefined, (tx, k) =>
          state === null ? tx.del(k.breakouts) : tx.set(k.breakouts, JSON.stringify(state)),
        ),
      locked: (locked) => write('locked', (tx, k) => tx.hset(k.meta, 'locked', locked ? '1' : '0')),
      ban: (id) => write('ban', (tx, k) => tx.sadd(k.bans, id)),
      replace: (state) => write('replace', (tx, k) => replaceAll(tx, k, state)),
      clear: () => {
        this.clear(room, fence).catch((err: Error) => {
          this.#logger.error({ room, write: 'clear', err: { message: err.message } }, 'room state not cleared');
        });
      },
    };
  }

  /**
   * One script: the lease check, the change, then the TTL of every key of the room (those it did
   * not touch too, so they all expire together). Issued at once, in call order, on the one
   * connection: writes reach Redis in the order the room made its changes.
   */
  #write(
    room: string,
    fence: (() => Fence | null) | undefined,
    what: string,
    build: (tx: Commands, k: Record<KeyName, string>) => void,
    refresh = true,
  ): Promise<void> {
    const lease = fence ? fence() : undefined;
    if (lease === null) return Promise.resolve(this.#notOwner(room, what));
    const k = this.keys(room);
    const tx = new Commands();
    build(tx, k);
    if (refresh) for (const key of Object.values(k)) tx.expire(key, this.#ttlS);
    return (this.#redis as Redis & WithFencedWrite)
      .havenFencedWrite(lease?.key ?? k.meta, lease?.value ?? '', JSON.stringify(tx.list))
      .then((applied) => {
        if (applied === 1) return;
        this.#notOwner(room, what);
        // Redis names another lease (or none) while this node still counts the room its own: the
        // change holds only here, so the caller is told to try again once the room has settled.
        if (fence?.()) throw new HavenError('UNAVAILABLE', 'the room is moving between nodes; try again shortly');
      });
  }

  #notOwner(room: string, what: string): void {
    this.#logger.warn({ room, write: what }, 'room state not written: this node no longer holds the room');
  }
}

/**
 * KEYS[1]: the lease's key; ARGV[1]: the value it must hold ('' for an unfenced write); ARGV[2]:
 * the commands, a JSON list of argument lists. 1 when applied, 0 when the lease moved on.
 */
const fencedWriteScript = `
if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
for _, command in ipairs(cjson.decode(ARGV[2])) do redis.call(unpack(command)) end
return 1
`;
interface WithFencedWrite {
  havenFencedWrite(leaseKey: string, leaseValue: string, commands: string): Promise<number>;
}

/** The writes of one change, as argument lists for the fenced script (the commands the store uses). */
class Commands {
  readonly list: (string | number)[][] = [];
  #add(...command: (string | number)[]): this {
    this.list.push(command);
    return this;
  }
  set(key: string, value: string): this {
    return this.#add('SET', key, value);
  }
  del(...keys: string[]): this {
    return this.#add('DEL', ...keys);
  }
  expire(key: string, seconds: number): this {
    return this.#add('EXPIRE', key, seconds);
  }
  hset(key: string, ...fields: [Record<string, string>] | string[]): this {
    const pairs = typeof fields[0] === 'object' ? Object.entries(fields[0]).flat() : (fields as string[]);
    return this.#add('HSET', key, ...pairs);
  }
  hdel(key: string, ...fields: string[]): this {
    return this.#add('HDEL', key, ...fields);
  }
  sadd(key: string, ...members: string[]): this {
    return this.#add('SADD', key, ...members);
  }
  srem(key: string, ...members: string[]): this {
    return this.#add('SREM', key, ...members);
  }
  zadd(key: string, ...scoreMembers: (string | number)[]): this {
    return this.#add('ZADD', key, ...scoreMembers);
  }
  zrem(key: string, ...members: string[]): this {
    return this.#add('ZREM', key, ...members);
  }
}

function memberJson(m: StoredMember): string {
  const json: MemberJson = { stage: m.stage, role: m.role, since: m.waitingSince };
  if (m.dropped) json.dropped = 1;
  if (m.jti !== undefined) json.jti = m.jti;
  if (m.expiresAtMs !== undefined) json.exp = m.expiresAtMs;
  if (m.breakout !== undefined) json.bo = m.breakout;
  return JSON.stringify(json);
}

/** Every key rewritten from `state` (HSET/SADD/ZADD take no empty lists: those keys stay deleted). */
function replaceAll(tx: Commands, k: Record<KeyName, string>, state: RoomStateSnapshot): void {
  tx.del(...Object.values(k));
  tx.hset(k.meta, { locked: state.locked ? '1' : '0', audioMode: state.audioMode, spotlight: state.spotlight ?? '' });
  if (state.members.length)
    tx.hset(k.members, Object.fromEntries(state.members.map((m) => [m.participantId, memberJson(m)])));
  if (state.hands.length) tx.zadd(k.hands, ...state.hands.flatMap((h) => [h.raisedAt, h.participantId]));
  if (state.bans.length) tx.sadd(k.bans, ...state.bans);
  if (state.unmuteGranted.length) tx.sadd(k.unmute, ...state.unmuteGranted);
  if (state.aliases.size) tx.hset(k.aliases, Object.fromEntries(state.aliases));
  if (state.breakouts) tx.set(k.breakouts, JSON.stringify(state.breakouts));
  if (state.consents.size) {
    const consents = [...state.consents].map(([id, c]) => [id, JSON.stringify({ version: c.version, hash: c.hash })]);
    tx.hset(k.consents, Object.fromEntries(consents));
  }
}
