/**
 * The node's HTTP surface. For now: `GET /healthz` (the process answers) and `GET /readyz`
 * (Redis answers and at least one media worker is alive; 503 otherwise, with what is missing).
 */
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';

export interface Readiness {
  ready: boolean;
  redis: boolean;
  workers: number;
}

export interface HttpAppDeps {
  readiness(): Promise<Readiness>;
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(text);
}

export function createHttpApp(deps: HttpAppDeps): RequestListener {
  return (req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    if (path === '/healthz' && req.method === 'GET') return sendJson(res, 200, { status: 'ok' });
    if (path === '/readyz' && req.method === 'GET') {
      deps.readiness().then(
        (r) => sendJson(res, r.ready ? 200 : 503, { status: r.ready ? 'ready' : 'not ready', ...r }),
        () => sendJson(res, 503, { status: 'not ready', ready: false, redis: false, workers: 0 }),
      );
      return;
    }
    // socket.io answers its own path before this listener runs.
    sendJson(res, 404, { ok: false, error: { code: 'NOT_FOUND', message: `no route for ${req.method} ${path}` } });
  };
}
