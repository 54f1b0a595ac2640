/**
 * One member's media in a room: its transports (WebRTC, or plain RTP for the bench), the tracks
 * it publishes and what it consumes, on its home router. What may be published is the room's
 * rule, asked through `PublishRules`; what happens is told through events. `reset()` closes the
 * transports (and so their producers and consumers); `close()` does so for good.
 */
import type { Consumer, PlainTransport, Producer, Transport, WebRtcTransport } from 'mediasoup/node/lib/types.js';
import type {
  AudioOnlyState,
  ConnectPlainTransportRequest,
  ConsumeRequest,
  ConsumeResponse,
  ConsumerPauseReason,
  IceServer,
  PlainTransportOptions,
  ProduceRequest,
  RestartIceResponse,
  TrackInfo,
  TrackSource,
  TransportDirection,
  TransportOptions,
} from '../../client-sdk/src/protocol/index.ts';
import { sourceCapability, sourceKind } from '../../client-sdk/src/protocol/index.ts';
import { TypedEmitter } from '../../client-sdk/src/protocol/typed-emitter.ts';
import { HavenError } from '../errors.ts';
import { DownlinkAllocator, type DownlinkEstimate } from './downlink-allocator.ts';
import type { RoomRouter, RoomRouters } from './room-routers.ts';

export interface PublishedTrack {
  producer: Producer;
  source: TrackSource;
  home: RoomRouter;
  /** An audio track: whose speakers it counts among (`RoomRouters.listen`). */
  speakersPlace?: string;
}

/** The room's rules for what a member publishes. */
export interface PublishRules {
  mayPublish(source: TrackSource): boolean;
  /** A source the facilitator holds muted: it starts paused and may not be resumed. */
  heldMuted(source: TrackSource): boolean;
  /** Whether a track may be sent with this media codec (lower-case MIME type, e.g. `video/vp8`). */
  mayUseCodec(mimeType: string): boolean;
  /** Whether this member may receive what `participantId` publishes (the same breakout group). */
  mayReceiveFrom(participantId: string): boolean;
  /** The breakout group this member is in (undefined: the main room), whose speakers its voice counts among. */
  breakout(): string | undefined;
}

export interface MemberMediaOptions {
  participantId: string;
  routers: RoomRouters;
  rules: PublishRules;
  /** Plain RTP transports on this address (absent: refused). */
  plainTransports?: { listenIp: string; announcedIp?: string };
  /** TURN servers with credentials valid from now on, for this member. */
  iceServers: () => IceServer[];
}

export type MemberMediaEvents = {
  /** A transport's media path is up (DTLS connected, or a plain transport connected). */
  connected: [direction: string];
  /** A microphone published while held muted: it started paused. */
  startedMuted: [producerId: string];
  published: [track: PublishedTrack];
  unpublished: [track: PublishedTrack];
  updated: [track: PublishedTrack];
  /** A consumer closed because the track it received was unpublished, or is outside this member's group now. */
  consumerClosed: [consumerId: string];
  /** The downlink allocator holds back one of this member's video consumers, or sends it again. */
  consumerPaused: [consumerId: string, reason: ConsumerPauseReason | null];
  /** This member now receives audio only, or video again. */
  audioOnlyChanged: [state: AudioOnlyState];
  /** Dynacast: this member's simulcast producer should send layers up to `maxSpatialLayer` only. */
  publisherLayers: [producerId: string, maxSpatialLayer: number];
};

export class MemberMedia extends TypedEmitter<MemberMediaEvents> {
  readonly participantId: string;
  /** The router this media is on (placed when its member is admitted; moved if that router is lost). */
  home: RoomRouter;
  readonly transports = new Map<string, Transport>();
  readonly tracks = new Map<string, PublishedTrack>();
  readonly consumers = new Map<string, Consumer>();
  /** What of the room's media this member's downlink carries (speech first). */
  readonly downlink: DownlinkAllocator;
  readonly #options: MemberMediaOptions;
  #closed = false;

  constructor(options: MemberMediaOptions) {
    super();
    this.#options = options;
    this.participantId = options.participantId;
    this.home = options.routers.first;
    this.downlink = new DownlinkAllocator({
      room: options.routers.downlinkView,
      audioOnlyBelowBps: options.routers.audioOnlyBelowBps,
      onPaused: (consumerId, reason) => this.safeEmit('consumerPaused', consumerId, reason),
      onAudioOnly: (state) => this.safeEmit('audioOnlyChanged', state),
    });
  }

  /** The bandwidth estimate of this member's downlink (undefined before its first, or without WebRTC). */
  downlinkEstimate(): DownlinkEstimate | undefined {
    return this.downlink.estimate;
  }

  get closed(): boolean {
    return this.#closed;
  }

  trackInfo(track: PublishedTrack): TrackInfo {
    return {
      producerId: track.producer.id,
      participantId: this.participantId,
      kind: track.producer.kind,
      source: track.source,
      paused: track.producer.paused,
    };
  }

  trackOf(source: TrackSource): PublishedTrack | undefined {
    return [...this.tracks.values()].find((t) => t.source === source);
  }

  async createTransport(direction: TransportDirection): Promise<TransportOptions> {
    this.#replacing(direction);
    const { webRtcServer } = this.home.worker;
    if (!webRtcServer) throw new HavenError('INTERNAL', 'no WebRTC server on this worker');
    const transport = await this.home.router.createWebRtcTransport({
      webRtcServer,
      enableUdp: true,
      enableTcp: true,
      preferUdp: true,
      initialAvailableOutgoingBitrate: 1_000_000,
      appData: { participantId: this.participantId, direction, kind: 'webrtc' },
    });
    this.#keep(transport);
    if (direction === 'recv') this.downlink.watch(transport);
    transport.on('dtlsstatechange', (dtlsState) => {
      if (dtlsState === 'connected') this.safeEmit('connected', direction);
    });
    return {
      id: transport.id,
      iceParameters: transport.iceParameters,
      iceCandidates: transport.iceCandidates,
      dtlsParameters: transport.dtlsParameters,
      iceServers: this.#options.iceServers(),
    };
  }

  /**
   * A plain RTP transport with SRTP (AES_CM_128_HMAC_SHA1_80), where the node allows them: what
   * the bench's load generator sends synthetic media through (no ICE, no DTLS, no browser).
   */
  async createPlainTransport(direction: TransportDirection): Promise<PlainTransportOptions> {
    const listen = this.#options.plainTransports;
    if (!listen) throw new HavenError('FORBIDDEN', 'plain RTP transports are off on this node');
    this.#replacing(direction);
    const transport = await this.home.router.createPlainTransport({
      listenIp: { ip: listen.listenIp, announcedIp: listen.announcedIp },
      rtcpMux: true,
      comedia: false,
      enableSrtp: true,
      srtpCryptoSuite: 'AES_CM_128_HMAC_SHA1_80',
      appData: { participantId: this.participantId, direction, kind: 'plain' },
    });
    this.#keep(transport);
    return {
      id: transport.id,
      ip: transport.tuple.localIp,
      port: transport.tuple.localPort,
      // Created with that one suite.
      srtpParameters: transport.srtpParameters as PlainTransportOptions['srtpParameters'],
    };
  }

  /**
   * One transport per direction: a new one replaces the old (a client recovering from a media
   * reset may ask again before it heard of the old one's end). A send transport needs something
   * to publish.
   */
  #replacing(direction: TransportDirection): void {
    for (const old of this.transports.values()) if (old.appData.direction === direction) old.close();
    const { rules } = this.#options;
    if (direction === 'send' && !Object.keys(sourceCapability).some((s) => rules.mayPublish(s as TrackSource))) {
      throw new HavenError('FORBIDDEN', 'this participant may not publish');
    }
  }

  #keep(transport: Transport): void {
    this.transports.set(transport.id, transport);
    transport.observer.once('close', () => this.transports.delete(transport.id));
  }

  #transport(transportId: string, direction?: TransportDirection): Transport {
    const transport = found(this.transports, transportId, 'no such transport');
    if (direction && transport.appData.direction !== direction) {
      throw new HavenError('INVALID_REQUEST', `transport is not a ${direction} transport`);
    }
    return transport;
  }

  #webRtcTransport(transportId: string): WebRtcTransport {
    const transport = this.#transport(transportId);
    if (transport.appData.kind !== 'webrtc') throw new HavenError('INVALID_REQUEST', 'not a WebRTC transport');
    return transport as WebRtcTransport;
  }

  async connectTransport(transportId: string, dtlsParameters: unknown): Promise<void> {
    await this.#webRtcTransport(transportId).connect({ dtlsParameters: dtlsParameters as never });
  }

  async connectPlainTransport(request: ConnectPlainTransportRequest): Promise<void> {
    const transport = this.#transport(request.transportId);
    if (transport.appData.kind !== 'plain') throw new HavenError('INVALID_REQUEST', 'not a plain transport');
    await (transport as PlainTransport).connect({
      ip: request.ip,
      port: request.port,
      srtpParameters: request.srtpParameters,
    });
    this.safeEmit('connected', String(transport.appData.direction));
  }

  async restartIce(transportId: string): Promise<RestartIceResponse> {
    // New credentials too: a restart may come hours after the transport's were issued.
    return {
      iceParameters: await this.#webRtcTransport(transportId).restartIce(),
      iceServers: this.#options.iceServers(),
    };
  }

  async produce(request: ProduceRequest): Promise<{ producerId: string }> {
    const transport = this.#transport(request.transportId, 'send');
    if (sourceKind[request.source] !== request.kind) {
      throw new HavenError('INVALID_REQUEST', `a ${request.source} track is ${sourceKind[request.source]}`);
    }
    const { rules, routers } = this.#options;
    if (!rules.mayPublish(request.source)) {
      throw new HavenError('FORBIDDEN', `this participant may not publish ${request.source}`);
    }
    if (this.trackOf(request.source)) throw new HavenError('INVALID_STATE', `${request.source} is published already`);
    const refused = mediaCodecsOf(request.rtpParameters).find((mimeType) => !rules.mayUseCodec(mimeType));
    if (refused) throw new HavenError('INVALID_REQUEST', `codec ${refused} is not allowed in this room`);
    // Controlled audio: a new microphone (even a re-published one) starts muted unless asked to unmute.
    const startMuted = rules.heldMuted(request.source);
    const producer = await transport.produce({
      kind: request.kind,
      rtpParameters: request.rtpParameters as never,
      paused: startMuted,
      appData: { participantId: this.participantId, source: request.source },
    });
    if (startMuted) this.safeEmit('startedMuted', producer.id);
    const track: PublishedTrack = { producer, source: request.source, home: this.home };
    this.tracks.set(producer.id, track);
    routers.published(this, track);
    producer.observer.once('close', () => {
      this.tracks.delete(producer.id);
      this.safeEmit('unpublished', track);
    });
    await routers.listen(track, rules.breakout());
    this.safeEmit('published', track);
    return { producerId: producer.id };
  }

  #ownTrack(producerId: string): PublishedTrack {
    return found(this.tracks, producerId, 'no such producer');
  }

  /** The member pausing or resuming its own track (a held microphone stays paused). */
  async setProducerPaused(producerId: string, paused: boolean): Promise<void> {
    const track = this.#ownTrack(producerId);
    if (!paused && this.#options.rules.heldMuted(track.source)) {
      throw new HavenError('FORBIDDEN', 'the facilitator controls audio: unmute when asked');
    }
    await this.pause(track, paused);
  }

  async pause(track: PublishedTrack, paused: boolean): Promise<void> {
    if (paused) await track.producer.pause();
    else await track.producer.resume();
    this.safeEmit('updated', track);
  }

  closeProducer(producerId: string): void {
    this.#ownTrack(producerId).producer.close();
  }

  async consume(request: ConsumeRequest): Promise<ConsumeResponse> {
    const transport = this.#transport(request.transportId, 'recv');
    const { routers } = this.#options;
    const found = routers.track(request.producerId);
    if (!found) throw new HavenError('NOT_FOUND', 'no such producer');
    if (found.owner === this) throw new HavenError('INVALID_REQUEST', 'cannot consume your own track');
    const outsideGroup = () => !this.#options.rules.mayReceiveFrom(found.owner.participantId);
    if (outsideGroup()) throw new HavenError('FORBIDDEN', 'that track is outside your breakout group');
    if ([...this.consumers.values()].some((c) => c.producerId === request.producerId)) {
      throw new HavenError('INVALID_STATE', 'this track is consumed already');
    }
    const router = this.home.router;
    await routers.pipe(found.track, this.home);
    const rtpCapabilities = request.rtpCapabilities as never;
    if (!router.canConsume({ producerId: request.producerId, rtpCapabilities })) {
      throw new HavenError('INVALID_REQUEST', 'the device cannot receive this track');
    }
    const consumer = await transport.consume({
      producerId: request.producerId,
      rtpCapabilities,
      paused: true,
      // Retransmission for audio too (mediasoup's default is video only): a voice lost on a
      // lossy downlink is asked for again (NACK) in time for the jitter buffer.
      enableRtx: true,
      appData: { participantId: this.participantId },
    });
    // Moved to another group while the consumer was being made: it never reaches the client.
    if (outsideGroup()) {
      consumer.close();
      throw new HavenError('FORBIDDEN', 'that track is outside your breakout group');
    }
    this.consumers.set(consumer.id, consumer);
    this.downlink.added(consumer);
    this.home.consumers++;
    consumer.observer.once('close', () => {
      this.consumers.delete(consumer.id);
      this.home.consumers--;
    });
    consumer.once('producerclose', () => this.safeEmit('consumerClosed', consumer.id));
    return {
      id: consumer.id,
      producerId: request.producerId,
      participantId: found.owner.participantId,
      kind: consumer.kind,
      source: found.track.source,
      rtpParameters: consumer.rtpParameters,
    };
  }

  #consumer(consumerId: string): Consumer {
    return found(this.consumers, consumerId, 'no such consumer');
  }

  /** The receiver pausing or resuming a consumer (sent only when its downlink carries it too). */
  async setConsumerPaused(consumerId: string, paused: boolean): Promise<void> {
    this.#consumer(consumerId);
    await this.downlink.setClientPaused(consumerId, paused);
  }

  /** The size the receiver renders a video at: the simulcast layer it asks for (as its downlink allows). */
  async setPreferredSize(consumerId: string, height: number): Promise<void> {
    this.#consumer(consumerId);
    await this.downlink.setWantedHeight(consumerId, height);
  }

  /**
   * After a move between groups: its voice counts among its new group's speakers, and the
   * consumers of tracks it may no longer receive (it or their publisher moved) are closed, each
   * told as `consumerClosed`.
   */
  regroup(): void {
    const { routers, rules } = this.#options;
    for (const track of this.tracks.values()) {
      routers.listen(track, rules.breakout()).catch(() => {}); // a producer closing meanwhile
    }
    for (const consumer of [...this.consumers.values()]) {
      const owner = routers.track(consumer.producerId)?.owner.participantId;
      if (owner !== undefined && rules.mayReceiveFrom(owner)) continue;
      consumer.close();
      this.safeEmit('consumerClosed', consumer.id);
    }
  }

  /** Closes every transport, and with them their producers and consumers (the member goes on). */
  reset(): void {
    for (const transport of [...this.transports.values()]) transport.close();
  }

  /** Closes all of this media for good. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.reset();
  }
}

/** The entry of `map` at `id`, or NOT_FOUND. */
function found<T>(map: ReadonlyMap<string, T>, id: string, missing: string): T {
  const entry = map.get(id);
  if (entry === undefined) throw new HavenError('NOT_FOUND', missing);
  return entry;
}

/**
 * The media codecs of RTP parameters as a client sent them (lower-case MIME types), leaving out
 * retransmission (`rtx`), which carries another codec's packets; what is not well formed is left
 * for mediasoup to refuse.
 */
function mediaCodecsOf(rtpParameters: unknown): string[] {
  const codecs = (rtpParameters as { codecs?: unknown } | null)?.codecs;
  if (!Array.isArray(codecs)) return [];
  return codecs
    .map((codec) => (codec as { mimeType?: unknown } | null)?.mimeType)
    .filter((mimeType): mimeType is string => typeof mimeType === 'string')
    .map((mimeType) => mimeType.toLowerCase())
    .filter((mimeType) => !mimeType.endsWith('/rtx'));
}
