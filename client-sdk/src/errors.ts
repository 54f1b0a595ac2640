/**
 * The SDK's errors. A bad argument is a plain `TypeError`; a call in the wrong state is an
 * {@link InvalidStateError}; anything the server refuses (and a request that got no answer) is a
 * {@link HavenRequestError} with a stable `code`.
 */
import type { ConsentInfo, ErrorCode } from './protocol/index.ts';

/**
 * Codes the SDK itself gives a {@link HavenRequestError} when the server could not answer:
 * - `TIMEOUT`: no answer within `requestTimeoutMs` (or no connection within `connectTimeoutMs`);
 * - `DISCONNECTED`: the server could not be reached, or the connection dropped before the answer;
 * - `DENIED`: a facilitator turned this client away from the waiting room (`join()` rejects with it);
 * - `TOKEN_UNAVAILABLE`: the `token` function threw, rejected or resolved to no token (`cause`
 *   holds what it threw), so no connection was attempted;
 * - `GRACE_EXPIRED`: the connection dropped and no reconnection got the place back within the
 *   server's grace window, counted from the drop (`cause` holds the last attempt's error).
 */
export type ClientErrorCode = 'TIMEOUT' | 'DISCONNECTED' | 'DENIED' | 'TOKEN_UNAVAILABLE' | 'GRACE_EXPIRED';

/**
 * A request the server refused (`code` from the protocol), that got no answer (`TIMEOUT`,
 * `DISCONNECTED`), a join a facilitator turned away (`DENIED`), a token that could not be had
 * (`TOKEN_UNAVAILABLE`), or a place lost after a drop (`GRACE_EXPIRED`).
 */
export class HavenRequestError extends Error {
  /** Stable code: one of the protocol's `errorCodes`, or a {@link ClientErrorCode}. */
  readonly code: ErrorCode | ClientErrorCode;
  /** The request that failed (`'connect'` for the connection handshake). */
  readonly request: string;
  /** With `REDIRECT`: the node serving the room (the SDK follows it by itself). */
  readonly url: string | undefined;
  /** With `UNAVAILABLE`: in how many ms trying again makes sense. */
  readonly retryAfterMs: number | undefined;
  /** With `INVALID_REQUEST` from `acceptConsent()`: the consent text in force (the SDK shows it as `consentRequired`). */
  readonly consent: ConsentInfo | undefined;
  /** With `INTERNAL` from the server: the id of the fault in the node's error log (quote it when reporting it). */
  readonly errorId: string | undefined;

  constructor(
    code: ErrorCode | ClientErrorCode,
    message: string,
    request: string,
    details: { url?: string; retryAfterMs?: number; consent?: ConsentInfo; errorId?: string } = {},
    cause?: unknown,
  ) {
    super(message);
    // The standard `cause` (ES2022), set by hand: the bundle targets ES2020.
    if (cause !== undefined) Object.defineProperty(this, 'cause', { value: cause, configurable: true, writable: true });
    this.name = 'HavenRequestError';
    this.code = code;
    this.request = request;
    this.url = details.url;
    this.retryAfterMs = details.retryAfterMs;
    this.consent = details.consent;
    this.errorId = details.errorId;
  }
}

/** A call made in a state that does not allow it (e.g. publishing before `join()`, or after `leave()`). */
export class InvalidStateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidStateError';
  }
}

/** Whether `error` says the connection went away (the request may be retried once reconnected). */
export function isConnectionLoss(error: unknown): boolean {
  return error instanceof HavenRequestError && (error.code === 'DISCONNECTED' || error.code === 'TIMEOUT');
}
