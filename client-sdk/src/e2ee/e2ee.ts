/**
 * `client.e2ee`: end-to-end encryption as the app sees it. In a room created with `e2ee`, media
 * frames and chat are encrypted in the browser with keys the server never sees; this says whether
 * the client has the current key (`state`), which epoch it sends with, who leads the key
 * exchange, and the security code people compare to be sure nobody else is listening.
 */
import { TypedEmitter } from '../protocol/typed-emitter.ts';
import type { E2eeStats } from './e2ee-stats.ts';
import type { E2eeEvents, E2eeState, KeyExchange } from './key-exchange.ts';

export class E2ee extends TypedEmitter<E2eeEvents> {
  readonly #exchange: KeyExchange;

  /** @internal Made by the SessionClient. */
  constructor(exchange: KeyExchange) {
    super();
    this.#exchange = exchange;
    exchange.bind(this);
  }

  /** Whether the room this client is in is end-to-end encrypted. */
  get enabled(): boolean {
    return this.#exchange.enabled;
  }

  /**
   * `'off'`: not in an E2EE room; `'waiting'`: in one without the current key (nothing is sent,
   * remote tracks are received once a key is active); `'active'`: sending and receiving with `epoch`.
   */
  get state(): E2eeState {
    return this.#exchange.state;
  }

  /** The epoch this client encrypts with (null unless `state` is `'active'`). */
  get epoch(): number | null {
    return this.#exchange.epoch;
  }

  /**
   * 3 groups of 4 digits (e.g. `'4821 0937 5512'`) over the leader's public key and every
   * member's: the same on every screen in the room when nobody else holds the keys. Null when not
   * in an E2EE room (or before the roster names a leader).
   */
  get securityCode(): string | null {
    return this.#exchange.securityCode;
  }

  /** Whether this client leads the key exchange (makes and hands out each epoch's key). */
  get isLeader(): boolean {
    return this.#exchange.isLeader;
  }

  /** How many take part in the key exchange (this client included); 0 when not in an E2EE room. */
  get memberCount(): number {
    return this.#exchange.memberCount;
  }

  /** Frames encrypted, decrypted and failed, and the time spent, since the client joined (zeros without a worker). */
  getStats(): Promise<E2eeStats> {
    return this.#exchange.stats();
  }
}
