/**
 * Chat text in an E2EE room: `e2ee1.<epoch>.<base64 of IV | AES-GCM ciphertext>` (the protocol's
 * `e2eeChatPattern`), with the epoch's chat key. The sender's id and the audience are
 * authenticated too, so the server cannot show a message as someone else's or re-address it.
 * A breakout broadcast is sealed the same way, once per place, addressed to that place.
 */
import { e2eeChatPattern } from '../protocol/index.ts';
import { concat, fromBase64, toBase64, utf8 } from './encoding.ts';

const ivLength = 12;

/** The AES-GCM key of an epoch's chat, from its 32-byte secret (HKDF-SHA256, another `info` than frames'). */
export async function deriveChatKey(secret: Uint8Array): Promise<CryptoKey> {
  const base = await crypto.subtle.importKey('raw', secret as BufferSource, 'HKDF', false, ['deriveKey']);
  return crypto.subtle.deriveKey(
    { name: 'HKDF', hash: 'SHA-256', salt: new Uint8Array(0), info: utf8('haven-e2ee-chat-v1') as BufferSource },
    base,
    { name: 'AES-GCM', length: 256 },
    false,
    ['encrypt', 'decrypt'],
  );
}

/** Who sent a message and to whom, as the server relays it. */
export interface ChatAddress {
  from: string;
  to: string;
}

/**
 * Where a broadcast's copy goes, bound into its seal: a copy relayed to another place (or shown
 * as a chat message) does not open.
 */
export const broadcastTo = (breakoutId: string | null): string => `broadcast|${breakoutId ?? ''}`;

function additionalData(epoch: number, { from, to }: ChatAddress): BufferSource {
  return utf8(`e2ee1|${epoch}|${from}|${to}`) as BufferSource;
}

export async function encryptChat(key: CryptoKey, epoch: number, text: string, address: ChatAddress): Promise<string> {
  const iv = crypto.getRandomValues(new Uint8Array(ivLength));
  const sealed = await crypto.subtle.encrypt(
    { name: 'AES-GCM', iv, additionalData: additionalData(epoch, address) },
    key,
    utf8(text) as BufferSource,
  );
  return `e2ee1.${epoch}.${toBase64(concat(iv, new Uint8Array(sealed)))}`;
}

/** The epoch an encrypted chat text names; undefined if it is not one. */
export function chatEpoch(text: string): number | undefined {
  if (!e2eeChatPattern.test(text)) return undefined;
  const epoch = Number(text.split('.')[1]);
  return Number.isSafeInteger(epoch) ? epoch : undefined;
}

/** The clear text, or null when it does not authenticate with `key` and `address`. */
export async function decryptChat(key: CryptoKey, text: string, address: ChatAddress): Promise<string | null> {
  const epoch = chatEpoch(text);
  const bytes = epoch === undefined ? undefined : fromBase64(text.slice(text.lastIndexOf('.') + 1));
  if (epoch === undefined || !bytes || bytes.length <= ivLength) return null;
  try {
    const opened = await crypto.subtle.decrypt(
      { name: 'AES-GCM', iv: bytes.subarray(0, ivLength), additionalData: additionalData(epoch, address) },
      key,
      bytes.subarray(ivLength) as BufferSource,
    );
    return new TextDecoder('utf-8', { fatal: true }).decode(opened);
  } catch {
    return null;
  }
}
