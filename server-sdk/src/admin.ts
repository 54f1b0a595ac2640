/**
 * A typed client of Haven's admin API (`docs/openapi.json`): one method per route, typed with
 * what openapi-typescript generates from the description at build time, so a route or field that
 * changes there breaks the build here. Answers are unwrapped (`{ ok: true, data }` → `data`); a
 * coded error answer throws a `HavenApiError` with the server's `code`, `status` and `message`.
 */
import { type ClientErrorCode, HavenApiError, type HavenErrorCode } from './errors.ts';
import type { components, paths } from './generated/openapi.ts';

type Schemas = components['schemas'];
export type NewRoom = Schemas['NewRoom'];
export type Room = Schemas['Room'];
export type RoomWithLive = Schemas['RoomWithLive'];
export type RoomPage = Schemas['RoomPage'];
export type RoomEnded = Schemas['RoomEnded'];
export type ConsentVersion = Schemas['ConsentVersion'];
export type SessionAttendance = Schemas['SessionAttendance'];
export type ParticipantAttendanceSummary = Schemas['ParticipantAttendanceSummary'];
export type WeeklyTotal = Schemas['WeeklyTotal'];
export type WebhookEndpoints = Schemas['WebhookEndpoints'];
export type DeliveryPage = Schemas['DeliveryPage'];
export type Delivery = Schemas['Delivery'];
export type DeliveryStatus = Schemas['Delivery']['status'];
export type Health = Schemas['Health'];
export type Readiness = Schemas['Readiness'];

type Method = 'get' | 'post' | 'put';
type Operation<P extends keyof paths, M extends Method> = NonNullable<paths[P][M]>;
type JsonOf<R> = R extends { content: { 'application/json': infer T } } ? T : never;
type SuccessOf<O> = O extends { responses: infer R } ? JsonOf<R[Extract<keyof R, 200 | 201>]> : never;
/** The `data` of a route's successful answer, as the description gives it. */
type DataOf<P extends keyof paths, M extends Method> =
  Extract<SuccessOf<Operation<P, M>>, { ok: true }> extends { data: infer D } ? D : never;
type BodyOf<P extends keyof paths, M extends Method> =
  Operation<P, M> extends {
    requestBody: { content: { 'application/json': infer B } };
  }
    ? B
    : never;
type QueryOf<P extends keyof paths, M extends Method> =
  Operation<P, M> extends { parameters: { query?: infer Q } } ? Q : never;

/** Each method's route: a unit test holds this table to the description's routes, both ways. */
export const adminRoutes = {
  createRoom: 'POST /v1/rooms',
  listRooms: 'GET /v1/rooms',
  getRoom: 'GET /v1/rooms/{id}',
  endRoom: 'POST /v1/rooms/{id}/end',
  setConsent: 'PUT /v1/rooms/{id}/consent',
  roomAttendance: 'GET /v1/rooms/{id}/attendance',
  roomAttendanceCsv: 'GET /v1/rooms/{id}/attendance',
  participantAttendance: 'GET /v1/participants/{id}/attendance',
  webhookEndpoints: 'GET /v1/webhooks/endpoints',
  webhookDeliveries: 'GET /v1/webhooks/deliveries',
  health: 'GET /healthz',
  readiness: 'GET /readyz',
} as const satisfies Record<string, `${Uppercase<Method>} ${keyof paths}`>;

export interface HavenAdminOptions {
  /** The node's base URL, e.g. `https://haven.example-clinic.org` (any node of a cluster answers). Required. */
  url: string;
  /** `HAVEN_ADMIN_API_KEY`, sent as `Authorization: Bearer …`. Required. */
  apiKey: string;
  /** The `fetch` to call with. Default: the global `fetch` (Node 20+). */
  fetch?: typeof fetch;
  /** Per call, in ms; a call that takes longer throws `TIMEOUT`. Default 10000. */
  timeoutMs?: number;
}

interface Call {
  path: Record<string, string>;
  query: Record<string, string | number | undefined>;
  body: unknown;
  accept: string;
  /** Statuses whose body is the answer itself, not `{ ok, data }` (`/readyz` answers 503 when not ready). */
  bare: boolean;
}

export class HavenAdmin {
  readonly #url: URL;
  readonly #apiKey: string;
  readonly #fetch: typeof fetch;
  readonly #timeoutMs: number;

  constructor(options: HavenAdminOptions) {
    const { url, apiKey, fetch: fetchFn = globalThis.fetch, timeoutMs = 10_000 } = options ?? {};
    if (typeof url !== 'string' || !/^https?:\/\//.test(url)) throw new TypeError('url must be an http(s) URL');
    if (typeof apiKey !== 'string' || apiKey === '') throw new TypeError('apiKey must be a non-empty string');
    if (typeof fetchFn !== 'function') throw new TypeError('fetch must be a function (Node 20+ has one)');
    if (!(Number.isInteger(timeoutMs) && timeoutMs > 0)) throw new TypeError('timeoutMs must be a positive integer');
    this.#url = new URL(url.endsWith('/') ? url : `${url}/`);
    this.#apiKey = apiKey;
    this.#fetch = fetchFn;
    this.#timeoutMs = timeoutMs;
  }

  /** Creates a room; an id already taken is refused (HTTP 409). */
  createRoom(room: BodyOf<'/v1/rooms', 'post'>): Promise<DataOf<'/v1/rooms', 'post'>> {
    return this.#call(adminRoutes.createRoom, { body: room });
  }

  /** A page of rooms, newest first; pass `nextCursor` back as `cursor` for the next one. */
  listRooms(query: QueryOf<'/v1/rooms', 'get'> = {}): Promise<DataOf<'/v1/rooms', 'get'>> {
    return this.#call(adminRoutes.listRooms, { query });
  }

  /** The room, with `live` while its session is open (else `live: null`). */
  getRoom(id: string): Promise<DataOf<'/v1/rooms/{id}', 'get'>> {
    return this.#call(adminRoutes.getRoom, { path: { id } });
  }

  /** Ends the session for everyone; nobody joins it again. */
  endRoom(id: string): Promise<DataOf<'/v1/rooms/{id}/end', 'post'>> {
    return this.#call(adminRoutes.endRoom, { path: { id } });
  }

  /** A new version of the room's consent text; participants accept it again. */
  setConsent(id: string, text: string): Promise<DataOf<'/v1/rooms/{id}/consent', 'put'>> {
    return this.#call(adminRoutes.setConsent, { path: { id }, body: { text } });
  }

  /** The room's latest computed attendance. */
  roomAttendance(id: string): Promise<DataOf<'/v1/rooms/{id}/attendance', 'get'>> {
    return this.#call(adminRoutes.roomAttendance, { path: { id } });
  }

  /** The same attendance as CSV (RFC 4180, header row first). */
  roomAttendanceCsv(id: string): Promise<string> {
    return this.#call(adminRoutes.roomAttendanceCsv, { path: { id }, accept: 'text/csv' });
  }

  /** A participant's sessions in `[from, to)` and ISO weekly totals, the weekly threshold flagged. */
  participantAttendance(
    id: string,
    query: QueryOf<'/v1/participants/{id}/attendance', 'get'>,
  ): Promise<DataOf<'/v1/participants/{id}/attendance', 'get'>> {
    return this.#call(adminRoutes.participantAttendance, { path: { id }, query });
  }

  /** The configured endpoints, each with its deliveries per status. */
  webhookEndpoints(): Promise<DataOf<'/v1/webhooks/endpoints', 'get'>> {
    return this.#call(adminRoutes.webhookEndpoints, {});
  }

  /** Webhook deliveries, newest event first, optionally of one `status`; a page at a time. */
  webhookDeliveries(
    query: QueryOf<'/v1/webhooks/deliveries', 'get'> = {},
  ): Promise<DataOf<'/v1/webhooks/deliveries', 'get'>> {
    return this.#call(adminRoutes.webhookDeliveries, { query });
  }

  /** `GET /healthz` (no key needed): the process answers. */
  health(): Promise<Health> {
    return this.#call(adminRoutes.health, { bare: true });
  }

  /** `GET /readyz`: whether the node takes sessions; answered also when not ready (HTTP 503). */
  readiness(): Promise<Readiness> {
    return this.#call(adminRoutes.readiness, { bare: true });
  }

  async #call<T>(route: string, given: Partial<Call>): Promise<T> {
    const { path = {}, query = {}, body, accept = 'application/json', bare = false } = given;
    const [method, template] = route.split(' ') as [string, string];
    const url = new URL(
      template.slice(1).replace(/\{(\w+)\}/g, (_, name: string) => {
        const value = path[name];
        if (typeof value !== 'string' || value === '') throw new TypeError(`${name} must be a non-empty string`);
        return encodeURIComponent(value);
      }),
      this.#url,
    );
    for (const [name, value] of Object.entries(query))
      if (value !== undefined) url.searchParams.set(name, String(value));
    const headers: Record<string, string> = { authorization: `Bearer ${this.#apiKey}`, accept };
    if (body !== undefined) headers['content-type'] = 'application/json';

    let res: Response;
    try {
      res = await this.#fetch(url, {
        method,
        headers,
        body: body === undefined ? null : JSON.stringify(body),
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
    } catch (err) {
      const timedOut = (err as Error).name === 'TimeoutError';
      const code: ClientErrorCode = timedOut ? 'TIMEOUT' : 'NETWORK_ERROR';
      const message = timedOut
        ? `no answer within ${this.#timeoutMs} ms`
        : `${method} ${url.pathname}: ${(err as Error).message}`;
      throw new HavenApiError(code, 0, message, { cause: err });
    }
    const text = await res.text();
    if (res.ok && accept === 'text/csv') return text as T;
    const answer = parseJson(text);
    if (bare && answer !== undefined && (res.ok || res.status === 503) && !('ok' in answer)) return answer as T;
    if (res.ok && answer?.ok === true && 'data' in answer) return answer.data as T;
    const error = answer?.ok === false ? (answer.error as Record<string, unknown> | undefined) : undefined;
    if (typeof error?.code === 'string' && typeof error.message === 'string') {
      throw new HavenApiError(error.code as HavenErrorCode, res.status, error.message, {
        ...(typeof error.errorId === 'string' ? { errorId: error.errorId } : {}),
        ...(typeof error.retryAfterMs === 'number' ? { retryAfterMs: error.retryAfterMs } : {}),
      });
    }
    throw new HavenApiError(
      'UNEXPECTED_ANSWER',
      res.status,
      `${method} ${url.pathname} answered HTTP ${res.status} without Haven's JSON`,
    );
  }
}

function parseJson(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return value !== null && typeof value === 'object' && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}
