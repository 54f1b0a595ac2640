/**
 * Room definitions, kept in Redis so that every node (and a restarted one) sees the same rooms:
 * what the admin API created, or what a facilitator's arrival opened. Runtime state (who is in,
 * media) lives in the owning node's `Room`, not here.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { ConsentInfo, RoomKind } from '../../client-sdk/src/protocol/index.ts';
import { HavenError } from '../errors.ts';

export interface RoomSchedule {
  /** ISO 8601 start, e.g. `2026-12-01T17:00:00-05:00`. */
  start: string;
  end: string;
  /** IANA time zone of the program, e.g. `America/New_York`. */
  timeZone: string;
}

export interface RoomDefinition {
  id: string;
  kind: RoomKind;
  title: string;
  /** Most participants (role `participant`) at once; facilitators and observers are not counted. */
  capacity: number;
  schedule?: RoomSchedule;
  /** Pseudonymous ids of the participants expected (attendance reports no-shows against it). */
  roster: string[];
  /** Participants wait to be admitted by a facilitator (default for group and individual rooms). */
  waitingRoom: boolean;
  /** Participants see observers (clinical supervisors); hidden by default. */
  observersVisible: boolean;
  /** Participants may message each other privately (messages to and from facilitators always work). */
  privateChat: boolean;
  /** Chat is kept after the session (in Redis, until retention purges it); by default it is not. */
  keepChat: boolean;
  /**
   * End-to-end encrypted: clients encrypt media and chat with keys the server never sees (it
   * relays the wrapped keys); a client that cannot is refused. Default: the node's `e2ee.default`.
   * The store always sets it (false for rooms stored before E2EE); absent elsewhere means false.
   */
  e2ee?: boolean;
  /**
   * Participants see each other's connection quality; otherwise only their own (facilitators
   * see everyone's). The store always sets it (false for rooms stored before it existed); absent
   * elsewhere means false.
   */
  shareConnectionQuality?: boolean;
  /** Confidentiality and consent text participants accept (current version) before waiting. */
  consent?: ConsentInfo;
  /** Who created it: the admin API, or a facilitator's token (`rooms.autoCreate`). */
  origin: 'admin' | 'facilitator';
  createdAt: string;
  endedAt?: string;
}

export type NewRoom = Pick<RoomDefinition, 'kind' | 'title' | 'origin' | 'schedule'> &
  Partial<
    Pick<
      RoomDefinition,
      | 'id'
      | 'capacity'
      | 'roster'
      | 'waitingRoom'
      | 'observersVisible'
      | 'privateChat'
      | 'keepChat'
      | 'e2ee'
      | 'shareConnectionQuality'
    >
  > & {
    /** Consent text (version 1). */
    consentText?: string;
  };

function consentOf(text: string, version: number): ConsentInfo {
  return { version, hash: createHash('sha256').update(text).digest('hex'), text };
}

/** Participants a room of each kind admits unless told otherwise (individual: one client). */
export const defaultCapacity: Record<RoomKind, number> = { group: 16, individual: 1, education: 200 };

export interface RoomStoreOptions {
  /** Whether a room created without `e2ee` is end-to-end encrypted (config `e2ee.default`). Default false. */
  e2eeDefault?: boolean;
}

/**
 * A stored definition as read: rooms stored before E2EE existed are not encrypted, and those
 * stored before `shareConnectionQuality` do not share it.
 */
function definitionOf(json: string): RoomDefinition {
  return { e2ee: false, shareConnectionQuality: false, ...(JSON.parse(json) as RoomDefinition) };
}

export class RoomStore {
  readonly #redis: Redis;
  readonly #prefix: string;
  readonly #e2eeDefault: boolean;

  constructor(redis: Redis, prefix = 'haven:', options: RoomStoreOptions = {}) {
    this.#redis = redis;
    this.#prefix = prefix;
    this.#e2eeDefault = options.e2eeDefault ?? false;
  }

  #key(id: string): string {
    return `${this.#prefix}room:${id}`;
  }

  get #index(): string {
    return `${this.#prefix}rooms`;
  }

  /** Creates a room; `INVALID_STATE` if the id is taken. */
  async create(input: NewRoom, now = new Date()): Promise<RoomDefinition> {
    const { consentText, ...fields } = input;
    const room: RoomDefinition = {
      ...fields,
      id: input.id ?? `rm_${randomBytes(9).toString('base64url')}`,
      waitingRoom: input.waitingRoom ?? input.kind !== 'education',
      observersVisible: input.observersVisible ?? false,
      privateChat: input.privateChat ?? false,
      keepChat: input.keepChat ?? false,
      e2ee: input.e2ee ?? this.#e2eeDefault,
      shareConnectionQuality: input.shareConnectionQuality ?? false,
      ...(consentText ? { consent: consentOf(consentText, 1) } : {}),
      // An individual session is one facilitator with one client, whatever was asked.
      capacity: input.kind === 'individual' ? 1 : (input.capacity ?? defaultCapacity[input.kind]),
      roster: input.roster ?? [],
      createdAt: now.toISOString(),
    };
    const created = await this.#redis.set(this.#key(room.id), JSON.stringify(room), 'NX');
    if (created !== 'OK') throw new HavenError('INVALID_STATE', `room ${room.id} already exists`);
    await this.#redis.zadd(this.#index, now.getTime(), room.id);
    return room;
  }

  async get(id: string): Promise<RoomDefinition | undefined> {
    const json = await this.#redis.get(this.#key(id));
    return json ? definitionOf(json) : undefined;
  }

  /** Newest first; `cursor` is the offset returned by the previous page. */
  async list(limit: number, cursor = 0): Promise<{ rooms: RoomDefinition[]; nextCursor: number | null }> {
    const ids = await this.#redis.zrevrange(this.#index, cursor, cursor + limit);
    const page = ids.slice(0, limit);
    const values = page.length ? await this.#redis.mget(page.map((id) => this.#key(id))) : [];
    const rooms = values.flatMap((v) => (v ? [definitionOf(v)] : []));
    return { rooms, nextCursor: ids.length > limit ? cursor + limit : null };
  }

  /** Sets a new version of the consent text; returns the updated room (undefined if unknown). */
  async setConsent(id: string, text: string): Promise<RoomDefinition | undefined> {
    const room = await this.get(id);
    if (!room) return undefined;
    room.consent = consentOf(text, (room.consent?.version ?? 0) + 1);
    await this.#redis.set(this.#key(id), JSON.stringify(room));
    return room;
  }

  /** Marks the session as ended (kept for attendance and reports). */
  async markEnded(id: string, now = new Date()): Promise<RoomDefinition | undefined> {
    const room = await this.get(id);
    if (!room || room.endedAt) return room;
    room.endedAt = now.toISOString();
    await this.#redis.set(this.#key(id), JSON.stringify(room));
    return room;
  }
}
