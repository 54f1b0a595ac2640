/**
 * What a synthetic participant of an end-to-end encrypted room sends: a P-256 public key at join
 * (an E2EE room refuses a join without one) and media shaped like encrypted frames. It takes no
 * part in the key exchange, so nobody can read its media: to everyone it is what it is to the SFU,
 * opaque bytes behind the few clear ones the SFU reads.
 *
 * The frame format is the SDK's (`client-sdk/src/e2ee/frame-crypto.ts`: clear bytes | AES-GCM
 * ciphertext and tag | 12-byte IV | epoch, u32 big-endian | 1 trailer byte). A frame is what the
 * browser's encoded transform sees: the RTP payload of an Opus packet, a whole VP8 frame without
 * its payload descriptors (which the packetizer adds to each packet, in clear). So an encrypted VP8 frame keeps its first packet's
 * first bytes (frame tag and, for a key frame, start code and size: all the SFU looks at) and grows
 * by the tag and the trailer at its end, in its last packet.
 */
import { createECDH, randomFillSync } from 'node:crypto';
import { frameTrailer } from '../client-sdk/src/e2ee/frame-crypto.ts';
import { e2eeClearBytes } from '../client-sdk/src/protocol/index.ts';
import { rtpPayloadOffset, stampLength } from './media.ts';

/** AES-GCM's authentication tag (WebCrypto's default, 128 bits), after the ciphertext. */
const e2eeTagLength = 16;
/** IV, epoch and the trailer byte at a frame's end. */
const e2eeTrailerLength = 12 + 4 + 1;
/** What encryption adds to each frame. */
export const e2eeFrameOverhead = e2eeTagLength + e2eeTrailerLength;
/** The epoch the synthetic frames claim (nobody decrypts them; the SFU does not read it). */
const syntheticEpoch = 1;

/** A fresh ECDH P-256 public key as a client sends it at join (65-byte uncompressed point, base64). */
export function syntheticPublicKey(): string {
  const ecdh = createECDH('prime256v1');
  ecdh.generateKeys();
  return ecdh.getPublicKey('base64');
}

/** Length of the VP8 payload descriptor (RFC 7741 §4.2) at `offset`. */
function vp8DescriptorLength(packet: Uint8Array, offset: number): number {
  const b0 = packet[offset] ?? 0;
  if (!(b0 & 0x80)) return 1;
  const x = packet[offset + 1] ?? 0;
  let length = 2;
  if (x & 0x80) length += (packet[offset + length] ?? 0) & 0x80 ? 2 : 1; // I: 7- or 15-bit PictureID
  if (x & 0x40) length += 1; // L: TL0PICIDX
  if (x & 0x30) length += 1; // T or K: TID and KEYIDX
  return length;
}

/**
 * The packet an E2EE sender would send instead of `plain` (one of `bench/media.ts`'s sources, RTP
 * header and payload, the bench's 12-byte stamp last): RTP header, VP8 payload descriptor and the
 * frame's clear bytes (`e2eeClearBytes`, on a frame's first packet only) kept; everything after
 * random, as ciphertext looks; a frame's last packet (every Opus packet, a VP8 packet with the
 * marker bit) also carries the tag and the trailer. The stamp stays last, as in plain rooms: the
 * bench's own clock for the one-way delay, which no SFU reads.
 */
export function opaquePacket(plain: Buffer, kind: 'audio' | 'video'): Buffer {
  const payload = rtpPayloadOffset(plain);
  let frameAt = payload;
  let clear: number = e2eeClearBytes.audio;
  let endsFrame = true;
  if (kind === 'video') {
    frameAt += vp8DescriptorLength(plain, payload);
    const startsFrame = ((plain[payload] ?? 0) & 0x10) !== 0; // S, partition 0
    const keyFrame = ((plain[frameAt] ?? 0) & 0x01) === 0; // the frame tag's inverse key frame bit
    clear = startsFrame ? (keyFrame ? e2eeClearBytes.videoKey : e2eeClearBytes.videoDelta) : 0;
    endsFrame = ((plain[1] ?? 0) & 0x80) !== 0; // marker
  }
  const stampAt = plain.length - stampLength;
  const clearEnd = Math.min(frameAt + clear, stampAt);
  const out = Buffer.allocUnsafe(plain.length + (endsFrame ? e2eeFrameOverhead : 0));
  plain.copy(out, 0, 0, clearEnd);
  const trailerAt = out.length - stampLength - (endsFrame ? e2eeTrailerLength : 0);
  // Ciphertext (and tag), then the IV: random.
  randomFillSync(out, clearEnd, trailerAt - clearEnd + (endsFrame ? 12 : 0));
  if (endsFrame) {
    out.writeUInt32BE(syntheticEpoch, trailerAt + 12);
    out[trailerAt + 16] = frameTrailer;
  }
  plain.copy(out, out.length - stampLength, stampAt);
  return out;
}
