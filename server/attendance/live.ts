/**
 * A facilitator's live attendance view: who is present now, since when, and seconds present so
 * far. Computed by `computeLiveAttendance` (the billing rules, compute.ts) from the room's stream
 * plus the events the recorder holds and has not written yet, so the view neither lags behind the
 * room nor disagrees with the bill computed later from the same events. One difference, while it
 * lasts: a dropped connection still inside its grace window counts as present (the room keeps the
 * place); if the person does not come back, the next view ends their stretch at the disconnection,
 * as the bill does.
 */
import type { Redis } from 'ioredis';
import type { Role } from '../../client-sdk/src/protocol/index.ts';
import { HavenError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { type AttendanceRoom, computeLiveAttendance } from './compute.ts';
import { type AttendanceEvent, readAttendanceEvents } from './event.ts';
import type { AttendanceRecorder } from './recorder.ts';

/** One person's figures (ids only: names are the room's to add). */
export interface LivePresence {
  participantId: string;
  /** From the person's last admission, or null (never admitted: waiting, denied, a roster no-show). */
  role: Role | null;
  present: boolean;
  /** Server ms the current present stretch began; null if not present. */
  presentSince: number | null;
  /** Whole seconds present so far, at `asOf`. */
  secondsPresent: number;
}

export interface LiveFigures {
  /** Server time the figures are computed at (ms since the epoch). */
  asOf: number;
  /** Sorted by participant id; the roster's no-shows included. */
  participants: LivePresence[];
}

export interface LiveAttendanceOptions {
  redis: Redis;
  recorder: Pick<AttendanceRecorder, 'pendingFor'>;
  reconnectGraceMs: number;
  logger: Logger;
  /** Redis key prefix. Default `haven:`. */
  prefix?: string;
  /** How long to wait for Redis before answering that attendance is unavailable. Default 2,000. */
  readTimeoutMs?: number;
  now?: () => number;
}

const roles: readonly string[] = ['facilitator', 'participant', 'observer'] satisfies Role[];

/** Reads and computes a room's live figures; throws an `INTERNAL` HavenError when Redis does not answer. */
export function liveAttendanceReader(options: LiveAttendanceOptions): (room: AttendanceRoom) => Promise<LiveFigures> {
  const { redis, recorder, reconnectGraceMs, prefix = 'haven:', readTimeoutMs = 2_000, now = Date.now } = options;
  const logger = options.logger.child({ component: 'attendance' });
  return async (room) => {
    // Pending first: an event written between the two reads is then in one of them (or both: ids dedupe).
    const pending = recorder.pendingFor(room.id);
    const stored = await withTimeout(readAttendanceEvents(redis, room.id, prefix), readTimeoutMs).catch(
      (err: Error) => {
        logger.warn({ room: room.id, err: { message: err.message } }, 'live attendance: events not readable');
        throw new HavenError('INTERNAL', 'attendance cannot be read right now; try again shortly');
      },
    );
    const events = [...stored, ...pending];
    const asOf = now();
    const { attendance, presentSince } = computeLiveAttendance({
      room,
      events,
      reconnectGraceMs,
      now: asOf,
      openGraceAsPresent: true,
    });
    const roleOf = lastRoles(events);
    return {
      asOf,
      participants: attendance.participants.map((p) => {
        const since = presentSince.get(p.participant);
        return {
          participantId: p.participant,
          role: roleOf.get(p.participant) ?? null,
          present: since !== undefined,
          presentSince: since ?? null,
          secondsPresent: p.presentSeconds,
        };
      }),
    };
  };
}

/** Each participant's role, from their latest admission (`admitted` events carry it). */
function lastRoles(events: readonly AttendanceEvent[]): Map<string, Role> {
  const found = new Map<string, { at: number; role: Role }>();
  for (const e of events) {
    const role = e.details?.role;
    if (e.type !== 'admitted' || !e.participant || typeof role !== 'string' || !roles.includes(role)) continue;
    const known = found.get(e.participant);
    if (!known || e.at >= known.at) found.set(e.participant, { at: e.at, role: role as Role });
  }
  return new Map([...found].map(([id, { role }]) => [id, role]));
}

function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}
