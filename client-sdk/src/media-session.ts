/**
 * The mediasoup-client side of one join: a loaded Device, a send and a receive transport (each
 * created on first use) and the requests that tie them to the server. A reconnection builds a
 * new MediaSession: the server closed the old transports when the place was taken back.
 *
 * In an E2EE room every sender and receiver gets the frame transform as mediasoup-client creates
 * it (`onRtpSender`, `onRtpReceiver`: before negotiation, so no frame goes out in clear and the
 * first key frame is decrypted), and only VP8 and Opus are sent (the clear-byte rule is theirs).
 */
import { Device } from 'mediasoup-client';
import type {
  Consumer,
  DtlsParameters,
  IceCandidate,
  IceParameters,
  Producer,
  RtpCapabilities,
  RtpCodecCapability,
  RtpEncodingParameters,
  RtpParameters,
  SctpParameters,
  Transport,
} from 'mediasoup-client/types';
import type { FrameTransforms } from './e2ee/frame-transforms.ts';
import { HavenRequestError, InvalidStateError } from './errors.ts';
import type { MediaOptions } from './options.ts';
import type { ConsumeResponse, TrackSource, TransportDirection } from './protocol/index.ts';
import type { PublishPreset } from './publish-presets.ts';
import type { Signaling } from './signaling.ts';

export interface MediaSessionOptions extends MediaOptions {
  signaling: Signaling;
  routerRtpCapabilities: unknown;
  /** Errors no caller awaits (an ICE restart that failed). */
  onError: (error: Error) => void;
  /** In an E2EE room: the frame transforms (undefined where this browser has none: nothing is sent). */
  e2ee?: { transforms: FrameTransforms | undefined } | undefined;
}

export class MediaSession {
  readonly #device: Device;
  readonly #signaling: Signaling;
  readonly #iceTransportPolicy: RTCIceTransportPolicy;
  readonly #onError: (error: Error) => void;
  readonly #e2ee: { transforms: FrameTransforms | undefined } | undefined;
  readonly #transports = new Map<TransportDirection, Promise<Transport>>();
  #closed = false;

  private constructor(device: Device, options: MediaSessionOptions) {
    this.#device = device;
    this.#signaling = options.signaling;
    this.#iceTransportPolicy = options.iceTransportPolicy;
    this.#onError = options.onError;
    this.#e2ee = options.e2ee;
  }

  /** Loads a Device with the router's capabilities. */
  static async create(options: MediaSessionOptions): Promise<MediaSession> {
    const device = options.handlerName ? new Device({ handlerName: options.handlerName }) : await Device.factory();
    await device.load({ routerRtpCapabilities: options.routerRtpCapabilities as RtpCapabilities });
    return new MediaSession(device, options);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** The signaling connection this session's transports belong to. */
  get signaling(): Signaling {
    return this.#signaling;
  }

  canProduce(kind: 'audio' | 'video'): boolean {
    return this.#device.canProduce(kind);
  }

  /**
   * Sends `track` as `source`. The track is never stopped by mediasoup-client (`stopTracks:
   * false`): it outlives this session and is re-published on the next one after a reconnection.
   */
  async produce(track: MediaStreamTrack, source: TrackSource, preset: PublishPreset): Promise<Producer> {
    const encryption = this.#encryption(preset.kind);
    const transport = await this.#transport('send');
    return transport.produce({
      ...encryption,
      track,
      encodings: preset.encodings?.map((encoding) => ({ ...encoding })) as RtpEncodingParameters[] | undefined,
      codecOptions: preset.codecOptions,
      stopTracks: false,
      disableTrackOnPause: true,
      appData: { source },
    });
  }

  /** Creates a consumer on the server (paused), then locally, then resumes it on the server. */
  async consume(producerId: string): Promise<{ consumer: Consumer; response: ConsumeResponse }> {
    const transport = await this.#transport('recv');
    const response = await this.#signaling.request('consume', {
      transportId: transport.id,
      producerId,
      rtpCapabilities: this.#device.recvRtpCapabilities,
    });
    this.#assertOpen();
    const transforms = this.#e2ee?.transforms;
    const consumer = await transport.consume({
      ...(transforms && { onRtpReceiver: (receiver) => transforms.attachReceiver(receiver, response.kind) }),
      id: response.id,
      producerId: response.producerId,
      kind: response.kind,
      rtpParameters: response.rtpParameters as RtpParameters,
      appData: { source: response.source, participantId: response.participantId },
    });
    try {
      await this.#signaling.request('resumeConsumer', { consumerId: response.id });
    } catch (error) {
      consumer.close();
      throw error;
    }
    return { consumer, response };
  }

  /** Closes both transports (and so every producer and consumer on them). Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const pending of this.#transports.values()) {
      pending.then(
        (transport) => transport.close(),
        () => {},
      );
    }
    this.#transports.clear();
  }

  /**
   * In an E2EE room, what `produce` takes besides: the codec the clear-byte rule is defined for
   * (VP8, Opus) and the transform, attached to the RTCRtpSender before any frame is encoded.
   */
  #encryption(kind: 'audio' | 'video'): { codec?: RtpCodecCapability; onRtpSender?: (sender: RTCRtpSender) => void } {
    if (!this.#e2ee) return {};
    const { transforms } = this.#e2ee;
    if (!transforms) {
      throw new HavenRequestError(
        'E2EE_UNSUPPORTED',
        'this browser cannot encrypt media for an end-to-end encrypted room',
        'produce',
      );
    }
    const mimeType = kind === 'audio' ? 'audio/opus' : 'video/vp8';
    const codec = this.#device.rtpCapabilities.codecs?.find((c) => c.mimeType.toLowerCase() === mimeType);
    if (!codec)
      throw new HavenRequestError('E2EE_UNSUPPORTED', `${mimeType} is not available to encrypt with`, 'produce');
    return { codec, onRtpSender: (sender: RTCRtpSender) => transforms.attachSender(sender, kind) };
  }

  #assertOpen(): void {
    if (this.#closed) throw new InvalidStateError('the media session was closed');
  }

  #transport(direction: TransportDirection): Promise<Transport> {
    this.#assertOpen();
    let pending = this.#transports.get(direction);
    if (!pending) {
      pending = this.#createTransport(direction);
      this.#transports.set(direction, pending);
      // A failed creation is retried by the next caller.
      pending.catch(() => {
        if (this.#transports.get(direction) === pending) this.#transports.delete(direction);
      });
    }
    return pending;
  }

  async #createTransport(direction: TransportDirection): Promise<Transport> {
    const signaling = this.#signaling;
    const params = await signaling.request('createTransport', { direction });
    this.#assertOpen();
    const options = {
      id: params.id,
      iceParameters: params.iceParameters as IceParameters,
      iceCandidates: params.iceCandidates as IceCandidate[],
      dtlsParameters: params.dtlsParameters as DtlsParameters,
      sctpParameters: params.sctpParameters as SctpParameters | undefined,
      // Credentials issued with this transport (and again at each ICE restart): they expire.
      iceServers: params.iceServers.map((server) => ({ ...server })),
      // `relay`: only TURN candidates, on both transports (a clinic's policy, or a relay check).
      iceTransportPolicy: this.#iceTransportPolicy,
      // Insertable streams (no RTCRtpScriptTransform) must be asked for when the connection is made.
      ...(this.#e2ee?.transforms?.insertableStreams && {
        additionalSettings: { encodedInsertableStreams: true } as Partial<RTCConfiguration>,
      }),
    };
    const transport =
      direction === 'send' ? this.#device.createSendTransport(options) : this.#device.createRecvTransport(options);
    transport.on('connect', ({ dtlsParameters }, callback, errback) => {
      signaling
        .request('connectTransport', { transportId: transport.id, dtlsParameters })
        .then(() => callback(), errback);
    });
    if (direction === 'send') {
      transport.on('produce', ({ kind, rtpParameters, appData }, callback, errback) => {
        const source = appData.source as TrackSource;
        signaling
          .request('produce', { transportId: transport.id, kind, source, rtpParameters })
          .then(({ producerId }) => callback({ id: producerId }), errback);
      });
    }
    transport.on('connectionstatechange', (state) => {
      if (state === 'failed' && !this.#closed && signaling.connected) this.#restartIce(transport);
    });
    return transport;
  }

  /** ICE failed (e.g. the network changed): new ICE credentials from the server, then an ICE restart. */
  #restartIce(transport: Transport): void {
    this.#signaling
      .request('restartIce', { transportId: transport.id })
      .then(async ({ iceParameters, iceServers }) => {
        if (transport.closed) return;
        // The transport's TURN credentials may have expired since it was made (turn.ttlS).
        await transport.updateIceServers({ iceServers: iceServers.map((server) => ({ ...server })) });
        await transport.restartIce({ iceParameters: iceParameters as IceParameters });
      })
      .catch((error: Error) => {
        if (!this.#closed) this.#onError(error);
      });
  }
}
