/** Which signing algorithm a key allows: shared by minting (mint.ts) and Haven's verifier. */

export type TokenAlgorithm = 'HS256' | 'RS256' | 'ES256';

/** The fields of a `KeyObject` read here (structural: the package's declarations need no Node types). */
interface AsymmetricKey {
  asymmetricKeyType?: string | undefined;
  asymmetricKeyDetails?: { modulusLength?: number | undefined; namedCurve?: string | undefined } | undefined;
}

/**
 * The one algorithm a key may be used with: RS256 for RSA (2048 bits or more), ES256 for EC P-256.
 * Works on public and private keys alike; throws a TypeError for anything else.
 */
export function algorithmForKey(key: AsymmetricKey): 'RS256' | 'ES256' {
  const details = key.asymmetricKeyDetails;
  if (key.asymmetricKeyType === 'rsa') {
    if ((details?.modulusLength ?? 0) < 2048) throw new TypeError('RSA keys must have at least 2048 bits');
    return 'RS256';
  }
  if (key.asymmetricKeyType === 'ec') {
    if (details?.namedCurve !== 'prime256v1') throw new TypeError('EC keys must be on the P-256 curve (ES256)');
    return 'ES256';
  }
  throw new TypeError(`unsupported key type "${key.asymmetricKeyType}": use an RSA (RS256) or EC P-256 (ES256) key`);
}
