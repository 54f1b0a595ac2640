/**
 * Moving one member between the main room and the breakout groups, inside the same session (their
 * stage, connection and transports stay as they are). The server enforces the groups: every
 * consumer that would now cross them is closed (`consumerClosed`), and consuming across them is
 * refused (MemberMedia). Both sides are told as if the other had left or joined: those who saw
 * the member get `participantLeft` (reason `movedToBreakout`), the member gets the same for each
 * of them, then `movedToBreakout` with its new place, then `participantJoined` for everyone of the
 * new place, who get it for the member. The SDK unsubscribes and subscribes from those alone.
 */
import type { BreakoutPlace } from '../../client-sdk/src/protocol/index.ts';
import type { Member } from './member.ts';
import type { Room } from './room.ts';

export class BreakoutPlacement {
  readonly #room: Room;

  constructor(room: Room) {
    this.#room = room;
  }

  /**
   * Puts `member` in group `to` (undefined: the main room), then tells it `place`. False when it
   * is there already (nothing is told).
   */
  move(member: Member, to: string | undefined, place: BreakoutPlace): boolean {
    if (member.breakout === to) return false;
    const room = this.#room;
    const { audience } = room;
    const others = audience.admitted().filter((m) => m !== member);
    const sawIt = new Set(others.filter((m) => audience.visibleTo(m, member)));
    const itSaw = new Set(others.filter((m) => audience.visibleTo(member, m)));
    member.breakout = to;
    // Nothing crosses the groups from here on: its consumers of others, others' of its tracks.
    member.media.regroup();
    for (const m of others) if (!audience.sameSpace(m, member)) m.media.regroup();
    const id = member.id;
    for (const m of sawIt) {
      if (!audience.visibleTo(m, member))
        audience.tell(m, 'participantLeft', [{ participantId: id, reason: 'movedToBreakout' }]);
    }
    for (const m of itSaw) {
      if (!audience.visibleTo(member, m)) {
        audience.tell(member, 'participantLeft', [{ participantId: m.id, reason: 'movedToBreakout' }]);
      }
    }
    audience.tell(member, 'movedToBreakout', [place]);
    for (const m of others) {
      if (!itSaw.has(m) && audience.visibleTo(member, m)) audience.tell(member, 'participantJoined', [m.info()]);
    }
    for (const m of others) {
      if (!sawIt.has(m) && audience.visibleTo(m, member)) audience.tell(m, 'participantJoined', [member.info()]);
    }
    room.presence('movedToBreakout', id, { breakout: to ?? 'main' });
    room.safeEmit('memberChanged', member, 'presence');
    room.e2ee.changed();
    return true;
  }
}
