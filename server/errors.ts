/**
 * Haven's coded errors. Anything the server refuses is a `HavenError` with a stable code from the
 * protocol; every failed request is answered `{ ok: false, error: { code, message } }`. Unexpected
 * errors become `INTERNAL`, with a message that reveals nothing of the server's insides and an
 * `errorId` that is also in the error's log line, so that an answer can be traced.
 */
import { randomBytes } from 'node:crypto';
import type { z } from 'zod';
import type { ConsentInfo, ErrorCode, ProtocolError } from '../client-sdk/src/protocol/index.ts';
import type { Logger } from './logger.ts';

export class HavenError extends Error {
  readonly code: ErrorCode;
  /** With `REDIRECT`: where to go. */
  readonly url: string | undefined;
  /** With `UNAVAILABLE`: when trying again makes sense, in ms. */
  readonly retryAfterMs: number | undefined;
  /** With `INVALID_REQUEST` to a stale consent: the text now in force. */
  readonly consent: ConsentInfo | undefined;
  constructor(
    code: ErrorCode,
    message: string,
    details: { url?: string; retryAfterMs?: number; consent?: ConsentInfo } = {},
  ) {
    super(message);
    this.name = 'HavenError';
    this.code = code;
    this.url = details.url;
    this.retryAfterMs = details.retryAfterMs;
    this.consent = details.consent;
  }
}

/** The protocol form of any error: its own code for a `HavenError`, `INTERNAL` for the rest. */
export function toProtocolError(err: unknown): ProtocolError {
  if (err instanceof HavenError) {
    const { code, message, url, retryAfterMs, consent } = err;
    return {
      code,
      message,
      ...(url === undefined ? {} : { url }),
      ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
      ...(consent === undefined ? {} : { consent }),
    };
  }
  return { code: 'INTERNAL', message: 'internal error; nothing was changed' };
}

/** A short random id tying an INTERNAL answer to its log line (12 characters, base64url). */
export function newErrorId(): string {
  return randomBytes(9).toString('base64url');
}

/**
 * The answer to a failure: a `HavenError` as its code; anything else is a fault of the server,
 * logged at error level with a fresh `errorId` (and `context`: ids only, never payloads), and
 * answered `INTERNAL` with that id.
 */
export function answerFailure(err: unknown, log: Logger, context: Record<string, unknown>): ProtocolError {
  const error = toProtocolError(err);
  if (error.code !== 'INTERNAL') return error;
  const errorId = newErrorId();
  log.error({ ...context, errorId, err }, 'unexpected failure');
  return { ...error, errorId };
}

/** HTTP status of each code, for the admin API. */
export const httpStatusOf: Record<ErrorCode, number> = {
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  INVALID_REQUEST: 400,
  NOT_FOUND: 404,
  ROOM_LOCKED: 423,
  ROOM_FULL: 409,
  RATE_LIMITED: 429,
  INVALID_STATE: 409,
  UNKNOWN_EVENT: 400,
  INTERNAL: 500,
  REDIRECT: 307,
  UNAVAILABLE: 503,
  PAYLOAD_TOO_LARGE: 413,
  TOO_MANY_CONNECTIONS: 429,
  E2EE_UNSUPPORTED: 403,
};

/**
 * A short description of what is wrong, naming fields but never echoing values. A payload that
 * may take several shapes (a union) is described by the shape it came closest to: the one whose
 * complaints reach deepest into the payload, then the one with the fewest.
 */
export function describeIssues(error: z.ZodError): string {
  return closest(error.issues)
    .slice(0, 3)
    .map((i) => `${i.path.join('.') || 'payload'}: ${i.message}`)
    .join('; ');
}

type Issue = z.ZodError['issues'][number];

function closest(issues: readonly Issue[], prefix: PropertyKey[] = []): Issue[] {
  return issues.flatMap((issue) => {
    const path = [...prefix, ...issue.path];
    if (issue.code !== 'invalid_union' || issue.errors.length === 0) return [{ ...issue, path }];
    const branches = issue.errors.map((branch) => closest(branch, path));
    const depth = (branch: Issue[]) => Math.max(...branch.map((i) => i.path.length));
    return branches.reduce((best, b) =>
      depth(b) > depth(best) || (depth(b) === depth(best) && b.length < best.length) ? b : best,
    );
  });
}
