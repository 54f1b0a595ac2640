/** Minimal RTP (RFC 3550) packets for media tests. */

/** An RTP packet with an Opus payload type (100) and `payload`. */
export function rtpPacket(seq: number, ssrc: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(12);
  header[0] = 0x80;
  header[1] = 100;
  header.writeUInt16BE(seq & 0xffff, 2);
  header.writeUInt32BE((seq * 960) >>> 0, 4);
  header.writeUInt32BE(ssrc, 8);
  return Buffer.concat([header, payload]);
}

/** The payload of an RTP packet (after CSRCs and header extension), or undefined for RTCP. */
export function rtpPayload(packet: Buffer): Buffer | undefined {
  if (packet.length < 12 || (packet[0] ?? 0) >> 6 !== 2) return undefined;
  const payloadType = (packet[1] ?? 0) & 0x7f;
  if (payloadType >= 64 && payloadType <= 95) return undefined; // RTCP (RFC 5761)
  let offset = 12 + 4 * ((packet[0] ?? 0) & 0x0f);
  if ((packet[0] ?? 0) & 0x10) offset += 4 + 4 * packet.readUInt16BE(offset + 2);
  const padding = (packet[0] ?? 0) & 0x20 ? (packet[packet.length - 1] ?? 0) : 0;
  return packet.subarray(offset, packet.length - padding);
}

/** The RTP parameters of an Opus microphone, as a client sends them with `produce`. */
export function opusAudioParameters(ssrc: number, cname: string) {
  return {
    codecs: [
      { mimeType: 'audio/opus', payloadType: 111, clockRate: 48000, channels: 2, parameters: {}, rtcpFeedback: [] },
    ],
    encodings: [{ ssrc }],
    headerExtensions: [],
    rtcp: { cname, reducedSize: true },
  };
}
