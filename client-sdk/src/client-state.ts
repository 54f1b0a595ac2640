/** @internal A SessionClient's {@link ConnectionState}: each change emitted, and calls checked against it. */
import type { ClientContext } from './client-context.ts';
import { InvalidStateError } from './errors.ts';
import type { ConnectionState, SessionEvents } from './session-events.ts';

export class ClientState {
  readonly #events: SessionEvents;
  #state: ConnectionState = 'disconnected';

  constructor(events: SessionEvents) {
    this.#events = events;
  }

  get current(): ConnectionState {
    return this.#state;
  }

  /** Whether the state is one of `states`. */
  is(...states: ConnectionState[]): boolean {
    return states.includes(this.#state);
  }

  /** Enters `state`, emitting `connectionStateChanged` if it is a change. */
  set(state: ConnectionState): void {
    const previous = this.#state;
    if (previous === state) return;
    this.#state = state;
    this.#events.safeEmit('connectionStateChanged', state, previous);
  }

  /** What the parts of the client see of it (see {@link ClientContext}). */
  accessors(): Pick<ClientContext, 'state' | 'setState' | 'assertState'> {
    return {
      state: () => this.#state,
      setState: (state) => this.set(state),
      assertState: (what, ...allowed) => this.assert(what, ...allowed),
    };
  }

  /** Throws an `InvalidStateError` naming `what` unless the state is one of `allowed`. */
  assert(what: string, ...allowed: ConnectionState[]): void {
    if (allowed.includes(this.#state)) return;
    if (this.#state === 'closed') throw new InvalidStateError(`${what}: this client is closed; create a new one`);
    throw new InvalidStateError(`${what} needs the state ${allowed.join(' or ')}, not '${this.#state}'`);
  }
}
