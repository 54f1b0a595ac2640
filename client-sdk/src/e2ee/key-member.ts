/**
 * A member's side of the key exchange: an `e2eeKey` is accepted only from the leader of its space's roster,
 * unwrapped with this client's private key and the leader's public key (bound to the room, the
 * epoch and this client's id), kept, and acknowledged (`e2eeKeyReceived`) so that the server can
 * activate the epoch once everyone has it.
 */
import type { E2eeRoster, ServerNotifications } from '../protocol/index.ts';
import { unwrapEpochSecret } from './epoch-secret.ts';
import { importPublicKey } from './key-pair.ts';

type KeyNotification = ServerNotifications['e2eeKey'][0];

/** What a {@link KeyMember} needs of the key exchange it belongs to. */
export interface KeyMemberHost {
  /** The roster of `space` now (null: the main room), with this client's id and the room's. */
  current(space: string | null): { roster: E2eeRoster; selfId: string; roomId: string } | undefined;
  privateKey(): Promise<CryptoKey>;
  /** Keeps the secret in `space`'s ring (replacing another held for its epoch); false if it came too late (out of the room, or older than every epoch kept). */
  install(space: string | null, epoch: number, secret: Uint8Array): boolean;
  acknowledge(epoch: number): Promise<void>;
  onError(error: unknown): void;
}

export class KeyMember {
  readonly #host: KeyMemberHost;

  constructor(host: KeyMemberHost) {
    this.#host = host;
  }

  /** An `e2eeKey` notification; resolves once handled (kept and acknowledged, or refused). */
  async receive({ epoch, from, wrapped, breakoutId }: KeyNotification): Promise<void> {
    const space = breakoutId ?? null;
    const current = this.#host.current(space);
    // Only the leader hands out keys; anyone else's (or a stale leader's) is ignored.
    if (!current || from !== current.roster.leader || from === current.selfId) return;
    // Unwrapped even for an epoch held already: a secret this client drew while it led for a
    // moment (its distribution refused) must give way to the leader's.
    const leader = current.roster.members.find((member) => member.participantId === from);
    const leaderKey = leader && (await importPublicKey(leader.publicKey));
    const secret =
      leaderKey &&
      (await unwrapEpochSecret(wrapped, await this.#host.privateKey(), leaderKey, {
        roomId: current.roomId,
        epoch,
        recipientId: current.selfId,
      }));
    if (!secret) {
      this.#host.onError(new Error(`the end-to-end key of epoch ${epoch} from the key leader could not be opened`));
      return;
    }
    if (this.#host.install(space, epoch, secret)) await this.#acknowledge(epoch);
  }

  async #acknowledge(epoch: number): Promise<void> {
    try {
      await this.#host.acknowledge(epoch);
    } catch (error) {
      this.#host.onError(error);
    }
  }
}
