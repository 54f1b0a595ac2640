/**
 * Getting the place back after a drop: new connections paced by the {@link ReconnectPolicy}
 * until a rejoin gets an answer (admitted, consent or waiting), a refusal retrying cannot fix, the
 * policy gives up, or the server's grace window has passed since the drop (`GRACE_EXPIRED`; an
 * attempt still in flight then is dropped).
 */
import { HavenRequestError } from '../errors.ts';
import { fatalRejoinCodes } from '../protocol/index.ts';
import { toError } from '../session-events.ts';
import type { Signaling } from '../signaling.ts';
import { graceExpired, ReconnectDeadline } from './reconnect-deadline.ts';
import type { ReconnectPolicy } from './reconnect-policy.ts';

/** The reconnection window when the server did not announce one (`reconnectGraceMs`): its default. */
export const defaultGraceMs = 30_000;

/** What a {@link Reconnection} needs of the client it belongs to. */
export interface ReconnectionHost {
  /** Whether the client is still reconnecting (closing it, or getting the place back, ends the loop). */
  reconnecting(): boolean;
  /** A new connection (token, redirects), not yet the client's. */
  open(): Promise<Signaling>;
  /** Makes `signaling` the client's connection. */
  attach(signaling: Signaling): void;
  /** Rejoins on `signaling`, calling `answered()` as soon as the server answers (the place is back). */
  rejoin(signaling: Signaling, answered: () => void): Promise<void>;
  /** A failed attempt: `signaling` is closed, and no longer the client's if it was. */
  forget(signaling: Signaling): void;
  /** Whether a refusal could pass on a later attempt with a new token (the token is a function). */
  tokenRefreshes: boolean;
  /** Gives up: the client closes (`reconnectFailed`) with `error`. */
  fail(error: Error): void;
}

/** Whether `error` is a refusal that retrying cannot fix. */
export function isFatalRejoinError(error: unknown, tokenRefreshes: boolean): boolean {
  if (!(error instanceof HavenRequestError) || !(fatalRejoinCodes as readonly string[]).includes(error.code))
    return false;
  // A token function may mint a valid token next time.
  return !(error.code === 'UNAUTHORIZED' && tokenRefreshes);
}

export class Reconnection {
  readonly #host: ReconnectionHost;
  readonly #graceMs: number;
  readonly #deadline: ReconnectDeadline;
  #lastError: Error | undefined;

  /** @param graceMs - the window the server announced (0: not announced, {@link defaultGraceMs}). */
  constructor(policy: ReconnectPolicy, graceMs: number, host: ReconnectionHost) {
    this.#host = host;
    this.#graceMs = graceMs > 0 ? graceMs : defaultGraceMs;
    this.#deadline = new ReconnectDeadline(policy, this.#graceMs, () => this.#expire());
  }

  /** Runs the attempts; settles when the place is back or the client gave up (it never rejects). */
  async run(): Promise<void> {
    const deadline = this.#deadline;
    try {
      for (
        let delay = deadline.nextDelay(this.#lastError);
        delay !== undefined;
        delay = deadline.nextDelay(this.#lastError)
      ) {
        await deadline.wait(delay);
        if (!this.#host.reconnecting()) return;
        if (!deadline.open) return void this.#expire();
        try {
          await this.#attempt();
          return;
        } catch (error) {
          if (!this.#host.reconnecting()) return;
          this.#lastError = toError(error);
          if (isFatalRejoinError(error, this.#host.tokenRefreshes)) break;
        }
      }
      // The policy gave up (or a refusal cannot be overcome): the last attempt's error says why.
      this.#host.fail(
        this.#lastError ??
          new HavenRequestError(
            'DISCONNECTED',
            'the connection dropped and the reconnect policy made no attempt',
            'connect',
          ),
      );
    } finally {
      deadline.stop();
    }
  }

  /** One attempt: a new connection and a rejoin on it; once the server answers, the window no longer applies. */
  async #attempt(): Promise<void> {
    const signaling = await this.#host.open();
    if (!this.#host.reconnecting()) {
      signaling.close();
      return;
    }
    this.#host.attach(signaling);
    try {
      await this.#host.rejoin(signaling, () => this.#deadline.stop());
    } catch (error) {
      if (this.#host.reconnecting()) this.#host.forget(signaling);
      throw error;
    }
  }

  /** The client closed: no more attempts, no expiry. Idempotent. */
  stop(): void {
    this.#deadline.stop();
  }

  #expire(): void {
    if (this.#host.reconnecting()) this.#host.fail(graceExpired(this.#graceMs, this.#lastError));
  }
}
