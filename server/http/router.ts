/**
 * Haven's HTTP routes, matched by find-my-way: one handler per method and path (`:name` for a
 * param, `*` for the rest of a path). A method or path that no route serves answers a coded 404
 * `NOT_FOUND`, as Haven always has (never 405).
 */
import { type IncomingMessage, METHODS, type ServerResponse } from 'node:http';
import Router from 'find-my-way';
import { sendError } from './json.ts';

export type HttpMethod = Router.HTTPMethod;

/** Every method Node's HTTP parser lets through (find-my-way knows the same list). */
export const everyMethod = METHODS as readonly HttpMethod[];

export interface RouteRequest {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  /** The path's params as sent, still percent-encoded: the route's schema decodes them. */
  params: Readonly<Record<string, string | undefined>>;
}

export type RouteHandler = (request: RouteRequest) => void;

/** A group of routes (the admin API, the demo), added to the app's router. */
export type RouteSet = (router: HttpRouter) => void;

/** The answer when no route serves a request: the method and the path as sent. */
export function noRouteMessage(method: string | undefined, path: string): string {
  return `no route for ${method} ${path}`;
}

/**
 * find-my-way percent-decodes a path before it matches it; Haven matches the path as sent (a
 * percent-encoded letter is not that letter). Escaping `%` makes the router match the path as it
 * came, and hand each param back as it came.
 */
const asSent = (path: string) => (path.includes('%') ? path.replaceAll('%', '%25') : path);

type RouterHandler = Router.Handler<Router.HTTPVersion.V1>;

export class HttpRouter {
  // No limit of the router's own on a param's length: the params' schemas have theirs.
  readonly #router = Router({ maxParamLength: Number.POSITIVE_INFINITY });

  on(method: HttpMethod | readonly HttpMethod[], path: string, handler: RouteHandler): void {
    // Only find() is used, never lookup(): the handler is called with Haven's own arguments.
    this.#router.on(method as HttpMethod[], path, handler as unknown as RouterHandler);
  }

  add(routes: RouteSet): void {
    routes(this);
  }

  /** Runs the request's route, or answers NOT_FOUND. A handler's synchronous throw is the caller's. */
  serve(req: IncomingMessage, res: ServerResponse, url: URL): void {
    const match = this.#router.find(req.method as HttpMethod, asSent(url.pathname));
    if (!match) {
      sendError(res, { code: 'NOT_FOUND', message: noRouteMessage(req.method, url.pathname) });
      return;
    }
    (match.handler as unknown as RouteHandler)({ req, res, url, params: match.params });
  }
}
