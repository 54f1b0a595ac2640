/**
 * One synthetic participant's media in the load generator: a UDP socket per direction, SRTP,
 * paced Opus and VP8 sources, and what it receives counted into the generator's statistics.
 * It does not know who set its transports up (Haven's signaling or the bare-mediasoup baseline).
 *
 * Receiving is most of the generator's work, so every packet is counted from its clear RTP
 * header and only one in `delaySampleEvery` is decrypted (authenticated) for its one-way delay.
 */
import { createSocket, type Socket } from 'node:dgram';
import { opaquePacket } from './e2ee-media.ts';
import {
  epochMs,
  isRtcp,
  keyFrameRequests,
  OpusSource,
  type ReceiverStats,
  type RtpSource,
  Vp8Source,
} from './media.ts';
import { generateSrtpKeyBase64, SrtpSession } from './srtp.ts';

export const loopback = '127.0.0.1';
/** Payload types the generator's producers use (any the router's codecs accept). */
export const opusPayloadType = 100;
export const vp8PayloadType = 101;
const delaySampleEvery = 16;

export type Publishing = 'av' | 'audio' | 'none';

/** A producer's RTP parameters for a plain transport (mediasoup's shape). */
export function producerRtpParameters(kind: 'audio' | 'video', ssrc: number, cname: string) {
  const codec =
    kind === 'audio'
      ? { mimeType: 'audio/opus', payloadType: opusPayloadType, clockRate: 48_000, channels: 2 }
      : {
          mimeType: 'video/VP8',
          payloadType: vp8PayloadType,
          clockRate: 90_000,
          rtcpFeedback: [{ type: 'nack', parameter: 'pli' }],
        };
  return { codecs: [codec], encodings: [{ ssrc }], rtcp: { cname } };
}

let nextSsrc = 10_000 + Math.floor(Math.random() * 1_000_000);

export class MediaPeer {
  readonly id: string;
  /** The key this peer encrypts with (given to the SFU when connecting the send transport). */
  readonly sendKey = generateSrtpKeyBase64();
  readonly sources: RtpSource[] = [];
  /** In an E2EE room: it sends a public key at join and frames shaped as encrypted (`e2ee-media.ts`). */
  readonly e2ee: boolean;
  /** When the first forwarded packet arrived (epoch ms), for join times. */
  firstPacketAt: number | undefined;
  onFirstPacket: (() => void) | undefined;
  readonly #stats: ReceiverStats;
  readonly #sendSocket: Socket = createSocket('udp4');
  readonly #recvSocket: Socket = createSocket('udp4');
  readonly #sendSrtp = new SrtpSession(this.sendKey);
  /** The SFU's keys: for RTCP feedback on the send transport, and for forwarded media. */
  #feedbackSrtp: SrtpSession | undefined;
  #recvSrtp: SrtpSession | undefined;
  #target: { ip: string; port: number } | undefined;
  #received = 0;
  #closed = false;

  constructor(id: string, stats: ReceiverStats, publishing: Publishing, videoBitrate: number, e2ee = false) {
    this.id = id;
    this.e2ee = e2ee;
    this.#stats = stats;
    if (publishing !== 'none') this.sources.push(new OpusSource({ ssrc: nextSsrc++, payloadType: opusPayloadType }));
    if (publishing === 'av') {
      this.sources.push(new Vp8Source({ ssrc: nextSsrc++, payloadType: vp8PayloadType, bitrate: videoBitrate }));
    }
    this.#recvSocket.on('message', (packet) => this.#onMedia(packet));
    this.#sendSocket.on('message', (packet) => this.#onFeedback(packet));
    // A send to a transport closed meanwhile (a removed participant) is not the generator's failure.
    for (const socket of [this.#sendSocket, this.#recvSocket]) socket.on('error', () => {});
  }

  /** Binds both sockets on loopback; returns their ports. */
  async bind(): Promise<{ sendPort: number; recvPort: number }> {
    const bindOne = (socket: Socket) =>
      new Promise<number>((resolve) => socket.bind(0, loopback, () => resolve(socket.address().port)));
    const [sendPort, recvPort] = await Promise.all([bindOne(this.#sendSocket), bindOne(this.#recvSocket)]);
    // Large buffers: a burst must not be dropped by the generator's own sockets.
    for (const socket of [this.#sendSocket, this.#recvSocket]) {
      socket.setRecvBufferSize(4 * 1024 * 1024);
      socket.setSendBufferSize(4 * 1024 * 1024);
    }
    return { sendPort, recvPort };
  }

  /** Where to send media (the SFU's send transport) and the key it answers feedback with. */
  connectSend(ip: string, port: number, sfuKey: string): void {
    this.#target = { ip, port };
    this.#feedbackSrtp = new SrtpSession(sfuKey);
  }

  /** The key the SFU encrypts forwarded media with (its recv transport's). */
  connectRecv(sfuKey: string): void {
    this.#recvSrtp = new SrtpSession(sfuKey);
  }

  source(kind: 'audio' | 'video'): RtpSource | undefined {
    return this.sources.find((s) => s.kind === kind);
  }

  /** Sends what every source has due by now. */
  tick(now: number, paused: ReadonlySet<number>): number {
    const target = this.#target;
    if (!target || this.#closed) return 0;
    let sent = 0;
    for (const source of this.sources) {
      const packets = source.poll(now);
      if (paused.has(source.ssrc)) continue; // a muted microphone sends nothing
      for (const packet of packets) {
        const payload = this.e2ee ? opaquePacket(packet, source.kind) : packet;
        this.#sendSocket.send(this.#sendSrtp.protectRtp(payload), target.port, target.ip);
        sent++;
      }
    }
    return sent;
  }

  #onMedia(packet: Buffer): void {
    if (isRtcp(packet)) return;
    this.#stats.record(packet);
    if (this.firstPacketAt === undefined) {
      this.firstPacketAt = epochMs();
      this.onFirstPacket?.();
    }
    if (this.#received++ % delaySampleEvery === 0 && this.#recvSrtp) {
      const clear = this.#recvSrtp.unprotectRtp(packet);
      if (clear) this.#stats.recordDelay(clear, epochMs());
    }
  }

  #onFeedback(packet: Buffer): void {
    if (!isRtcp(packet) || !this.#feedbackSrtp) return;
    const clear = this.#feedbackSrtp.unprotectRtcp(packet);
    if (!clear) return;
    for (const ssrc of keyFrameRequests(clear)) this.sources.find((s) => s.ssrc === ssrc)?.requestKeyFrame();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#sendSocket.close();
    this.#recvSocket.close();
  }
}
