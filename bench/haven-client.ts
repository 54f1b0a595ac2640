/**
 * A synthetic participant entering Haven by the front door, as a portal's user would: a real
 * token, socket.io signaling, the consent gate, the waiting room, admission by a facilitator;
 * then plain SRTP transports (the node must allow them) and media from its `MediaPeer`.
 */
import { io, type Socket } from 'socket.io-client';
import { handshakeError } from '../client-sdk/src/connection/handshake-error.ts';
import { followRedirects } from '../client-sdk/src/connection/node-url-provider.ts';
import {
  type Ack,
  type JoinResponse,
  type NotificationName,
  type PlainTransportOptions,
  protocolVersion,
  type RequestName,
  type RequestOf,
  type ResponseOf,
  type Role,
  type ServerNotifications,
  type SessionState,
  socketPath,
  type TrackInfo,
} from '../client-sdk/src/protocol/index.ts';
import { mintAccessToken } from '../server-sdk/src/mint.ts';
import { syntheticPublicKey } from './e2ee-media.ts';
import { epochMs } from './media.ts';
import { loopback, type MediaPeer, producerRtpParameters } from './peer.ts';

const requestTimeoutMs = 15_000;
/**
 * Participants who consume nothing (comma-separated ids): a fault to show that the bench's track
 * check fails the run naming them. Never set in a real measurement.
 */
const consumeNothing = new Set((process.env.HAVEN_BENCH_CONSUME_NOTHING ?? '').split(',').filter(Boolean));

export interface HavenTarget {
  url: string;
  /** HS256 secret the node verifies tokens with (the clinic's backend mints them). */
  secret: string;
}

/** Times of one join, epoch ms. */
export interface JoinTimes {
  connectAt: number;
  admittedAt?: number;
  firstPacketAt?: number;
}

/** One socket.io connection to `url`, as a generator opens it (no reconnection); rejects with the handshake's error. */
export function openSocket(url: string, path: string, auth: object): Promise<Socket> {
  const socket = io(url, { path, auth, transports: ['websocket'], reconnection: false, forceNew: true });
  return new Promise((resolve, reject) => {
    socket.once('connect', () => resolve(socket));
    socket.once('connect_error', (err) => {
      socket.close();
      reject(err);
    });
  });
}

export class HavenClient {
  readonly peer: MediaPeer;
  readonly role: Role;
  readonly room: string;
  readonly times: JoinTimes = { connectAt: 0 };
  session: SessionState | undefined;
  /** Set up media once admitted (latecomers of the moderation scenario only come and go). */
  media = true;
  /** Admit whoever waits as soon as they do (a facilitator's default). */
  autoAdmit: boolean;
  /** Who waits to be admitted (a facilitator's view). */
  readonly waiting = new Set<string>();
  /** SSRCs whose producer a facilitator muted: the generator stops sending them. */
  readonly paused = new Set<number>();
  consumers = 0;
  /** What it publishes (producer id → kind) and consumes, resumed (producer id → consumer SSRC): for the track check. */
  readonly produces = new Map<string, 'audio' | 'video'>();
  readonly consumes = new Map<string, number>();
  /** Producer id → the request and code of a consume or resume that failed. */
  readonly failedConsumes = new Map<string, string>();
  closed = false;
  readonly #target: HavenTarget;
  readonly #onError: (what: string, err: unknown) => void;
  #socket: Socket | undefined;
  #recvTransportId: string | undefined;
  readonly #producerSsrcs = new Map<string, number>();
  readonly #consumed = new Set<string>();
  /** Tracks published before the recv transport was ready: consumed once it is. */
  readonly #early: TrackInfo[] = [];
  readonly #admitting = new Set<string>();

  constructor(
    target: HavenTarget,
    room: string,
    role: Role,
    peer: MediaPeer,
    onError: (what: string, err: unknown) => void,
  ) {
    this.#target = target;
    this.room = room;
    this.role = role;
    this.peer = peer;
    this.autoAdmit = role === 'facilitator';
    this.#onError = onError;
  }

  get id(): string {
    return this.peer.id;
  }

  /** Connects and goes through consent and the waiting room; resolves once admitted with media up. */
  async join(): Promise<void> {
    this.times.connectAt = epochMs();
    this.peer.onFirstPacket = () => {
      this.times.firstPacketAt = this.peer.firstPacketAt;
    };
    const token = mintAccessToken({
      secret: this.#target.secret,
      issuer: 'haven',
      audience: 'haven',
      sub: this.id,
      name: `Synthetic ${this.id}`,
      room: this.room,
      role: this.role,
      ttlS: 4 * 3600,
    });
    // As the SDK does: a node that does not serve the room redirects to the one that does.
    const socket = await followRedirects(this.#target.url, (url) =>
      openSocket(url, socketPath, { token }).catch((err) => {
        throw handshakeError(err);
      }),
    );
    this.#socket = socket;
    const admitted = this.next('admitted', () => true, requestTimeoutMs * 4);
    admitted.catch(() => {}); // awaited below only when the join lands in the waiting room
    this.on('trackPublished', (track) => this.#consume(track));
    this.on('waitingRoomChanged', ({ waiting }) => {
      this.waiting.clear();
      for (const w of waiting) this.waiting.add(w.participantId);
      if (this.autoAdmit) for (const w of waiting) this.admit(w.participantId);
    });
    // In an E2EE room a public key, or the join is refused; the roster and keys that follow are ignored.
    const e2ee = this.peer.e2ee ? { e2ee: { publicKey: syntheticPublicKey() } } : {};
    let response: JoinResponse = await this.request('join', { protocolVersion, ...e2ee });
    if (response.stage === 'consent') {
      response = await this.request('acceptConsent', { version: response.consent.version });
    }
    const session = response.stage === 'admitted' ? response.session : (await admitted)[0];
    // A measurement of E2EE rooms that are not (or the reverse) would compare nothing.
    if (session.room.e2ee !== this.peer.e2ee)
      throw new Error(`room e2ee is ${session.room.e2ee}, expected ${this.peer.e2ee}`);
    this.times.admittedAt = epochMs();
    this.session = session;
    if (this.media) await this.#startMedia(session);
  }

  /** What the track check needs of this participant. */
  trackView() {
    // A track its owner was told to mute sends nothing: nobody is due packets of it.
    const live = [...this.produces].filter(([id]) => !this.paused.has(this.#producerSsrcs.get(id) ?? -1));
    return {
      room: this.room,
      produces: new Map(live),
      consumes: this.consumes,
      failed: this.failedConsumes,
      receives: this.media,
    };
  }

  /** Admits one waiting person (once, however many waiting-room updates name them). */
  admit(participantId: string): void {
    if (this.#admitting.has(participantId)) return;
    this.#admitting.add(participantId);
    this.request('admit', { participantId }).catch((err) => this.#onError('admit', err));
  }

  async #startMedia(session: SessionState): Promise<void> {
    const { sendPort, recvPort } = await this.peer.bind();
    if (this.peer.sources.length > 0) {
      const send = await this.request('createPlainTransport', { direction: 'send' });
      await this.#connect(send, sendPort);
      this.peer.connectSend(send.ip, send.port, send.srtpParameters.keyBase64);
      for (const source of this.peer.sources) {
        const { producerId } = await this.request('produce', {
          transportId: send.id,
          kind: source.kind,
          source: source.kind === 'audio' ? 'microphone' : 'camera',
          rtpParameters: producerRtpParameters(source.kind, source.ssrc, this.id),
        });
        this.#producerSsrcs.set(producerId, source.ssrc);
        this.produces.set(producerId, source.kind);
      }
      this.on('mutedByFacilitator', ({ producerId }) => {
        const ssrc = this.#producerSsrcs.get(producerId);
        if (ssrc !== undefined) this.paused.add(ssrc);
      });
    }
    const recv = await this.request('createPlainTransport', { direction: 'recv' });
    await this.#connect(recv, recvPort);
    this.peer.connectRecv(recv.srtpParameters.keyBase64);
    this.#recvTransportId = recv.id;
    for (const participant of session.participants) for (const track of participant.tracks) this.#consume(track);
    for (const track of this.#early.splice(0)) this.#consume(track);
  }

  async #connect(transport: PlainTransportOptions, port: number): Promise<void> {
    await this.request('connectPlainTransport', {
      transportId: transport.id,
      ip: loopback,
      port,
      srtpParameters: { cryptoSuite: 'AES_CM_128_HMAC_SHA1_80', keyBase64: this.peer.sendKey },
    });
  }

  #consume(track: TrackInfo): void {
    const transportId = this.#recvTransportId;
    if (!transportId || !this.session) {
      this.#early.push(track);
      return;
    }
    if (this.#consumed.has(track.producerId) || consumeNothing.has(this.id)) return;
    this.#consumed.add(track.producerId);
    this.request('consume', {
      transportId,
      producerId: track.producerId,
      rtpCapabilities: this.session.routerRtpCapabilities,
    })
      .then(async (consumer) => {
        this.consumers++;
        await this.request('resumeConsumer', { consumerId: consumer.id });
        const ssrc = (consumer.rtpParameters as { encodings?: { ssrc?: number }[] }).encodings?.[0]?.ssrc;
        if (ssrc !== undefined) this.consumes.set(track.producerId, ssrc);
      })
      .catch((err) => {
        this.failedConsumes.set(track.producerId, (err as Error).message.split(' ').slice(0, 2).join(' '));
        this.#onError('consume', err);
      });
  }

  /** Unmutes what a facilitator muted (the participant's own choice in an open room). */
  async unmute(): Promise<void> {
    for (const [producerId, ssrc] of this.#producerSsrcs) {
      if (!this.paused.has(ssrc)) continue;
      await this.request('resumeProducer', { producerId });
      this.paused.delete(ssrc);
    }
  }

  async request<K extends RequestName>(name: K, payload: RequestOf<K>): Promise<ResponseOf<K>> {
    const socket = this.#socket;
    if (!socket) throw new Error('not connected');
    const ack = (await socket
      .timeout(requestTimeoutMs)
      .emitWithAck(name, payload)
      .catch(() => {
        throw new Error(`${name}: TIMEOUT no answer in ${requestTimeoutMs} ms`);
      })) as Ack<ResponseOf<K>>;
    if (!ack.ok) throw new Error(`${name}: ${ack.error.code} ${ack.error.message}`);
    return ack.data;
  }

  on<K extends NotificationName>(name: K, listener: (...args: ServerNotifications[K]) => void): void {
    (this.#socket as unknown as { on(n: string, l: (...a: unknown[]) => void): void }).on(name, (...args) =>
      listener(...(args as ServerNotifications[K])),
    );
  }

  /** The next notification `name` (that `where` accepts). */
  next<K extends NotificationName>(
    name: K,
    where: (...args: ServerNotifications[K]) => boolean = () => true,
    timeoutMs = requestTimeoutMs,
  ): Promise<ServerNotifications[K]> {
    const socket = this.#socket as unknown as {
      on(n: string, l: (...a: unknown[]) => void): void;
      off(n: string, l: (...a: unknown[]) => void): void;
    };
    return new Promise((resolve, reject) => {
      const listener = (...args: unknown[]) => {
        if (!where(...(args as ServerNotifications[K]))) return;
        clearTimeout(timer);
        socket.off(name, listener);
        resolve(args as ServerNotifications[K]);
      };
      const timer = setTimeout(() => {
        socket.off(name, listener);
        reject(new Error(`no ${name} within ${timeoutMs} ms`));
      }, timeoutMs);
      socket.on(name, listener);
    });
  }

  close(): void {
    this.closed = true;
    this.#socket?.close();
    this.peer.close();
  }
}
