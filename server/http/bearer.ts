/** The bearer tokens of the HTTP layer (the admin API key, the metrics token). */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

/**
 * Whether the request carries `Authorization: Bearer <expected>`. Digests are compared, so that
 * neither the length nor the content of the expected token leaks through timing.
 */
export function bearerMatches(req: IncomingMessage, expected: string): boolean {
  const header = req.headers.authorization ?? '';
  const given = header.startsWith('Bearer ') ? header.slice(7) : '';
  const digest = (s: string) => createHash('sha256').update(s).digest();
  return given !== '' && timingSafeEqual(digest(given), digest(expected));
}
