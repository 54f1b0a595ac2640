/**
 * This client's ECDH P-256 key pair for E2EE rooms: made once per SessionClient (a reconnection
 * sends the same public key), the private key non-extractable so that no script can read it out.
 */
import { fromBase64, toBase64 } from './encoding.ts';

const algorithm = { name: 'ECDH', namedCurve: 'P-256' } as const;

export class E2eeKeyPair {
  /** The public key as the protocol carries it: the raw 65-byte uncompressed point, base64. */
  readonly publicKey: string;
  readonly privateKey: CryptoKey;

  private constructor(publicKey: string, privateKey: CryptoKey) {
    this.publicKey = publicKey;
    this.privateKey = privateKey;
  }

  static async generate(): Promise<E2eeKeyPair> {
    const pair = (await crypto.subtle.generateKey(algorithm, false, ['deriveBits'])) as CryptoKeyPair;
    // A public key is always exportable, whatever `extractable` says.
    const raw = new Uint8Array(await crypto.subtle.exportKey('raw', pair.publicKey));
    return new E2eeKeyPair(toBase64(raw), pair.privateKey);
  }
}

/** Someone's public key from its base64 form; undefined if it is not a P-256 point. */
export async function importPublicKey(base64: string): Promise<CryptoKey | undefined> {
  const raw = fromBase64(base64);
  if (raw?.length !== 65) return undefined;
  try {
    return await crypto.subtle.importKey('raw', raw, algorithm, false, []);
  } catch {
    return undefined;
  }
}
