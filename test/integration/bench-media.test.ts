import { createSocket } from 'node:dgram';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Consumer, Producer, RtpCodecParameters } from 'mediasoup/node/lib/types.js';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { epochMs, isRtcp, keyFrameRequests, OpusSource, ReceiverStats, Vp8Source } from '../../bench/media.ts';
import { generateSrtpKeyBase64, SrtpSession, srtpCryptoSuite } from '../../bench/srtp.ts';
import { mediaCodecs } from '../../server/media/codecs.ts';
import { WorkerPool } from '../../server/media/worker-pool.ts';

const opusCodec: RtpCodecParameters = { mimeType: 'audio/opus', payloadType: 100, clockRate: 48000, channels: 2 };
const pli = [{ type: 'nack', parameter: 'pli' }];
const vp8Codec: RtpCodecParameters = { mimeType: 'video/VP8', payloadType: 101, clockRate: 90000, rtcpFeedback: pli };

test('mediasoup forwards synthetic SRTP Opus and VP8; a PLI brings a key frame; the receiver decrypts both', async () => {
  const pool = await WorkerPool.create({ size: 1, logLevel: 'error' });
  const [sender, receiver] = [createSocket('udp4'), createSocket('udp4')];
  try {
    const { router } = await pool.createRouter({ mediaCodecs });
    const srtp = { listenIp: '127.0.0.1', rtcpMux: true, enableSrtp: true, srtpCryptoSuite } as const;
    const key = generateSrtpKeyBase64();
    const ingest = await router.createPlainTransport({ ...srtp, comedia: true });
    await ingest.connect({ srtpParameters: { cryptoSuite: srtpCryptoSuite, keyBase64: key } });
    const opus = new OpusSource({ ssrc: 1111, payloadType: 100 });
    // No periodic key frames: the video consumer can only start from the one its PLI asks for.
    const vp8 = new Vp8Source({ ssrc: 2222, payloadType: 101, keyFrameIntervalMs: 0 });
    const produce = (kind: 'audio' | 'video', codec: RtpCodecParameters, ssrc: number) =>
      ingest.produce({ kind, rtpParameters: { codecs: [codec], encodings: [{ ssrc }] } });
    const producers = [await produce('audio', opusCodec, opus.ssrc), await produce('video', vp8Codec, vp8.ssrc)];
    await new Promise<void>((resolve) => receiver.bind(0, '127.0.0.1', resolve));
    const egress = await router.createPlainTransport({ ...srtp, comedia: false });
    const ours = { cryptoSuite: srtpCryptoSuite, keyBase64: generateSrtpKeyBase64() } as const;
    await egress.connect({ ip: '127.0.0.1', port: receiver.address().port, srtpParameters: ours });
    const [fromSfu, toSfu] = [new SrtpSession(egress.srtpParameters?.keyBase64 ?? ''), new SrtpSession(key)];
    const feedback = new SrtpSession(ingest.srtpParameters?.keyBase64 ?? '');
    const stats = new ReceiverStats();
    let [rejected, plis] = [0, 0];
    receiver.on('message', (msg: Buffer) => {
      if (isRtcp(msg)) return; // sender reports
      stats.record(msg);
      const packet = fromSfu.unprotectRtp(msg);
      if (packet) stats.recordDelay(packet, epochMs());
      else rejected++;
    });
    sender.on('message', (msg: Buffer) => {
      const rtcp = isRtcp(msg) ? feedback.unprotectRtcp(msg) : undefined;
      if (!rtcp || !keyFrameRequests(rtcp).includes(vp8.ssrc)) return;
      plis++;
      vp8.requestKeyFrame();
    });
    const sending = (async () => {
      for (const end = epochMs() + 3000; epochMs() < end; await sleep(10)) {
        for (const p of [...opus.poll(epochMs()), ...vp8.poll(epochMs())]) {
          sender.send(toSfu.protectRtp(p), ingest.tuple.localPort, '127.0.0.1');
        }
      }
    })();
    await sleep(500); // comedia: the consumers' PLIs can reach the sender once it has sent
    const consume = ({ id }: Producer) => egress.consume({ producerId: id, rtpCapabilities: router.rtpCapabilities });
    const consumers = [await consume(producers[0] as Producer), await consume(producers[1] as Producer)];
    await sending;
    await sleep(300);
    assert.ok(plis > 0 && vp8.keyFrames >= 2, `${plis} PLIs, ${vp8.keyFrames} key frames`);
    assert.is(rejected, 0, 'every forwarded packet authenticates');
    for (const [i, consumer] of consumers.entries()) {
      const forwarded = stats.stream(consumer.rtpParameters.encodings?.[0]?.ssrc ?? 0);
      assert.ok(forwarded && forwarded.received >= (i === 0 ? 100 : 150), `${consumer.kind}: ${forwarded?.received}`);
      assert.ok(forwarded.loss < 0.01, `${consumer.kind} loss ${forwarded.loss}`);
    }
    assert.ok(stats.snapshot().oneWayDelayMs.count > 0);
  } finally {
    sender.close();
    receiver.close();
    await pool.close();
  }
});

test('a source whose first 32,000 packets are lost on the way still reaches its consumers (no early sequence wrap)', async () => {
  // The SFU's SRTP takes the first packet it authenticates as rollover counter 0: had the
  // sequence wrapped before any packet got through, every later packet would fail authentication
  // and the track would be silent for good. Twelve sources, each losing its first 32,000 packets.
  const pool = await WorkerPool.create({ size: 1, logLevel: 'error' });
  const [sender, receiver] = [createSocket('udp4'), createSocket('udp4')];
  try {
    const { router } = await pool.createRouter({ mediaCodecs });
    const srtp = { listenIp: '127.0.0.1', rtcpMux: true, enableSrtp: true, srtpCryptoSuite } as const;
    const key = generateSrtpKeyBase64();
    await new Promise<void>((resolve) => sender.bind(0, '127.0.0.1', resolve));
    const ingest = await router.createPlainTransport({ ...srtp, comedia: false });
    await ingest.connect({
      ip: '127.0.0.1',
      port: sender.address().port,
      srtpParameters: { cryptoSuite: srtpCryptoSuite, keyBase64: key },
    });
    await new Promise<void>((resolve) => receiver.bind(0, '127.0.0.1', resolve));
    const egress = await router.createPlainTransport({ ...srtp, comedia: false });
    const ours = { cryptoSuite: srtpCryptoSuite, keyBase64: generateSrtpKeyBase64() } as const;
    await egress.connect({ ip: '127.0.0.1', port: receiver.address().port, srtpParameters: ours });
    const sources = Array.from({ length: 12 }, (_, i) => new OpusSource({ ssrc: 5000 + i, payloadType: 100 }));
    const consumers: Consumer[] = [];
    for (const source of sources) {
      const producer = await ingest.produce({
        kind: 'audio',
        rtpParameters: { codecs: [opusCodec], encodings: [{ ssrc: source.ssrc }] },
      });
      consumers.push(await egress.consume({ producerId: producer.id, rtpCapabilities: router.rtpCapabilities }));
    }
    for (const consumer of consumers) await consumer.resume();
    const stats = new ReceiverStats();
    receiver.on('message', (msg: Buffer) => {
      if (!isRtcp(msg)) stats.record(msg);
    });
    const toSfu = new SrtpSession(key);
    // Encrypted and "sent" (the sender's rollover counters advance), lost before the SFU.
    let clock = 1_700_000_000_000;
    for (let i = 0; i < 32_000; i++, clock += 20)
      for (const s of sources) for (const p of s.poll(clock)) toSfu.protectRtp(p);
    const heard = () =>
      consumers.every((c) => (stats.stream(c.rtpParameters.encodings?.[0]?.ssrc ?? 0)?.received ?? 0) > 0);
    // Then through: a packet of each every 10 ms until every consumer has heard its source.
    for (let round = 0; round < 300 && !heard(); round++, clock += 20) {
      for (const s of sources)
        for (const p of s.poll(clock)) sender.send(toSfu.protectRtp(p), ingest.tuple.localPort, '127.0.0.1');
      await sleep(10);
    }
    const silent = consumers.filter((c) => !(stats.stream(c.rtpParameters.encodings?.[0]?.ssrc ?? 0)?.received ?? 0));
    assert.is(silent.length, 0, `${silent.length} of 12 tracks never forwarded`);
  } finally {
    sender.close();
    receiver.close();
    await pool.close();
  }
});

test.run();
