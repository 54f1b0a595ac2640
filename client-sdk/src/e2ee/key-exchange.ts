/**
 * This client's part in an E2EE room's key exchange: the rosters (who holds keys, who leads) of
 * the key spaces it is a member of, the leader's duties in each space it leads and a member's,
 * the key rings, and what follows from them: the state, the send epoch (the active epoch of its
 * own space, only ever switched on `e2eeEpochActive` or on moving to another space), the security
 * code of its own space, the frame worker's keys (every space's: frames and chat are decrypted by
 * the epoch they carry), and chat sealed and opened with the epochs' chat keys. Without breakouts
 * there is one space, the main room. A participant is a member of its own space only; a
 * facilitator, of every space. It lives as long as the SessionClient: the key pair stays the same
 * across reconnections; keys are forgotten on leaving the room.
 */
import { InvalidStateError, isConnectionLoss } from '../errors.ts';
import type { NotificationHandlers } from '../notification-router.ts';
import type {
  BreakoutBroadcast,
  ChatMessage,
  E2eeRoster,
  JoinRequest,
  RequestName,
  RequestOf,
  ResponseOf,
  SealedBroadcast,
  SessionState,
} from '../protocol/index.ts';
import type { TypedEmitter } from '../protocol/typed-emitter.ts';
import type { ReceivedBroadcast, ReceivedChatMessage } from '../session-events.ts';
import { broadcastTo } from './chat-crypto.ts';
import type { E2eeStats } from './e2ee-stats.ts';
import { toBase64 } from './encoding.ts';
import { emptyStats, FrameTransforms } from './frame-transforms.ts';
import { KeyLeader } from './key-leader.ts';
import { KeyMember } from './key-member.ts';
import { E2eeKeyPair } from './key-pair.ts';
import { KeyRings, type SpaceId } from './key-rings.ts';
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

/** A key space this client is a member of: its roster as last told, and this client's duties there as leader. */
interface Space {
  roster: E2eeRoster;
  leader: KeyLeader;
}

export class KeyExchange {
  readonly #host: KeyExchangeHost;
  readonly #rings = new KeyRings();
  readonly #member: KeyMember;
  /** The spaces whose rosters this client was told: its own and, for a facilitator, every other. */
  readonly #spaces = new Map<SpaceId, Space>();
  /** The last distribution under way, whichever space it is for (they run one at a time). */
  #distributing: Promise<void> = Promise.resolve();
  #events: TypedEmitter<E2eeEvents> | undefined;
  #transforms: FrameTransforms | undefined;
  #enabled = false;
  /** This client's own space: where it stands, the one it sends with. */
  #place: SpaceId = null;
  /** A facilitator: a member of every space, not only of its own. */
  #everywhere = false;
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
    this.#member = new KeyMember({
      current: (space) => this.#current(space),
      privateKey: () => this.#privateKey(),
      install: (space, epoch, secret) => this.#install(space, epoch, secret),
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

  /** Whether this client leads its own space's key exchange. */
  get isLeader(): boolean {
    const own = this.#own();
    return this.#enabled && own !== undefined && own.leader === this.#selfId;
  }

  /** How many take part in its own space's key exchange. */
  get memberCount(): number {
    return this.#enabled ? (this.#own()?.members.length ?? 0) : 0;
  }

  /** The space whose active epoch this client sends with (null: the main room). */
  get place(): SpaceId {
    return this.#place;
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
    if (!session.resumed || !sameRoom) this.#rings.clear();
    this.#enabled = true;
    this.#roomId = session.room.id;
    this.#selfId = session.self.id;
    this.#everywhere = session.self.role === 'facilitator';
    // The session carries its own space's roster; a facilitator's other spaces are told next.
    this.#place = session.e2ee?.breakoutId ?? null;
    this.#forgetSpaces();
    if (!this.#everywhere) this.#keepOnly(this.#place);
    this.#transforms ??= this.#host.createTransforms();
    if (session.e2ee) this.#onRoster(session.e2ee);
    this.#update();
  }

  /**
   * This client moved to another place (`movedToBreakout`): from now on it sends with that
   * space's active epoch (at once for a facilitator, who holds it already; a participant waits
   * for the new space's key, sending nothing meanwhile) and shows that space's security code.
   * A participant forgets the space it left (the server rotates that space's key without it).
   */
  moved(breakoutId: string | null): void {
    if (!this.#enabled || breakoutId === this.#place) return;
    this.#place = breakoutId;
    if (!this.#everywhere) this.#keepOnly(breakoutId);
    const own = this.#own();
    if (own) this.#refreshCode(own);
    else {
      this.#codeRun++;
      this.#setCode(null);
    }
    this.#update();
  }

  /** Out of the room (still connected, or closing): keys forgotten, no leader duties, state `off`. */
  leave(): void {
    this.#forgetSpaces();
    this.#rings.clear();
    this.#enabled = false;
    this.#place = null;
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
      e2eeEpochActive: ({ epoch, breakoutId }) => {
        if (!this.#enabled) return;
        this.#highest = Math.max(this.#highest, epoch);
        const space = breakoutId ?? null;
        if (space !== this.#place && !this.#spaces.has(space)) return;
        if (this.#rings.activate(space, epoch)) this.#update();
      },
    };
  }

  /** The frame worker's counters (zeros where there is none). */
  stats(): Promise<E2eeStats> {
    return this.#transforms ? this.#transforms.stats() : Promise.resolve({ ...emptyStats });
  }

  /** `text` sealed with the send epoch's chat key (its own space's), from this client to `to`. */
  async sealChat(text: string, to: string): Promise<string> {
    const sealed = this.#seal(this.#place, text, to);
    if (!sealed) {
      throw new InvalidStateError(`sendChat(): end-to-end encryption is not active yet (e2ee.state '${this.#state}')`);
    }
    return sealed;
  }

  /** A chat message as relayed, with its text decrypted by its epoch, whichever space's (or `undecryptable`). */
  async openChat(message: ChatMessage): Promise<ReceivedChatMessage> {
    const text = await this.#rings.open(message.text, { from: message.from, to: message.to }, chatKeyWaitMs);
    return text === null ? { ...message, text: '', undecryptable: true } : { ...message, text };
  }

  /**
   * A facilitator's broadcast: a copy of `text` for each of `places` whose key this client holds
   * (a facilitator holds every group's), each sealed with that place's send epoch and bound to it.
   */
  sealBroadcast(text: string, places: SpaceId[]): Promise<SealedBroadcast[]> {
    const copies = places.map(async (breakoutId) => {
      const sealed = this.#seal(breakoutId, text, broadcastTo(breakoutId));
      return sealed && { breakoutId, text: await sealed };
    });
    return Promise.all(copies).then((all) => all.filter((c): c is SealedBroadcast => Boolean(c)));
  }

  /** A broadcast as relayed, decrypted (or `undecryptable`: not sealed for the place it came to). */
  async openBroadcast(broadcast: BreakoutBroadcast): Promise<ReceivedBroadcast> {
    const address = { from: broadcast.from, to: broadcastTo(broadcast.breakoutId) };
    const text = await this.#rings.open(broadcast.text, address, chatKeyWaitMs);
    return text === null ? { ...broadcast, text: '', undecryptable: true } : { ...broadcast, text };
  }

  #seal(space: SpaceId, text: string, to: string): Promise<string> | undefined {
    return this.#selfId ? this.#rings.seal(space, text, { from: this.#selfId, to }) : undefined;
  }

  #current(space: SpaceId): { roster: E2eeRoster; selfId: string; roomId: string } | undefined {
    const roster = this.#spaces.get(space)?.roster;
    const selfId = this.#selfId;
    const roomId = this.#roomId;
    return this.#enabled && roster && selfId && roomId ? { roster, selfId, roomId } : undefined;
  }

  /** The roster of this client's own space. */
  #own(): E2eeRoster | undefined {
    return this.#spaces.get(this.#place)?.roster;
  }

  #onRoster(roster: E2eeRoster): void {
    if (!this.#enabled) return;
    const space = roster.breakoutId ?? null;
    const held = this.#spaces.get(space);
    if (held && roster.revision <= held.roster.revision) return;
    if (space !== this.#place && !this.#everywhere) {
      // A participant is told its own space's roster only: another space's is where it was moved.
      const own = this.#own();
      if (own && roster.revision <= own.revision) return;
      this.moved(space);
    }
    this.#highest = Math.max(this.#highest, roster.epoch);
    if (roster.leader === null && roster.members.length === 0 && space !== this.#place) {
      // A group that ended (told to facilitators): its keys are of no more use.
      this.#drop(space);
      this.#update();
      return;
    }
    const entry = held ?? { roster, leader: this.#newLeader(space) };
    entry.roster = roster;
    this.#spaces.set(space, entry);
    if (space === this.#place) this.#refreshCode(roster);
    if (roster.leader !== null && roster.leader === this.#selfId) void entry.leader.rotate();
    else entry.leader.stop();
  }

  /** This client's duties as the leader of `space`, when the roster says it leads. */
  #newLeader(space: SpaceId): KeyLeader {
    return new KeyLeader({
      led: () => {
        const current = this.#current(space);
        return current && current.roster.leader === current.selfId ? current : undefined;
      },
      privateKey: () => this.#privateKey(),
      highestEpoch: () => this.#highest,
      install: (epoch, secret) => void this.#install(space, epoch, secret),
      forget: (epoch, secret) => {
        if (this.#rings.forget(epoch, secret)) this.#update();
      },
      distribute: (request) => this.#host.request('e2eeDistribute', request),
      serialize: (task) => {
        // One at a time across spaces: each epoch is drawn above the last one sent.
        const run = this.#distributing.then(task);
        this.#distributing = run.catch(() => {});
        return run;
      },
      onError: (error) => this.#reportError(error),
    });
  }

  /** Keeps `space` only (a participant's own): every other space's roster, duties and keys dropped. */
  #keepOnly(space: SpaceId): void {
    for (const other of new Set([...this.#spaces.keys(), ...this.#rings.spaces()])) {
      if (other !== space) this.#drop(other);
    }
  }

  #drop(space: SpaceId): void {
    this.#spaces.get(space)?.leader.stop();
    this.#spaces.delete(space);
    this.#rings.drop(space);
  }

  /** No roster known, no leader duties (the keys stay). */
  #forgetSpaces(): void {
    for (const { leader } of this.#spaces.values()) leader.stop();
    this.#spaces.clear();
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

  /** Keeps an epoch's secret in `space`'s ring (new, or replacing another for that epoch); false if not kept. */
  #install(space: SpaceId, epoch: number, secret: Uint8Array): boolean {
    if (!this.#enabled) return false;
    const outcome = this.#rings.install(space, epoch, secret);
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

  /** Brings the state, the epoch and the worker's keys in line with the rings; emits what changed. */
  #update(): void {
    const epoch = this.#enabled ? this.#rings.sendEpoch(this.#place) : null;
    const state: E2eeState = !this.#enabled ? 'off' : epoch === null ? 'waiting' : 'active';
    this.#transforms?.setKeys(this.#rings.secrets(), epoch);
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
