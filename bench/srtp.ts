/**
 * SRTP and SRTCP (RFC 3711) with AES_CM_128_HMAC_SHA1_80, over node:crypto only: what the load
 * generator needs to talk to mediasoup PlainTransports created with `enableSrtp`.
 *
 * Cost per packet is the point (the generator shares the machine with the SFU). node:crypto cannot
 * re-key a CTR cipher with a new IV, and creating one per packet costs more than the AES itself,
 * so one AES-ECB cipher per session key encrypts counter blocks laid out here (AES-CM is exactly
 * that) and the keystream is XORed word by word. HMAC-SHA1 is built from two one-shot `hash()`
 * calls over buffers that already hold the padded key, which is cheaper than a `createHmac` per
 * packet.
 */
import { type Cipher, createCipheriv, hash, randomBytes } from 'node:crypto';
import { readUint32, rtpHeaderLength } from './rtp.ts';

export const srtpCryptoSuite = 'AES_CM_128_HMAC_SHA1_80';

const masterKeyLength = 16;
const masterSaltLength = 14;
const authKeyLength = 20;
const tagLength = 10;
/** SRTCP's E flag and 31-bit index, between the encrypted packet and the tag. */
const srtcpIndexLength = 4;
/** Room for HMAC's padded key in front of the authenticated bytes, so one hash call covers both. */
const hmacPad = 64;

/** A random master key and salt for `srtpParameters.keyBase64` (30 bytes: 16 key + 14 salt). */
export function generateSrtpKeyBase64(): string {
  return randomBytes(masterKeyLength + masterSaltLength).toString('base64');
}

/**
 * AES in counter mode (RFC 3711 §4.1.1) over one reusable ECB cipher: counter blocks are the IV
 * with the block number in its last 16 bits. A packet never needs more than 2^16 blocks.
 */
export class AesCm {
  readonly #ecb: Cipher;
  readonly #iv = new Uint8Array(16);
  readonly #iv16 = new Uint16Array(this.#iv.buffer);
  readonly #iv32 = new Int32Array(this.#iv.buffer);
  #ctr8 = new Uint8Array(0);
  #ctr16 = new Uint16Array(0);
  #ctr32 = new Int32Array(0);

  constructor(key: Uint8Array) {
    this.#ecb = createCipheriv('aes-128-ecb', key, null);
    this.#ecb.setAutoPadding(false);
    this.#grow(128);
  }

  /** XORs the keystream for `iv` (16 bytes, the last two zero) into `buf[start, end)`. */
  xor(iv: Uint8Array, buf: Uint8Array, start: number, end: number): void {
    const length = end - start;
    if (length <= 0) return;
    const blocks = (length + 15) >>> 4;
    if (blocks > 0x10000) throw new RangeError('AES-CM: more than 2^16 blocks for one IV');
    if (blocks * 16 > this.#ctr8.length) this.#grow(2 ** Math.ceil(Math.log2(blocks)));
    this.#iv.set(iv);
    const a = this.#iv32[0] ?? 0;
    const b = this.#iv32[1] ?? 0;
    const c = this.#iv32[2] ?? 0;
    const d = this.#iv16[6] ?? 0;
    const ctr32 = this.#ctr32;
    const ctr16 = this.#ctr16;
    for (let j = 0, w = 0; j < blocks; j++, w += 4) {
      ctr32[w] = a;
      ctr32[w + 1] = b;
      ctr32[w + 2] = c;
      ctr16[2 * w + 6] = d;
    }
    const keystream = this.#ecb.update(this.#ctr8.subarray(0, blocks * 16));
    let i = 0;
    const offset = buf.byteOffset + start;
    if ((offset & 3) === 0 && (keystream.byteOffset & 3) === 0) {
      const words = length >>> 2;
      const dst = new Int32Array(buf.buffer, offset, words);
      const src = new Int32Array(keystream.buffer, keystream.byteOffset, words);
      for (let w = 0; w < words; w++) dst[w] = (dst[w] ?? 0) ^ (src[w] ?? 0);
      i = words * 4;
    }
    for (; i < length; i++) buf[start + i] = (buf[start + i] ?? 0) ^ (keystream[i] ?? 0);
  }

  /** The first `length` bytes of keystream for `iv`. */
  keystream(iv: Uint8Array, length: number): Buffer {
    const out = Buffer.alloc(length);
    this.xor(iv, out, 0, length);
    return out;
  }

  /** Counter blocks for up to `blocks` blocks, their block numbers written once. */
  #grow(blocks: number): void {
    const buffer = new ArrayBuffer(blocks * 16);
    this.#ctr8 = new Uint8Array(buffer);
    this.#ctr16 = new Uint16Array(buffer);
    this.#ctr32 = new Int32Array(buffer);
    for (let j = 0; j < blocks; j++) {
      this.#ctr8[j * 16 + 14] = j >>> 8;
      this.#ctr8[j * 16 + 15] = j & 0xff;
    }
  }
}

/**
 * RFC 3711 §4.3.1 key derivation with a key derivation rate of 0 (what SDES and mediasoup use):
 * AES-CM keystream under the master key, IV = (master salt XOR label << 48) << 16.
 * Labels: 0/1/2 RTP cipher key/auth key/salt, 3/4/5 the same for RTCP.
 */
export function deriveSrtpKey(masterKey: Uint8Array, masterSalt: Uint8Array, label: number, length: number): Buffer {
  const iv = new Uint8Array(16);
  iv.set(masterSalt.subarray(0, masterSaltLength));
  iv[7] = (iv[7] ?? 0) ^ label;
  return new AesCm(masterKey).keystream(iv, length);
}

/** Session keys for one direction of RTP or RTCP. */
class SessionKeys {
  readonly aes: AesCm;
  readonly salt: Buffer;
  /** Auth key XOR ipad, then room for the authenticated bytes (grows). */
  inner: Buffer;
  /** Auth key XOR opad, then the inner digest. */
  readonly outer = Buffer.alloc(hmacPad + 20, 0x5c);
  readonly ipad = Buffer.alloc(hmacPad, 0x36);
  /** The IV of the packet at hand. */
  readonly iv = new Uint8Array(16);

  constructor(masterKey: Buffer, masterSalt: Buffer, firstLabel: number) {
    this.aes = new AesCm(deriveSrtpKey(masterKey, masterSalt, firstLabel, masterKeyLength));
    const authKey = deriveSrtpKey(masterKey, masterSalt, firstLabel + 1, authKeyLength);
    this.salt = deriveSrtpKey(masterKey, masterSalt, firstLabel + 2, masterSaltLength);
    for (let i = 0; i < authKeyLength; i++) {
      this.ipad[i] = (this.ipad[i] ?? 0) ^ (authKey[i] ?? 0);
      this.outer[i] = (this.outer[i] ?? 0) ^ (authKey[i] ?? 0);
    }
    this.inner = Buffer.alloc(hmacPad + 1500);
    this.ipad.copy(this.inner);
  }

  /** Sets `iv` to (salt << 16) XOR (ssrc << 64) XOR (index << 16), index = high:low (48 bits). */
  setIv(ssrc: number, high: number, low: number): Uint8Array {
    const iv = this.iv;
    iv.set(this.salt);
    iv[4] = (iv[4] ?? 0) ^ (ssrc >>> 24);
    iv[5] = (iv[5] ?? 0) ^ ((ssrc >>> 16) & 0xff);
    iv[6] = (iv[6] ?? 0) ^ ((ssrc >>> 8) & 0xff);
    iv[7] = (iv[7] ?? 0) ^ (ssrc & 0xff);
    iv[8] = (iv[8] ?? 0) ^ (high >>> 24);
    iv[9] = (iv[9] ?? 0) ^ ((high >>> 16) & 0xff);
    iv[10] = (iv[10] ?? 0) ^ ((high >>> 8) & 0xff);
    iv[11] = (iv[11] ?? 0) ^ (high & 0xff);
    iv[12] = (iv[12] ?? 0) ^ (low >>> 8);
    iv[13] = (iv[13] ?? 0) ^ (low & 0xff);
    return iv;
  }

  /** HMAC-SHA1 of `buf[hmacPad, end)`, whose first `hmacPad` bytes hold `ipad`. */
  mac(buf: Buffer, end: number): Buffer {
    hash('sha1', buf.subarray(0, end), 'buffer').copy(this.outer, hmacPad);
    return hash('sha1', this.outer, 'buffer');
  }

  /** HMAC-SHA1 of `packet[0, length)` followed by `suffix` (RTP's rollover counter), copying it after `ipad`. */
  macOf(packet: Uint8Array, length: number, suffix?: number): Buffer {
    const needed = hmacPad + length + 4;
    if (this.inner.length < needed) {
      this.inner = Buffer.alloc(needed * 2);
      this.ipad.copy(this.inner);
    }
    this.inner.set(packet.subarray(0, length), hmacPad);
    if (suffix === undefined) return this.mac(this.inner, hmacPad + length);
    this.inner.writeUInt32BE(suffix, hmacPad + length);
    return this.mac(this.inner, hmacPad + length + 4);
  }
}

/** Rollover counter and highest sequence number of one SSRC (RFC 3711 §3.3.1). */
interface RtpStreamState {
  roc: number;
  seq: number;
}

/** RFC 3711 Appendix A: the rollover counter the sender most likely used for `seq`. */
function guessRoc(state: RtpStreamState, seq: number): number {
  if (state.seq < 0x8000) return seq - state.seq > 0x8000 ? (state.roc - 1) >>> 0 : state.roc;
  return state.seq - 0x8000 > seq ? (state.roc + 1) >>> 0 : state.roc;
}

function advance(state: RtpStreamState, roc: number, seq: number): void {
  if (roc === (state.roc + 1) >>> 0) {
    state.roc = roc;
    state.seq = seq;
  } else if (roc === state.roc && seq > state.seq) {
    state.seq = seq;
  }
}

function streamState(map: Map<number, RtpStreamState>, ssrc: number, seq: number): RtpStreamState {
  let state = map.get(ssrc);
  if (!state) {
    state = { roc: 0, seq };
    map.set(ssrc, state);
  }
  return state;
}

/** Constant-time comparison of the first `tagLength` bytes of `mac` with `packet[at, at + tagLength)`. */
function tagMatches(mac: Buffer, packet: Uint8Array, at: number): boolean {
  let diff = 0;
  for (let i = 0; i < tagLength; i++) diff |= (mac[i] ?? 0) ^ (packet[at + i] ?? 0);
  return diff === 0;
}

/**
 * One SRTP master key (one direction of a transport): protects what is sent with it, or
 * unprotects what was received with it. State (rollover counters, SRTCP indexes) is kept per
 * SSRC, separately for the two uses, so one session can also check its own output in tests.
 */
export class SrtpSession {
  readonly #rtp: SessionKeys;
  readonly #rtcp: SessionKeys;
  readonly #sent = new Map<number, RtpStreamState>();
  readonly #received = new Map<number, RtpStreamState>();
  readonly #rtcpSent = new Map<number, number>();

  /** `keyBase64`: mediasoup's `srtpParameters.keyBase64`, 16 bytes of master key + 14 of salt. */
  constructor(keyBase64: string) {
    const master = Buffer.from(keyBase64, 'base64');
    if (master.length !== masterKeyLength + masterSaltLength) {
      throw new TypeError(`SRTP master key and salt must be 30 bytes, got ${master.length}`);
    }
    const key = master.subarray(0, masterKeyLength);
    const salt = master.subarray(masterKeyLength);
    this.#rtp = new SessionKeys(key, salt, 0);
    this.#rtcp = new SessionKeys(key, salt, 3);
  }

  /** The rollover counter of an SSRC this session sent (`'sent'`) or received. */
  rolloverCounter(ssrc: number, direction: 'sent' | 'received'): number | undefined {
    return (direction === 'sent' ? this.#sent : this.#received).get(ssrc)?.roc;
  }

  /** An SRTP packet for the RTP packet `packet` (left untouched). */
  protectRtp(packet: Uint8Array): Buffer {
    const length = packet.length;
    const seq = ((packet[2] ?? 0) << 8) | (packet[3] ?? 0);
    const ssrc = readUint32(packet, 8);
    const state = streamState(this.#sent, ssrc, seq);
    const roc = guessRoc(state, seq);
    advance(state, roc, seq);
    const keys = this.#rtp;
    const out = Buffer.allocUnsafe(hmacPad + length + tagLength);
    keys.ipad.copy(out, 0);
    out.set(packet, hmacPad);
    keys.aes.xor(keys.setIv(ssrc, roc, seq), out, hmacPad + rtpHeaderLength(packet), hmacPad + length);
    out.writeUInt32BE(roc, hmacPad + length);
    keys.mac(out, hmacPad + length + 4).copy(out, hmacPad + length, 0, tagLength);
    return out.subarray(hmacPad);
  }

  /**
   * Authenticates and decrypts an SRTP packet **in place**; returns the RTP packet (a view of
   * `packet` without the tag), or undefined when it is too short or fails authentication.
   */
  unprotectRtp(packet: Buffer): Buffer | undefined {
    const length = packet.length - tagLength;
    if (length < 12) return undefined;
    const seq = ((packet[2] ?? 0) << 8) | (packet[3] ?? 0);
    const ssrc = readUint32(packet, 8);
    const known = this.#received.get(ssrc);
    const roc = known ? guessRoc(known, seq) : 0;
    const keys = this.#rtp;
    if (!tagMatches(keys.macOf(packet, length, roc), packet, length)) return undefined;
    const headerLength = rtpHeaderLength(packet);
    if (headerLength > length) return undefined;
    advance(streamState(this.#received, ssrc, seq), roc, seq);
    keys.aes.xor(keys.setIv(ssrc, roc, seq), packet, headerLength, length);
    return packet.subarray(0, length);
  }

  /** An SRTCP packet for the (compound) RTCP packet `packet` (left untouched), encrypted. */
  protectRtcp(packet: Uint8Array): Buffer {
    const length = packet.length;
    const ssrc = readUint32(packet, 4);
    const index = this.#rtcpSent.get(ssrc) ?? 0;
    this.#rtcpSent.set(ssrc, (index + 1) & 0x7fffffff);
    const keys = this.#rtcp;
    const out = Buffer.allocUnsafe(hmacPad + length + srtcpIndexLength + tagLength);
    keys.ipad.copy(out, 0);
    out.set(packet, hmacPad);
    keys.aes.xor(keys.setIv(ssrc, index >>> 16, index & 0xffff), out, hmacPad + 8, hmacPad + length);
    out.writeUInt32BE((0x80000000 | index) >>> 0, hmacPad + length);
    const authenticated = hmacPad + length + srtcpIndexLength;
    keys.mac(out, authenticated).copy(out, authenticated, 0, tagLength);
    return out.subarray(hmacPad);
  }

  /**
   * Authenticates and decrypts (when its E flag says so) an SRTCP packet **in place**; returns
   * the RTCP packet (a view of `packet`), or undefined when it is too short or not authentic.
   */
  unprotectRtcp(packet: Buffer): Buffer | undefined {
    const authenticated = packet.length - tagLength;
    const length = authenticated - srtcpIndexLength;
    if (length < 8) return undefined;
    const keys = this.#rtcp;
    if (!tagMatches(keys.macOf(packet, authenticated), packet, authenticated)) return undefined;
    const eIndex = readUint32(packet, length);
    if (eIndex & 0x80000000) {
      const index = eIndex & 0x7fffffff;
      keys.aes.xor(keys.setIv(readUint32(packet, 4), index >>> 16, index & 0xffff), packet, 8, length);
    }
    return packet.subarray(0, length);
  }
}
