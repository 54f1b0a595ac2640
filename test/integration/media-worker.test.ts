import { execFileSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { workerBin } from 'mediasoup';
import type { PipeTransport, PlainTransport, Producer, Router, RtpCodecCapability } from 'mediasoup/node/lib/types.js';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { waitFor } from '../../bench/processes.ts';
import { WorkerPool } from '../../server/media/worker-pool.ts';
import { rtpPacket, rtpPayload } from '../helpers/rtp.ts';

const mediaCodecs: RtpCodecCapability[] = [{ kind: 'audio', mimeType: 'audio/opus', clockRate: 48000, channels: 2 }];

test('the worker binary links no libsrtp2.so and no NSS', () => {
  const ldd = execFileSync('ldd', [workerBin], { encoding: 'utf8' });
  assert.not.match(ldd, /libsrtp2/);
  assert.not.match(ldd, /libnss3|libnspr4/);
  assert.not.match(ldd, /not found/);
  assert.match(ldd, /libcrypto\.so\.3/);
});

test('its SRTP ciphers are libsrtp built on OpenSSL', () => {
  const binary = readFileSync(workerBin);
  assert.ok(binary.includes('AES-128 counter mode using openssl'));
  assert.ok(binary.includes('hmac sha-1 openssl'));
});

interface Flow {
  /** Sends `count` RTP packets into router A and resolves with the payloads that left router B. */
  send(count: number): Promise<Set<string>>;
  close(): void;
}

/**
 * RTP from outside the server, over UDP, into a producer on router A; a consumer of it on router
 * B sending to a local UDP socket. `bridge` connects the two routers.
 */
async function mediaFlow(
  routerA: Router,
  routerB: Router,
  bridge: (producer: Producer) => Promise<void>,
): Promise<Flow> {
  const ingest = await routerA.createPlainTransport({ listenIp: '127.0.0.1', comedia: true, rtcpMux: true });
  const producer = await ingest.produce({
    kind: 'audio',
    rtpParameters: {
      codecs: [{ mimeType: 'audio/opus', payloadType: 100, clockRate: 48000, channels: 2 }],
      encodings: [{ ssrc: 1111 }],
    },
  });
  await bridge(producer);
  const receiver = createSocket('udp4');
  receiver.bind(0, '127.0.0.1');
  await once(receiver, 'listening');
  const received = new Set<string>();
  receiver.on('message', (msg: Buffer) => {
    const payload = rtpPayload(msg);
    if (payload) received.add(payload.toString());
  });
  const egress = await routerB.createPlainTransport({ listenIp: '127.0.0.1', comedia: false, rtcpMux: true });
  await egress.connect({ ip: '127.0.0.1', port: receiver.address().port });
  await egress.consume({ producerId: producer.id, rtpCapabilities: routerB.rtpCapabilities });
  const sender = createSocket('udp4');
  return {
    async send(count) {
      for (let seq = 1; seq <= count; seq++) {
        sender.send(rtpPacket(seq, 1111, Buffer.from(`haven-media-${seq}`)), ingest.tuple.localPort, '127.0.0.1');
        await new Promise((r) => setTimeout(r, 5));
      }
      await waitFor(() => received.size >= count, 5_000, 'the forwarded packets');
      return received;
    },
    close() {
      sender.close();
      receiver.close();
    },
  };
}

async function withTwoRouters(use: (a: Router, b: Router) => Promise<void>): Promise<void> {
  const pool = await WorkerPool.create({ size: 2, logLevel: 'error' });
  try {
    const [a, b] = pool.workers;
    assert.ok(a && b);
    await use(await a.worker.createRouter({ mediaCodecs }), await b.worker.createRouter({ mediaCodecs }));
  } finally {
    pool.close();
  }
}

test('SRTP (AES_CM_128_HMAC_SHA1_80) media flows between two workers over plain transports', () =>
  withTwoRouters(async (routerA, routerB) => {
    const srtp = { enableSrtp: true, srtpCryptoSuite: 'AES_CM_128_HMAC_SHA1_80', listenIp: '127.0.0.1' } as const;
    let tx: PlainTransport | undefined;
    const flow = await mediaFlow(routerA, routerB, async (producer) => {
      // Worker A encrypts what it sends to worker B, which decrypts it: libsrtp on both ends.
      tx = await routerA.createPlainTransport({ ...srtp, comedia: false, rtcpMux: true });
      const rx = await routerB.createPlainTransport({ ...srtp, comedia: false, rtcpMux: true });
      assert.is(tx.srtpParameters?.cryptoSuite, 'AES_CM_128_HMAC_SHA1_80');
      await tx.connect({ ip: '127.0.0.1', port: rx.tuple.localPort, srtpParameters: rx.srtpParameters });
      await rx.connect({ ip: '127.0.0.1', port: tx.tuple.localPort, srtpParameters: tx.srtpParameters });
      const consumer = await tx.consume({ producerId: producer.id, rtpCapabilities: routerA.rtpCapabilities });
      await rx.produce({ id: producer.id, kind: 'audio', rtpParameters: consumer.rtpParameters });
    });
    const received = await flow.send(50).finally(() => flow.close());
    assert.ok(received.has('haven-media-1') && received.has('haven-media-50'));
    const [stats] = await (tx as PlainTransport).getStats();
    assert.ok((stats?.bytesSent ?? 0) > 50 * 12, 'bytes went out encrypted');
  }));

test('SRTP (AEAD_AES_256_GCM) media flows between two workers through pipeToRouter', () =>
  withTwoRouters(async (routerA, routerB) => {
    const pipes: PipeTransport[] = [];
    routerA.observer.on('newtransport', (t) => {
      if (t.constructor.name === 'PipeTransport') pipes.push(t as PipeTransport);
    });
    const flow = await mediaFlow(routerA, routerB, async (producer) => {
      await routerA.pipeToRouter({ producerId: producer.id, router: routerB, enableSrtp: true });
    });
    assert.is(pipes[0]?.srtpParameters?.cryptoSuite, 'AEAD_AES_256_GCM');
    const received = await flow.send(50).finally(() => flow.close());
    assert.ok(received.has('haven-media-1') && received.has('haven-media-50'));
  }));

test.run();
