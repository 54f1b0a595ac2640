/**
 * One media frame, encrypted (pure functions: they run in the frame worker, and in Node for tests).
 *
 * Frame = clear bytes | AES-GCM ciphertext and tag | 12-byte IV | epoch (u32 BE) | 1 trailer byte.
 * The clear bytes (`e2eeClearBytes`: the VP8 payload header the SFU reads for key frames and
 * layers, Opus's TOC byte) and the epoch and trailer are authenticated as additional data; the
 * IV is random per frame (96 bits: no counter to keep across simulcast layers or workers).
 */

const ivLength = 12;
/** Epoch (4 bytes) and trailer (1 byte). */
const suffixLength = 5;
/** The trailer byte: this format, version 1 (a frame without it is not one of ours). */
export const frameTrailer = 0xe1;
const tagLength = 16;

/** The AES-GCM key of an epoch's frames, from its 32-byte secret (HKDF-SHA256, its own `info`). */
export async function deriveFrameKey(secret: Uint8Array): Promise<CryptoKey> {
  const base = await crypto.subtle.importKey('raw', secret as BufferSource, 'HKDF', false, ['deriveKey']);
  return crypto.subtle.deriveKey(
    {
      name: 'HKDF',
      hash: 'SHA-256',
      salt: new Uint8Array(0),
      info: new TextEncoder().encode('haven-e2ee-frame-v1'),
    },
    base,
    { name: 'AES-GCM', length: 128 },
    false,
    ['encrypt', 'decrypt'],
  );
}

function suffix(epoch: number): Uint8Array {
  const bytes = new Uint8Array(suffixLength);
  new DataView(bytes.buffer).setUint32(0, epoch);
  bytes[4] = frameTrailer;
  return bytes;
}

function additionalData(clear: Uint8Array, tail: Uint8Array): Uint8Array {
  const aad = new Uint8Array(clear.length + tail.length);
  aad.set(clear);
  aad.set(tail, clear.length);
  return aad;
}

/** `frame` encrypted with `key` of `epoch`, its first `clearBytes` left in clear. */
export async function encryptFrame(
  key: CryptoKey,
  epoch: number,
  frame: Uint8Array,
  clearBytes: number,
): Promise<Uint8Array> {
  const n = Math.min(clearBytes, frame.length);
  const clear = frame.subarray(0, n);
  const tail = suffix(epoch);
  const iv = crypto.getRandomValues(new Uint8Array(ivLength));
  const sealed = new Uint8Array(
    await crypto.subtle.encrypt(
      { name: 'AES-GCM', iv, additionalData: additionalData(clear, tail) as BufferSource },
      key,
      frame.subarray(n) as BufferSource,
    ),
  );
  const out = new Uint8Array(n + sealed.length + ivLength + suffixLength);
  out.set(clear);
  out.set(sealed, n);
  out.set(iv, n + sealed.length);
  out.set(tail, n + sealed.length + ivLength);
  return out;
}

/** The epoch an encrypted frame names; undefined if it is not an encrypted frame. */
export function frameEpoch(frame: Uint8Array): number | undefined {
  if (frame.length < ivLength + suffixLength + tagLength || frame[frame.length - 1] !== frameTrailer) return undefined;
  return new DataView(frame.buffer, frame.byteOffset + frame.length - suffixLength, 4).getUint32(0);
}

/** The clear frame, or null when `frame` does not authenticate with `key` (tampered, another key, not encrypted). */
export async function decryptFrame(key: CryptoKey, frame: Uint8Array, clearBytes: number): Promise<Uint8Array | null> {
  if (frameEpoch(frame) === undefined) return null;
  const end = frame.length - ivLength - suffixLength;
  const n = Math.min(clearBytes, end - tagLength);
  if (n < 0) return null;
  const clear = frame.subarray(0, n);
  const iv = frame.subarray(end, end + ivLength);
  const tail = frame.subarray(end + ivLength);
  try {
    const opened = new Uint8Array(
      await crypto.subtle.decrypt(
        { name: 'AES-GCM', iv: iv as BufferSource, additionalData: additionalData(clear, tail) as BufferSource },
        key,
        frame.subarray(n, end) as BufferSource,
      ),
    );
    const out = new Uint8Array(n + opened.length);
    out.set(clear);
    out.set(opened, n);
    return out;
  } catch {
    return null;
  }
}
