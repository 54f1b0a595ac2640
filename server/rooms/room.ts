/**
 * A live room on this node: who is in it, their media (transports, producers, consumers on the
 * room's routers), and the rules of joining. It knows nothing of sockets: it answers requests
 * and emits `notify` events addressed to participants, which signaling delivers.
 *
 * Media: a room starts on one router, on the least-loaded worker. When a router carries
 * `maxConsumersPerRouter` consumers, newcomers go to a new router on another worker, and
 * producers are piped (`pipeToRouter`) to the routers whose participants consume them.
 */
import type { ActiveSpeakerObserver, Consumer, Producer, Router, WebRtcTransport } from 'mediasoup/node/lib/types.js';
import type {
  Capabilities,
  ConsumeRequest,
  ConsumeResponse,
  JoinResponse,
  LeaveReason,
  NotificationName,
  ParticipantInfo,
  ProduceRequest,
  ServerNotifications,
  TrackInfo,
  TrackSource,
  TransportDirection,
  TransportOptions,
} from '../../client-sdk/src/protocol.ts';
import { TypedEmitter } from '../../client-sdk/src/typed-emitter.ts';
import type { VerifiedIdentity } from '../auth/tokens.ts';
import { HavenError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { mediaCodecs } from '../media/codecs.ts';
import type { TurnSettings } from '../media/turn.ts';
import { turnIceServers } from '../media/turn.ts';
import type { PoolWorker, WorkerPool } from '../media/worker-pool.ts';
import type { RoomDefinition } from './room-store.ts';

export interface RoomSettings {
  pool: WorkerPool;
  logger: Logger;
  reconnectGraceMs: number;
  emptyTimeoutMs: number;
  maxConsumersPerRouter: number;
  turn: TurnSettings;
}

/** A notification for one participant. */
export type Notification = { [K in NotificationName]: { name: K; args: ServerNotifications[K] } }[NotificationName];

export type RoomEvents = {
  notify: [participantId: string, notification: Notification];
  closed: [];
};

interface RoomRouter {
  router: Router;
  worker: PoolWorker;
  speakers: ActiveSpeakerObserver;
  consumers: number;
}

interface PublishedTrack {
  producer: Producer;
  source: TrackSource;
  home: RoomRouter;
}

interface Member {
  identity: VerifiedIdentity;
  capabilities: Capabilities;
  /** The connection currently speaking for this participant; undefined while disconnected. */
  connectionId: string | undefined;
  home: RoomRouter;
  transports: Map<string, WebRtcTransport>;
  tracks: Map<string, PublishedTrack>;
  consumers: Map<string, Consumer>;
  graceTimer?: NodeJS.Timeout;
}

export interface JoinResult {
  response: JoinResponse;
  /** An older connection of the same participant, now replaced: signaling closes it. */
  replacedConnectionId?: string;
}

/** How long a room whose worker died waits for a replacement before the session ends. */
const workerReplacementTimeoutMs = 10_000;

const sourceKind: Record<TrackSource, 'audio' | 'video'> = { microphone: 'audio', camera: 'video', screen: 'video' };
const sourceCapability: Record<TrackSource, keyof Capabilities> = {
  microphone: 'publishAudio',
  camera: 'publishVideo',
  screen: 'publishScreen',
};

export class Room extends TypedEmitter<RoomEvents> {
  readonly definition: RoomDefinition;
  readonly #settings: RoomSettings;
  readonly #logger: Logger;
  readonly #routers: RoomRouter[] = [];
  readonly #members = new Map<string, Member>();
  /** `${producerId}>${routerId}` → the pipe being or already set up. */
  readonly #pipes = new Map<string, Promise<unknown>>();
  #emptyTimer: NodeJS.Timeout | undefined;
  #closed = false;

  private constructor(definition: RoomDefinition, settings: RoomSettings) {
    super();
    this.definition = definition;
    this.#settings = settings;
    this.#logger = settings.logger.child({ room: definition.id });
  }

  /** Opens a room on its first router. */
  static async open(definition: RoomDefinition, settings: RoomSettings): Promise<Room> {
    const room = new Room(definition, settings);
    await room.#addRouter();
    room.#logger.info({ kind: definition.kind }, 'room opened');
    room.#armEmptyTimer();
    return room;
  }

  get id(): string {
    return this.definition.id;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Participants present or within their reconnection grace. */
  get size(): number {
    return this.#members.size;
  }

  /** Routers the room uses (more than one when it spreads over workers). */
  get routerCount(): number {
    return this.#routers.length;
  }

  has(participantId: string): boolean {
    return this.#members.has(participantId);
  }

  async #addRouter(): Promise<RoomRouter> {
    const avoid = new Set(this.#routers.map((r) => r.worker));
    const { router, worker } = await this.#settings.pool.createRouter({ mediaCodecs }, avoid);
    const speakers = await router.createActiveSpeakerObserver({ interval: 300 });
    const entry: RoomRouter = { router, worker, speakers, consumers: 0 };
    speakers.on('dominantspeaker', ({ producer }) => {
      const participantId = String(producer.appData.participantId);
      this.#broadcast('activeSpeaker', [{ participantId }]);
    });
    router.observer.once('close', () => {
      if (!this.#closed) void this.#rehome(entry);
    });
    this.#routers.push(entry);
    if (this.#routers.length > 1) this.#logger.info({ routers: this.#routers.length }, 'room spread to another worker');
    return entry;
  }

  /**
   * A router closed under the room (its worker died): its members' media went with it. They move
   * to a router on a live worker and are told to set up their media again; presence is untouched.
   */
  async #rehome(lost: RoomRouter): Promise<void> {
    this.#routers.splice(this.#routers.indexOf(lost), 1);
    const movers = [...this.#members.values()].filter((m) => m.home === lost);
    this.#logger.error(
      { worker: lost.worker.index, participants: movers.length },
      'media worker lost; moving the room',
    );
    try {
      // With a single worker, its replacement is a moment away.
      await this.#settings.pool.whenAlive(workerReplacementTimeoutMs);
      if (this.#closed) return;
      const home = this.#routers.find((r) => !r.router.closed) ?? (await this.#addRouter());
      for (const member of movers) {
        member.home = home;
        if (member.connectionId)
          this.#notify(member.identity.participantId, 'mediaReset', [{ reason: 'media-worker-lost' }]);
      }
    } catch (err) {
      this.#logger.error({ err }, 'no media worker to move the room to; ending it');
      this.end('media unavailable');
    }
  }

  /** The router a newcomer's media goes on: the first with room for more consumers. */
  async #routerForNewcomer(): Promise<RoomRouter> {
    const roomy = this.#routers.find((r) => !r.router.closed && r.consumers < this.#settings.maxConsumersPerRouter);
    if (roomy) return roomy;
    const usedWorkers = new Set(this.#routers.map((r) => r.worker));
    if (this.#settings.pool.workers.some((w) => !usedWorkers.has(w))) return this.#addRouter();
    // Every worker already carries this room: the least busy of its routers.
    return [...this.#routers].sort((a, b) => a.consumers - b.consumers)[0] as RoomRouter;
  }

  #member(participantId: string): Member {
    const member = this.#members.get(participantId);
    if (!member) throw new HavenError('INVALID_STATE', 'not joined to this room');
    return member;
  }

  #capacityCheck(identity: VerifiedIdentity): void {
    const count = (role: string) => [...this.#members.values()].filter((m) => m.identity.role === role).length;
    if (identity.role === 'participant' && count('participant') >= this.definition.capacity) {
      throw new HavenError('ROOM_FULL', `the room admits ${this.definition.capacity} participant(s)`);
    }
    if (identity.role === 'facilitator' && this.definition.kind === 'individual' && count('facilitator') >= 1) {
      throw new HavenError('ROOM_FULL', 'an individual session has one facilitator');
    }
  }

  /** Education rooms: participants receive only, unless their token grants publishing. */
  #capabilitiesOf(identity: VerifiedIdentity): Capabilities {
    if (this.definition.kind !== 'education' || identity.role !== 'participant') return identity.capabilities;
    const granted = identity.grantedCapabilities ?? {};
    return {
      ...identity.capabilities,
      publishAudio: granted.publishAudio === true,
      publishVideo: granted.publishVideo === true,
      publishScreen: granted.publishScreen === true,
    };
  }

  /**
   * Joins `identity` through `connectionId`. The same participant joining again (a reconnection
   * within the grace window, or a second tab) takes back its place: others see no leave, its
   * old media is closed, the older connection is reported for signaling to close.
   */
  async join(identity: VerifiedIdentity, connectionId: string): Promise<JoinResult> {
    if (this.#closed) throw new HavenError('INVALID_STATE', 'the session has ended');
    if (this.definition.endedAt) throw new HavenError('INVALID_STATE', 'the session has ended');
    const existing = this.#members.get(identity.participantId);
    let replacedConnectionId: string | undefined;
    let member: Member;
    if (existing) {
      clearTimeout(existing.graceTimer);
      existing.graceTimer = undefined;
      if (existing.connectionId && existing.connectionId !== connectionId) replacedConnectionId = existing.connectionId;
      this.#closeMedia(existing);
      existing.connectionId = connectionId;
      existing.identity = identity;
      member = existing;
    } else {
      this.#capacityCheck(identity);
      const home = await this.#routerForNewcomer();
      if (this.#closed) throw new HavenError('INVALID_STATE', 'the session has ended');
      member = {
        identity,
        capabilities: this.#capabilitiesOf(identity),
        connectionId,
        home,
        transports: new Map(),
        tracks: new Map(),
        consumers: new Map(),
      };
      this.#members.set(identity.participantId, member);
      this.#broadcast('participantJoined', [this.#info(member)], identity.participantId);
      this.#logger.info({ participant: identity.participantId, role: identity.role }, 'participant joined');
    }
    clearTimeout(this.#emptyTimer);
    this.#emptyTimer = undefined;
    return {
      replacedConnectionId,
      response: {
        room: { id: this.id, kind: this.definition.kind, title: this.definition.title },
        self: this.#info(member),
        capabilities: member.capabilities,
        participants: [...this.#members.values()].filter((m) => m !== member).map((m) => this.#info(m)),
        routerRtpCapabilities: member.home.router.rtpCapabilities,
        iceServers: turnIceServers(this.#settings.turn, identity.participantId),
        resumed: existing !== undefined,
        reconnectGraceMs: this.#settings.reconnectGraceMs,
      },
    };
  }

  #info(member: Member): ParticipantInfo {
    return {
      id: member.identity.participantId,
      name: member.identity.name,
      role: member.identity.role,
      tracks: [...member.tracks.values()].map((t) => this.#trackInfo(member, t)),
    };
  }

  #trackInfo(member: Member, track: PublishedTrack): TrackInfo {
    return {
      producerId: track.producer.id,
      participantId: member.identity.participantId,
      kind: track.producer.kind,
      source: track.source,
      paused: track.producer.paused,
    };
  }

  #connected(participantId: string, connectionId: string): Member {
    const member = this.#member(participantId);
    if (member.connectionId !== connectionId) throw new HavenError('INVALID_STATE', 'this connection was replaced');
    return member;
  }

  async createTransport(
    participantId: string,
    connectionId: string,
    direction: TransportDirection,
  ): Promise<TransportOptions> {
    const member = this.#connected(participantId, connectionId);
    const existing = [...member.transports.values()].find((t) => t.appData.direction === direction);
    if (existing) throw new HavenError('INVALID_STATE', `a ${direction} transport exists already`);
    if (
      direction === 'send' &&
      !Object.keys(sourceCapability).some((s) => this.#mayPublish(member, s as TrackSource))
    ) {
      throw new HavenError('FORBIDDEN', 'this participant may not publish');
    }
    const { webRtcServer } = member.home.worker;
    if (!webRtcServer) throw new HavenError('INTERNAL', 'no WebRTC server on this worker');
    const transport = await member.home.router.createWebRtcTransport({
      webRtcServer,
      enableUdp: true,
      enableTcp: true,
      preferUdp: true,
      initialAvailableOutgoingBitrate: 1_000_000,
      appData: { participantId, direction },
    });
    member.transports.set(transport.id, transport);
    transport.observer.once('close', () => member.transports.delete(transport.id));
    return {
      id: transport.id,
      iceParameters: transport.iceParameters,
      iceCandidates: transport.iceCandidates,
      dtlsParameters: transport.dtlsParameters,
    };
  }

  #transport(member: Member, transportId: string, direction?: TransportDirection): WebRtcTransport {
    const transport = member.transports.get(transportId);
    if (!transport) throw new HavenError('NOT_FOUND', 'no such transport');
    if (direction && transport.appData.direction !== direction) {
      throw new HavenError('INVALID_REQUEST', `transport is not a ${direction} transport`);
    }
    return transport;
  }

  async connectTransport(participantId: string, connectionId: string, transportId: string, dtlsParameters: unknown) {
    const member = this.#connected(participantId, connectionId);
    await this.#transport(member, transportId).connect({ dtlsParameters: dtlsParameters as never });
  }

  async restartIce(participantId: string, connectionId: string, transportId: string) {
    const member = this.#connected(participantId, connectionId);
    return { iceParameters: await this.#transport(member, transportId).restartIce() };
  }

  #mayPublish(member: Member, source: TrackSource): boolean {
    return member.capabilities[sourceCapability[source]];
  }

  async produce(participantId: string, connectionId: string, request: ProduceRequest): Promise<{ producerId: string }> {
    const member = this.#connected(participantId, connectionId);
    const transport = this.#transport(member, request.transportId, 'send');
    if (sourceKind[request.source] !== request.kind) {
      throw new HavenError('INVALID_REQUEST', `a ${request.source} track is ${sourceKind[request.source]}`);
    }
    if (!this.#mayPublish(member, request.source)) {
      throw new HavenError('FORBIDDEN', `this participant may not publish ${request.source}`);
    }
    if ([...member.tracks.values()].some((t) => t.source === request.source)) {
      throw new HavenError('INVALID_STATE', `${request.source} is published already`);
    }
    const producer = await transport.produce({
      kind: request.kind,
      rtpParameters: request.rtpParameters as never,
      appData: { participantId, source: request.source },
    });
    const track: PublishedTrack = { producer, source: request.source, home: member.home };
    member.tracks.set(producer.id, track);
    producer.observer.once('close', () => {
      member.tracks.delete(producer.id);
      this.#broadcast('trackUnpublished', [{ producerId: producer.id, participantId }], participantId);
    });
    if (producer.kind === 'audio') await member.home.speakers.addProducer({ producerId: producer.id });
    this.#broadcast('trackPublished', [this.#trackInfo(member, track)], participantId);
    return { producerId: producer.id };
  }

  #ownTrack(member: Member, producerId: string): PublishedTrack {
    const track = member.tracks.get(producerId);
    if (!track) throw new HavenError('NOT_FOUND', 'no such producer');
    return track;
  }

  async setProducerPaused(participantId: string, connectionId: string, producerId: string, paused: boolean) {
    const member = this.#connected(participantId, connectionId);
    const track = this.#ownTrack(member, producerId);
    if (paused) await track.producer.pause();
    else await track.producer.resume();
    this.#broadcast('trackUpdated', [this.#trackInfo(member, track)], participantId);
  }

  closeProducer(participantId: string, connectionId: string, producerId: string): void {
    const member = this.#connected(participantId, connectionId);
    this.#ownTrack(member, producerId).producer.close();
  }

  #findTrack(producerId: string): { owner: Member; track: PublishedTrack } | undefined {
    for (const owner of this.#members.values()) {
      const track = owner.tracks.get(producerId);
      if (track) return { owner, track };
    }
    return undefined;
  }

  /** Makes `track` available on `router` (once, however many consumers ask at the same time). */
  async #pipe(track: PublishedTrack, target: RoomRouter): Promise<void> {
    if (track.home === target) return;
    const key = `${track.producer.id}>${target.router.id}`;
    let piping = this.#pipes.get(key);
    if (!piping) {
      piping = track.home.router.pipeToRouter({ producerId: track.producer.id, router: target.router });
      this.#pipes.set(key, piping);
      track.producer.observer.once('close', () => this.#pipes.delete(key));
    }
    await piping;
  }

  async consume(participantId: string, connectionId: string, request: ConsumeRequest): Promise<ConsumeResponse> {
    const member = this.#connected(participantId, connectionId);
    const transport = this.#transport(member, request.transportId, 'recv');
    const found = this.#findTrack(request.producerId);
    if (!found) throw new HavenError('NOT_FOUND', 'no such producer');
    if (found.owner === member) throw new HavenError('INVALID_REQUEST', 'cannot consume your own track');
    if ([...member.consumers.values()].some((c) => c.producerId === request.producerId)) {
      throw new HavenError('INVALID_STATE', 'this track is consumed already');
    }
    const router = member.home.router;
    await this.#pipe(found.track, member.home);
    const rtpCapabilities = request.rtpCapabilities as never;
    if (!router.canConsume({ producerId: request.producerId, rtpCapabilities })) {
      throw new HavenError('INVALID_REQUEST', 'the device cannot receive this track');
    }
    const consumer = await transport.consume({
      producerId: request.producerId,
      rtpCapabilities,
      paused: true,
      appData: { participantId },
    });
    member.consumers.set(consumer.id, consumer);
    member.home.consumers++;
    consumer.observer.once('close', () => {
      member.consumers.delete(consumer.id);
      member.home.consumers--;
    });
    consumer.once('producerclose', () => this.#notify(participantId, 'consumerClosed', [{ consumerId: consumer.id }]));
    return {
      id: consumer.id,
      producerId: request.producerId,
      participantId: found.owner.identity.participantId,
      kind: consumer.kind,
      source: found.track.source,
      rtpParameters: consumer.rtpParameters,
    };
  }

  #consumer(member: Member, consumerId: string): Consumer {
    const consumer = member.consumers.get(consumerId);
    if (!consumer) throw new HavenError('NOT_FOUND', 'no such consumer');
    return consumer;
  }

  async setConsumerPaused(participantId: string, connectionId: string, consumerId: string, paused: boolean) {
    const consumer = this.#consumer(this.#connected(participantId, connectionId), consumerId);
    if (paused) await consumer.pause();
    else await consumer.resume();
  }

  /** Picks the simulcast layer for the size the receiver renders at (a hint from the SDK). */
  async setPreferredSize(participantId: string, connectionId: string, consumerId: string, height: number) {
    const consumer = this.#consumer(this.#connected(participantId, connectionId), consumerId);
    if (consumer.type !== 'simulcast') return;
    const layers = this.#findTrack(consumer.producerId)?.track.producer.rtpParameters.encodings?.length ?? 1;
    const wanted = height <= 180 ? 0 : height <= 360 ? 1 : 2;
    await consumer.setPreferredLayers({ spatialLayer: Math.min(wanted, layers - 1), temporalLayer: 2 });
  }

  /** A connection dropped: the place is kept for the grace window, then the participant leaves. */
  disconnected(participantId: string, connectionId: string): void {
    const member = this.#members.get(participantId);
    if (!member || member.connectionId !== connectionId) return;
    member.connectionId = undefined;
    this.#logger.info({ participant: participantId }, 'participant disconnected; place kept');
    member.graceTimer = setTimeout(() => this.leave(participantId, 'disconnected'), this.#settings.reconnectGraceMs);
  }

  /** Removes a participant and its media; others are told why. */
  leave(participantId: string, reason: LeaveReason): void {
    const member = this.#members.get(participantId);
    if (!member) return;
    clearTimeout(member.graceTimer);
    this.#closeMedia(member);
    this.#members.delete(participantId);
    this.#broadcast('participantLeft', [{ participantId, reason }]);
    this.#logger.info({ participant: participantId, reason }, 'participant left');
    this.#armEmptyTimer();
  }

  /** Ends the session for everyone and closes the room. */
  end(reason: string): void {
    if (this.#closed) return;
    this.#broadcast('sessionEnded', [{ reason }]);
    this.close();
  }

  #closeMedia(member: Member): void {
    for (const transport of [...member.transports.values()]) transport.close();
  }

  #armEmptyTimer(): void {
    if (this.#members.size > 0 || this.#closed) return;
    clearTimeout(this.#emptyTimer);
    this.#emptyTimer = setTimeout(() => {
      this.#logger.info('room empty past its timeout');
      this.close();
    }, this.#settings.emptyTimeoutMs);
  }

  #notify<K extends NotificationName>(participantId: string, name: K, args: ServerNotifications[K]): void {
    this.safeEmit('notify', participantId, { name, args } as Notification);
  }

  /** Tells every connected member (but `except`). */
  #broadcast<K extends NotificationName>(name: K, args: ServerNotifications[K], except?: string): void {
    for (const [id, member] of this.#members) {
      if (id !== except && member.connectionId) this.#notify(id, name, args);
    }
  }

  /** Closes the room: members' media, routers, timers. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#emptyTimer);
    for (const member of this.#members.values()) clearTimeout(member.graceTimer);
    this.#members.clear();
    for (const { router } of this.#routers) router.close();
    this.#logger.info('room closed');
    this.safeEmit('closed');
  }
}
