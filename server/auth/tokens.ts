/**
 * Access tokens: the JWTs an embedding app's backend mints and a client presents when it connects.
 * `TokenVerifier` turns a token into a `VerifiedIdentity` or throws `HavenError('UNAUTHORIZED')`
 * with a short, stable reason. Only a token's fingerprint is ever logged, never the token or the
 * display name inside it.
 */
import { createHash, createPublicKey, createSecretKey, type KeyObject } from 'node:crypto';
import type { Redis } from 'ioredis';
import jwt from 'jsonwebtoken';
import type { z } from 'zod';
import type { AccessTokenClaims, Capabilities, Role } from '../../client-sdk/src/protocol/index.ts';
import { accessTokenClaimsSchema } from '../../server-sdk/src/claims.ts';
import { algorithmForKey, type TokenAlgorithm } from '../../server-sdk/src/keys.ts';
import { HavenError } from '../errors.ts';
import type { Logger } from '../logger.ts';

export interface VerifiedIdentity {
  /** The token's `sub`: an opaque, pseudonymous id. */
  participantId: string;
  /** Display name (`name` claim): show it, never log it. */
  name: string;
  roomId: string;
  role: Role;
  /** The role's defaults with the token's `caps` applied. */
  capabilities: Capabilities;
  /** Only what the token's `caps` claim set explicitly (absent without `caps`): tells a grant from a default. */
  grantedCapabilities?: Partial<Capabilities>;
  jti?: string;
  /** When the token expires (`exp`), in ms since the epoch. */
  expiresAtMs: number;
  /** `tokenFingerprint(token)`: what logs may carry to identify the token. */
  tokenHash: string;
}

/** Longest token accepted, in characters: a real one is well under 1 KB; this bounds parsing work. */
export const maxTokenLength = 8192;

export function defaultCapabilities(role: Role): Capabilities {
  switch (role) {
    case 'facilitator':
      return { publishAudio: true, publishVideo: true, publishScreen: true, chat: true };
    case 'participant':
      return { publishAudio: true, publishVideo: true, publishScreen: false, chat: true };
    case 'observer':
      return { publishAudio: false, publishVideo: false, publishScreen: false, chat: false };
  }
}

/** First 16 hex characters of the token's SHA-256: the only form of a token that may be logged. */
export function tokenFingerprint(token: string): string {
  return createHash('sha256').update(token).digest('hex').slice(0, 16);
}

/* ---- Claims ------------------------------------------------------------------------------- */

/** Names the claim a failed parse is about (`missing claim: room`, `invalid claim: sub`). */
export function claimProblem(payload: unknown, error: z.ZodError): string {
  const claim = error.issues[0]?.path[0];
  if (typeof claim !== 'string') return 'malformed token';
  return (payload as Record<string, unknown>)[claim] === undefined
    ? `missing claim: ${claim}`
    : `invalid claim: ${claim}`;
}

/* ---- Revocation --------------------------------------------------------------------------- */

/**
 * Revoked `jti`s in Redis, one key each that expires when its token would have: the set never needs
 * cleaning. Shared by every node, so a revocation applies cluster-wide.
 */
export class RevocationStore {
  readonly #redis: Redis;
  readonly #prefix: string;

  constructor(redis: Redis, prefix = 'haven:') {
    this.#redis = redis;
    this.#prefix = prefix;
  }

  #key(jti: string): string {
    return `${this.#prefix}revoked-jti:${jti}`;
  }

  /** Revokes `jti` until `expiresAtMs` (the token's `exp` in ms), plus the largest clock skew allowed. */
  async revoke(jti: string, expiresAtMs: number): Promise<void> {
    if (typeof jti !== 'string' || jti === '') throw new TypeError('jti must be a non-empty string');
    if (!Number.isFinite(expiresAtMs)) throw new TypeError('expiresAtMs must be a finite number');
    // A verifier tolerates up to 300 s of skew (the config's maximum) past `exp`: outlive that too.
    const untilMs = Math.ceil(expiresAtMs) + 300_000;
    if (untilMs <= Date.now()) return; // the token is dead already
    await this.#redis.set(this.#key(jti), '1', 'PXAT', untilMs);
  }

  async isRevoked(jti: string): Promise<boolean> {
    return (await this.#redis.exists(this.#key(jti))) === 1;
  }
}

/* ---- Verification ------------------------------------------------------------------------- */

export interface TokenVerifierOptions {
  /** Expected `iss`. */
  issuer: string;
  /** Expected `aud` (a string, or one of an array's entries). */
  audience: string;
  /** HS256 shared secret, 32+ characters. Exactly one of `secret` and `publicKeyPem`. */
  secret?: string;
  /** PEM public key: RSA (RS256) or EC P-256 (ES256). */
  publicKeyPem?: string;
  /** Longest lifetime accepted, `exp` − (`iat` ?? now), in seconds. */
  maxTokenLifetimeS: number;
  /** Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds. */
  clockSkewS: number;
}

export class TokenVerifier {
  readonly #options: TokenVerifierOptions;
  readonly #key: KeyObject;
  readonly #algorithm: TokenAlgorithm;
  readonly #revocations: RevocationStore;
  readonly #logger: Logger | undefined;

  private constructor(
    options: TokenVerifierOptions,
    key: KeyObject,
    algorithm: TokenAlgorithm,
    revocations: RevocationStore,
    logger: Logger | undefined,
  ) {
    this.#options = options;
    this.#key = key;
    this.#algorithm = algorithm;
    this.#revocations = revocations;
    this.#logger = logger?.child({ component: 'auth' });
  }

  /** Checks the options and pins the one algorithm the key allows (no algorithm is read from tokens). */
  static create(options: TokenVerifierOptions, revocations: RevocationStore, logger?: Logger): TokenVerifier {
    const { issuer, audience, secret, publicKeyPem, maxTokenLifetimeS, clockSkewS } = options;
    if (typeof issuer !== 'string' || issuer === '') throw new TypeError('issuer must be a non-empty string');
    if (typeof audience !== 'string' || audience === '') throw new TypeError('audience must be a non-empty string');
    if (!(maxTokenLifetimeS > 0)) throw new TypeError('maxTokenLifetimeS must be positive');
    if (!(clockSkewS >= 0)) throw new TypeError('clockSkewS must be zero or positive');
    if ((secret === undefined) === (publicKeyPem === undefined)) {
      throw new TypeError('give exactly one of secret and publicKeyPem');
    }
    if (secret !== undefined) {
      if (typeof secret !== 'string' || secret.length < 32) throw new TypeError('secret must have 32+ characters');
      return new TokenVerifier(options, createSecretKey(Buffer.from(secret)), 'HS256', revocations, logger);
    }
    let key: KeyObject;
    try {
      key = createPublicKey(publicKeyPem as string);
    } catch {
      throw new TypeError('publicKeyPem is not a PEM public key');
    }
    return new TokenVerifier(options, key, algorithmForKey(key), revocations, logger);
  }

  /** The algorithm tokens must be signed with. */
  get algorithm(): TokenAlgorithm {
    return this.#algorithm;
  }

  /**
   * Verifies `token` (signature, claims, times, revocation). Rejects with `HavenError('UNAUTHORIZED',
   * reason)`; a Redis failure while checking revocation rejects with that error (fails closed).
   */
  async verify(token: unknown): Promise<VerifiedIdentity> {
    if (token === undefined || token === null || token === '') throw this.#reject('missing token');
    if (typeof token !== 'string') throw this.#reject('token is not a string');
    const tokenHash = tokenFingerprint(token);
    if (token.length > maxTokenLength) throw this.#reject('token too large', tokenHash);

    // The header is checked by hand first so `alg: none` and algorithm swaps get their own reason.
    const parts = token.split('.');
    // One encoding per token: base64 decoders ignore stray characters and a last character's spare
    // bits, which would let one RS256/ES256 signature verify under several token strings.
    if (parts.length !== 3 || !parts.every(isCanonicalBase64url)) throw this.#reject('malformed token', tokenHash);
    const header = parseSegment(parts[0] as string);
    if (typeof header?.alg !== 'string') throw this.#reject('malformed token', tokenHash);
    if (header.alg.trim().toLowerCase() === 'none' || parts[2] === '') throw this.#reject('unsigned token', tokenHash);
    if (header.alg !== this.#algorithm) throw this.#reject('wrong algorithm', tokenHash);
    // The key is Haven's configuration, never the token's; `crit` names extensions Haven does not implement.
    if (refusedHeaders.some((name) => Object.hasOwn(header, name))) {
      throw this.#reject('key or critical header not accepted', tokenHash);
    }

    let payload: unknown;
    try {
      // Signature only: claims and times are checked below, with Haven's own reasons.
      payload = jwt.verify(token, this.#key, {
        algorithms: [this.#algorithm],
        ignoreExpiration: true,
        ignoreNotBefore: true,
      });
    } catch (err) {
      const reason = (err as Error).message === 'invalid signature' ? 'invalid signature' : 'malformed token';
      throw this.#reject(reason, tokenHash);
    }

    const parsed = accessTokenClaimsSchema.safeParse(payload);
    if (!parsed.success) throw this.#reject(claimProblem(payload, parsed.error), tokenHash);
    const claims: AccessTokenClaims = parsed.data;
    const { issuer, audience, maxTokenLifetimeS, clockSkewS } = this.#options;

    if (claims.iss !== issuer) throw this.#reject('wrong issuer', tokenHash);
    if (!(Array.isArray(claims.aud) ? claims.aud : [claims.aud]).includes(audience)) {
      throw this.#reject('wrong audience', tokenHash);
    }
    const now = Date.now() / 1000;
    if (now >= claims.exp + clockSkewS) throw this.#reject('token expired', tokenHash);
    if (claims.nbf !== undefined && now + clockSkewS < claims.nbf) throw this.#reject('token not yet valid', tokenHash);
    if (claims.iat !== undefined && claims.iat > now + clockSkewS) {
      throw this.#reject('token issued in the future', tokenHash);
    }
    // Long-lived tokens are links that leak (emails, browser history): cap what an issuer may mint.
    if (claims.exp - (claims.iat ?? now) > maxTokenLifetimeS) throw this.#reject('token lifetime too long', tokenHash);
    if (claims.jti !== undefined && (await this.#revocations.isRevoked(claims.jti))) {
      throw this.#reject('token revoked', tokenHash);
    }

    const granted = definedOnly(claims.caps);
    const identity: VerifiedIdentity = {
      participantId: claims.sub,
      name: claims.name,
      roomId: claims.room,
      role: claims.role,
      capabilities: { ...defaultCapabilities(claims.role), ...granted },
      expiresAtMs: claims.exp * 1000,
      tokenHash,
    };
    if (claims.caps !== undefined) identity.grantedCapabilities = granted;
    if (claims.jti !== undefined) identity.jti = claims.jti;
    return identity;
  }

  /** Logs a rejection with nothing but its reason and the token's fingerprint. */
  #reject(reason: string, tokenHash?: string): HavenError {
    this.#logger?.warn({ reason, tokenHash }, 'access token rejected');
    return new HavenError('UNAUTHORIZED', reason);
  }
}

/** JOSE headers that carry or point to a key (RFC 7515 §4.1), and `crit`. `kid` is ignored: there is one key. */
const refusedHeaders = ['jwk', 'jku', 'x5u', 'x5c', 'crit'];

/** Unpadded base64url that decodes and re-encodes to itself (no stray characters, no spare bits set). */
function isCanonicalBase64url(segment: string): boolean {
  return /^[A-Za-z0-9_-]*$/.test(segment) && Buffer.from(segment, 'base64url').toString('base64url') === segment;
}

/** A base64url JSON object, or undefined. */
function parseSegment(segment: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
    return value !== null && typeof value === 'object' && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

function definedOnly(caps: Partial<Capabilities> | undefined): Partial<Capabilities> {
  return Object.fromEntries(Object.entries(caps ?? {}).filter(([, v]) => v !== undefined));
}
