/**
 * The node's HTTP surface: `GET /healthz` (the process answers), `GET /readyz` (Redis answers and
 * at least one media worker is alive; 503 otherwise, with what is missing), the admin API under
 * `/v1/`, and the demo app under `/demo` when enabled. socket.io answers its own path first.
 */
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { type AdminDeps, handleAdmin } from './admin.ts';
import { sendJson } from './json.ts';

export interface Readiness {
  ready: boolean;
  redis: boolean;
  workers: number;
}

export interface HttpAppDeps {
  readiness(): Promise<Readiness>;
  admin: AdminDeps;
  /** Handles `/demo…` when the demo is enabled; returns false for other paths. */
  demo?: (req: IncomingMessage, res: ServerResponse, url: URL) => boolean;
}

export function createHttpApp(deps: HttpAppDeps): RequestListener {
  return (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = url.pathname;
    if (path === '/healthz' && req.method === 'GET') return sendJson(res, 200, { status: 'ok' });
    if (path === '/readyz' && req.method === 'GET') {
      deps.readiness().then(
        (r) => sendJson(res, r.ready ? 200 : 503, { status: r.ready ? 'ready' : 'not ready', ...r }),
        () => sendJson(res, 503, { status: 'not ready', ready: false, redis: false, workers: 0 }),
      );
      return;
    }
    if (handleAdmin(deps.admin, req, res, url)) return;
    if (deps.demo?.(req, res, url)) return;
    sendJson(res, 404, { ok: false, error: { code: 'NOT_FOUND', message: `no route for ${req.method} ${path}` } });
  };
}
