/**
 * The key exchange of an end-to-end encrypted room. The server sees public keys and opaque
 * wrapped epoch keys, never a key it could decrypt with: it keeps the roster (everyone admitted
 * with a key, connected or within their grace, longest-present first), picks its leader (who
 * wraps each epoch's key for the others), counts the roster's revisions (each one told to
 * everyone admitted), relays the leader's wrapped keys to their own recipients only, and tells
 * everyone to send with an epoch once each recipient has its key (or after a timeout).
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

interface PendingEpoch {
  epoch: number;
  /** Recipients whose acknowledgement is still awaited. */
  awaiting: Set<string>;
  timer: NodeJS.Timeout;
}

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
  #revision = 0;
  /** The latest epoch keys were relayed for. */
  #epoch = 0;
  /** The roster last told (its members, keys and leader), to tell only changes. */
  #told = '';
  #pending: PendingEpoch | undefined;

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

  /** `member` was admitted (they get the roster with their session): everyone else is told. */
  admitted(member: Member): void {
    this.#places.set(member, ++this.#lastPlace);
    this.#tell(member.id, false);
  }

  /** `member` rejoined (their client may have lost its keys, or brought a new one): a new revision. */
  rejoined(member: Member): void {
    if (member.admitted) this.#tell(member.id, true);
  }

  /** Someone left, went back to waiting or lost their connection: a new revision if the roster or its leader changed. */
  changed(): void {
    this.#settle();
    this.#tell(undefined, false);
  }

  /** The roster as `viewer` may see it (members hidden from them have no id). */
  roster(viewer: Member): E2eeRoster {
    const members = this.#roster();
    return this.#view(viewer, members, this.#leaderOf(members));
  }

  #view(viewer: Member, members: Member[], leader: Member | undefined): E2eeRoster {
    return {
      leader: leader && this.#audience.visibleTo(viewer, leader) ? leader.id : null,
      members: members.map((m) => ({
        participantId: this.#audience.visibleTo(viewer, m) ? m.id : null,
        publicKey: m.e2eePublicKey as string,
      })),
      revision: this.#revision,
      epoch: this.#epoch,
      rotationIntervalMs: this.#settings().rotationIntervalMs,
    };
  }

  /**
   * The leader starts `epoch`: each wrapped key goes to its own recipient, if a connected member
   * of the roster (anyone else, and the leader, skipped); the epoch becomes active once they all
   * have it. A newer distribution replaces one still pending.
   */
  distribute(caller: Member, request: E2eeDistributeRequest): E2eeDistributeResponse {
    this.#requireEnabled();
    const members = this.#roster();
    if (this.#leaderOf(members) !== caller) throw new HavenError('FORBIDDEN', 'only the key leader distributes keys');
    const { epoch } = request;
    if (epoch <= this.#epoch) throw new HavenError('INVALID_STATE', `the epoch must be above ${this.#epoch}`);
    this.#epoch = epoch;
    const recipients = new Set(members.filter((m) => m.connected && m !== caller));
    const delivered: string[] = [];
    for (const { participantId, wrapped } of request.keys) {
      const recipient = this.#members.get(participantId);
      if (!recipient || !recipients.has(recipient)) continue;
      this.#audience.notify(participantId, 'e2eeKey', [{ epoch, from: caller.id, wrapped }]);
      delivered.push(participantId);
    }
    // Never the keys themselves, nor who got them.
    this.#logger.debug({ epoch, recipients: delivered.length }, 'e2ee keys relayed');
    this.#clearPending();
    const timer = setTimeout(() => this.#activate(epoch), this.#settings().keyAckTimeoutMs);
    this.#pending = { epoch, awaiting: new Set(delivered), timer };
    this.#settle();
    return { delivered };
  }

  /** `member` has the key of `epoch` (idempotent; an epoch never relayed is INVALID_STATE). */
  received(member: Member, epoch: number): void {
    this.#requireEnabled();
    if (epoch > this.#epoch) throw new HavenError('INVALID_STATE', `no key was relayed for epoch ${epoch}`);
    if (this.#pending?.epoch === epoch && this.#pending.awaiting.delete(member.id)) this.#settle();
  }

  close(): void {
    this.#clearPending();
  }

  #requireEnabled(): void {
    if (!this.enabled) throw new HavenError('INVALID_STATE', 'this room is not end-to-end encrypted');
  }

  /** Everyone admitted with a key (connected or within their grace), longest-present first. */
  #roster(): Member[] {
    const place = (m: Member) => this.#places.get(m) ?? Number.MAX_SAFE_INTEGER;
    return this.#audience
      .admitted()
      .filter((m) => m.e2eePublicKey !== undefined)
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

  /** A new revision to every connected member in the session (but `except`), if the roster changed or `always`. */
  #tell(except: string | undefined, always: boolean): void {
    if (!this.enabled) return;
    const members = this.#roster();
    const leader = this.#leaderOf(members);
    const told = JSON.stringify([leader?.id, members.map((m) => [m.id, m.e2eePublicKey])]);
    if (!always && told === this.#told) return;
    this.#told = told;
    this.#revision++;
    for (const m of this.#audience.admitted()) {
      if (m.connected && m.id !== except) this.#audience.notify(m.id, 'e2eeRoster', [this.#view(m, members, leader)]);
    }
  }

  /** The pending epoch becomes active once no recipient still connected in the roster awaits it. */
  #settle(): void {
    const pending = this.#pending;
    if (!pending) return;
    for (const id of pending.awaiting) {
      const m = this.#members.get(id);
      if (!m?.admitted || !m.connected || m.e2eePublicKey === undefined) pending.awaiting.delete(id);
    }
    if (pending.awaiting.size === 0) this.#activate(pending.epoch);
  }

  #activate(epoch: number): void {
    this.#clearPending();
    this.#audience.broadcast('e2eeEpochActive', [{ epoch }]);
  }

  #clearPending(): void {
    if (this.#pending) clearTimeout(this.#pending.timer);
    this.#pending = undefined;
  }
}
