/** Reconnection delays: capped exponential backoff with full jitter. */

/** Reconnection policy of a {@link SessionClient}; every field is optional. */
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
