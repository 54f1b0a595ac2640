/**
 * Live attendance for a room's facilitators: who is present now, since when, seconds so far, with
 * names as facilitators see them. A facilitator who asks once is pushed every change from then on:
 * one push for the changes of the next second (a burst, such as admitting everyone or an ending,
 * costs one read), and nothing is read for a room nobody watches.
 */
import type { AttendanceSnapshot } from '../../client-sdk/src/protocol/index.ts';
import type { LiveFigures } from '../attendance/live.ts';
import type { AttendanceEventType } from '../attendance/recorder.ts';
import type { Logger } from '../logger.ts';
import type { Member } from './member.ts';
import type { Room } from './room.ts';
import type { RoomDefinition } from './room-store.ts';

/** Facilitators' live attendance is pushed this long after a presence change (later changes join it). */
const attendancePushDelayMs = 1_000;
/** Events that change what the live attendance view shows (consent and media do not). */
const attendanceViewEvents: ReadonlySet<AttendanceEventType> = new Set([
  'waiting',
  'admitted',
  'denied',
  'disconnected',
  'reconnected',
  'movedToWaitingRoom',
  'removed',
  'left',
]);

export class LiveAttendance {
  readonly #room: Room;
  readonly #logger: Logger;
  readonly #read: (room: RoomDefinition) => Promise<LiveFigures>;
  #push: NodeJS.Timeout | undefined;
  /** Facilitators who asked for live attendance: pushes go to them. */
  readonly #watchers = new Set<string>();

  constructor(room: Room, logger: Logger, read: (room: RoomDefinition) => Promise<LiveFigures>) {
    this.#room = room;
    this.#logger = logger;
    this.#read = read;
    room.on('presence', (event) => {
      if (attendanceViewEvents.has(event.type)) this.schedulePush();
    });
    // An alias changes the names shown.
    room.on('memberChanged', (_member, change) => {
      if (change === 'alias') this.schedulePush();
    });
    room.on('memberGone', (participantId) => this.#watchers.delete(participantId));
    room.once('closed', () => clearTimeout(this.#push));
  }

  /** The figures now, for `facilitator`, who is pushed changes from then on. */
  async watch(facilitator: Member): Promise<AttendanceSnapshot> {
    this.#watchers.add(facilitator.id);
    return this.#snapshot();
  }

  async #snapshot(): Promise<AttendanceSnapshot> {
    const { asOf, participants } = await this.#read(this.#room.definition);
    const { members } = this.#room;
    return {
      asOf,
      participants: participants.map((p) => {
        const member = members.get(p.participantId);
        return {
          ...p,
          // A restored member's name is unknown until they rejoin (the SDK keeps one it saw).
          name: member ? (member.alias ?? (member.restored ? null : member.identity.name)) : null,
          role: member?.identity.role ?? p.role,
          reconnecting: member !== undefined && member.connectionId === undefined,
        };
      }),
    };
  }

  #connectedWatchers(): Member[] {
    return this.#room.audience
      .admitted()
      .filter((m) => m.role === 'facilitator' && m.connected && this.#watchers.has(m.id));
  }

  schedulePush(): void {
    if (this.#push || this.#room.closed) return;
    this.#push = setTimeout(() => {
      this.#push = undefined;
      void this.#pushNow();
    }, attendancePushDelayMs);
  }

  async #pushNow(): Promise<void> {
    if (this.#room.closed || this.#connectedWatchers().length === 0) return;
    let snapshot: AttendanceSnapshot;
    try {
      snapshot = await this.#snapshot();
    } catch (err) {
      // The next change pushes again; a facilitator may also ask.
      this.#logger.warn({ err: { message: (err as Error).message } }, 'live attendance not pushed');
      return;
    }
    if (this.#room.closed) return;
    for (const m of this.#connectedWatchers()) this.#room.audience.notify(m.id, 'attendanceUpdated', [snapshot]);
  }
}
