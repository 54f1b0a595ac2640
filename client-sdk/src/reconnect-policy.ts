/**
 * When a dropped client tries again, and until when. The server keeps the place for its grace
 * window (`reconnectGraceMs` of the join answer) counted from the drop: the SDK tries until that
 * much time has passed, never longer (the place is given away then) and never shorter (each wait
 * is cut to the time left, so a long backoff step cannot end the window early).
 */
import { backoffDelay, type ReconnectOptions } from './backoff.ts';
import { HavenRequestError } from './errors.ts';

export class ReconnectDeadline {
  readonly #policy: Required<ReconnectOptions>;
  readonly #endsAt: number;
  readonly #now: () => number;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #attempt = 0;
  /** Ends the current `wait()` early. */
  #wake: (() => void) | undefined;

  /**
   * @param graceMs - the server's grace window, counted from now (the drop).
   * @param onExpired - called once when the window has passed, unless `stop()` came first.
   */
  constructor(
    policy: Required<ReconnectOptions>,
    graceMs: number,
    onExpired: () => void,
    now: () => number = Date.now,
  ) {
    this.#policy = policy;
    this.#now = now;
    this.#endsAt = now() + graceMs;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      onExpired();
    }, graceMs);
  }

  /** Ms left in the window (0 once it has passed). */
  get remainingMs(): number {
    return Math.max(0, this.#endsAt - this.#now());
  }

  /** Whether the window is still open (`stop()` not called, time left). */
  get open(): boolean {
    return this.#timer !== undefined && this.remainingMs > 0;
  }

  /**
   * The wait before the next attempt, or `undefined` when `maxAttempts` are used up. A refusal
   * with `retryAfterMs` (a room between nodes) is waited exactly; otherwise full-jitter backoff.
   * Never past the end of the window: the last attempt starts before the place is given away.
   */
  nextDelay(lastError: Error | undefined): number | undefined {
    if (this.#attempt >= this.#policy.maxAttempts) return undefined;
    const retryAfterMs = lastError instanceof HavenRequestError ? lastError.retryAfterMs : undefined;
    const delay = retryAfterMs ?? backoffDelay(this.#attempt, this.#policy);
    this.#attempt++;
    return Math.min(delay, this.remainingMs);
  }

  /** Resolves after `ms`, or at once when `stop()` is called. */
  wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        if (this.#wake === done) this.#wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#wake = done;
    });
  }

  /** The place was given back, or the client closed: the window no longer applies. Idempotent. */
  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#wake?.();
  }
}

/** The error a client closes with when the grace window passed without a rejoin. */
export function graceExpired(graceMs: number, lastError: Error | undefined): HavenRequestError {
  const why = lastError ? ` (last attempt: ${lastError.message})` : '';
  return new HavenRequestError(
    'GRACE_EXPIRED',
    `no reconnection within the server's ${graceMs} ms grace window${why}`,
    'connect',
    {},
    lastError,
  );
}
