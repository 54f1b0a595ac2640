/**
 * The admin HTTP API (`/v1/…`), for the clinic's backend: create, list, read and end rooms.
 * Every call needs `Authorization: Bearer <admin.apiKey>`; bodies are JSON, validated by schema;
 * answers are `{ ok: true, data }` or `{ ok: false, error: { code, message } }`.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import { idPattern } from '../../client-sdk/src/protocol/index.ts';
import type { Delivery, DeliveryPage, EndpointSummary } from '../webhooks/deliveries.ts';
import type { SessionAttendance } from '../attendance/compute.ts';
import { attendanceCsv } from '../attendance/csv.ts';
import { weeklyTotals } from '../attendance/weekly.ts';
import type { AuditLog } from '../audit/audit-log.ts';
import { answerFailure, HavenError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { RoomManager } from '../rooms/room-manager.ts';
import type { RoomStore } from '../rooms/room-store.ts';
import { describeIssues } from '../signaling/schemas.ts';
import { readBody, readJsonBody, sendError, sendJson } from './json.ts';

export interface AdminDeps {
  apiKey: string | undefined;
  store: RoomStore;
  rooms: RoomManager;
  logger: Logger;
  audit: AuditLog;
  /** The latest computed attendance of a room (by the attendance worker), if any. */
  attendanceOf: (room: string) => Promise<SessionAttendance | undefined>;
  /** A participant's computed sessions in a time range. */
  sessionsOf: (participant: string, fromMs: number, toMs: number) => Promise<SessionAttendance[]>;
  /** The configured webhook endpoints and how their deliveries stand. */
  endpoints: () => Promise<EndpointSummary[]>;
  /** A page of webhook deliveries, newest first. */
  deliveries: (options: { status?: Delivery['status']; limit: number; cursor: number }) => Promise<DeliveryPage>;
  /** The URL of the node serving a live room, when it is another node (calls about it are forwarded there). */
  remoteOwnerUrl?: (room: string) => Promise<string | undefined>;
  /** The program's time zone (weeks) and weekly threshold, in hours. */
  program: { timeZone: string; weeklyThresholdHours: number };
}

const consentText = z.string().trim().min(1).max(20_000);

function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

export const createRoomSchema = z.strictObject({
  id: z.string().regex(idPattern, 'letters, digits and . _ : - only, at most 128').optional(),
  kind: z.enum(['group', 'individual', 'education']).default('group'),
  title: z.string().trim().min(1).max(200),
  capacity: z.number().int().min(1).max(500).optional(),
  schedule: z
    .strictObject({
      start: z.iso.datetime({ offset: true }),
      end: z.iso.datetime({ offset: true }),
      timeZone: z.string().refine(isTimeZone, 'not an IANA time zone'),
    })
    .refine((s) => Date.parse(s.start) < Date.parse(s.end), 'end must be after start')
    .optional(),
  roster: z.array(z.string().regex(idPattern)).max(500).optional(),
  waitingRoom: z.boolean().optional(),
  observersVisible: z.boolean().optional(),
  privateChat: z.boolean().optional(),
  keepChat: z.boolean().optional(),
  consentText: consentText.optional(),
});

const consentSchema = z.strictObject({ text: consentText });

const participantQuery = z.strictObject({
  from: z.iso.datetime({ offset: true }),
  to: z.iso.datetime({ offset: true }),
  timeZone: z.string().refine(isTimeZone, 'not an IANA time zone').optional(),
});

const pageQuery = {
  limit: z.coerce.number().int().min(1).max(100).default(20),
  cursor: z.coerce.number().int().min(0).default(0),
};
const listSchema = z.strictObject(pageQuery);
const deliveriesQuery = z.strictObject({
  status: z.enum(['pending', 'delivered', 'retrying', 'dead']).optional(),
  ...pageQuery,
});

const forwardedHeader = 'haven-forwarded';
const forwardTimeoutMs = 10_000;

function sameKey(given: string, expected: string): boolean {
  const digest = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(digest(given), digest(expected));
}

function authorize(req: IncomingMessage, apiKey: string | undefined): void {
  if (!apiKey) throw new HavenError('UNAUTHORIZED', 'the admin API is off: set HAVEN_ADMIN_API_KEY');
  const header = req.headers.authorization ?? '';
  const given = header.startsWith('Bearer ') ? header.slice(7) : '';
  if (!given || !sameKey(given, apiKey)) throw new HavenError('UNAUTHORIZED', 'missing or wrong admin API key');
}

function parse<T>(schema: z.ZodType<T>, value: unknown): T {
  const result = schema.safeParse(value);
  if (!result.success) throw new HavenError('INVALID_REQUEST', describeIssues(result.error));
  return result.data;
}

/** Handles `/v1/…`; returns false for any other path. */
export function handleAdmin(deps: AdminDeps, req: IncomingMessage, res: ServerResponse, url: URL): boolean {
  if (!url.pathname.startsWith('/v1/')) return false;
  const log = deps.logger.child({ component: 'admin-api' });
  forwarded(deps, req, res, url)
    .then((answered) => (answered ? undefined : route(deps, req, url)))
    .then((outcome) => {
      if (!outcome) return;
      const { status, data, action, roomId, csv } = outcome;
      if (action && roomId) deps.audit.recordInBackground({ room: roomId, actor: 'admin', action });
      if (csv !== undefined) {
        res.writeHead(status, { 'content-type': 'text/csv; charset=utf-8', 'cache-control': 'no-store' });
        res.end(csv);
        return;
      }
      sendJson(res, status, { ok: true, data });
    })
    .catch((err: unknown) => sendError(res, answerFailure(err, log, { path: url.pathname })));
  return true;
}

/**
 * Calls that act on a live room (end it, change its consent text, read its live figures) go to
 * the node serving it; the answer is passed back as it is. Marked, so it is never forwarded twice.
 */
async function forwarded(deps: AdminDeps, req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean> {
  const match = /^\/v1\/rooms\/([^/]+)(\/end|\/consent)?$/.exec(url.pathname);
  if (!match || !deps.remoteOwnerUrl || req.headers[forwardedHeader]) return false;
  authorize(req, deps.apiKey);
  const roomId = decodeURIComponent(match[1] as string);
  if (!idPattern.test(roomId)) return false;
  const owner = await deps.remoteOwnerUrl(roomId);
  if (!owner) return false;
  const body = req.method === 'GET' ? undefined : (await readBody(req)) || undefined;
  const answer = await fetch(new URL(url.pathname + url.search, owner), {
    method: req.method,
    headers: {
      authorization: req.headers.authorization ?? '',
      'content-type': req.headers['content-type'] ?? 'application/json',
      [forwardedHeader]: '1',
    },
    body,
    signal: AbortSignal.timeout(forwardTimeoutMs),
  });
  const text = await answer.text();
  res.writeHead(answer.status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
  res.end(text);
  return true;
}

interface Outcome {
  status: number;
  data: unknown;
  /** Answer CSV instead of JSON. */
  csv?: string;
  /** An action that changed something, for the log (ids only). */
  action?: string;
  roomId?: string;
}

async function route(deps: AdminDeps, req: IncomingMessage, url: URL): Promise<Outcome> {
  authorize(req, deps.apiKey);
  const path = url.pathname;
  if (path === '/v1/rooms' && req.method === 'POST') {
    const input = parse(createRoomSchema, await readJsonBody(req));
    const room = await deps.store.create({ ...input, origin: 'admin' });
    return { status: 201, data: room, action: 'room.create', roomId: room.id };
  }
  if (path === '/v1/rooms' && req.method === 'GET') {
    const { limit, cursor } = parse(listSchema, Object.fromEntries(url.searchParams));
    return { status: 200, data: await deps.store.list(limit, cursor) };
  }
  if (path === '/v1/webhooks/endpoints' && req.method === 'GET') {
    return { status: 200, data: { endpoints: await deps.endpoints() } };
  }
  if (path === '/v1/webhooks/deliveries' && req.method === 'GET') {
    const query = parse(deliveriesQuery, Object.fromEntries(url.searchParams));
    return { status: 200, data: await deps.deliveries(query) };
  }
  const participant = /^\/v1\/participants\/([^/]+)\/attendance$/.exec(path);
  if (participant && req.method === 'GET') {
    const id = decodeURIComponent(participant[1] as string);
    if (!idPattern.test(id)) throw new HavenError('INVALID_REQUEST', 'not a participant id');
    const query = parse(participantQuery, Object.fromEntries(url.searchParams));
    const timeZone = query.timeZone ?? deps.program.timeZone;
    const sessions = await deps.sessionsOf(id, Date.parse(query.from), Date.parse(query.to));
    return {
      status: 200,
      data: {
        participant: id,
        timeZone,
        sessions: sessions.map((s) => {
          const p = s.participants.find((x) => x.participant === id);
          return { room: s.room, scheduled: s.scheduled, status: p?.status, presentSeconds: p?.presentSeconds ?? 0 };
        }),
        weeks: weeklyTotals(sessions, id, timeZone, deps.program.weeklyThresholdHours),
      },
    };
  }
  const match = /^\/v1\/rooms\/([^/]+)(\/end|\/consent|\/attendance)?$/.exec(path);
  const roomId = match ? decodeURIComponent(match[1] as string) : undefined;
  if (roomId !== undefined && idPattern.test(roomId)) {
    if (match?.[2] === '/consent' && req.method === 'PUT') {
      const { text } = parse(consentSchema, await readJsonBody(req));
      const room = await deps.store.setConsent(roomId, text);
      if (!room?.consent) throw new HavenError('NOT_FOUND', 'no such room');
      deps.rooms.get(roomId)?.setConsent(room.consent);
      const { version, hash } = room.consent;
      return { status: 200, data: { version, hash }, action: 'consent.update', roomId };
    }
    if (match?.[2] === '/attendance' && req.method === 'GET') {
      const attendance = await deps.attendanceOf(roomId);
      if (!attendance) throw new HavenError('NOT_FOUND', 'no attendance computed for this room yet');
      const csv = (req.headers.accept ?? '').includes('text/csv');
      return { status: 200, data: attendance, ...(csv ? { csv: attendanceCsv(attendance) } : {}) };
    }
    if (!match?.[2] && req.method === 'GET') {
      const room = await deps.store.get(roomId);
      if (!room) throw new HavenError('NOT_FOUND', 'no such room');
      const live = deps.rooms.get(roomId);
      return {
        status: 200,
        data: { ...room, live: live ? { participants: live.size, routers: live.routerCount } : null },
      };
    }
    if (match?.[2] === '/end' && req.method === 'POST') {
      if (!(await deps.rooms.end(roomId, 'ended by the clinic'))) throw new HavenError('NOT_FOUND', 'no such room');
      return { status: 200, data: { id: roomId, ended: true }, action: 'room.end', roomId };
    }
  }
  throw new HavenError('NOT_FOUND', `no route for ${req.method} ${path}`);
}
