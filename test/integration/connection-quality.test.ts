/**
 * Connection quality through a real node, over raw sockets and plain RTP: a publisher whose
 * camera loses 15 % of its packets on the way in is `poor` (reason `upload`) to itself and to the
 * facilitators within 5 s, and to nobody else unless the room shares quality; clean RTP again
 * brings it back to good or excellent; media that stops arriving for 5 s is `lost`, and so, at
 * once, is a dropped socket; a hidden observer's quality goes to facilitators only; a joiner's
 * session state lists what it may see.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { epochMs, Vp8Source } from '../../bench/media.ts';
import { producerRtpParameters, vp8PayloadType } from '../../bench/peer.ts';
import { waitFor } from '../../bench/processes.ts';
import { generateSrtpKeyBase64, SrtpSession, srtpCryptoSuite } from '../../bench/srtp.ts';
import type { ConnectionQualityInfo, Role } from '../../client-sdk/src/protocol/index.ts';
import { sessionNode } from '../helpers/session-node.ts';
import { admitted, joinAs, ok, request, type TestSocket } from '../helpers/signaling-client.ts';

const haven = sessionNode(test, {
  env: { HAVEN_MEDIA_PLAIN_TRANSPORTS: 'true', HAVEN_MEDIA_WORKERS: '1' },
  roomPrefix: 'quality',
  room: { title: 'Quality', waitingRoom: false },
});

/** One of every 20 packets dropped at these places: 15 %, spread out as a lossy radio link drops them. */
const dropped = new Set([0, 7, 13]);

interface Joined {
  socket: TestSocket;
  qualities: ConnectionQualityInfo[];
  own: ConnectionQualityInfo[];
}

async function join(room: string, sub: string, role: Role = 'participant'): Promise<Joined> {
  const socket = await haven.client(room, sub, role);
  const qualities: ConnectionQualityInfo[] = [];
  socket.on('connectionQualityChanged', (info) => qualities.push(info));
  const session = admitted(await joinAs(socket));
  return { socket, qualities, own: session.connectionQuality };
}

/** What `viewer` was told of `subject` so far. */
const toldOf = (viewer: Joined, subject: string) => viewer.qualities.filter((q) => q.participantId === subject);
const latest = (viewer: Joined, subject: string) => toldOf(viewer, subject).at(-1);

/**
 * Waits until everything the node sent `viewer` before now has arrived: a request's answer
 * comes after every notification sent to that connection before it.
 */
async function caughtUp(viewer: Joined): Promise<void> {
  await request(viewer.socket, 'pauseConsumer', { consumerId: 'none' });
}

/** A camera sent as plain RTP (VP8, 300 kbit/s) through the member's plain send transport. */
async function plainCamera(socket: TestSocket, cname: string) {
  const udp: UdpSocket = createSocket('udp4');
  udp.bind(0, '127.0.0.1');
  await once(udp, 'listening');
  const transport = await ok(socket, 'createPlainTransport', { direction: 'send' });
  const keyBase64 = generateSrtpKeyBase64();
  await ok(socket, 'connectPlainTransport', {
    transportId: transport.id,
    ip: '127.0.0.1',
    port: udp.address().port,
    srtpParameters: { cryptoSuite: srtpCryptoSuite, keyBase64 },
  });
  const ssrc = 20_000 + Math.floor(Math.random() * 1_000_000);
  await ok(socket, 'produce', {
    transportId: transport.id,
    kind: 'video',
    source: 'camera',
    rtpParameters: producerRtpParameters('video', ssrc, cname),
  });
  const source = new Vp8Source({ ssrc, payloadType: vp8PayloadType, bitrate: 300_000, frameRate: 15 });
  const srtp = new SrtpSession(keyBase64);
  let lossy = false;
  let silent = false;
  let sent = 0;
  const timer = setInterval(() => {
    for (const packet of source.poll(epochMs())) {
      if (silent) continue;
      const protectedPacket = srtp.protectRtp(packet);
      if (lossy && dropped.has(sent++ % 20)) continue;
      udp.send(protectedPacket, transport.port, transport.ip);
    }
  }, 10);
  haven.atEnd(() => {
    clearInterval(timer);
    udp.close();
  });
  return {
    lossy(on: boolean): void {
      lossy = on;
    },
    /** Nothing reaches the node (as when a firewall starts dropping the media's UDP). */
    silent(on: boolean): void {
      silent = on;
    },
  };
}

test('a camera losing 15 % upstream is poor (upload) to itself and the facilitator within 5 s, to nobody else', async () => {
  const room = await haven.newRoom();
  const facilitator = await join(room, 'fac-q1', 'facilitator');
  const publisher = await join(room, 'pt-q1');
  const other = await join(room, 'pt-q2');
  assert.equal(other.own, [{ participantId: 'pt-q2', quality: 'excellent', reason: null }], 'only its own');
  const camera = await plainCamera(publisher.socket, 'pt-q1');
  await sleep(3_000); // clean media first: the producer's stats settle
  assert.ok(!toldOf(facilitator, 'pt-q1').some((q) => q.quality === 'poor'), 'clean media is not poor');

  camera.lossy(true);
  const wentBad = Date.now();
  const poor = (viewer: Joined) => latest(viewer, 'pt-q1')?.quality === 'poor';
  await waitFor(() => poor(facilitator), 10_000, 'the facilitator to be told pt-q1 is poor');
  const toFacilitatorMs = Date.now() - wentBad;
  await waitFor(() => poor(publisher), 2_000, 'pt-q1 to be told it is poor');
  console.log(`    15 % upstream loss: poor at the facilitator after ${toFacilitatorMs} ms`);
  assert.ok(toFacilitatorMs <= 5_000, `poor within 5 s (${toFacilitatorMs} ms)`);
  assert.equal(latest(facilitator, 'pt-q1'), { participantId: 'pt-q1', quality: 'poor', reason: 'upload' });
  assert.equal(latest(publisher, 'pt-q1'), { participantId: 'pt-q1', quality: 'poor', reason: 'upload' });
  await caughtUp(other);
  assert.equal(toldOf(other, 'pt-q1'), [], 'another participant is not told');
  const lateFacilitator = await join(room, 'fac-q2', 'facilitator');
  assert.equal(
    lateFacilitator.own.find((q) => q.participantId === 'pt-q1'),
    { participantId: 'pt-q1', quality: 'poor', reason: 'upload' },
    'a facilitator joining now sees it in the session state',
  );

  camera.lossy(false);
  const clean = Date.now();
  const recovered = (q: ConnectionQualityInfo | undefined) => q?.quality === 'good' || q?.quality === 'excellent';
  await waitFor(() => recovered(latest(facilitator, 'pt-q1')), 15_000, 'pt-q1 to recover');
  console.log(`    clean again: ${latest(facilitator, 'pt-q1')?.quality} after ${Date.now() - clean} ms`);

  camera.silent(true);
  const cut = Date.now();
  await waitFor(() => latest(facilitator, 'pt-q1')?.quality === 'lost', 15_000, 'pt-q1 silent to be lost');
  console.log(`    media cut, signaling up: lost after ${Date.now() - cut} ms`);
  // Told to each viewer in one round, but over sockets of their own: wait for the publisher's too.
  await waitFor(() => latest(publisher, 'pt-q1')?.quality === 'lost', 5_000, 'pt-q1 to be told it is lost');
  assert.equal(latest(publisher, 'pt-q1'), { participantId: 'pt-q1', quality: 'lost', reason: 'both' });
  camera.silent(false);
  await waitFor(() => recovered(latest(facilitator, 'pt-q1')), 15_000, 'pt-q1 to be back');

  publisher.socket.close();
  const dropAt = Date.now();
  await waitFor(() => latest(facilitator, 'pt-q1')?.quality === 'lost', 5_000, 'pt-q1 to be lost');
  console.log(`    socket dropped: lost after ${Date.now() - dropAt} ms`);
  assert.equal(latest(facilitator, 'pt-q1'), { participantId: 'pt-q1', quality: 'lost', reason: 'both' });
  await caughtUp(other);
  assert.equal(toldOf(other, 'pt-q1'), [], 'nor of the drop');
});

test('a room sharing quality tells everyone admitted, but a hidden observer’s only to facilitators', async () => {
  const room = await haven.newRoom({ shareConnectionQuality: true });
  const facilitator = await join(room, 'fac-q3', 'facilitator');
  const observer = await join(room, 'obs-q3', 'observer');
  const publisher = await join(room, 'pt-q3');
  const other = await join(room, 'pt-q4');
  const camera = await plainCamera(publisher.socket, 'pt-q3');
  camera.lossy(true);
  const poor = { participantId: 'pt-q3', quality: 'poor', reason: 'upload' };
  await waitFor(() => latest(other, 'pt-q3')?.quality === 'poor', 10_000, 'the other participant to be told');
  await waitFor(() => latest(facilitator, 'pt-q3')?.quality === 'poor', 5_000, 'the facilitator to be told');
  assert.equal(latest(other, 'pt-q3'), poor);
  assert.equal(latest(facilitator, 'pt-q3'), poor);

  const late = await join(room, 'pt-q5');
  const seen = late.own.map((q) => q.participantId).sort();
  assert.equal(seen, ['fac-q3', 'pt-q3', 'pt-q4', 'pt-q5'], 'everyone admitted but the hidden observer');
  assert.equal(
    late.own.find((q) => q.participantId === 'pt-q3'),
    poor,
  );

  observer.socket.close();
  await waitFor(() => latest(facilitator, 'obs-q3')?.quality === 'lost', 5_000, 'the observer to be lost');
  await caughtUp(other);
  assert.equal(toldOf(other, 'obs-q3'), [], 'participants are not told of a hidden observer');
});

test.run();
