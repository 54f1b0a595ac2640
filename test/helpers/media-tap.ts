/**
 * A tap on what the SFU forwards: a member of the room (an observer, by default) that receives
 * producers over a plain RTP transport (SRTP, no ICE or DTLS: the node must allow plain
 * transports) and keeps every RTP packet, decrypted from SRTP. It sees what a curious node, a
 * debugging capture or a core dump of the SFU would see. In an E2EE room it sends a real public
 * key, whose private half it throws away: it takes part in the key exchange, acknowledges every
 * key it is sent, and can read nothing.
 */
import { createECDH } from 'node:crypto';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { once } from 'node:events';
import { generateSrtpKeyBase64, SrtpSession } from '../../bench/srtp.ts';
import { protocolVersion, type Role, type SessionState } from '../../client-sdk/src/protocol/index.ts';
import { connect, ok, request, type TestSocket, token } from './signaling-client.ts';

export interface TappedPacket {
  sequence: number;
  timestamp: number;
  marker: boolean;
  payload: Buffer;
  /** When the tap received it (ms since the epoch). */
  at: number;
}

export interface MediaTap {
  socket: TestSocket;
  session: SessionState;
  /** Starts receiving a producer; its packets are kept under the producer's id. */
  consume(producerId: string): Promise<void>;
  packets(producerId: string): TappedPacket[];
  close(): Promise<void>;
}

/** A throwaway ECDH P-256 public key (base64 of the uncompressed point), its private half discarded. */
export function throwawayPublicKey(): string {
  const ecdh = createECDH('prime256v1');
  return ecdh.generateKeys('base64');
}

export async function openMediaTap(
  url: string,
  room: string,
  options: { id?: string; role?: Role } = {},
): Promise<MediaTap> {
  const id = options.id ?? `tap-${process.pid}`;
  const socket = await connect(url, token(room, id, options.role ?? 'observer'));
  const udp: UdpSocket = createSocket('udp4');
  udp.bind(0, '127.0.0.1');
  await once(udp, 'listening');
  const joined = await ok(socket, 'join', { protocolVersion, e2ee: { publicKey: throwawayPublicKey() } });
  if (joined.stage !== 'admitted') throw new Error(`the tap was not admitted (${joined.stage})`);
  const session = joined.session;
  // It says it has every key it is sent (as a curious member would), so rotations do not wait for it.
  socket.on('e2eeKey', ({ epoch }) => {
    request(socket, 'e2eeKeyReceived', { epoch }).catch(() => {});
  });
  const transport = await ok(socket, 'createPlainTransport', { direction: 'recv' });
  await ok(socket, 'connectPlainTransport', {
    transportId: transport.id,
    ip: '127.0.0.1',
    port: udp.address().port,
    srtpParameters: { cryptoSuite: 'AES_CM_128_HMAC_SHA1_80', keyBase64: generateSrtpKeyBase64() },
  });
  const srtp = new SrtpSession(transport.srtpParameters.keyBase64);
  const bySsrc = new Map<number, TappedPacket[]>();
  const byProducer = new Map<string, TappedPacket[]>();
  udp.on('message', (message: Buffer) => {
    const payloadType = (message[1] ?? 0) & 0x7f;
    if (payloadType >= 64 && payloadType <= 95) return; // RTCP
    const packet = srtp.unprotectRtp(message);
    if (!packet) return;
    const list = bySsrc.get(packet.readUInt32BE(8));
    if (!list) return;
    list.push({
      sequence: packet.readUInt16BE(2),
      timestamp: packet.readUInt32BE(4),
      marker: ((packet[1] ?? 0) & 0x80) !== 0,
      payload: Buffer.from(rtpPayloadOf(packet)),
      at: Date.now(),
    });
  });
  return {
    socket,
    session,
    async consume(producerId) {
      const consumer = await ok(socket, 'consume', {
        transportId: transport.id,
        producerId,
        rtpCapabilities: session.routerRtpCapabilities,
      });
      const ssrc = (consumer.rtpParameters as { encodings: { ssrc: number }[] }).encodings[0]?.ssrc;
      if (ssrc === undefined) throw new Error('the consumer has no SSRC');
      const list: TappedPacket[] = [];
      bySsrc.set(ssrc, list);
      byProducer.set(producerId, list);
      await ok(socket, 'resumeConsumer', { consumerId: consumer.id });
    },
    packets: (producerId) => byProducer.get(producerId) ?? [],
    async close() {
      socket.close();
      udp.close();
    },
  };
}

/** The payload of a (decrypted) RTP packet: after the CSRCs and the header extension, without padding. */
function rtpPayloadOf(packet: Buffer): Buffer {
  const first = packet[0] ?? 0;
  let offset = 12 + 4 * (first & 0x0f);
  if (first & 0x10) offset += 4 + 4 * packet.readUInt16BE(offset + 2);
  const padding = first & 0x20 ? (packet[packet.length - 1] ?? 0) : 0;
  return packet.subarray(offset, packet.length - padding);
}

/**
 * Whole VP8 frames from a VP8 RTP stream (RFC 7741): each packet's payload descriptor removed,
 * packets of one timestamp joined in sequence order; frames with a missing packet are left out.
 */
export function vp8Frames(packets: readonly TappedPacket[]): { timestamp: number; key: boolean; data: Buffer }[] {
  const byTimestamp = new Map<number, TappedPacket[]>();
  for (const packet of packets) {
    const list = byTimestamp.get(packet.timestamp) ?? [];
    list.push(packet);
    byTimestamp.set(packet.timestamp, list);
  }
  const frames: { timestamp: number; key: boolean; data: Buffer }[] = [];
  for (const [timestamp, list] of byTimestamp) {
    // Sequence order, across the 16-bit wrap.
    list.sort((a, b) => ((a.sequence - b.sequence + 0x8000) & 0xffff) - 0x8000);
    const first = list[0];
    const last = list[list.length - 1];
    if (!first || !last?.marker) continue;
    const contiguous = list.every((p, i) => i === 0 || p.sequence === (((list[i - 1]?.sequence ?? 0) + 1) & 0xffff));
    const startsFrame = ((first.payload[0] ?? 0) & 0x10) !== 0 && ((first.payload[0] ?? 0) & 0x07) === 0;
    if (!contiguous || !startsFrame) continue;
    const data = Buffer.concat(list.map((p) => p.payload.subarray(vp8DescriptorLength(p.payload))));
    frames.push({ timestamp, key: ((data[0] ?? 1) & 0x01) === 0, data });
  }
  return frames;
}

/** Length of a VP8 payload descriptor (RFC 7741 section 4.2). */
function vp8DescriptorLength(payload: Buffer): number {
  let length = 1;
  if (((payload[0] ?? 0) & 0x80) === 0) return length;
  const extension = payload[length++] ?? 0;
  if (extension & 0x80) length += ((payload[length] ?? 0) & 0x80) !== 0 ? 2 : 1; // picture id
  if (extension & 0x40) length += 1; // TL0PICIDX
  if (extension & 0x30) length += 1; // TID / KEYIDX
  return length;
}
