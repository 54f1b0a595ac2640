/**
 * The keys of every key space this client is a member of: one KeyRing per space (the main room,
 * a breakout group), each with its own last epochs and its own active epoch. A participant holds
 * its own space's; a facilitator, a member of every space, holds them all, so that it decrypts
 * any group's frames and chat by the epoch they carry (epoch numbers are unique across the room).
 * It sends with the active epoch of its own space only; chat and broadcasts are sealed with a
 * space's send epoch and opened by the epoch they name.
 */
import { type ChatAddress, chatEpoch, decryptChat, encryptChat } from './chat-crypto.ts';
import { KeyRing } from './key-ring.ts';
import { KeyWaiters } from './key-waiters.ts';

/** A key space: null for the main room, else the breakout group's id. */
export type SpaceId = string | null;

export class KeyRings {
  readonly #rings = new Map<SpaceId, KeyRing>();
  /** Waiting for an epoch's key to arrive in any space (chat sent with a key not here yet). */
  readonly #waiters = new KeyWaiters();

  /** Keeps `secret` as epoch `epoch` of `space` (see `KeyRing.install`). */
  install(space: SpaceId, epoch: number, secret: Uint8Array): ReturnType<KeyRing['install']> {
    let ring = this.#rings.get(space);
    if (!ring) {
      ring = new KeyRing();
      this.#rings.set(space, ring);
    }
    const outcome = ring.install(epoch, secret);
    if (outcome === 'stale') return outcome;
    // An epoch names one space's key: never two secrets for it in two rings.
    for (const [other, held] of this.#rings) if (other !== space) held.drop(epoch);
    this.#waiters.arrived(epoch);
    return outcome;
  }

  /** Forgets epoch `epoch` if it is still held with `secret`, in whichever space (a distribution refused). */
  forget(epoch: number, secret: Uint8Array): boolean {
    return [...this.#rings.values()].some((ring) => ring.forget(epoch, secret));
  }

  /** `space` sends with `epoch` from now on; false if it is not newer than that space's active one. */
  activate(space: SpaceId, epoch: number): boolean {
    let ring = this.#rings.get(space);
    if (!ring) {
      ring = new KeyRing();
      this.#rings.set(space, ring);
    }
    return ring.activate(epoch);
  }

  /** The epoch to send with in `space`: its active one, if its key is here. */
  sendEpoch(space: SpaceId): number | null {
    return this.#rings.get(space)?.sendEpoch ?? null;
  }

  /** The spaces whose keys are held. */
  spaces(): SpaceId[] {
    return [...this.#rings.keys()];
  }

  /** Epochs held in every space, oldest first. */
  epochs(): number[] {
    return this.secrets().map((held) => held.epoch);
  }

  /** Every epoch held in every space with its secret, for the frame worker. */
  secrets(): { epoch: number; secret: Uint8Array }[] {
    return [...this.#rings.values()].flatMap((ring) => ring.secrets()).sort((a, b) => a.epoch - b.epoch);
  }

  /** Epoch `epoch`'s chat key, whichever space it is of, if held. */
  chatKey(epoch: number): Promise<CryptoKey> | undefined {
    for (const ring of this.#rings.values()) if (ring.has(epoch)) return ring.chatKey(epoch);
    return undefined;
  }

  /**
   * Epoch `epoch`'s chat key, waiting up to `timeoutMs` for it when it is newer than every epoch
   * held (its key may be on its way); undefined if it does not come.
   */
  async awaitChatKey(epoch: number, timeoutMs: number): Promise<CryptoKey | undefined> {
    const epochs = this.epochs();
    const newest = epochs[epochs.length - 1];
    if (!this.chatKey(epoch) && (newest === undefined || epoch > newest)) {
      await this.#waiters.wait(epoch, timeoutMs);
    }
    return this.chatKey(epoch);
  }

  /** `text` sealed with `space`'s send epoch, from and to `address`; undefined without that key. */
  seal(space: SpaceId, text: string, address: ChatAddress): Promise<string> | undefined {
    const epoch = this.sendEpoch(space);
    const key = epoch === null ? undefined : this.chatKey(epoch);
    return epoch === null || !key ? undefined : key.then((k) => encryptChat(k, epoch, text, address));
  }

  /** `text` opened by the epoch it names (waiting up to `timeoutMs` for a newer key), or null. */
  async open(text: string, address: ChatAddress, timeoutMs: number): Promise<string | null> {
    const epoch = chatEpoch(text);
    const key = epoch === undefined ? undefined : await this.awaitChatKey(epoch, timeoutMs);
    return key ? decryptChat(key, text, address) : null;
  }

  /** Forgets a space's keys (a group that ended, or that this client left). */
  drop(space: SpaceId): void {
    this.#rings.get(space)?.clear();
    this.#rings.delete(space);
  }

  /** Forgets every key (out of the room); whoever waits for one stops waiting. */
  clear(): void {
    for (const ring of this.#rings.values()) ring.clear();
    this.#rings.clear();
    this.#waiters.endAll();
  }
}
