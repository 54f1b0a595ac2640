/**
 * One key space of an E2EE room: the main room, or one breakout group. Its members are those
 * admitted with a key whose place it is, plus every facilitator with a key wherever they are
 * (they receive every group's chat); it has its own leader, the roster last told, the room-wide
 * revision it was told at, and the epoch its leader started that awaits acknowledgements.
 * Epoch numbers and revisions come from one counter each for the whole room (E2eeKeys).
 */
import type { Member } from './member.ts';

/** A space's id: null for the main room, else the breakout group's id (`Member.breakout`). */
export type SpaceId = string | null;

/** The space `member` stands in. */
export const spaceOf = (member: Member): SpaceId => member.breakout ?? null;

/** Whether `member` belongs to space `id`'s key exchange (there, or a facilitator anywhere). */
export const inSpace = (member: Member, id: SpaceId): boolean =>
  member.role === 'facilitator' || spaceOf(member) === id;

/** Main first, then the groups by id: the order spaces are told in. */
export const bySpace = (a: SpaceId, b: SpaceId): number =>
  a === b ? 0 : a === null ? -1 : b === null ? 1 : a < b ? -1 : 1;

export interface PendingEpoch {
  epoch: number;
  /** Recipients whose acknowledgement is still awaited. */
  awaiting: Set<string>;
  timer: NodeJS.Timeout;
}

export class E2eeSpace {
  readonly id: SpaceId;
  /** The room-wide revision this space's roster was last told at. */
  revision = 0;
  /** The roster last told (its members, keys and leader), to tell only changes. */
  told = '';
  pending: PendingEpoch | undefined;

  constructor(id: SpaceId) {
    this.id = id;
  }

  /** Waits for `awaiting` to acknowledge `epoch`, or `timeoutMs`, then `activate` (a newer one replaces it). */
  await(epoch: number, awaiting: Iterable<string>, timeoutMs: number, activate: () => void): void {
    this.clearPending();
    this.pending = { epoch, awaiting: new Set(awaiting), timer: setTimeout(activate, timeoutMs) };
  }

  clearPending(): void {
    if (this.pending) clearTimeout(this.pending.timer);
    this.pending = undefined;
  }
}
