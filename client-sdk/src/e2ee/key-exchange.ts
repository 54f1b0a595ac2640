/**
 * This client's part in an E2EE room's key exchange: the roster (who holds keys, who leads), the
 * leader's and a member's duties, the key ring, and what follows from them: the state, the send
 * epoch (only ever switched on `e2eeEpochActive`), the security code, the frame worker's keys,
 * and chat sealed and opened with the epochs' chat keys. It lives as long as the SessionClient:
 * the key pair stays the same across reconnections; keys are forgotten on leaving the room.
 */
import { InvalidStateError, isConnectionLoss } from '../errors.ts';
import type { NotificationHandlers } from '../notification-router.ts';
import type {
  ChatMessage,
  E2eeRoster,
  JoinRequest,
  RequestName,
  RequestOf,
  ResponseOf,
  SessionState,
} from '../protocol/index.ts';
import type { TypedEmitter } from '../protocol/typed-emitter.ts';
import type { ReceivedChatMessage } from '../session-events.ts';
import { chatEpoch, decryptChat, encryptChat } from './chat-crypto.ts';
import type { E2eeStats } from './e2ee-stats.ts';
import { toBase64 } from './encoding.ts';
import { emptyStats, FrameTransforms } from './frame-transforms.ts';
import { KeyLeader } from './key-leader.ts';
import { KeyMember } from './key-member.ts';
import { E2eeKeyPair } from './key-pair.ts';
import { KeyRing } from './key-ring.ts';
import { securityCode } from './security-code.ts';
import { isE2eeSupported } from './support.ts';

/** Where a client is in an E2EE room (see `E2ee.state`). */
export type E2eeState = 'off' | 'waiting' | 'active';

/** Events of `client.e2ee`. */
export type E2eeEvents = {
  /** The {@link E2eeState} changed. */
  stateChanged: [state: E2eeState];
  /** The epoch this client sends with changed (null: none, media held back). */
  epochChanged: [epoch: number | null];
  /** The security code changed (someone joined or left, a key changed, or the room was left: null). */
  securityCodeChanged: [code: string | null];
};

type E2eeRequest = Extract<RequestName, 'e2eeDistribute' | 'e2eeKeyReceived'>;

/** What a {@link KeyExchange} needs of the client it belongs to. */
export interface KeyExchangeHost {
  request<K extends E2eeRequest>(name: K, payload: RequestOf<K>): Promise<ResponseOf<K>>;
  /** This client's key pair (made once, on first use); undefined where E2EE is not supported. */
  keyPair(): Promise<E2eeKeyPair> | undefined;
  /** The frame worker, made on entering an E2EE room; undefined where E2EE is not supported. */
  createTransforms(): FrameTransforms | undefined;
  /** A failure no call awaits. */
  onError(error: unknown): void;
  /** The state became `active`: remote tracks held back may be received now. */
  activated(): void;
}

/** How long a chat message of an epoch newer than every key held waits for that key. */
const chatKeyWaitMs = 5_000;

export class KeyExchange {
  readonly #host: KeyExchangeHost;
  readonly #ring = new KeyRing();
  readonly #leader: KeyLeader;
  readonly #member: KeyMember;
  #events: TypedEmitter<E2eeEvents> | undefined;
  #transforms: FrameTransforms | undefined;
  #enabled = false;
  #roster: E2eeRoster | undefined;
  #selfId: string | undefined;
  #roomId: string | undefined;
  /** The highest epoch seen: relayed in a roster, received, activated or distributed. */
  #highest = 0;
  #state: E2eeState = 'off';
  #epoch: number | null = null;
  #code: string | null = null;
  /** Counts security code computations: only the latest one's result counts. */
  #codeRun = 0;

  constructor(host: KeyExchangeHost) {
    this.#host = host;
    this.#leader = new KeyLeader({
      led: () => {
        const current = this.#current();
        return current && current.roster.leader === current.selfId ? current : undefined;
      },
      privateKey: () => this.#privateKey(),
      highestEpoch: () => this.#highest,
      install: (epoch, secret) => void this.#install(epoch, secret),
      forget: (epoch, secret) => {
        if (this.#ring.forget(epoch, secret)) this.#update();
      },
      distribute: (request) => this.#host.request('e2eeDistribute', request),
      onError: (error) => this.#reportError(error),
    });
    this.#member = new KeyMember({
      current: () => this.#current(),
      privateKey: () => this.#privateKey(),
      install: (epoch, secret) => this.#install(epoch, secret),
      acknowledge: async (epoch) => {
        await this.#host.request('e2eeKeyReceived', { epoch });
      },
      onError: (error) => this.#reportError(error),
    });
  }

  /**
   * A SessionClient's key exchange in this browser: the key pair made on the first join where
   * E2EE is supported and kept for the client's life (a rejoin sends the same key); the frame
   * worker made on entering an E2EE room.
   */
  static forBrowser(host: Pick<KeyExchangeHost, 'request' | 'onError' | 'activated'>): KeyExchange {
    let keyPair: Promise<E2eeKeyPair> | undefined;
    return new KeyExchange({
      ...host,
      keyPair: () => {
        if (!keyPair && isE2eeSupported()) keyPair = E2eeKeyPair.generate();
        return keyPair;
      },
      createTransforms: () => FrameTransforms.create(),
    });
  }

  /** The emitter of `client.e2ee`'s events (set once, by it). */
  bind(events: TypedEmitter<E2eeEvents>): void {
    this.#events = events;
  }

  get enabled(): boolean {
    return this.#enabled;
  }

  get state(): E2eeState {
    return this.#state;
  }

  get epoch(): number | null {
    return this.#epoch;
  }

  get securityCode(): string | null {
    return this.#code;
  }

  get isLeader(): boolean {
    return this.#enabled && this.#roster !== undefined && this.#roster.leader === this.#selfId;
  }

  get memberCount(): number {
    return this.#enabled ? (this.#roster?.members.length ?? 0) : 0;
  }

  /** In an E2EE room: the frame worker new media transports attach to (undefined: this browser cannot). */
  get media(): { transforms: FrameTransforms | undefined } | undefined {
    return this.#enabled ? { transforms: this.#transforms } : undefined;
  }

  /** Whether remote tracks may be received now: in an E2EE room only once a key is active. */
  get receiving(): boolean {
    return !this.#enabled || this.#state === 'active';
  }

  /** What the join request carries: the public key, where this client can encrypt. */
  async joinFields(): Promise<Pick<JoinRequest, 'e2ee'>> {
    const pending = this.#host.keyPair();
    if (!pending) return {};
    try {
      return { e2ee: { publicKey: (await pending).publicKey } };
    } catch {
      // No key pair (WebCrypto refused): an E2EE room refuses the join; others do not care.
      return {};
    }
  }

  /** Admitted (again): an E2EE room's roster as the admission gives it. */
  enter(session: SessionState): void {
    const sameRoom = this.#roomId === session.room.id;
    if (!session.room.e2ee) {
      this.leave();
      return;
    }
    // A resumed place keeps its keys (the others still send with them); anything else starts afresh.
    if (!session.resumed || !sameRoom) this.#ring.clear();
    this.#enabled = true;
    this.#roomId = session.room.id;
    this.#selfId = session.self.id;
    this.#roster = undefined;
    this.#transforms ??= this.#host.createTransforms();
    if (session.e2ee) this.#onRoster(session.e2ee);
    this.#update();
  }

  /** Out of the room (still connected, or closing): keys forgotten, no leader duties, state `off`. */
  leave(): void {
    this.#leader.stop();
    this.#ring.clear();
    this.#enabled = false;
    this.#roster = undefined;
    this.#codeRun++;
    this.#setCode(null);
    this.#update();
  }

  /** The client closed: the worker stops too. */
  close(): void {
    this.leave();
    this.#transforms?.close();
    this.#transforms = undefined;
  }

  handlers(): NotificationHandlers<'e2eeRoster' | 'e2eeKey' | 'e2eeEpochActive'> {
    return {
      e2eeRoster: (roster) => this.#onRoster(roster),
      e2eeKey: (key) => {
        if (!this.#enabled) return;
        this.#highest = Math.max(this.#highest, key.epoch);
        this.#member.receive(key).catch((error) => this.#reportError(error));
      },
      e2eeEpochActive: ({ epoch }) => {
        if (!this.#enabled) return;
        this.#highest = Math.max(this.#highest, epoch);
        if (this.#ring.activate(epoch)) this.#update();
      },
    };
  }

  /** The frame worker's counters (zeros where there is none). */
  stats(): Promise<E2eeStats> {
    return this.#transforms ? this.#transforms.stats() : Promise.resolve({ ...emptyStats });
  }

  /** `text` sealed with the send epoch's chat key, from this client to `to`. */
  async sealChat(text: string, to: string): Promise<string> {
    const epoch = this.#ring.sendEpoch;
    const key = epoch === null ? undefined : this.#ring.chatKey(epoch);
    if (epoch === null || !key || !this.#selfId) {
      throw new InvalidStateError(`sendChat(): end-to-end encryption is not active yet (e2ee.state '${this.#state}')`);
    }
    return encryptChat(await key, epoch, text, { from: this.#selfId, to });
  }

  /** A chat message as relayed, with its text decrypted (or `undecryptable`). */
  async openChat(message: ChatMessage): Promise<ReceivedChatMessage> {
    const epoch = chatEpoch(message.text);
    const key = epoch === undefined ? undefined : await this.#ring.awaitChatKey(epoch, chatKeyWaitMs);
    const text = key ? await decryptChat(await key, message.text, { from: message.from, to: message.to }) : null;
    return text === null ? { ...message, text: '', undecryptable: true } : { ...message, text };
  }

  #current(): { roster: E2eeRoster; selfId: string; roomId: string } | undefined {
    const roster = this.#roster;
    const selfId = this.#selfId;
    const roomId = this.#roomId;
    return this.#enabled && roster && selfId && roomId ? { roster, selfId, roomId } : undefined;
  }

  #onRoster(roster: E2eeRoster): void {
    if (!this.#enabled || (this.#roster && roster.revision <= this.#roster.revision)) return;
    this.#roster = roster;
    this.#highest = Math.max(this.#highest, roster.epoch);
    this.#refreshCode(roster);
    if (roster.leader !== null && roster.leader === this.#selfId) void this.#leader.rotate();
    else this.#leader.stop();
  }

  #refreshCode(roster: E2eeRoster): void {
    const run = ++this.#codeRun;
    securityCode(roster).then(
      (code) => {
        if (run === this.#codeRun && this.#enabled) this.#setCode(code);
      },
      (error) => this.#reportError(error),
    );
  }

  #setCode(code: string | null): void {
    if (code === this.#code) return;
    this.#code = code;
    this.#events?.safeEmit('securityCodeChanged', code);
  }

  /** Keeps an epoch's secret (new, or replacing another for that epoch); false if not kept. */
  #install(epoch: number, secret: Uint8Array): boolean {
    if (!this.#enabled) return false;
    const outcome = this.#ring.install(epoch, secret);
    if (outcome === 'stale') return false;
    if (outcome === 'same') return true;
    this.#highest = Math.max(this.#highest, epoch);
    const hook = (globalThis as { __havenE2eeTest?: { secrets?: Record<number, string> } }).__havenE2eeTest;
    if (typeof hook === 'object' && hook !== null) {
      hook.secrets ??= {};
      hook.secrets[epoch] = toBase64(secret);
    }
    this.#update();
    return true;
  }

  async #privateKey(): Promise<CryptoKey> {
    const pending = this.#host.keyPair();
    if (!pending) throw new InvalidStateError('this client has no end-to-end key pair');
    return (await pending).privateKey;
  }

  /** Brings the state, the epoch and the worker's keys in line with the ring; emits what changed. */
  #update(): void {
    const epoch = this.#enabled ? this.#ring.sendEpoch : null;
    const state: E2eeState = !this.#enabled ? 'off' : epoch === null ? 'waiting' : 'active';
    this.#transforms?.setKeys(this.#ring.secrets(), epoch);
    const stateChanged = state !== this.#state;
    const epochChanged = epoch !== this.#epoch;
    this.#state = state;
    this.#epoch = epoch;
    if (stateChanged) this.#events?.safeEmit('stateChanged', state);
    if (epochChanged) this.#events?.safeEmit('epochChanged', epoch);
    if (stateChanged && state === 'active') this.#host.activated();
  }

  #reportError(error: unknown): void {
    // A drop is the reconnection's business; a refusal after a leader change is answered by the next roster.
    if (isConnectionLoss(error) || !this.#enabled) return;
    if ((error as { code?: unknown })?.code === 'FORBIDDEN') return;
    this.#host.onError(error);
  }
}
