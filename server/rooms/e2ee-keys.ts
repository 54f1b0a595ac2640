/**
 * The key exchange of an end-to-end encrypted room. The server sees public keys and opaque
 * wrapped epoch keys, never a key it could decrypt with. The room has one key space per place
 * (the main room, and each breakout group: E2eeSpace); for each, it keeps the roster (everyone
 * admitted with a key whose place it is, connected or within their grace, plus every facilitator,
 * longest-present first), picks its leader (who wraps each epoch's key for the others), counts
 * its revisions (each one told to the space's members), relays the leader's wrapped keys to their
 * own recipients in that space only, and tells the space to send with an epoch once each
 * recipient has its key (or after a timeout). Revisions and epochs are counted for the whole room,
 * so that an epoch names one space's key and a later roster always has a higher revision.
 * In a room that is not E2EE, the hooks do nothing and the requests are INVALID_STATE.
 */
import type {
  E2eeDistributeRequest,
  E2eeDistributeResponse,
  E2eeRoster,
  JoinRequest,
} from '../../client-sdk/src/protocol/index.ts';
import { HavenError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { Audience } from './audience.ts';
import { bySpace, E2eeSpace, inSpace, type SpaceId, spaceOf } from './e2ee-space.ts';
import type { Member } from './member.ts';
import type { RoomDefinition } from './room-store.ts';

/** What the node sets for every E2EE room (config section `e2ee`). */
export interface E2eeSettings {
  /** How often the leader starts a new epoch when nothing changed, in ms (told in the roster). */
  rotationIntervalMs: number;
  /** Longest wait for every recipient's `e2eeKeyReceived` before the epoch becomes active. */
  keyAckTimeoutMs: number;
}

/** The codecs whose frames the clients know which bytes to leave in clear for the SFU (`e2eeClearBytes`). */
const e2eeCodecs: ReadonlySet<string> = new Set(['audio/opus', 'video/vp8']);

export class E2eeKeys {
  readonly #members: ReadonlyMap<string, Member>;
  readonly #definition: RoomDefinition;
  readonly #audience: Audience;
  /** Read only in E2EE rooms (a room that is not one needs none). */
  readonly #settings: () => E2eeSettings;
  readonly #logger: Logger;
  /** Each member's place in the admission order (a new one at each admission). */
  readonly #places = new WeakMap<Member, number>();
  #lastPlace = 0;
  /** The room's revision counter: each space's roster is told at a new value of it. */
  #revision = 0;
  /** The latest epoch keys were relayed for, in any space. */
  #epoch = 0;
  /** The spaces told so far: the main room, and each group someone is in. */
  readonly #spaces = new Map<SpaceId, E2eeSpace>();

  constructor(
    members: ReadonlyMap<string, Member>,
    definition: RoomDefinition,
    audience: Audience,
    settings: () => E2eeSettings,
    logger: Logger,
  ) {
    this.#members = members;
    this.#definition = definition;
    this.#audience = audience;
    this.#settings = settings;
    this.#logger = logger;
  }

  get enabled(): boolean {
    return this.#definition.e2ee === true;
  }

  /** An E2EE room carries Opus and VP8 only; other rooms, any codec their router offers. */
  allowsCodec(mimeType: string): boolean {
    return !this.enabled || e2eeCodecs.has(mimeType);
  }

  /** The public key a join brings: required in an E2EE room (E2EE_UNSUPPORTED), ignored elsewhere. */
  keyAtJoin(e2ee: JoinRequest['e2ee']): string | undefined {
    if (!this.enabled) return undefined;
    if (!e2ee)
      throw new HavenError('E2EE_UNSUPPORTED', 'this room is end-to-end encrypted: this client cannot join it');
    return e2ee.publicKey;
  }

  /**
   * `member` was admitted (they get their own space's roster with their session): everyone else
   * is told; a facilitator is told the other spaces' rosters too (it is a member of each).
   */
  admitted(member: Member): void {
    this.#places.set(member, ++this.#lastPlace);
    this.#tell(member, false);
  }

  /** `member` rejoined (their client may have lost its keys, or brought a new one): a new revision of each of its spaces. */
  rejoined(member: Member): void {
    if (member.admitted) this.#tell(member, true);
  }

  /**
   * Someone left, went back to waiting, lost their connection or moved to another place: a new
   * revision of each space whose roster or leader changed.
   */
  changed(): void {
    for (const space of this.#spaces.values()) this.#settle(space);
    this.#tell(undefined, false);
  }

  /** The roster of `viewer`'s own space as they may see it (members hidden from them have no id). */
  roster(viewer: Member): E2eeRoster {
    const id = spaceOf(viewer);
    const members = this.#roster(id);
    return this.#view(viewer, id, members, this.#leaderOf(members), this.#spaces.get(id)?.revision ?? this.#revision);
  }

  #view(viewer: Member, id: SpaceId, members: Member[], leader: Member | undefined, revision: number): E2eeRoster {
    return {
      breakoutId: id,
      leader: leader && this.#sees(viewer, leader) ? leader.id : null,
      members: members.map((m) => ({
        participantId: this.#sees(viewer, m) ? m.id : null,
        publicKey: m.e2eePublicKey as string,
      })),
      revision,
      epoch: this.#epoch,
      rotationIntervalMs: this.#settings().rotationIntervalMs,
    };
  }

  /**
   * Whether `viewer` sees `subject`'s id in a roster: as in the room, but wherever each stands
   * (a roster holds only its space's members and facilitators, who must see each other's ids to
   * wrap keys for them): observers the room hides have no id for participants.
   */
  #sees(viewer: Member, subject: Member): boolean {
    return viewer.role !== 'participant' || this.#audience.visibleToAll(subject);
  }

  /**
   * The leader of space `breakoutId` starts `epoch`: each wrapped key goes to its own recipient,
   * if a connected member of that space's roster (anyone else, and the leader, skipped); the
   * epoch becomes active once they all have it. A newer distribution in the space replaces one
   * still pending there.
   */
  distribute(caller: Member, request: E2eeDistributeRequest): E2eeDistributeResponse {
    this.#requireEnabled();
    const id = request.breakoutId ?? null;
    const space = this.#spaces.get(id);
    const members = this.#roster(id);
    if (!space || this.#leaderOf(members) !== caller) {
      throw new HavenError('FORBIDDEN', 'only the key leader of that space distributes its keys');
    }
    const { epoch } = request;
    if (epoch <= this.#epoch) throw new HavenError('INVALID_STATE', `the epoch must be above ${this.#epoch}`);
    this.#epoch = epoch;
    const recipients = new Set(members.filter((m) => m.connected && m !== caller));
    const delivered: string[] = [];
    for (const { participantId, wrapped } of request.keys) {
      const recipient = this.#members.get(participantId);
      if (!recipient || !recipients.has(recipient)) continue;
      this.#audience.notify(participantId, 'e2eeKey', [{ epoch, from: caller.id, wrapped, breakoutId: id }]);
      delivered.push(participantId);
    }
    // Never the keys themselves, nor who got them.
    this.#logger.debug({ epoch, breakout: id ?? 'main', recipients: delivered.length }, 'e2ee keys relayed');
    space.await(epoch, delivered, this.#settings().keyAckTimeoutMs, () => this.#activate(space, epoch));
    this.#settle(space);
    return { delivered };
  }

  /** `member` has the key of `epoch` (idempotent; an epoch never relayed is INVALID_STATE). */
  received(member: Member, epoch: number): void {
    this.#requireEnabled();
    if (epoch > this.#epoch) throw new HavenError('INVALID_STATE', `no key was relayed for epoch ${epoch}`);
    for (const space of this.#spaces.values()) {
      if (space.pending?.epoch === epoch && space.pending.awaiting.delete(member.id)) this.#settle(space);
    }
  }

  close(): void {
    for (const space of this.#spaces.values()) space.clearPending();
  }

  #requireEnabled(): void {
    if (!this.enabled) throw new HavenError('INVALID_STATE', 'this room is not end-to-end encrypted');
  }

  /** Space `id`'s members: everyone admitted with a key (connected or within their grace) in it, longest-present first. */
  #roster(id: SpaceId): Member[] {
    const place = (m: Member) => this.#places.get(m) ?? Number.MAX_SAFE_INTEGER;
    return this.#audience
      .admitted()
      .filter((m) => m.e2eePublicKey !== undefined && inSpace(m, id))
      .sort((a, b) => place(a) - place(b));
  }

  /**
   * The first connected facilitator, else the first connected member every participant may see
   * (a hidden observer's id would reach them as the keys' sender), else the first connected one.
   */
  #leaderOf(members: Member[]): Member | undefined {
    const connected = members.filter((m) => m.connected);
    return (
      connected.find((m) => m.role === 'facilitator') ??
      connected.find((m) => this.#audience.visibleToAll(m)) ??
      connected[0]
    );
  }

  /**
   * A new revision of each space whose roster changed (or, if `always`, that has `subject`),
   * told to its connected members; `subject` (just admitted, or rejoined) is not told its own
   * space's, which its session carries. A group nobody stands in any more ends: facilitators are
   * told it once more, empty.
   */
  #tell(subject: Member | undefined, always: boolean): void {
    if (!this.enabled) return;
    const admitted = this.#audience.admitted();
    const live = new Set<SpaceId>([null, ...admitted.map(spaceOf)]);
    for (const id of [...live].sort(bySpace)) {
      let space = this.#spaces.get(id);
      if (!space) {
        space = new E2eeSpace(id);
        this.#spaces.set(id, space);
      }
      const members = this.#roster(id);
      const leader = this.#leaderOf(members);
      const told = JSON.stringify([leader?.id, members.map((m) => [m.id, m.e2eePublicKey])]);
      const forced = always && subject !== undefined && members.includes(subject);
      if (!forced && told === space.told) continue;
      space.told = told;
      space.revision = ++this.#revision;
      for (const m of admitted) {
        if (!m.connected || !inSpace(m, id) || (m === subject && spaceOf(m) === id)) continue;
        this.#audience.notify(m.id, 'e2eeRoster', [this.#view(m, id, members, leader, space.revision)]);
      }
    }
    for (const [id, space] of this.#spaces) {
      if (live.has(id)) continue;
      space.clearPending();
      this.#spaces.delete(id);
      const revision = ++this.#revision;
      for (const m of admitted) {
        if (m.connected && m.role === 'facilitator')
          this.#audience.notify(m.id, 'e2eeRoster', [this.#view(m, id, [], undefined, revision)]);
      }
    }
  }

  /** The space's pending epoch becomes active once no recipient still connected in its roster awaits it. */
  #settle(space: E2eeSpace): void {
    const pending = space.pending;
    if (!pending) return;
    for (const id of pending.awaiting) {
      const m = this.#members.get(id);
      if (!m?.admitted || !m.connected || m.e2eePublicKey === undefined || !inSpace(m, space.id)) {
        pending.awaiting.delete(id);
      }
    }
    if (pending.awaiting.size === 0) this.#activate(space, pending.epoch);
  }

  /** Tells the space's connected members to send with `epoch`. */
  #activate(space: E2eeSpace, epoch: number): void {
    space.clearPending();
    for (const m of this.#audience.admitted()) {
      if (m.connected && inSpace(m, space.id)) {
        this.#audience.notify(m.id, 'e2eeEpochActive', [{ epoch, breakoutId: space.id }]);
      }
    }
  }
}
