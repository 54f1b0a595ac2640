/**
 * The key leader's duties in one key space (the main room, or a breakout group): on each roster
 * revision where this client leads, and every `rotationIntervalMs` while it does, a new epoch
 * (above every epoch seen), its secret wrapped for every other member it can see
 * (`e2eeDistribute`, naming the space). A member whose public key does not import is skipped (it
 * gets no key). Distributions run one at a time, across every space this client leads (each draws
 * its epoch above the last); revisions that arrive meanwhile are folded into one more distribution.
 */
import type { E2eeDistributeRequest, E2eeDistributeResponse, E2eeRoster } from '../protocol/index.ts';
import { maxE2eeRecipients } from '../protocol/index.ts';
import { newEpochSecret, wrapEpochSecret } from './epoch-secret.ts';
import { importPublicKey } from './key-pair.ts';

/** What a {@link KeyLeader} needs of the key exchange it belongs to. */
export interface KeyLeaderHost {
  /** The roster now, if this client leads it (else the leader stands down). */
  led(): { roster: E2eeRoster; selfId: string; roomId: string } | undefined;
  privateKey(): Promise<CryptoKey>;
  /** The highest epoch seen so far (relayed, received, activated or distributed). */
  highestEpoch(): number;
  /** Keeps this client's own copy of the new epoch before it is distributed. */
  install(epoch: number, secret: Uint8Array): void;
  /** Drops that copy again, unless another secret has replaced it: the server refused the distribution. */
  forget(epoch: number, secret: Uint8Array): void;
  distribute(request: E2eeDistributeRequest): Promise<E2eeDistributeResponse>;
  /** Runs `task` once every distribution before it, for any space, is answered. */
  serialize(task: () => Promise<void>): Promise<void>;
  onError(error: unknown): void;
}

/** Refused epochs retried in a row before waiting for the next roster. */
const maxRefusals = 3;

export class KeyLeader {
  readonly #host: KeyLeaderHost;
  /** Public keys imported, by their base64 form (undefined: not a P-256 point). */
  readonly #imported = new Map<string, Promise<CryptoKey | undefined>>();
  #wanted = false;
  #running: Promise<void> | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #stopped = false;
  /** Distributions refused in a row for their epoch (INVALID_STATE). */
  #refusals = 0;

  constructor(host: KeyLeaderHost) {
    this.#host = host;
  }

  /** A new epoch is due (a roster revision this client leads, or the rotation timer). */
  rotate(): Promise<void> {
    this.#stopped = false;
    this.#wanted = true;
    this.#running ??= this.#run().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  /** Not the leader (any more), or out of the room: no timer, nothing pending. */
  stop(): void {
    this.#stopped = true;
    this.#wanted = false;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  async #run(): Promise<void> {
    while (this.#wanted && !this.#stopped) {
      this.#wanted = false;
      if (!this.#host.led()) return;
      try {
        await this.#host.serialize(async () => {
          const led = this.#host.led();
          if (led && !this.#stopped) await this.#distribute(led);
        });
      } catch (error) {
        this.#host.onError(error);
      }
    }
  }

  async #distribute({ roster, selfId, roomId }: { roster: E2eeRoster; selfId: string; roomId: string }): Promise<void> {
    clearTimeout(this.#timer);
    const epoch = Math.max(roster.epoch, this.#host.highestEpoch()) + 1;
    const secret = newEpochSecret();
    const privateKey = await this.#host.privateKey();
    const keys: E2eeDistributeRequest['keys'] = [];
    for (const member of roster.members) {
      const { participantId } = member;
      if (participantId === null || participantId === selfId || keys.length >= maxE2eeRecipients) continue;
      const publicKey = await this.#import(member.publicKey);
      if (!publicKey) continue;
      const binding = { roomId, epoch, recipientId: participantId };
      keys.push({ participantId, wrapped: await wrapEpochSecret(secret, privateKey, publicKey, binding) });
    }
    // A newer revision meanwhile (someone left?): its own distribution runs next, without them.
    if (this.#stopped || this.#host.led()?.roster !== roster) return;
    this.#host.install(epoch, secret);
    this.#schedule(roster.rotationIntervalMs);
    try {
      await this.#host.distribute({ epoch, keys, breakoutId: roster.breakoutId ?? null });
      this.#refusals = 0;
    } catch (error) {
      this.#host.forget(epoch, secret);
      // INVALID_STATE: another leader took this epoch in a race (after a failover, say): the
      // next attempt goes above it, a few times at most. FORBIDDEN: no longer the leader.
      const code = (error as { code?: unknown })?.code;
      if (code !== 'INVALID_STATE' || ++this.#refusals > maxRefusals) throw error;
      this.#wanted = true;
    }
  }

  #import(publicKey: string): Promise<CryptoKey | undefined> {
    let imported = this.#imported.get(publicKey);
    if (!imported) {
      imported = importPublicKey(publicKey);
      this.#imported.set(publicKey, imported);
    }
    return imported;
  }

  #schedule(intervalMs: number): void {
    clearTimeout(this.#timer);
    if (!(intervalMs > 0)) return;
    this.#timer = setTimeout(() => void this.rotate(), intervalMs);
  }
}
