/**
 * The audit keys: secrets a Redis writer never sees (configuration or a file on the node), each
 * known by a short id (`kid`) so that a chain can outlive a key rotation. The first key signs,
 * every key verifies.
 *
 * From each secret come two things, domain-separated:
 * - HMAC-SHA256 tags on entries and on the retention anchor (`mac`), so that nobody without the
 *   secret can forge, recompute or re-anchor the chain;
 * - an Ed25519 key pair (seed = HMAC(secret, label)) that signs checkpoints, so that a clinic can
 *   check a checkpoint it received with the public key alone.
 */
import {
  createHmac,
  createPrivateKey,
  createPublicKey,
  hkdfSync,
  type KeyObject,
  randomBytes,
  sign,
  timingSafeEqual,
  verify,
} from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ConfigError } from '../../config/load.ts';
import type { Config } from '../../config/schema.ts';
import type { Logger } from '../logger.ts';

/** Shortest secret accepted: 32 characters, as `auth.secret`. */
export const minKeyLength = 32;
/** DER prefix of a PKCS#8 Ed25519 private key; the 32-byte seed follows. */
const ed25519Pkcs8Prefix = Buffer.from('302e020100300506032b657004220420', 'hex');

interface Key {
  secret: Buffer;
  privateKey: KeyObject;
  publicKey: KeyObject;
}

function tag(secret: Buffer, label: string, parts: readonly (string | number)[]): Buffer {
  return createHmac('sha256', secret)
    .update(JSON.stringify([label, ...parts]))
    .digest();
}

/** The id of a secret: public (it is in every entry), and says nothing of the secret. */
export function keyId(secret: string): string {
  return tag(Buffer.from(secret), 'haven-audit-key-id', []).toString('hex').slice(0, 16);
}

export class AuditKeys {
  /** Id of the key new entries, anchors and checkpoints are made with. */
  readonly kid: string;
  readonly #keys = new Map<string, Key>();

  /** Secrets of at least 32 characters, the signing one first; TypeError otherwise. */
  constructor(secrets: readonly string[]) {
    if (secrets.length === 0) throw new TypeError('audit keys: at least one secret');
    for (const text of secrets) {
      if (typeof text !== 'string' || text.length < minKeyLength) {
        throw new TypeError(`audit keys: each secret must have at least ${minKeyLength} characters`);
      }
      const secret = Buffer.from(text);
      const seed = tag(secret, 'haven-audit-checkpoint-ed25519-v1', []);
      const privateKey = createPrivateKey({
        key: Buffer.concat([ed25519Pkcs8Prefix, seed]),
        format: 'der',
        type: 'pkcs8',
      });
      this.#keys.set(keyId(text), { secret, privateKey, publicKey: createPublicKey(privateKey) });
    }
    this.kid = keyId(secrets[0] as string);
  }

  has(kid: string): boolean {
    return this.#keys.has(kid);
  }

  /** HMAC-SHA256 (hex) of `parts` under `label` with the signing key. */
  mac(label: string, parts: readonly (string | number)[]): { kid: string; mac: string } {
    const key = this.#keys.get(this.kid) as Key;
    return { kid: this.kid, mac: tag(key.secret, label, parts).toString('hex') };
  }

  /** Whether `mac` is the tag of `parts` with key `kid`; undefined when that key is not known. */
  checkMac(kid: string, mac: string, label: string, parts: readonly (string | number)[]): boolean | undefined {
    const key = this.#keys.get(kid);
    if (!key) return undefined;
    const expected = tag(key.secret, label, parts);
    const given = /^[0-9a-f]{64}$/.test(mac) ? Buffer.from(mac, 'hex') : Buffer.alloc(0);
    return given.length === expected.length && timingSafeEqual(given, expected);
  }

  /** Ed25519 signature (base64url) of `message` with the signing key. */
  sign(message: string): { kid: string; signature: string } {
    const key = this.#keys.get(this.kid) as Key;
    return { kid: this.kid, signature: sign(null, Buffer.from(message), key.privateKey).toString('base64url') };
  }

  /** The public half (raw 32 bytes, base64url) a receiver checks checkpoints with. */
  publicKey(kid = this.kid): string | undefined {
    const key = this.#keys.get(kid);
    return key ? (key.publicKey.export({ format: 'jwk' }).x as string) : undefined;
  }

  /** Whether `signature` is key `kid`'s signature of `message`; undefined when that key is not known. */
  checkSignature(kid: string, message: string, signature: string): boolean | undefined {
    const key = this.#keys.get(kid);
    if (!key) return undefined;
    return verify(null, Buffer.from(message), key.publicKey, Buffer.from(signature, 'base64url'));
  }
}

/** A key file: one secret a line, the signing one first (blank lines and `#` comments skipped). */
export function readKeyFile(file: string): string[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
}

/**
 * The node's audit keys from `audit.hmacKey` / `audit.hmacKeyFile`. Production without either is a
 * ConfigError. Development without either derives one from `auth.secret` (stable across restarts),
 * or, with no secret either, takes a random one (chains then stop verifying at the next start).
 */
export function auditKeysOf(config: Config, logger: Logger): AuditKeys {
  const keys = configuredKeys(config) ?? developmentKeys(config, logger);
  // Public: a checkpoint's receiver checks its signature with it.
  logger.info({ kid: keys.kid, publicKey: keys.publicKey() }, 'audit checkpoint signing key');
  return keys;
}

function configuredKeys(config: Config): AuditKeys | undefined {
  const { hmacKey, hmacKeyFile } = config.audit;
  try {
    if (hmacKeyFile) return new AuditKeys(readKeyFile(hmacKeyFile));
    if (hmacKey) return new AuditKeys([hmacKey]);
  } catch (err) {
    const key = hmacKeyFile ? 'audit.hmacKeyFile' : 'audit.hmacKey';
    throw new ConfigError([{ key, message: (err as Error).message }]);
  }
  return undefined;
}

function developmentKeys(config: Config, logger: Logger): AuditKeys {
  if (config.env === 'production') {
    throw new ConfigError([
      {
        key: 'audit.hmacKey',
        env: 'HAVEN_AUDIT_HMAC_KEY',
        message: 'production needs audit.hmacKey or audit.hmacKeyFile (a key Redis never holds)',
      },
    ]);
  }
  if (config.auth.secret) {
    logger.warn('no audit.hmacKey configured: using one derived from auth.secret (development only)');
    const derived = hkdfSync('sha256', config.auth.secret, 'haven-audit', 'hmac-key-v1', 32);
    return new AuditKeys([Buffer.from(derived).toString('hex')]);
  }
  logger.warn('no audit.hmacKey configured: using a random development key (chains stop verifying at restart)');
  return new AuditKeys([randomBytes(32).toString('hex')]);
}
