/**
 * Computed attendance, the billing record, and its one codec: per room the latest result
 * (`<prefix>attendance-result:<room>`, JSON), and two indexes scored by the session's time, per
 * participant (`participant-sessions:<id>`) and of every session (`attendance-sessions`, for the
 * weekly threshold check). Written by the attendance worker, read by it and the admin API.
 */
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { jsonText } from '../redis/codec.ts';
import type { SessionAttendance } from './compute.ts';

export const attendanceResultKey = (room: string, prefix = 'haven:') => `${prefix}attendance-result:${room}`;
const participantSessionsKey = (participant: string, prefix = 'haven:') =>
  `${prefix}participant-sessions:${participant}`;
const sessionsIndexKey = (prefix = 'haven:') => `${prefix}attendance-sessions`;

const nullableTime = z.number().nullable();
/** Loose: a stored record keeps every field it was written with (`computedAt` among them). */
const resultSchema = z.looseObject({
  room: z.string(),
  sessionStartedAt: nullableTime,
  sessionEndedAt: nullableTime,
  scheduled: z.object({ start: z.number(), end: z.number() }).nullable(),
  participants: z.array(
    z.looseObject({
      participant: z.string(),
      firstSeenAt: nullableTime,
      admittedAt: nullableTime,
      lastLeftAt: nullableTime,
      presentSeconds: z.number(),
      waitingSeconds: z.number(),
      disconnections: z.number(),
      lateArrivalSeconds: z.number(),
      earlyDepartureSeconds: z.number(),
      status: z.enum(['attended', 'partial', 'no-show', 'denied', 'removed']),
      intervals: z.array(z.object({ from: z.number(), to: z.number() })),
      // Records stored before breakout moves were listed have none: no move, then.
      moves: z.array(z.object({ at: z.number(), breakout: z.string().nullable() })).default([]),
    }),
  ),
}) satisfies z.ZodType<SessionAttendance>;
const storedResult = jsonText(resultSchema);

function resultOf(room: string, json: string): SessionAttendance {
  const parsed = storedResult.safeParse(json);
  if (!parsed.success) throw new Error(`stored attendance of room ${room} is malformed`);
  return parsed.data;
}

/** Stores a room's result (with when it was computed) and files it under its participants and time. */
export async function storeAttendance(
  redis: Redis,
  room: string,
  result: SessionAttendance,
  at: number,
): Promise<void> {
  const writes = redis
    .multi()
    .set(attendanceResultKey(room), JSON.stringify({ ...result, computedAt: new Date().toISOString() }));
  for (const p of result.participants) writes.zadd(participantSessionsKey(p.participant), at, room);
  writes.zadd(sessionsIndexKey(), at, room);
  await writes.exec();
}

/** Whether a result is stored for the room. */
export async function hasAttendance(redis: Redis, room: string): Promise<boolean> {
  return (await redis.exists(attendanceResultKey(room))) > 0;
}

/** The room's latest stored result, if any. */
export async function attendanceOf(redis: Redis, room: string): Promise<SessionAttendance | undefined> {
  const json = await redis.get(attendanceResultKey(room));
  return json ? resultOf(room, json) : undefined;
}

/** A participant's computed sessions with a time in [fromMs, toMs]. */
export function participantSessions(
  redis: Redis,
  participant: string,
  fromMs: number,
  toMs: number,
): Promise<SessionAttendance[]> {
  return sessionsIn(redis, participantSessionsKey(participant), fromMs, toMs);
}

/** Every computed session with a time in [fromMs, toMs]. */
export function sessionsBetween(redis: Redis, fromMs: number, toMs: number): Promise<SessionAttendance[]> {
  return sessionsIn(redis, sessionsIndexKey(), fromMs, toMs);
}

async function sessionsIn(redis: Redis, index: string, fromMs: number, toMs: number): Promise<SessionAttendance[]> {
  const rooms = await redis.zrangebyscore(index, fromMs, toMs);
  if (rooms.length === 0) return [];
  const results = await redis.mget(rooms.map((room) => attendanceResultKey(room)));
  return results.flatMap((json, i) => (json ? [resultOf(rooms[i] as string, json)] : []));
}
