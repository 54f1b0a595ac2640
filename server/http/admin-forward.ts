/**
 * Calls that act on a live room (read it, end it, change its consent text) go to the node serving
 * it; the answer is passed back as it is. Marked, so that it is never forwarded twice.
 */

import { readBody } from './json.ts';
import type { RouteRequest } from './router.ts';

const forwardedHeader = 'haven-forwarded';
const forwardTimeoutMs = 10_000;

/**
 * Forwards the request to `owner` when the room is served by another node and the request did not
 * come from one; false when it is this node's to answer.
 */
export async function forwardToOwner(
  { req, res, url }: RouteRequest,
  owner: () => Promise<string | undefined>,
): Promise<boolean> {
  if (req.headers[forwardedHeader]) return false;
  const ownerUrl = await owner();
  if (!ownerUrl) return false;
  const body = req.method === 'GET' ? undefined : (await readBody(req)) || undefined;
  const answer = await fetch(new URL(url.pathname + url.search, ownerUrl), {
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
