/**
 * `GET /metrics`, the Prometheus text exposition: on the HTTP port behind its own bearer token
 * (`metrics.token`), or on a separate plain listener for a private network (`metrics.port`; the
 * token is asked there too when set). Unconfigured, no route serves it: 404, as for any path.
 */
import { createServer, type Server as HttpServer } from 'node:http';
import { answerFailure, HavenError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { bearerMatches } from './bearer.ts';
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

export function metricsRoutes(deps: MetricsRouteDeps): RouteSet {
  return (router) =>
    router.on('GET', '/metrics', ({ req, res }) => {
      if (deps.token !== undefined && !bearerMatches(req, deps.token)) {
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
