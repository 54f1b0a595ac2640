/**
 * The epoch secrets this client holds in one key space (KeyRings holds one per space): each
 * epoch's frame secret (the worker derives its frame key) and chat key (HKDF with another
 * `info`), the last few epochs kept so that frames and chat sent just before a switch still
 * decrypt, and the epoch the space sends with. The send epoch changes only when the server says
 * everyone has it (`e2eeEpochActive`).
 */
import { deriveChatKey } from './chat-crypto.ts';
import { KeyWaiters } from './key-waiters.ts';

/** Epochs kept for decryption (the newest ones, and the active one). */
export const retainedEpochs = 4;

interface Held {
  secret: Uint8Array;
  chatKey: Promise<CryptoKey> | undefined;
}

export class KeyRing {
  readonly #epochs = new Map<number, Held>();
  /** The epoch the room sends with, as last activated (its key may not be here). */
  #active: number | null = null;
  /** Waiting for an epoch's key to arrive (chat sent with a key not here yet). */
  readonly #waiters = new KeyWaiters();

  /**
   * Keeps `secret` as epoch `epoch`'s: `added`, `same` (held already), `replaced` (another secret
   * was held for that epoch: the leader's word wins, e.g. over one this client drew while it led
   * for a moment) or `stale` (older than every epoch kept: not kept).
   */
  install(epoch: number, secret: Uint8Array): 'added' | 'same' | 'replaced' | 'stale' {
    const held = this.#epochs.get(epoch);
    if (held && sameBytes(held.secret, secret)) return 'same';
    const kept = this.epochs();
    if (!held && kept.length >= retainedEpochs && epoch < (kept[kept.length - retainedEpochs] as number)) {
      return 'stale';
    }
    this.#epochs.set(epoch, { secret: secret.slice(), chatKey: undefined });
    this.#prune();
    this.#waiters.arrived(epoch);
    return held ? 'replaced' : 'added';
  }

  /** Forgets epoch `epoch` if it is still held with `secret` (a distribution the server refused). */
  forget(epoch: number, secret: Uint8Array): boolean {
    const held = this.#epochs.get(epoch);
    if (!held || !sameBytes(held.secret, secret)) return false;
    this.#epochs.delete(epoch);
    return true;
  }

  /** Forgets epoch `epoch`, whatever its secret (it turned out to be another space's). */
  drop(epoch: number): void {
    this.#epochs.delete(epoch);
  }

  has(epoch: number): boolean {
    return this.#epochs.has(epoch);
  }

  /** Epochs held, oldest first. */
  epochs(): number[] {
    return [...this.#epochs.keys()].sort((a, b) => a - b);
  }

  /** Every epoch held with its secret, for the frame worker. */
  secrets(): { epoch: number; secret: Uint8Array }[] {
    return this.epochs().map((epoch) => ({ epoch, secret: (this.#epochs.get(epoch) as Held).secret }));
  }

  /** The room sends with `epoch` from now on; false if it is not newer than the active one. */
  activate(epoch: number): boolean {
    if (this.#active !== null && epoch <= this.#active) return false;
    this.#active = epoch;
    this.#prune();
    return true;
  }

  /** The epoch the room sends with (null before any activation). */
  get activeEpoch(): number | null {
    return this.#active;
  }

  /** The epoch to send with: the active one, if its key is here. */
  get sendEpoch(): number | null {
    return this.#active !== null && this.#epochs.has(this.#active) ? this.#active : null;
  }

  /** Epoch `epoch`'s chat key, if held. */
  chatKey(epoch: number): Promise<CryptoKey> | undefined {
    const held = this.#epochs.get(epoch);
    if (!held) return undefined;
    held.chatKey ??= deriveChatKey(held.secret);
    return held.chatKey;
  }

  /**
   * Epoch `epoch`'s chat key, waiting up to `timeoutMs` for it when it is newer than every epoch
   * held (its key may be on its way); undefined if it does not come.
   */
  async awaitChatKey(epoch: number, timeoutMs: number): Promise<CryptoKey | undefined> {
    const epochs = this.epochs();
    const newest = epochs[epochs.length - 1];
    if (!this.#epochs.has(epoch) && (newest === undefined || epoch > newest)) {
      await this.#waiters.wait(epoch, timeoutMs);
    }
    return this.chatKey(epoch);
  }

  /** Forgets every key (out of the room); whoever waits for one stops waiting. */
  clear(): void {
    this.#epochs.clear();
    this.#active = null;
    this.#waiters.endAll();
  }

  #prune(): void {
    const epochs = this.epochs();
    const keep = new Set(epochs.slice(-retainedEpochs));
    if (this.#active !== null) keep.add(this.#active);
    for (const epoch of epochs) {
      if (!keep.has(epoch)) this.#epochs.delete(epoch);
    }
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}
