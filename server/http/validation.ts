/** What the HTTP layer takes in (path params, query strings, bodies), through zod schemas. */
import { z } from 'zod';
import { idPattern } from '../../client-sdk/src/protocol/index.ts';
import { describeIssues, HavenError } from '../errors.ts';

/**
 * `value` as `schema` reads it; refused with `refusal`, by default INVALID_REQUEST naming the
 * first issues.
 */
export function parse<T>(
  schema: z.ZodType<T>,
  value: unknown,
  refusal: (error: z.ZodError) => HavenError = (error) => new HavenError('INVALID_REQUEST', describeIssues(error)),
): T {
  const result = schema.safeParse(value);
  if (!result.success) throw refusal(result.error);
  return result.data;
}

/** A query string's parameters; a repeated one counts once, by its last value. */
export function queryOf(url: URL): Record<string, string> {
  return Object.fromEntries(url.searchParams);
}

/**
 * An id in a path, as sent (percent-encoded), decoded. The app refuses a path that does not
 * decode before any route sees it.
 */
export const idParam = z.string().transform(decodeURIComponent).pipe(z.string().regex(idPattern));

/** An IANA time zone name that this runtime knows. */
export const timeZone = z.string().refine((zone) => {
  try {
    new Intl.DateTimeFormat('en', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}, 'not an IANA time zone');
