/**
 * A facilitator's live attendance view in the SDK: the server's snapshot (who is present, since
 * when, seconds so far, as billing counts them) made easy to show and to keep ticking between
 * snapshots. Minutes so far are counted on from the snapshot on this device's clock, from when
 * the snapshot arrived: a device whose clock is off by minutes still shows the right durations.
 */
import type { AttendanceEntry, AttendanceSnapshot, Role } from './protocol/index.ts';

/** One person in a {@link LiveAttendance}: the server's figures, and the time so far counted on locally. */
export class LiveAttendanceEntry implements AttendanceEntry {
  readonly participantId: string;
  /** Display name; kept from an earlier snapshot after the person left (the server no longer knows it); else null. */
  readonly name: string | null;
  readonly role: Role | null;
  /** In the session at the snapshot's time (also while `reconnecting`, within the grace window). */
  readonly present: boolean;
  /** Server time (ms since the epoch) the current present stretch began; null if not present. */
  readonly presentSince: number | null;
  /** Whole seconds present at the snapshot's time (`asOf`). */
  readonly secondsPresent: number;
  /** The connection dropped and the place is kept for the grace window. */
  readonly reconnecting: boolean;
  readonly #receivedAt: number;

  /** @internal Created by {@link LiveAttendance}. */
  constructor(entry: AttendanceEntry, receivedAt: number) {
    this.participantId = entry.participantId;
    this.name = entry.name;
    this.role = entry.role;
    this.present = entry.present;
    this.presentSince = entry.presentSince;
    this.secondsPresent = entry.secondsPresent;
    this.reconnecting = entry.reconnecting;
    this.#receivedAt = receivedAt;
  }

  /**
   * Whole seconds present so far: `secondsPresent`, plus the time since the snapshot arrived while
   * present (frozen when not). Read it every second to tick a display without asking the server.
   *
   * @param now - this device's time, ms since the epoch. Default `Date.now()`.
   */
  secondsSoFar(now: number = Date.now()): number {
    if (!this.present) return this.secondsPresent;
    return Math.floor(this.secondsPresent + Math.max(0, now - this.#receivedAt) / 1000);
  }

  /** Whole minutes present so far; see {@link LiveAttendanceEntry.secondsSoFar}. */
  minutesSoFar(now: number = Date.now()): number {
    return Math.floor(this.secondsSoFar(now) / 60);
  }
}

/**
 * Who is present, since when and for how long, as of one server snapshot (facilitators only:
 * `client.moderation.liveAttendance()`, then kept current by the `attendanceUpdated` event).
 * Immutable: each update is a new object.
 */
export class LiveAttendance {
  /** Server time (ms since the epoch) the figures are computed at. */
  readonly asOf: number;
  /** This device's time (ms since the epoch) the snapshot arrived. */
  readonly receivedAt: number;
  /** Everyone seen in the session and the roster's no-shows, sorted by participant id. */
  readonly entries: ReadonlyArray<LiveAttendanceEntry>;
  readonly #byId: ReadonlyMap<string, LiveAttendanceEntry>;

  /**
   * @internal Created by the SessionClient.
   * @param previous - an earlier view of the same session: names of people who left are kept from it.
   */
  constructor(snapshot: AttendanceSnapshot, receivedAt: number, previous?: LiveAttendance) {
    this.asOf = snapshot.asOf;
    this.receivedAt = receivedAt;
    this.entries = Object.freeze(
      snapshot.participants.map(
        (entry) =>
          new LiveAttendanceEntry(
            { ...entry, name: entry.name ?? previous?.get(entry.participantId)?.name ?? null },
            receivedAt,
          ),
      ),
    );
    this.#byId = new Map(this.entries.map((entry) => [entry.participantId, entry]));
  }

  /** The entry of one participant, if the snapshot has one. */
  get(participantId: string): LiveAttendanceEntry | undefined {
    return this.#byId.get(participantId);
  }

  /** Those present, longest present first. */
  get present(): LiveAttendanceEntry[] {
    return this.entries.filter((entry) => entry.present).sort((a, b) => (a.presentSince ?? 0) - (b.presentSince ?? 0));
  }

  /** Those not present (left, waiting, never came), by participant id. */
  get absent(): LiveAttendanceEntry[] {
    return this.entries.filter((entry) => !entry.present);
  }
}
