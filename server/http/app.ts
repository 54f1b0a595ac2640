/**
 * The node's HTTP surface: `GET /healthz` (the process answers), `GET /readyz` (Redis answers and
 * at least one media worker is alive; 503 otherwise, with what is missing), the admin API under
 * `/v1/`, and the demo app under `/demo` when enabled. socket.io answers its own path first.
 *
 * Every request runs inside one guard: a route that throws answers 500 `INTERNAL` with an
 * `errorId` that is in the log, and the server goes on serving.
 */
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { answerFailure, HavenError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { type AdminDeps, adminRoutes } from './admin.ts';
import { sendError, sendJson } from './json.ts';
import { HttpRouter, type RouteSet } from './router.ts';

export interface Readiness {
  ready: boolean;
  redis: boolean;
  workers: number;
  /** The node is shutting down: its rooms are moving to other nodes. */
  draining: boolean;
}

export interface HttpAppDeps {
  readiness(): Promise<Readiness>;
  admin: AdminDeps;
  /** `GET /metrics`, when it is served on this port (server/http/metrics-route.ts). */
  metrics?: RouteSet;
  /** The demo's routes (`/demo…`), when the demo is enabled. */
  demo?: RouteSet;
  /** Where faults are logged; the admin API's logger when absent. */
  logger?: Logger;
}

export function createHttpApp(deps: HttpAppDeps): RequestListener {
  const log = (deps.logger ?? deps.admin.logger).child({ component: 'http' });
  const fail = (res: ServerResponse, err: unknown, path: string) => sendError(res, answerFailure(err, log, { path }));
  const router = new HttpRouter();
  router.on('GET', '/healthz', ({ res }) => sendJson(res, 200, { status: 'ok' }));
  router.on('GET', '/readyz', ({ res }) => {
    deps.readiness().then(
      (r) => sendJson(res, r.ready ? 200 : 503, { status: r.ready ? 'ready' : 'not ready', ...r }),
      () => sendJson(res, 503, { status: 'not ready', ready: false, redis: false, workers: 0, draining: false }),
    );
  });
  router.add(adminRoutes(deps.admin));
  if (deps.metrics) router.add(deps.metrics);
  if (deps.demo) router.add(deps.demo);
  return (req: IncomingMessage, res: ServerResponse) => {
    let path = '?';
    try {
      const url = requestUrl(req);
      path = url.pathname;
      router.serve(req, res, url);
    } catch (err) {
      try {
        fail(res, err, path);
      } catch {
        res.destroy();
      }
    }
  };
}

/** The request's URL, refused with INVALID_REQUEST when it cannot be parsed or percent-decoded. */
function requestUrl(req: IncomingMessage): URL {
  let url: URL;
  try {
    url = new URL(req.url ?? '/', 'http://localhost');
    decodeURIComponent(url.pathname);
  } catch {
    throw new HavenError('INVALID_REQUEST', 'malformed URL');
  }
  return url;
}

/** Statuses of requests Node's HTTP parser refuses before any route sees them. */
const parserStatus: Record<string, [number, string]> = {
  HPE_HEADER_OVERFLOW: [431, 'Request Header Fields Too Large'],
  ERR_HTTP_REQUEST_TIMEOUT: [408, 'Request Timeout'],
};

/**
 * The server's `clientError` listener: a request the HTTP parser refuses (malformed, headers over
 * 16 KiB, too slow) is answered in JSON with a code too, then the connection is closed.
 */
export function answerClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  const [status, reason] = parserStatus[err.code ?? ''] ?? [400, 'Bad Request'];
  const body = JSON.stringify({ ok: false, error: { code: 'INVALID_REQUEST', message: 'malformed HTTP request' } });
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json; charset=utf-8\r\n` +
      `content-length: ${Buffer.byteLength(body)}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n${body}`,
  );
}
