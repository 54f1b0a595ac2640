/**
 * Until when a dropped client tries again. The server keeps the place for its grace window
 * (`reconnectGraceMs` of the join answer) counted from the drop: the SDK tries until that much
 * time has passed, never longer (the place is given away then) and never shorter (each wait is
 * cut to the time left, so a long backoff step cannot end the window early).
 */
import { HavenRequestError } from '../errors.ts';
import type { ReconnectPolicy } from './reconnect-policy.ts';

export class ReconnectDeadline {
  readonly #policy: ReconnectPolicy;
  readonly #graceMs: number;
  readonly #startedAt: number;
  readonly #now: () => number;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #attempt = 0;
  /** Ends the current `wait()` early. */
  #wake: (() => void) | undefined;

  /**
   * @param graceMs - the server's grace window, counted from now (the drop).
   * @param onExpired - called once when the window has passed, unless `stop()` came first.
   */
  constructor(policy: ReconnectPolicy, graceMs: number, onExpired: () => void, now: () => number = Date.now) {
    this.#policy = policy;
    this.#graceMs = graceMs;
    this.#now = now;
    this.#startedAt = now();
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      onExpired();
    }, graceMs);
  }

  /** Ms left in the window (0 once it has passed). */
  get remainingMs(): number {
    return Math.max(0, this.#startedAt + this.#graceMs - this.#now());
  }

  /** Whether the window is still open (`stop()` not called, time left). */
  get open(): boolean {
    return this.#timer !== undefined && this.remainingMs > 0;
  }

  /**
   * The wait before the next attempt, or `undefined` when the policy gives up. Never past the end
   * of the window: the last attempt starts before the place is given away.
   */
  nextDelay(lastError: Error | undefined): number | undefined {
    const elapsedMs = this.#now() - this.#startedAt;
    const delay = this.#policy.nextRetryDelayMs({
      attempt: this.#attempt,
      elapsedMs,
      graceMs: this.#graceMs,
      lastError,
    });
    if (delay === null) return undefined;
    this.#attempt++;
    return Math.min(Math.max(0, delay) || 0, this.remainingMs);
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
