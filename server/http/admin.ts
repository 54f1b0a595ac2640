/**
 * The admin HTTP API (`/v1/…`), for the clinic's backend: create, list, read and end rooms.
 * Every call needs `Authorization: Bearer <admin.apiKey>`, checked before anything else, on any
 * `/v1/…` path; bodies are JSON and every input is validated by schema (./admin-schemas.ts);
 * answers are `{ ok: true, data }` or `{ ok: false, error: { code, message } }`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { SessionAttendance } from '../attendance/compute.ts';
import { attendanceCsv } from '../attendance/csv.ts';
import { weeklyTotals } from '../attendance/weekly.ts';
import type { AuditLog } from '../audit/audit-log.ts';
import { answerFailure, HavenError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { Stage } from '../rooms/member.ts';
import type { Room } from '../rooms/room.ts';
import type { RoomManager } from '../rooms/room-manager.ts';
import type { RoomStore } from '../rooms/room-store.ts';
import type { Delivery, DeliveryPage, EndpointSummary } from '../webhooks/deliveries.ts';
import { forwardToOwner } from './admin-forward.ts';
import {
  consentSchema,
  createRoomSchema,
  deliveriesQuery,
  idParams,
  listQuery,
  participantQuery,
} from './admin-schemas.ts';
import { bearerMatches } from './bearer.ts';
import { readJsonBody, sendError, sendJson } from './json.ts';
import {
  everyMethod,
  type HttpMethod,
  type HttpRouter,
  noRouteMessage,
  type RouteHandler,
  type RouteRequest,
  type RouteSet,
} from './router.ts';
import { parse, queryOf } from './validation.ts';

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
  /** The node answering (the one serving a live room: calls about it are forwarded there). */
  servingNode?: () => { id: string; url: string };
  /** The program's time zone (weeks) and weekly threshold, in hours. */
  program: { timeZone: string; weeklyThresholdHours: number };
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

/** An admin route: its outcome, or undefined when it answered already (forwarded to another node). */
type AdminRoute = (deps: AdminDeps, request: RouteRequest) => Promise<Outcome | undefined>;

function authorize(req: IncomingMessage, apiKey: string | undefined): void {
  if (!apiKey) throw new HavenError('UNAUTHORIZED', 'the admin API is off: set HAVEN_ADMIN_API_KEY');
  if (!bearerMatches(req, apiKey)) throw new HavenError('UNAUTHORIZED', 'missing or wrong admin API key');
}

const noRoute: AdminRoute = async (_deps, { req, url }) => {
  throw new HavenError('NOT_FOUND', noRouteMessage(req.method, url.pathname));
};

/** The room a `/v1/rooms/:id…` path names; a path with no valid room id is no route at all. */
function roomIdOf(request: RouteRequest): string {
  return parse(
    idParams,
    request.params,
    () => new HavenError('NOT_FOUND', noRouteMessage(request.req.method, request.url.pathname)),
  ).id;
}

const createRoom: AdminRoute = async (deps, { req }) => {
  const input = parse(createRoomSchema, await readJsonBody(req));
  const room = await deps.store.create({ ...input, origin: 'admin' });
  return { status: 201, data: room, action: 'room.create', roomId: room.id };
};

const listRooms: AdminRoute = async (deps, { url }) => {
  const { limit, cursor } = parse(listQuery, queryOf(url));
  return { status: 200, data: await deps.store.list(limit, cursor) };
};

const getRoom: AdminRoute = async (deps, request) => {
  const roomId = roomIdOf(request);
  const room = await deps.store.get(roomId);
  if (!room) throw new HavenError('NOT_FOUND', 'no such room');
  const live = deps.rooms.get(roomId);
  return { status: 200, data: { ...room, live: live ? liveView(live, deps.servingNode?.()) : null } };
};

/** A live room at a glance: everyone in it (by stage, facilitators in `admitted`), its routers, its node. */
function liveView(room: Room, node: { id: string; url: string } | undefined) {
  const stages: Record<Stage, number> = { consent: 0, waiting: 0, admitted: 0 };
  for (const member of room.members.values()) stages[member.stage]++;
  return { participants: room.size, stages, routers: room.routerCount, node: node ?? null };
}

const endRoom: AdminRoute = async (deps, request) => {
  const roomId = roomIdOf(request);
  if (!(await deps.rooms.end(roomId, 'ended by the clinic'))) throw new HavenError('NOT_FOUND', 'no such room');
  return { status: 200, data: { id: roomId, ended: true }, action: 'room.end', roomId };
};

const setConsent: AdminRoute = async (deps, request) => {
  const roomId = roomIdOf(request);
  const { text } = parse(consentSchema, await readJsonBody(request.req));
  const room = await deps.store.setConsent(roomId, text);
  if (!room?.consent) throw new HavenError('NOT_FOUND', 'no such room');
  deps.rooms.get(roomId)?.setConsent(room.consent);
  const { version, hash } = room.consent;
  return { status: 200, data: { version, hash }, action: 'consent.update', roomId };
};

const roomAttendance: AdminRoute = async (deps, request) => {
  const attendance = await deps.attendanceOf(roomIdOf(request));
  if (!attendance) throw new HavenError('NOT_FOUND', 'no attendance computed for this room yet');
  const csv = (request.req.headers.accept ?? '').includes('text/csv');
  return { status: 200, data: attendance, ...(csv ? { csv: attendanceCsv(attendance) } : {}) };
};

const participantAttendance: AdminRoute = async (deps, request) => {
  // `/v1/participants//attendance` names no participant: no route, rather than a wrong id.
  if (!request.params.id) return noRoute(deps, request);
  const { id } = parse(idParams, request.params, () => new HavenError('INVALID_REQUEST', 'not a participant id'));
  const query = parse(participantQuery, queryOf(request.url));
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
};

const endpoints: AdminRoute = async (deps) => ({ status: 200, data: { endpoints: await deps.endpoints() } });

const deliveries: AdminRoute = async (deps, { url }) => ({
  status: 200,
  data: await deps.deliveries(parse(deliveriesQuery, queryOf(url))),
});

/**
 * A route on a live room's path: the call goes to the node serving the room when that is another
 * node, whatever its method (that node answers a method it has no route for); else to `local`.
 */
function viaServingNode(local: AdminRoute): AdminRoute {
  return async (deps, request) => {
    const { remoteOwnerUrl } = deps;
    const room = idParams.safeParse(request.params);
    if (remoteOwnerUrl && room.success && (await forwardToOwner(request, () => remoteOwnerUrl(room.data.id)))) {
      return undefined;
    }
    return local(deps, request);
  };
}

/** Checks the admin key, then runs the route: the key is checked before anything else. */
async function authorized(deps: AdminDeps, request: RouteRequest, route: AdminRoute): Promise<Outcome | undefined> {
  authorize(request.req, deps.apiKey);
  return route(deps, request);
}

function sendOutcome(deps: AdminDeps, res: ServerResponse, outcome: Outcome | undefined): void {
  if (!outcome) return;
  const { status, data, action, roomId, csv } = outcome;
  if (action && roomId) deps.audit.recordInBackground({ room: roomId, actor: 'admin', action });
  if (csv !== undefined) {
    res.writeHead(status, { 'content-type': 'text/csv; charset=utf-8', 'cache-control': 'no-store' });
    res.end(csv);
    return;
  }
  sendJson(res, status, { ok: true, data });
}

/** The admin API's routes; any other `/v1/…` path answers NOT_FOUND, after the key check. */
export function adminRoutes(deps: AdminDeps): RouteSet {
  const log = deps.logger.child({ component: 'admin-api' });
  const answer =
    (route: AdminRoute): RouteHandler =>
    (request) => {
      authorized(deps, request, route)
        .then((outcome) => sendOutcome(deps, request.res, outcome))
        .catch((err: unknown) => sendError(request.res, answerFailure(err, log, { path: request.url.pathname })));
    };
  const liveRoom = (router: HttpRouter, path: string, served: Partial<Record<HttpMethod, AdminRoute>>) => {
    for (const method of everyMethod) router.on(method, path, answer(viaServingNode(served[method] ?? noRoute)));
  };
  return (router) => {
    router.on('POST', '/v1/rooms', answer(createRoom));
    router.on('GET', '/v1/rooms', answer(listRooms));
    liveRoom(router, '/v1/rooms/:id', { GET: getRoom });
    liveRoom(router, '/v1/rooms/:id/end', { POST: endRoom });
    liveRoom(router, '/v1/rooms/:id/consent', { PUT: setConsent });
    router.on('GET', '/v1/rooms/:id/attendance', answer(roomAttendance));
    router.on('GET', '/v1/participants/:id/attendance', answer(participantAttendance));
    router.on('GET', '/v1/webhooks/endpoints', answer(endpoints));
    router.on('GET', '/v1/webhooks/deliveries', answer(deliveries));
    router.on(everyMethod, '/v1/*', answer(noRoute));
  };
}
