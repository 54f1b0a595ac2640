/**
 * When a dropped client tries again. A {@link ReconnectPolicy} paces the attempts and may give up;
 * the SDK bounds every policy by the server's grace window (reconnect-deadline.ts) and stops at a
 * refusal that retrying cannot fix. The default, {@link BackoffReconnectPolicy}: capped
 * exponential backoff with full jitter, a refusal's `retryAfterMs` waited exactly.
 */
import { HavenRequestError } from '../errors.ts';

/** Options of the default reconnection policy ({@link BackoffReconnectPolicy}); every field is optional. */
export interface ReconnectOptions {
  /**
   * Most reconnection attempts after a drop. Default `Infinity`: the SDK keeps trying until the
   * server's grace window (`reconnectGraceMs` of the join answer) has passed since the drop, after
   * which the server has given the place away and the client closes with reason `'reconnectFailed'`
   * and a `HavenRequestError` of code `GRACE_EXPIRED`. No wait between attempts runs past the window.
   */
  maxAttempts?: number;
  /** Base of the exponential backoff, in ms. Default `500`. */
  baseDelayMs?: number;
  /** Cap of the backoff, in ms. Default `5000`. */
  maxDelayMs?: number;
}

export const defaultReconnectOptions: Readonly<Required<ReconnectOptions>> = Object.freeze({
  maxAttempts: Number.POSITIVE_INFINITY,
  baseDelayMs: 500,
  maxDelayMs: 5_000,
});

/**
 * Delay before reconnection attempt `attempt` (0 for the first): uniform in
 * `[0, min(maxDelayMs, baseDelayMs * 2^attempt))` ("full jitter", so that the clients of a room
 * that dropped together do not come back together).
 *
 * @param random - source of randomness in `[0, 1)`; default `Math.random`.
 */
export function backoffDelay(
  attempt: number,
  options: { baseDelayMs: number; maxDelayMs: number },
  random: () => number = Math.random,
): number {
  if (!Number.isInteger(attempt) || attempt < 0) throw new TypeError('attempt must be a non-negative integer');
  const cap = Math.min(options.maxDelayMs, options.baseDelayMs * 2 ** attempt);
  return Math.floor(random() * cap);
}

/** What a {@link ReconnectPolicy} is told when asked for the next wait. */
export interface ReconnectContext {
  /** Attempts made since the drop (0 before the first). */
  readonly attempt: number;
  /** Ms since the drop. */
  readonly elapsedMs: number;
  /** The server's grace window in ms, counted from the drop: the place is given away after it. */
  readonly graceMs: number;
  /** Why the last attempt failed (undefined before the first). */
  readonly lastError: Error | undefined;
}

/**
 * Paces reconnection after a drop (pass one as `reconnect` in {@link SessionClientOptions}).
 * Whatever it answers, no wait runs past the server's grace window (the client then closes with
 * `GRACE_EXPIRED`), and a refusal that retrying cannot fix (`FORBIDDEN`, `ROOM_LOCKED`,
 * `NOT_FOUND`, …) closes the client without asking it.
 */
export interface ReconnectPolicy {
  /**
   * Ms to wait before the next attempt, or `null` to give up (the client closes with reason
   * `reconnectFailed` and the last attempt's error).
   */
  nextRetryDelayMs(context: ReconnectContext): number | null;
}

/** The default policy: full-jitter backoff ({@link backoffDelay}), `retryAfterMs` waited exactly, `maxAttempts`. */
export class BackoffReconnectPolicy implements ReconnectPolicy {
  readonly #options: Required<ReconnectOptions>;

  /**
   * @param options - the defaults fill in what is missing.
   * @throws TypeError naming the first bad option.
   */
  constructor(options: ReconnectOptions = {}) {
    const maxAttempts = options.maxAttempts ?? defaultReconnectOptions.maxAttempts;
    const baseDelayMs = options.baseDelayMs ?? defaultReconnectOptions.baseDelayMs;
    const maxDelayMs = options.maxDelayMs ?? defaultReconnectOptions.maxDelayMs;
    if (
      typeof maxAttempts !== 'number' ||
      !(maxAttempts === Number.POSITIVE_INFINITY || (Number.isInteger(maxAttempts) && maxAttempts >= 0))
    ) {
      throw new TypeError('reconnect.maxAttempts must be a non-negative integer or Infinity');
    }
    for (const [name, value] of [
      ['baseDelayMs', baseDelayMs],
      ['maxDelayMs', maxDelayMs],
    ] as const) {
      if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
        throw new TypeError(`reconnect.${name} must be a positive number of ms`);
      }
    }
    if (maxDelayMs < baseDelayMs) throw new TypeError('reconnect.maxDelayMs must not be below reconnect.baseDelayMs');
    this.#options = { maxAttempts, baseDelayMs, maxDelayMs };
  }

  nextRetryDelayMs({ attempt, lastError }: ReconnectContext): number | null {
    if (attempt >= this.#options.maxAttempts) return null;
    // A room between nodes: the refusal says when it will be served again.
    const retryAfterMs = lastError instanceof HavenRequestError ? lastError.retryAfterMs : undefined;
    return retryAfterMs ?? backoffDelay(attempt, this.#options);
  }
}
