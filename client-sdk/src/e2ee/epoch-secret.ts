/**
 * Epoch secrets and their wrapping. The key leader draws 32 random bytes per epoch and wraps them
 * for each member: ECDH (leader's private key, member's public key) → HKDF-SHA256 bound to the
 * room, the epoch and the recipient → an AES-GCM key. A blob wrapped for one member, epoch or room
 * does not open for another: the server, which relays the blobs, cannot redirect them.
 */
import { concat, fromBase64, toBase64, utf8 } from './encoding.ts';

/** Bytes of an epoch secret. */
export const epochSecretLength = 32;
const ivLength = 12;

/** Who a wrapped secret is for: binds the wrapping key (HKDF salt and info) and the ciphertext (AAD). */
export interface WrapBinding {
  roomId: string;
  epoch: number;
  recipientId: string;
}

export function newEpochSecret(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(epochSecretLength));
}

async function wrappingKey(privateKey: CryptoKey, peerPublicKey: CryptoKey, binding: WrapBinding): Promise<CryptoKey> {
  const shared = await crypto.subtle.deriveBits({ name: 'ECDH', public: peerPublicKey }, privateKey, 256);
  const hkdf = await crypto.subtle.importKey('raw', shared, 'HKDF', false, ['deriveKey']);
  return crypto.subtle.deriveKey(
    {
      name: 'HKDF',
      hash: 'SHA-256',
      salt: utf8(`haven-e2ee-wrap-v1|${binding.roomId}`) as BufferSource,
      info: bindingInfo(binding) as BufferSource,
    },
    hkdf,
    { name: 'AES-GCM', length: 256 },
    false,
    ['encrypt', 'decrypt'],
  );
}

function bindingInfo({ roomId, epoch, recipientId }: WrapBinding): Uint8Array {
  return utf8(`haven-e2ee-wrap-v1|${roomId}|${epoch}|${recipientId}`);
}

/** `secret` wrapped for the recipient: base64 of IV | AES-GCM(secret). */
export async function wrapEpochSecret(
  secret: Uint8Array,
  privateKey: CryptoKey,
  recipientPublicKey: CryptoKey,
  binding: WrapBinding,
): Promise<string> {
  const key = await wrappingKey(privateKey, recipientPublicKey, binding);
  const iv = crypto.getRandomValues(new Uint8Array(ivLength));
  const sealed = await crypto.subtle.encrypt(
    { name: 'AES-GCM', iv, additionalData: bindingInfo(binding) as BufferSource },
    key,
    secret as BufferSource,
  );
  return toBase64(concat(iv, new Uint8Array(sealed)));
}

/** The secret in `wrapped` (from the leader whose public key is given), or null if it does not open. */
export async function unwrapEpochSecret(
  wrapped: string,
  privateKey: CryptoKey,
  leaderPublicKey: CryptoKey,
  binding: WrapBinding,
): Promise<Uint8Array | null> {
  const bytes = fromBase64(wrapped);
  if (!bytes || bytes.length <= ivLength) return null;
  try {
    const key = await wrappingKey(privateKey, leaderPublicKey, binding);
    const opened = await crypto.subtle.decrypt(
      { name: 'AES-GCM', iv: bytes.subarray(0, ivLength), additionalData: bindingInfo(binding) as BufferSource },
      key,
      bytes.subarray(ivLength) as BufferSource,
    );
    const secret = new Uint8Array(opened);
    return secret.length === epochSecretLength ? secret : null;
  } catch {
    return null;
  }
}
