/** A raw socket.io client speaking Haven's protocol, for signaling tests (no media). */
import { io, type Socket } from 'socket.io-client';
import {
  type Ack,
  type ClientToServerEvents,
  type JoinResponse,
  type NotificationName,
  protocolVersion,
  type RequestName,
  type ResponseOf,
  type Role,
  type ServerNotifications,
  type ServerToClientEvents,
  type SessionState,
  socketPath,
} from '../../client-sdk/src/protocol/index.ts';
import { mintAccessToken } from '../../server-sdk/src/mint.ts';

export type TestSocket = Socket<ServerToClientEvents, ClientToServerEvents>;

export const testSecret = 'test-secret-for-haven-signaling-0123456789';
export const testAdminKey = 'test-admin-key-0123456789abcdef';

export function token(
  room: string,
  sub: string,
  role: Role = 'participant',
  extra: { ttlS?: number; caps?: object } = {},
): string {
  return mintAccessToken({
    secret: testSecret,
    issuer: 'haven',
    audience: 'haven',
    sub,
    name: `Name of ${sub}`,
    room,
    role,
    ...extra,
  });
}

/**
 * Connects to a node taking over a room whose node died: while the room is still held by the dead
 * node (a cluster layer refusing with `UNAVAILABLE`, or redirecting to the dead node, until its
 * lease runs out), tries again, for up to 20 s.
 */
export async function connectWhenServed(url: string, accessToken: string): Promise<TestSocket> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      return await connect(url, accessToken);
    } catch (err) {
      const code = (err as { data?: { code?: string } }).data?.code;
      if (Date.now() > deadline || (code !== 'UNAVAILABLE' && code !== 'REDIRECT')) throw err;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}

/** Connects; resolves once connected, rejects with the server's `{ code, message }` on refusal. */
export function connect(url: string, accessToken: unknown): Promise<TestSocket> {
  const socket: TestSocket = io(url, {
    path: socketPath,
    auth: { token: accessToken },
    transports: ['websocket'],
    reconnection: false,
    forceNew: true,
  });
  return new Promise((resolve, reject) => {
    socket.once('connect', () => resolve(socket));
    socket.once('connect_error', (err: Error & { data?: unknown }) => {
      socket.close();
      reject(Object.assign(new Error(err.message), { data: err.data }));
    });
  });
}

/** Sends a request (any payload, even a malformed one) and resolves with the acknowledgement. */
export function request<K extends RequestName>(
  socket: TestSocket,
  name: K,
  payload: unknown,
): Promise<Ack<ResponseOf<K>>> {
  return (socket.timeout(5_000) as unknown as Socket).emitWithAck(name, payload) as Promise<Ack<ResponseOf<K>>>;
}

/** The successful data of a request, or a thrown error naming the code. */
export async function ok<K extends RequestName>(socket: TestSocket, name: K, payload: unknown): Promise<ResponseOf<K>> {
  const ack = await request(socket, name, payload);
  if (!ack.ok) throw new Error(`${name} failed: ${ack.error.code} ${ack.error.message}`);
  return ack.data;
}

/** Sends `join` with this protocol's version; resolves with the stage it reached. */
export const joinAs = (socket: TestSocket): Promise<JoinResponse> => ok(socket, 'join', { protocolVersion });

/** The session state of a join that was admitted at once; throws on any other stage. */
export function admitted(response: JoinResponse): SessionState {
  if (response.stage !== 'admitted') throw new Error(`expected admitted, got ${response.stage}`);
  return response.session;
}

/** The code a request is refused with, or `'ok'`. */
export async function codeOf(socket: TestSocket, name: string, payload: unknown): Promise<string> {
  const res = await request(socket, name as RequestName, payload);
  return res.ok ? 'ok' : res.error.code;
}

type Listen = (event: string, listener: (...args: unknown[]) => void) => void;
const untyped = (socket: TestSocket) => socket as unknown as { on: Listen; once: Listen };

/** Resolves with the next notification `name` (within `timeoutMs`). */
export function next<K extends NotificationName>(
  socket: TestSocket,
  name: K,
  timeoutMs = 5_000,
): Promise<ServerNotifications[K]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${name} within ${timeoutMs} ms`)), timeoutMs);
    untyped(socket).once(name, (...args: unknown[]) => {
      clearTimeout(timer);
      resolve(args as ServerNotifications[K]);
    });
  });
}

/** Every notification `name` received from now on. */
export function collect<K extends NotificationName>(socket: TestSocket, name: K): ServerNotifications[K][] {
  const seen: ServerNotifications[K][] = [];
  untyped(socket).on(name, (...args: unknown[]) => {
    seen.push(args as ServerNotifications[K]);
  });
  return seen;
}

/** Calls the admin API; the answer's `data` is read loosely, as a clinic's backend would. */
export async function admin(url: string, method: string, path: string, body?: unknown, key = testAdminKey) {
  const res = await fetch(`${url}${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  return {
    status: res.status,
    // biome-ignore lint/suspicious/noExplicitAny: tests read whatever JSON the API answers.
    body: (await res.json()) as { ok: boolean; data?: any; error?: { code: string; message: string } },
  };
}

/**
 * Sends one raw socket.io packet as it is written on the wire (`2["name",…]` for an event,
 * `21["name",…]` for an event with ack id 1), bypassing the client library's own checks, as a
 * hostile client would.
 */
export function sendRawPacket(socket: TestSocket, packet: string): void {
  (socket.io.engine as unknown as { write(data: string): void }).write(packet);
}

export type ConnectOutcome =
  | { outcome: 'connected'; socket: TestSocket }
  | { outcome: 'refused'; error: { code?: string; message?: string } | undefined }
  | { outcome: 'closed'; reason: string; closeCode: number | undefined };

/** Connects and says what happened: connected, refused with the server's coded error, or closed. */
export function connectOutcome(url: string, auth: object): Promise<ConnectOutcome> {
  const socket: TestSocket = io(url, {
    path: socketPath,
    auth,
    transports: ['websocket'],
    reconnection: false,
    forceNew: true,
  });
  return new Promise((resolve) => {
    socket.once('connect', () => resolve({ outcome: 'connected', socket }));
    socket.once('connect_error', (err: Error & { data?: { code?: string; message?: string } }) => {
      socket.close();
      resolve({ outcome: 'refused', error: err.data });
    });
    socket.once('disconnect', (reason, description) => {
      socket.close();
      const context = (description as { context?: { code?: number } } | undefined)?.context;
      resolve({ outcome: 'closed', reason, closeCode: context?.code });
    });
  });
}
