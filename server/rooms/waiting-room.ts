/**
 * A room's way in for participants: the consent gate (the room's consent text, accepted once per
 * version in a session) and the waiting room (its list, in arrival order, that facilitators see
 * live; its message and whether a facilitator is present, that those waiting see). Admitting is
 * bounded by the room's capacity: who cannot come in is told the session is full.
 */
import type { AdmitAllResponse, JoinResponse, WaitingEntry, WaitingInfo } from '../../client-sdk/src/protocol/index.ts';
import { HavenError } from '../errors.ts';
import type { Member } from './member.ts';
import type { Room } from './room.ts';
import type { ConsentRecord } from './room-state.ts';

export class WaitingRoom {
  readonly #room: Room;
  /** Who accepted which consent version in this session: they are not asked again for it. */
  readonly #consents = new Map<string, ConsentRecord>();
  #message: string | undefined;

  constructor(room: Room) {
    this.#room = room;
  }

  get consents(): ReadonlyMap<string, ConsentRecord> {
    return this.#consents;
  }

  restore(consents: ReadonlyMap<string, ConsentRecord>): void {
    for (const [id, record] of consents) this.#consents.set(id, record);
  }

  /** The current consent text was accepted by this participant earlier in the session. */
  hasAccepted(participantId: string): boolean {
    const consent = this.#room.definition.consent;
    const record = this.#consents.get(participantId);
    return consent !== undefined && record?.version === consent.version && record.hash === consent.hash;
  }

  /** Acknowledges the room's consent text (its current version); then waiting room or session. */
  async acceptConsent(member: Member, version: number): Promise<JoinResponse> {
    const room = this.#room;
    const consent = room.definition.consent;
    if (member.stage !== 'consent' || !consent) throw new HavenError('INVALID_STATE', 'no consent is asked of you');
    // Only the text in force can be accepted: the refusal carries it, to show and accept instead.
    if (version !== consent.version) {
      throw new HavenError('INVALID_REQUEST', `consent version ${consent.version} is in force, not ${version}`, {
        consent,
      });
    }
    const accepted = { version: consent.version, hash: consent.hash };
    room.moderation.record({ actor: member.id, action: 'consent.accept', details: accepted });
    room.presence('consented', member.id, accepted);
    this.#consents.set(member.id, accepted);
    room.safeEmit('changed', { type: 'consent', participantId: member.id, record: accepted });
    if (room.definition.waitingRoom) {
      member.stage = 'waiting';
      member.waitingSince = Date.now();
      this.entered(member);
    } else {
      const refusal = this.capacityRefusal(member);
      if (refusal) throw refusal;
      await room.admit(member, false);
    }
    return room.view.stageResponse(member, false);
  }

  /** ROOM_FULL when admitting `member` now would go over the room's capacity. */
  capacityRefusal(member: Member): HavenError | undefined {
    const { definition, audience } = this.#room;
    const admitted = (role: string) => audience.admitted().filter((m) => m.role === role).length;
    if (member.role === 'participant' && admitted('participant') >= definition.capacity) {
      return new HavenError('ROOM_FULL', `the room admits ${definition.capacity} participant(s)`);
    }
    if (member.role === 'facilitator' && definition.kind === 'individual' && admitted('facilitator') >= 1) {
      return new HavenError('ROOM_FULL', 'an individual session has one facilitator');
    }
    return undefined;
  }

  /** Those in the waiting room, in the order they arrived there. */
  members(): Member[] {
    return [...this.#room.members.values()]
      .filter((m) => m.stage === 'waiting')
      .sort((a, b) => a.waitingSince - b.waitingSince);
  }

  list(): WaitingEntry[] {
    return this.members().map((m) => ({ participantId: m.id, name: m.name, waitingSince: m.waitingSince }));
  }

  info(reason?: WaitingInfo['reason']): WaitingInfo {
    const facilitatorPresent = this.#room.audience.admitted().some((m) => m.role === 'facilitator' && m.connected);
    return { facilitatorPresent, message: this.#message, ...(reason ? { reason } : {}) };
  }

  /** `member` entered the waiting room. */
  entered(member: Member): void {
    this.#room.presence('waiting', member.id);
    this.#room.safeEmit('memberChanged', member, 'presence');
    this.changed();
  }

  /** The waiting list changed: facilitators see it live. */
  changed(): void {
    this.#room.audience.facilitators('waitingRoomChanged', [{ waiting: this.list() }]);
  }

  /** What the waiting room says changed (a message, a facilitator came or went): tell those waiting. */
  updated(): void {
    this.#room.audience.waiting('waiting', [this.info()]);
  }

  setMessage(text: string): void {
    this.#message = text;
    this.updated();
  }

  async admit(target: Member): Promise<void> {
    const refusal = this.capacityRefusal(target);
    if (refusal) {
      this.#toldSessionFull([target]);
      throw refusal;
    }
    await this.#room.admit(target, true);
    this.changed();
    this.#toldSessionFull(this.members());
  }

  /** Admits everyone waiting, in arrival order, up to the room's capacity; names who is left. */
  async admitAll(): Promise<AdmitAllResponse> {
    const admittedIds: string[] = [];
    for (const target of this.members()) {
      if (this.capacityRefusal(target)) continue;
      await this.#room.admit(target, true);
      admittedIds.push(target.id);
    }
    this.changed();
    const left = this.members();
    this.#toldSessionFull(left);
    return {
      admitted: admittedIds.length,
      admittedIds,
      leftWaiting: left.map((m) => ({ participantId: m.id, reason: 'ROOM_FULL' as const })),
    };
  }

  /** Tells each of `waiting` who cannot come in now that the session is full. */
  #toldSessionFull(waiting: Member[]): void {
    for (const m of waiting) {
      if (m.connected && this.capacityRefusal(m)) {
        this.#room.audience.notify(m.id, 'waiting', [this.info('sessionFull')]);
      }
    }
  }
}
