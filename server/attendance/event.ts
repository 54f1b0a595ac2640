/**
 * An attendance event and its one codec: the Redis stream it is appended to, one per room
 * (`<prefix>attendance:<room>`, stream ids `<server ms>-<seq>`), its fields, and the reader that
 * every consumer imports (the attendance worker, the live view, retention's key pattern).
 */
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { fieldsOf, jsonText } from '../redis/codec.ts';

export const attendanceEventTypes = [
  'sessionStarted',
  'sessionEnded',
  // The session taken back after its node died or lost it; `details.lastServedAt`: that node's last lease renewal.
  'restored',
  'consented',
  'waiting',
  'admitted',
  'denied',
  'mediaConnected',
  'disconnected',
  'reconnected',
  'movedToWaitingRoom',
  // To a breakout group or back to the main room (`details.breakout`: the group's id, or `main`): still present.
  'movedToBreakout',
  'removed',
  'left',
] as const;
export type AttendanceEventType = (typeof attendanceEventTypes)[number];

export type AttendanceDetails = Record<string, string | number | boolean>;

export interface AttendanceEvent {
  /** Stream id: `<server ms>-<seq>`. */
  id: string;
  type: AttendanceEventType;
  room: string;
  /** Pseudonymous participant id (absent for session events). */
  participant?: string;
  /** Server time, ms since the epoch. */
  at: number;
  /** Small facts, ids and numbers only (e.g. a consent version, a leave reason). */
  details?: AttendanceDetails;
}

export type NewAttendanceEvent = Omit<AttendanceEvent, 'id' | 'at'>;

/** The prefix of every room's stream (retention scans `<this>*`). */
export const attendanceStreamsPrefix = (prefix = 'haven:') => `${prefix}attendance:`;

/** The room's stream. */
export const attendanceStreamKey = (room: string, prefix = 'haven:') => `${attendanceStreamsPrefix(prefix)}${room}`;

/** The stream fields of an event (its id and room are the entry's id and the stream's key). */
export function attendanceFields(event: AttendanceEvent): string[] {
  const fields = ['type', event.type, 'at', String(event.at)];
  if (event.participant) fields.push('participant', event.participant);
  if (event.details) fields.push('details', JSON.stringify(event.details));
  return fields;
}

const detailsSchema = z.record(z.string(), z.union([z.string(), z.number(), z.boolean()]));

const fieldsSchema = z.object({
  type: z.enum(attendanceEventTypes),
  at: z
    .string()
    .regex(/^\d{1,16}$/)
    .transform(Number),
  participant: z.string().optional(),
  details: jsonText(detailsSchema).optional(),
});

/** An event as a stream entry holds it; throws (naming the entry, not its contents) when it is malformed. */
export function attendanceEventOf(room: string, id: string, fields: readonly string[]): AttendanceEvent {
  const parsed = fieldsSchema.safeParse(fieldsOf(fields));
  if (!parsed.success) {
    const where = parsed.error.issues.map((i) => i.path.join('.')).join(', ');
    throw new Error(`attendance stream of room ${room}, id ${id}: malformed ${where}`);
  }
  return { id, room, ...parsed.data };
}

const readPageSize = 1_000;

/** Reads a room's attendance events from its stream, oldest first, a page at a time. */
export async function readAttendanceEvents(redis: Redis, room: string, prefix = 'haven:'): Promise<AttendanceEvent[]> {
  const key = attendanceStreamKey(room, prefix);
  const entries: [string, string[]][] = [];
  for (let start = '-'; ; ) {
    const page = await redis.xrange(key, start, '+', 'COUNT', readPageSize);
    entries.push(...page);
    if (page.length < readPageSize) break;
    start = `(${(page[page.length - 1] as [string, string[]])[0]}`;
  }
  return entries.map(([id, fields]) => attendanceEventOf(room, id, fields));
}
