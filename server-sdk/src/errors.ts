/** The errors the package throws: each carries a stable `code` to branch on, never a secret. */
import type { components } from './generated/openapi.ts';

/** The codes Haven's admin API answers with (`docs/openapi.json`, `ErrorAnswer`). */
export type HavenErrorCode = components['schemas']['ErrorAnswer']['error']['code'];

/** What the admin client adds: no answer at all, or one that is not Haven's JSON. */
export type ClientErrorCode = 'NETWORK_ERROR' | 'TIMEOUT' | 'UNEXPECTED_ANSWER';

/**
 * A failed admin API call. `code`, `status` and `message` are the server's (`{ ok: false, error }`);
 * `status` is 0 when no answer came (`NETWORK_ERROR`, `TIMEOUT`).
 */
export class HavenApiError extends Error {
  override readonly name = 'HavenApiError';
  readonly code: HavenErrorCode | ClientErrorCode;
  readonly status: number;
  /** With `INTERNAL`: the id of the node's log line about the fault. */
  readonly errorId: string | undefined;
  /** With `UNAVAILABLE`: when trying again makes sense, in ms. */
  readonly retryAfterMs: number | undefined;

  constructor(
    code: HavenErrorCode | ClientErrorCode,
    status: number,
    message: string,
    extra: { errorId?: string; retryAfterMs?: number; cause?: unknown } = {},
  ) {
    super(message, extra.cause === undefined ? undefined : { cause: extra.cause });
    this.code = code;
    this.status = status;
    this.errorId = extra.errorId;
    this.retryAfterMs = extra.retryAfterMs;
  }
}

export type WebhookErrorCode =
  /** A `Haven-Signature` or `Haven-Timestamp` header is absent or malformed. */
  | 'MISSING_SIGNATURE'
  /** The signature does not match the body and timestamp under this secret. */
  | 'INVALID_SIGNATURE'
  /** `Haven-Timestamp` is further from now than the tolerance: a replay, or a clock off. */
  | 'STALE_TIMESTAMP'
  /** Signed correctly, but the body is not a Haven event. */
  | 'INVALID_PAYLOAD';

/** A webhook delivery refused by `verifyWebhook`: answer it with 401 (400 for `INVALID_PAYLOAD`). */
export class HavenWebhookError extends Error {
  override readonly name = 'HavenWebhookError';
  readonly code: WebhookErrorCode;

  constructor(code: WebhookErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}
