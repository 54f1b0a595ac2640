/**
 * `GET /metrics`, the Prometheus text exposition: on the HTTP port behind its own bearer token
 * (`metrics.token`), or on a separate plain listener for a private network (`metrics.port`; the
 * token is asked there too when set). Unconfigured, no route serves it: 404, as for any path.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type Server as HttpServer, type IncomingMessage } from 'node:http';
import { answerFailure, HavenError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { sendError } from './json.ts';
import { HttpRouter, type RouteSet } from './router.ts';

export interface MetricsSource {
  readonly contentType: string;
  scrape(): Promise<string>;
}

export interface MetricsRouteDeps {
  metrics: MetricsSource;
  /** The bearer token a scrape must carry; none: the listener is private (a separate port). */
  token: string | undefined;
  logger: Logger;
}

/** Compares digests, so that neither the length nor the content leaks through timing. */
function tokenMatches(req: IncomingMessage, token: string): boolean {
  const header = req.headers.authorization ?? '';
  const given = header.startsWith('Bearer ') ? header.slice(7) : '';
  const digest = (s: string) => createHash('sha256').update(s).digest();
  return given !== '' && timingSafeEqual(digest(given), digest(token));
}

export function metricsRoutes(deps: MetricsRouteDeps): RouteSet {
  return (router) =>
    router.on('GET', '/metrics', ({ req, res }) => {
      if (deps.token !== undefined && !tokenMatches(req, deps.token)) {
        res.setHeader('www-authenticate', 'Bearer realm="metrics"');
        throw new HavenError('UNAUTHORIZED', 'missing or wrong metrics token');
      }
      deps.metrics.scrape().then(
        (text) => {
          res.writeHead(200, { 'content-type': deps.metrics.contentType, 'cache-control': 'no-store' });
          res.end(text);
        },
        (err) => sendError(res, answerFailure(err, deps.logger, { path: '/metrics' })),
      );
    });
}

/** The separate listener: `/metrics` only, every other path 404. */
export function createMetricsServer(deps: MetricsRouteDeps): HttpServer {
  const router = new HttpRouter();
  router.add(metricsRoutes(deps));
  return createServer((req, res) => {
    try {
      router.serve(req, res, new URL(req.url ?? '/', 'http://localhost'));
    } catch (err) {
      sendError(res, answerFailure(err, deps.logger, { path: '/metrics' }));
    }
  });
}
