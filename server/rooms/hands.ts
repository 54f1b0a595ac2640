/**
 * Raised hands: a queue in the order hands went up. The facilitators and the person concerned
 * are told of each change; lowering someone else's hand is a facilitator's (moderation.ts).
 */
import type { Audience } from './audience.ts';
import type { Member } from './member.ts';

export interface RaisedHand {
  participantId: string;
  raisedAt: number;
}

export class Hands {
  /** Participant id → when (insertion order is the queue). */
  readonly #raised = new Map<string, number>();
  readonly #audience: Audience;
  /** A hand went up (`raisedAt`) or down (null): for the room's stored state. */
  readonly #changed: (participantId: string, raisedAt: number | null) => void;

  constructor(audience: Audience, changed: (participantId: string, raisedAt: number | null) => void) {
    this.#audience = audience;
    this.#changed = changed;
  }

  get size(): number {
    return this.#raised.size;
  }

  has(participantId: string): boolean {
    return this.#raised.has(participantId);
  }

  /** The queue, in order. */
  list(): RaisedHand[] {
    return [...this.#raised].map(([participantId, raisedAt]) => ({ participantId, raisedAt }));
  }

  /** What `viewer` sees of the queue: all of it for a facilitator, else their own hand. */
  seenBy(viewer: Member): RaisedHand[] {
    return this.list().filter((h) => viewer.role === 'facilitator' || h.participantId === viewer.id);
  }

  raise(member: Member): void {
    const participantId = member.id;
    if (this.#raised.has(participantId)) return;
    const raisedAt = Date.now();
    this.#raised.set(participantId, raisedAt);
    this.#changed(participantId, raisedAt);
    this.#audience.facilitators('handRaised', [{ participantId, raisedAt }], participantId);
  }

  /** Lowers a hand if raised (its owner left the session, or someone lowered it). */
  lower(participantId: string): void {
    if (!this.#raised.delete(participantId)) return;
    this.#changed(participantId, null);
    this.#audience.facilitators('handLowered', [{ participantId }], participantId);
  }

  /** Hands restored with the room's state (their owners are in the session). */
  restore(hands: RaisedHand[]): void {
    for (const { participantId, raisedAt } of hands) this.#raised.set(participantId, raisedAt);
  }
}
