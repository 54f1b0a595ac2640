/**
 * The baseline: the same media topology as a Haven run on bare mediasoup — the same worker
 * binary, one router per room, two SRTP plain transports per participant, a producer per source
 * and a consumer of every other participant's — created directly, with no signaling and no Haven
 * code. What Haven costs is the difference at the same load.
 */
import * as mediasoup from 'mediasoup';
import type { PlainTransport, Router, Worker } from 'mediasoup/node/lib/types.js';
import { mediaCodecs } from '../server/media/codecs.ts';
import type { BaselineEndpoint } from './loadgen-protocol.ts';
import { loopback, producerRtpParameters } from './peer.ts';

const plainOptions = {
  listenIp: loopback,
  rtcpMux: true,
  comedia: false,
  enableSrtp: true,
  srtpCryptoSuite: 'AES_CM_128_HMAC_SHA1_80',
} as const;

export interface Wiring {
  id: string;
  send?: { ip: string; port: number; key: string };
  recvKey: string;
}

export class BaselineTopology {
  readonly workers: Worker[];
  readonly #routers: Router[] = [];
  producers = 0;
  consumers = 0;

  private constructor(workers: Worker[]) {
    this.workers = workers;
  }

  static async create(workers: number): Promise<BaselineTopology> {
    return new BaselineTopology(
      await Promise.all(Array.from({ length: workers }, () => mediasoup.createWorker({ logLevel: 'warn' }))),
    );
  }

  get workerPids(): number[] {
    return this.workers.map((w) => w.pid);
  }

  /** Builds the rooms of these endpoints (a router each, on the workers in turn); returns where to send. */
  async addRooms(endpoints: BaselineEndpoint[]): Promise<Wiring[]> {
    const rooms = new Map<string, BaselineEndpoint[]>();
    for (const e of endpoints) rooms.set(e.room, [...(rooms.get(e.room) ?? []), e]);
    const wiring: Wiring[] = [];
    for (const members of rooms.values()) {
      const worker = this.workers[this.#routers.length % this.workers.length] as Worker;
      const router = await worker.createRouter({ mediaCodecs });
      this.#routers.push(router);
      const producers: { owner: string; id: string }[] = [];
      const recvTransports = new Map<string, PlainTransport>();
      for (const member of members) {
        const key = { cryptoSuite: plainOptions.srtpCryptoSuite, keyBase64: member.sendKey };
        let send: Wiring['send'];
        if (member.sources.length > 0) {
          const transport = await router.createPlainTransport(plainOptions);
          await transport.connect({ ip: loopback, port: member.sendPort, srtpParameters: key });
          for (const source of member.sources) {
            const producer = await transport.produce({
              kind: source.kind,
              rtpParameters: producerRtpParameters(source.kind, source.ssrc, member.id) as never,
            });
            producers.push({ owner: member.id, id: producer.id });
            this.producers++;
          }
          send = {
            ip: transport.tuple.localIp,
            port: transport.tuple.localPort,
            key: transport.srtpParameters?.keyBase64 ?? '',
          };
        }
        const recv = await router.createPlainTransport(plainOptions);
        await recv.connect({ ip: loopback, port: member.recvPort, srtpParameters: key });
        recvTransports.set(member.id, recv);
        wiring.push({ id: member.id, send, recvKey: recv.srtpParameters?.keyBase64 ?? '' });
      }
      for (const [id, recv] of recvTransports) {
        for (const producer of producers) {
          if (producer.owner === id) continue;
          await recv.consume({ producerId: producer.id, rtpCapabilities: router.rtpCapabilities });
          this.consumers++;
        }
      }
    }
    return wiring;
  }

  close(): void {
    for (const worker of this.workers) worker.close();
  }
}
