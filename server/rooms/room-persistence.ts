/**
 * Writes a room's facilitation state through to its store (room-state.ts), from the room's
 * events: `memberChanged`, `memberGone`, `changed`, and the `presence` of the session's end (the
 * state is cleared then). A failed write (Redis unreachable, a failover) leaves what is stored
 * behind: the whole state is written again shortly, and again until Redis takes it. Decisions
 * that must hold on a node taking the room over (a lock, a ban) are awaited through `locked` and
 * `ban` before they take effect. A closed room writes nothing more.
 */
import type { AudioMode } from '../../client-sdk/src/protocol/index.ts';
import { defaultCapabilities, type VerifiedIdentity } from '../auth/tokens.ts';
import type { Logger } from '../logger.ts';
import { capabilitiesIn } from './member.ts';
import type { Room } from './room.ts';
import type {
  ConsentRecord,
  Fence,
  RoomStateSnapshot,
  RoomStateStore,
  RoomStateWriter,
  StoredBreakouts,
  StoredMember,
} from './room-state.ts';

/** What changes in a member that the store keeps. */
export type MemberChange = 'presence' | 'alias' | 'unmuteGranted';

/** A change of the room's own state (not of one member's presence). */
export type RoomChange =
  | { type: 'audioMode'; mode: AudioMode }
  | { type: 'spotlight'; participantId: string | null }
  | { type: 'hand'; participantId: string; raisedAt: number | null }
  | { type: 'consent'; participantId: string; record: ConsentRecord }
  | { type: 'breakouts'; state: StoredBreakouts | null };

export interface RoomPersistenceOptions {
  store: RoomStateStore;
  /** This node's lease on the room: a write is applied only while Redis still names it. */
  fence?: (room: string) => Fence | null;
}

/** How long after a failed state write the room writes its whole state again (and between tries). */
const stateResyncDelayMs = 1_000;

export class RoomPersistence {
  readonly #room: Room;
  readonly #logger: Logger;
  /** Write-through of the facilitation state (undefined: memory only). */
  readonly #writer: RoomStateWriter | undefined;
  /** The whole state is to be written again (after a failed write). */
  #resync: NodeJS.Timeout | undefined;
  /** Failed write-throughs so far: one during a rewrite calls for another. */
  #failures = 0;
  #rewriting = false;

  constructor(room: Room, logger: Logger, options: RoomPersistenceOptions | undefined) {
    this.#room = room;
    this.#logger = logger;
    const fence = options?.fence;
    this.#writer = options?.store.writer(room.id, {
      fence: fence && (() => fence(room.id)),
      onFailure: () => this.#lost(),
    });
    if (!this.#writer) return;
    room.on('memberChanged', (member, change) => {
      const writer = this.#open;
      if (change === 'presence') writer?.member(member.stored());
      else if (change === 'alias' && member.alias !== undefined) writer?.alias(member.id, member.alias);
      else if (change === 'unmuteGranted') writer?.unmuteGranted(member.id, member.unmuteGranted);
    });
    room.on('memberGone', (participantId) => this.#open?.memberGone(participantId));
    room.on('changed', (change) => this.#write(change));
    // The session is over: nothing of it is to be restored (a node stopping closes rooms without this).
    room.on('presence', (event) => {
      if (event.type === 'sessionEnded') this.#open?.clear();
    });
    room.once('closed', () => clearTimeout(this.#resync));
  }

  /** The write-through handle while the room is open: a closed room writes nothing more. */
  get #open(): RoomStateWriter | undefined {
    return this.#room.closed ? undefined : this.#writer;
  }

  #write(change: RoomChange): void {
    const writer = this.#open;
    if (!writer) return;
    if (change.type === 'audioMode') writer.audioMode(change.mode);
    else if (change.type === 'spotlight') writer.spotlight(change.participantId);
    else if (change.type === 'hand') writer.hand(change.participantId, change.raisedAt);
    else if (change.type === 'breakouts') writer.breakouts(change.state);
    else writer.consent(change.participantId, change.record);
  }

  /**
   * Takes back a session whose node died. Everyone it held (consent gate, waiting, admitted)
   * comes back as after a dropped connection: no connection, the grace timer running. One
   * `restored` event carries when the old node last served the room: attendance dates everyone's
   * disconnection there (compute.ts), not now. Rejoining within the grace gives them their place
   * as any reconnection does; otherwise they leave as usual.
   */
  restore(saved: RoomStateSnapshot): void {
    const room = this.#room;
    const { moderation, waitingRoom, hands, members } = room;
    room.presence('restored', undefined, saved.lastServedAt === undefined ? {} : { lastServedAt: saved.lastServedAt });
    moderation.restore(saved);
    waitingRoom.restore(saved.consents);
    const granted = new Set(saved.unmuteGranted);
    for (const stored of saved.members) {
      const id = stored.participantId;
      // A ban written just before its member's removal was.
      if (moderation.isBanned(id)) continue;
      const identity = restoredIdentity(room.id, stored);
      room.restoreMember({
        identity,
        capabilities: capabilitiesIn(room.definition, identity),
        stage: stored.stage,
        waitingSince: stored.waitingSince,
        alias: saved.aliases.get(id),
        unmuteGranted: granted.has(id),
        ...(stored.breakout === undefined ? {} : { breakout: stored.breakout }),
      });
    }
    room.breakouts.restore(saved.breakouts);
    hands.restore(saved.hands.filter((h) => members.get(h.participantId)?.stage === 'admitted'));
    moderation.restoreSpotlight(saved.spotlight);
    this.#logger.info(
      {
        members: members.size,
        waiting: waitingRoom.members().length,
        hands: hands.size,
        bans: moderation.bans().length,
        locked: moderation.locked,
        audioMode: moderation.audioMode,
      },
      'room state restored',
    );
    // Stored again as restored: everyone dropped (so a further restore records no second
    // disconnection), and nothing of what was left out (hands or a spotlight of people gone).
    void this.rewrite();
  }

  /** Stores the lock before it takes effect (the answer must hold on a node taking over). */
  async locked(locked: boolean): Promise<void> {
    await this.#open?.locked(locked);
  }

  /** Stores a ban before it takes effect (the answer "banned" must hold on a node taking over). */
  async ban(participantId: string): Promise<void> {
    await this.#open?.ban(participantId);
  }

  /** A write-through failed: what is stored lags behind. */
  #lost(): void {
    this.#failures++;
    this.#scheduleRewrite();
  }

  #scheduleRewrite(): void {
    if (this.#resync || this.#rewriting || this.#room.closed) return;
    this.#resync = setTimeout(() => {
      this.#resync = undefined;
      void this.rewrite();
    }, stateResyncDelayMs);
  }

  /** Writes the whole state at once (replacing what is stored); tried again until Redis takes it. */
  async rewrite(): Promise<void> {
    const writer = this.#open;
    if (!writer || this.#rewriting) return;
    this.#rewriting = true;
    const failures = this.#failures;
    const written = await writer.replace(this.#snapshot()).then(
      () => true,
      () => false,
    );
    this.#rewriting = false;
    // A write that failed meanwhile may hold a change made after this snapshot: once more.
    if (!written || failures !== this.#failures) this.#scheduleRewrite();
    else if (failures > 0) this.#logger.info('room state written again after failed writes');
  }

  /** The facilitation state as the store keeps it. */
  #snapshot(): RoomStateSnapshot {
    const { members, moderation, hands, waitingRoom } = this.#room;
    const aliases = new Map<string, string>();
    for (const [id, m] of members) if (m.alias !== undefined) aliases.set(id, m.alias);
    return {
      locked: moderation.locked,
      audioMode: moderation.audioMode,
      spotlight: moderation.spotlit,
      members: [...members.values()].map((m) => m.stored()),
      hands: hands.list(),
      bans: moderation.bans(),
      unmuteGranted: [...members].filter(([, m]) => m.unmuteGranted).map(([id]) => id),
      aliases,
      consents: new Map(waitingRoom.consents),
      breakouts: this.#room.breakouts.stored(),
    };
  }
}

/** Who a stored member is until they rejoin with their token: what the store keeps, no name. */
function restoredIdentity(roomId: string, stored: StoredMember): VerifiedIdentity {
  return {
    participantId: stored.participantId,
    name: stored.participantId,
    roomId,
    role: stored.role,
    capabilities: defaultCapabilities(stored.role),
    expiresAtMs: stored.expiresAtMs ?? 0,
    tokenHash: '',
    ...(stored.jti === undefined ? {} : { jti: stored.jti }),
  };
}
