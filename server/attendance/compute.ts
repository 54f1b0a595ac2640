/**
 * Attendance of one session, computed from its attendance events (see `recorder.ts`): who was
 * present when, for how long, who waited, who never came. Pure and deterministic (no I/O, no
 * clock: `now` is given), order-independent and idempotent (events are deduplicated by stream id
 * and sorted by it), so a report recomputed from the same stream always gives the same figures.
 *
 * Rules (what `Room` emits, `server/rooms/room.ts`):
 * - present from `admitted` until `left`, `removed`, `movedToWaitingRoom`, `sessionEnded`, or a
 *   `disconnected` that no `reconnected` followed within the grace window (the interval then ends
 *   at the disconnection: the `left` the server emits at grace expiry changes nothing); a
 *   disconnection recovered within the grace counts as present throughout;
 * - waiting from `waiting` (or `movedToWaitingRoom`) until `admitted`, `denied`, `left`,
 *   `removed`, `sessionEnded`, or an unrecovered disconnection (same rule);
 * - intervals are merged (union), durations are whole seconds (floor of the exact ms length):
 *   truncated, never rounded up, so that a billed second was always attended (at most one second
 *   under per session; README: Attendance);
 * - lateness runs from the scheduled start to the first admission, time waiting included; time at
 *   the consent gate or waiting is never present time;
 * - time in a breakout group is presence: `movedToBreakout` never starts or ends an interval. The
 *   moves of someone present are listed (moves.ts); one of someone not present (never admitted,
 *   gone, back in the waiting room) changes nothing. Each admission from outside the session
 *   enters the main room (the room forgets a group on leaving): listed as a move back, if needed;
 * - an outage of the room's node is a disconnection of everyone it had connected, dated at the
 *   last moment that node is known to have served the room: a `restored` event (another node, or
 *   the same one restarted, took the session back) carries the old owner's last lease renewal,
 *   and the later of that and the last event before it is the moment (see `outages.ts`). The
 *   grace counts from there. While no node serves a session at all, `servedUntil` does the same
 *   at the end of the stream: nobody is billed past the last-served moment. An old owner's write
 *   that reached the stream after the restore counts where it happened, before it.
 *
 * `computeLiveAttendance` gives the same figures plus who is present at `now` and since when, for
 * facilitators' live view (live.ts).
 */

import type { AttendanceEvent } from './event.ts';
import { addMove, type BreakoutMove, placeOf } from './moves.ts';
import { lateWritesBeforeRestores, withOutages } from './outages.ts';

export type { BreakoutMove } from './moves.ts';

export type AttendanceStatus = 'attended' | 'partial' | 'no-show' | 'denied' | 'removed';

export interface Interval {
  /** ms since the epoch */
  from: number;
  to: number;
}

export interface ParticipantAttendance {
  participant: string;
  /** First event of this participant (consent, waiting, admission…), or null (roster, never came). */
  firstSeenAt: number | null;
  /** First admission. */
  admittedAt: number | null;
  /** End of the last presence interval; null if never present or still present at `now`. */
  lastLeftAt: number | null;
  presentSeconds: number;
  waitingSeconds: number;
  /** `disconnected` events while present (recovered or not). */
  disconnections: number;
  lateArrivalSeconds: number;
  earlyDepartureSeconds: number;
  status: AttendanceStatus;
  /** Presence, merged, in order. */
  intervals: Interval[];
  /** Moves between the main room (null) and breakout groups (their ids), in order. */
  moves: BreakoutMove[];
}

export interface SessionAttendance {
  room: string;
  sessionStartedAt: number | null;
  sessionEndedAt: number | null;
  scheduled: { start: number; end: number } | null;
  /** Sorted by participant id. */
  participants: ParticipantAttendance[];
}

export interface AttendanceRoom {
  id: string;
  schedule?: { start: string; end: string; timeZone?: string } | undefined;
  roster?: readonly string[] | undefined;
}

export interface ComputeAttendanceInput {
  room: AttendanceRoom;
  /** Events of this room, any order, duplicates allowed (events of other rooms are ignored). */
  events: readonly AttendanceEvent[];
  reconnectGraceMs: number;
  /** ms since the epoch: closes the intervals of a session still running. */
  now: number;
  /** Share of the expected duration a participant must be present to have attended. Default 0.75. */
  attendedRatio?: number;
  /**
   * A disconnection still inside its grace window at `now` (no `reconnected` yet, nothing that
   * ends the place) counts as recovered: for a live view, where the outcome is not known yet and
   * the room keeps the place. Default false (a report: absent from the disconnection until a
   * `reconnected`). Once the grace has run out the two agree.
   */
  openGraceAsPresent?: boolean;
  /**
   * No node serves the session now (its owner is gone and none has taken it back): the last time
   * one was known to (its last lease renewal). Everyone still connected is disconnected at the
   * later of this and the last event. Absent: the session is served (or ended).
   */
  servedUntil?: number;
}

type Stage = 'out' | 'waiting' | 'present';
type Closure = 'event' | 'sessionEnded' | 'now';

interface ClosedInterval extends Interval {
  closedBy: Closure;
}

interface State {
  stage: Stage;
  /** False after a disconnection not recovered within the grace, until `reconnected` or a new join. */
  live: boolean;
  openFrom: number | null;
  firstSeenAt: number;
  admittedAt: number | null;
  present: ClosedInterval[];
  waiting: ClosedInterval[];
  disconnections: number;
  denied: boolean;
  removed: boolean;
  moves: BreakoutMove[];
}

/** `<ms>-<seq>` as numbers; an id not of that form sorts by `at`, then by the id text. */
function idKey(e: AttendanceEvent): [number, number] {
  const m = /^(\d+)-(\d+)$/.exec(e.id);
  return m ? [Number(m[1]), Number(m[2])] : [e.at, Number.MAX_SAFE_INTEGER];
}

export function sortEvents(events: readonly AttendanceEvent[]): AttendanceEvent[] {
  const byId = new Map<string, AttendanceEvent>();
  for (const e of events) if (!byId.has(e.id)) byId.set(e.id, e);
  return [...byId.values()]
    .map((e) => ({ e, k: idKey(e) }))
    .sort((a, b) => a.k[0] - b.k[0] || a.k[1] - b.k[1] || (a.e.id < b.e.id ? -1 : a.e.id > b.e.id ? 1 : 0))
    .map(({ e }) => e);
}

/** Union of intervals (touching ones joined, empty ones dropped), in order. */
export function mergeIntervals(intervals: readonly Interval[]): Interval[] {
  const sorted = intervals.filter((i) => i.to > i.from).sort((a, b) => a.from - b.from || a.to - b.to);
  const out: Interval[] = [];
  for (const { from, to } of sorted) {
    const last = out[out.length - 1];
    if (last && from <= last.to) last.to = Math.max(last.to, to);
    else out.push({ from, to });
  }
  return out;
}

function lengthMs(intervals: readonly Interval[]): number {
  return intervals.reduce((sum, i) => sum + (i.to - i.from), 0);
}

const seconds = (ms: number): number => Math.floor(Math.max(0, ms) / 1000);

/** Events after which a `reconnected` no longer recovers an earlier disconnection. */
const ending = new Set(['disconnected', 'left', 'removed', 'denied']);

/**
 * For each `disconnected` event (by index): whether a `reconnected` of the same participant came
 * within the grace, before anything that ends its place (another disconnection, leaving, removal,
 * denial) or the end of the session. With `openGraceUntil` (live views), one that nothing has
 * decided yet and whose grace is still open at that time counts as recovered too.
 */
function recoveredDisconnections(
  events: readonly AttendanceEvent[],
  graceMs: number,
  openGraceUntil?: number,
): Set<number> {
  const recovered = new Set<number>();
  events.forEach((e, i) => {
    if (e.type !== 'disconnected' || !e.participant) return;
    for (let j = i + 1; j < events.length; j++) {
      const next = events[j] as AttendanceEvent;
      if (next.at - e.at > graceMs) return;
      if (next.type === 'sessionEnded' || next.type === 'sessionStarted') return;
      if (next.participant !== e.participant) continue;
      if (next.type === 'reconnected') {
        recovered.add(i);
        return;
      }
      if (ending.has(next.type)) return;
    }
    if (openGraceUntil !== undefined && openGraceUntil - e.at <= graceMs) recovered.add(i);
  });
  return recovered;
}

export function computeAttendance(input: ComputeAttendanceInput): SessionAttendance {
  return computeSession(input).attendance;
}

/** A session's attendance, and who is present at `now`: for a live view. */
export interface LiveSessionAttendance {
  attendance: SessionAttendance;
  /**
   * Participants present at `now` (the session running), each with the start of their current
   * stretch: the merged interval that reaches `now`, so a recovered disconnection does not break it.
   */
  presentSince: ReadonlyMap<string, number>;
}

/** `computeAttendance`, plus who is present now and since when (same rules, same figures). */
export function computeLiveAttendance(input: ComputeAttendanceInput): LiveSessionAttendance {
  const { attendance, openSince } = computeSession(input);
  const presentSince = new Map<string, number>();
  for (const p of attendance.participants) {
    const from = openSince.get(p.participant);
    if (from === undefined) continue;
    const stretch = p.intervals.find((i) => i.from <= from && from <= i.to);
    presentSince.set(p.participant, stretch?.from ?? from);
  }
  return { attendance, presentSince };
}

function computeSession(input: ComputeAttendanceInput): {
  attendance: SessionAttendance;
  /** Start of each presence interval still open at `now`. */
  openSince: Map<string, number>;
} {
  const { room, reconnectGraceMs, now } = input;
  const ratio = input.attendedRatio ?? 0.75;
  const sorted = lateWritesBeforeRestores(sortEvents(input.events.filter((e) => e.room === room.id)));
  const events = withOutages(sorted, input.servedUntil);
  const recovered = recoveredDisconnections(events, reconnectGraceMs, input.openGraceAsPresent ? now : undefined);
  const states = new Map<string, State>();
  let sessionStartedAt: number | null = null;
  let sessionEndedAt: number | null = null;

  const close = (s: State, at: number, closedBy: Closure): void => {
    if (s.openFrom === null) return;
    const interval = { from: s.openFrom, to: Math.max(s.openFrom, at), closedBy };
    if (s.stage === 'present') s.present.push(interval);
    else if (s.stage === 'waiting') s.waiting.push(interval);
    s.openFrom = null;
  };
  const setStage = (s: State, stage: Stage, at: number, closedBy: Closure = 'event'): void => {
    close(s, at, closedBy);
    s.stage = stage;
    s.openFrom = s.live && stage !== 'out' ? at : null;
  };

  events.forEach((e, i) => {
    const t = e.at;
    if (e.type === 'sessionStarted') {
      sessionStartedAt ??= t;
      sessionEndedAt = null;
      return;
    }
    if (e.type === 'sessionEnded') {
      sessionEndedAt = t;
      for (const s of states.values()) {
        setStage(s, 'out', t, 'sessionEnded');
        s.live = true;
      }
      return;
    }
    if (!e.participant) return;
    // Only someone in the session has a place to move from: no record for a stray move.
    if (e.type === 'movedToBreakout' && states.get(e.participant)?.stage !== 'present') return;
    let s = states.get(e.participant);
    if (!s) {
      s = {
        stage: 'out',
        live: true,
        openFrom: null,
        firstSeenAt: t,
        admittedAt: null,
        present: [],
        waiting: [],
        disconnections: 0,
        denied: false,
        removed: false,
        moves: [],
      };
      states.set(e.participant, s);
    }
    switch (e.type) {
      case 'waiting':
        // A join (or the consent accepted): a connected participant.
        if (s.stage === 'out') s.live = true;
        setStage(s, 'waiting', t);
        break;
      case 'admitted':
        // From outside: a join, connected. From the waiting room: connected or not, as it was.
        if (s.stage === 'out') s.live = true;
        s.admittedAt ??= t;
        if (s.stage !== 'present') {
          addMove(s.moves, t, null);
          setStage(s, 'present', t);
        }
        break;
      case 'movedToWaitingRoom':
        if (s.stage === 'present') setStage(s, 'waiting', t);
        break;
      case 'denied':
        s.denied = true;
        setStage(s, 'out', t);
        s.live = true;
        break;
      case 'removed':
        s.removed = true;
        setStage(s, 'out', t);
        s.live = true;
        break;
      case 'left':
        setStage(s, 'out', t);
        s.live = true;
        break;
      case 'disconnected':
        if (s.stage === 'present') s.disconnections++;
        if (s.live && !recovered.has(i)) {
          close(s, t, 'event');
          s.live = false;
        }
        break;
      case 'reconnected':
        // Recovered within the grace: nothing to do. Later (the server's grace timer lagged and
        // kept the place): absent from the disconnection until now, present (or waiting) again.
        if (!s.live) {
          s.live = true;
          if (s.stage !== 'out') s.openFrom = t;
        }
        break;
      case 'movedToBreakout': {
        // Present (checked above), connected or not: a dropped member keeps a place, which a move changes.
        const to = placeOf(e);
        if (to !== undefined) addMove(s.moves, t, to);
        break;
      }
      default:
        break; // consented, mediaConnected
    }
  });

  const openSince = new Map<string, number>();
  for (const [participant, s] of states) {
    if (sessionEndedAt === null && s.stage === 'present' && s.openFrom !== null) openSince.set(participant, s.openFrom);
  }
  const end = sessionEndedAt ?? now;
  for (const s of states.values()) close(s, end, sessionEndedAt === null ? 'now' : 'sessionEnded');

  const scheduled = scheduleOf(room);
  const expectedMs =
    scheduled !== null
      ? scheduled.end - scheduled.start
      : sessionStartedAt !== null
        ? (sessionEndedAt ?? now) - sessionStartedAt
        : null;

  const ids = new Set([...(room.roster ?? []), ...states.keys()]);
  const participants = [...ids]
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
    .map((participant): ParticipantAttendance => {
      const s = states.get(participant);
      if (!s) {
        return {
          participant,
          firstSeenAt: null,
          admittedAt: null,
          lastLeftAt: null,
          presentSeconds: 0,
          waitingSeconds: 0,
          disconnections: 0,
          lateArrivalSeconds: 0,
          earlyDepartureSeconds: 0,
          status: 'no-show',
          intervals: [],
          moves: [],
        };
      }
      const intervals = mergeIntervals(s.present);
      const presentMs = lengthMs(intervals);
      const presentSeconds = seconds(presentMs);
      const last = s.present.reduce<ClosedInterval | undefined>(
        (latest, i) => (!latest || i.to >= latest.to ? i : latest),
        undefined,
      );
      const lastLeftAt = last && last.closedBy !== 'now' ? last.to : null;
      const lateArrivalSeconds = scheduled && s.admittedAt !== null ? seconds(s.admittedAt - scheduled.start) : 0;
      // Left while the session ran: until the scheduled end, or the actual end if it came sooner.
      const earlyDepartureSeconds =
        scheduled && last && last.closedBy === 'event'
          ? seconds(Math.min(scheduled.end, sessionEndedAt ?? scheduled.end) - last.to)
          : 0;
      let status: AttendanceStatus;
      if (s.removed) status = 'removed';
      else if (s.admittedAt === null) status = s.denied ? 'denied' : 'no-show';
      else if (expectedMs !== null && presentSeconds >= (ratio * expectedMs) / 1000) status = 'attended';
      else status = 'partial';
      return {
        participant,
        firstSeenAt: s.firstSeenAt,
        admittedAt: s.admittedAt,
        lastLeftAt,
        presentSeconds,
        waitingSeconds: seconds(lengthMs(mergeIntervals(s.waiting))),
        disconnections: s.disconnections,
        lateArrivalSeconds,
        earlyDepartureSeconds,
        status,
        intervals,
        moves: s.moves,
      };
    });

  return { attendance: { room: room.id, sessionStartedAt, sessionEndedAt, scheduled, participants }, openSince };
}

function scheduleOf(room: AttendanceRoom): { start: number; end: number } | null {
  if (!room.schedule) return null;
  const start = Date.parse(room.schedule.start);
  const end = Date.parse(room.schedule.end);
  return Number.isFinite(start) && Number.isFinite(end) && end > start ? { start, end } : null;
}
