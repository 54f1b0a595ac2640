import { spawnSync } from 'node:child_process';
import { createHmac, generateKeyPairSync, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import jwt from 'jsonwebtoken';
import { pino } from 'pino';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  defaultCapabilities,
  RevocationStore,
  TokenVerifier,
  type TokenVerifierOptions,
  tokenFingerprint,
} from '../../server/auth/tokens.ts';
import { HavenError } from '../../server/errors.ts';
import { EmbeddedRedis } from '../../server/redis/embedded-redis.ts';
import { mintAccessToken } from '../../server-sdk/src/mint.ts';

const root = join(import.meta.dirname, '..', '..');
const secret = 'a-test-secret-that-is-long-enough-0123456789';
const base = { issuer: 'haven', audience: 'haven', maxTokenLifetimeS: 4 * 3600, clockSkewS: 30 };
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const pem = (key: { export(o: object): string | Buffer }, type: string) => String(key.export({ type, format: 'pem' }));
const rsaPublic = pem(rsa.publicKey, 'spki');
const rsaPrivate = pem(rsa.privateKey, 'pkcs8');
const ecPublic = pem(ec.publicKey, 'spki');
const ecPrivate = pem(ec.privateKey, 'pkcs8');

const dataDir = mkdtempSync(join(tmpdir(), 'haven-tokens-'));
let redisServer: EmbeddedRedis;
let redis: Redis;
let revocations: RevocationStore;
const prefix = `haven-test-${randomUUID()}:`;

test.before(async () => {
  redisServer = await EmbeddedRedis.start({ dataDir });
  redis = new Redis(redisServer.url);
  revocations = new RevocationStore(redis, prefix);
});

test.after(async () => {
  redis?.disconnect();
  await redisServer?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

const now = () => Math.floor(Date.now() / 1000);

function verifier(options: Partial<TokenVerifierOptions> = {}, logger?: pino.Logger): TokenVerifier {
  return TokenVerifier.create({ ...base, secret, ...options }, revocations, logger);
}

function mint(overrides: Partial<Parameters<typeof mintAccessToken>[0]> = {}): string {
  return mintAccessToken({
    secret,
    issuer: 'haven',
    audience: 'haven',
    sub: 'p-7f3a',
    name: 'Jane Doe',
    room: 'iop-group-1',
    role: 'participant',
    ...overrides,
  });
}

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** Valid claims, for tokens crafted by hand (to leave out or break what mintAccessToken checks). */
function claims(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const iat = now();
  return {
    iss: 'haven',
    aud: 'haven',
    sub: 'p-7f3a',
    name: 'Jane Doe',
    room: 'iop-group-1',
    role: 'participant',
    iat,
    exp: iat + 600,
    ...overrides,
  };
}

/** An HS256 token signed by hand with `key`, header and payload exactly as given. */
function hs256(payload: unknown, key: string = secret, header: object = { alg: 'HS256', typ: 'JWT' }): string {
  const input = `${b64(header)}.${b64(payload)}`;
  return `${input}.${createHmac('sha256', key).update(input).digest('base64url')}`;
}

async function rejected(token: unknown, reason: string, v: TokenVerifier = verifier()): Promise<void> {
  try {
    await v.verify(token);
  } catch (err) {
    assert.instance(err, HavenError);
    assert.is((err as HavenError).code, 'UNAUTHORIZED');
    assert.is((err as HavenError).message, reason);
    return;
  }
  assert.unreachable(`expected a rejection: ${reason}`);
}

/* ---- Accepted tokens ---------------------------------------------------------------------- */

test('a valid HS256 token verifies to the identity with the role’s default capabilities', async () => {
  const token = mint({ jti: 'tok-1', ttlS: 600 });
  const identity = await verifier().verify(token);
  const exp = (jwt.decode(token) as { exp: number }).exp;
  assert.equal(identity, {
    participantId: 'p-7f3a',
    name: 'Jane Doe',
    roomId: 'iop-group-1',
    role: 'participant',
    capabilities: { publishAudio: true, publishVideo: true, publishScreen: false, chat: true },
    expiresAtMs: exp * 1000,
    tokenHash: tokenFingerprint(token),
    jti: 'tok-1',
  });
  assert.ok(Math.abs(identity.expiresAtMs - (Date.now() + 600_000)) < 2000);
});

test('default capabilities per role', () => {
  assert.equal(defaultCapabilities('facilitator'), {
    publishAudio: true,
    publishVideo: true,
    publishScreen: true,
    chat: true,
  });
  assert.equal(defaultCapabilities('participant'), {
    publishAudio: true,
    publishVideo: true,
    publishScreen: false,
    chat: true,
  });
  assert.equal(defaultCapabilities('observer'), {
    publishAudio: false,
    publishVideo: false,
    publishScreen: false,
    chat: false,
  });
});

test('the caps claim overrides individual capabilities', async () => {
  const identity = await verifier().verify(mint({ caps: { publishScreen: true, chat: false } }));
  assert.equal(identity.capabilities, { publishAudio: true, publishVideo: true, publishScreen: true, chat: false });
  assert.equal(identity.grantedCapabilities, { publishScreen: true, chat: false });
  const observer = await verifier().verify(mint({ role: 'observer', caps: { chat: true } }));
  assert.equal(observer.capabilities, { publishAudio: false, publishVideo: false, publishScreen: false, chat: true });
  assert.is((await verifier().verify(mint())).grantedCapabilities, undefined);
});

test('RS256 and ES256 tokens verify with the public key; the algorithm follows the key type', async () => {
  const rs = TokenVerifier.create({ ...base, publicKeyPem: rsaPublic }, revocations);
  const es = TokenVerifier.create({ ...base, publicKeyPem: ecPublic }, revocations);
  assert.is(rs.algorithm, 'RS256');
  assert.is(es.algorithm, 'ES256');
  assert.is(verifier().algorithm, 'HS256');
  const rsToken = mint({ secret: undefined, privateKeyPem: rsaPrivate, role: 'facilitator' });
  const esToken = mint({ secret: undefined, privateKeyPem: ecPrivate, algorithm: 'ES256' });
  assert.is(jwt.decode(rsToken, { complete: true })?.header.alg, 'RS256');
  assert.is(jwt.decode(esToken, { complete: true })?.header.alg, 'ES256');
  assert.is((await rs.verify(rsToken)).role, 'facilitator');
  assert.is((await es.verify(esToken)).participantId, 'p-7f3a');
});

test('an audience array containing ours is accepted; extra claims are ignored', async () => {
  const identity = await verifier().verify(hs256(claims({ aud: ['portal', 'haven'], tenant: 'clinic-9' })));
  assert.is(identity.roomId, 'iop-group-1');
});

test('TokenVerifier.create refuses bad key options with a TypeError', () => {
  const create = (options: Partial<TokenVerifierOptions>) => () =>
    TokenVerifier.create({ ...base, ...options }, revocations);
  assert.throws(create({}), (err: Error) => err instanceof TypeError && /exactly one/.test(err.message));
  assert.throws(create({ secret, publicKeyPem: rsaPublic }), TypeError);
  assert.throws(create({ secret: 'short' }), /32\+ characters/);
  assert.throws(create({ publicKeyPem: 'not a key' }), /not a PEM public key/);
  const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' });
  assert.throws(create({ publicKeyPem: pem(p384.publicKey, 'spki') }), /P-256/);
  const ed = generateKeyPairSync('ed25519');
  assert.throws(create({ publicKeyPem: pem(ed.publicKey, 'spki') }), /unsupported key type/);
});

test('tokenFingerprint is the first 16 hex characters of the SHA-256', () => {
  const fp = tokenFingerprint('abc');
  assert.is(fp, 'ba7816bf8f01cfea'); // sha256("abc") = ba7816bf8f01cfea414140de5dae2223…
  assert.match(tokenFingerprint(mint()), /^[0-9a-f]{16}$/);
});

/* ---- Rejections ---------------------------------------------------------------------------- */

test('rejects an RS256 token at an HS256 verifier (wrong algorithm)', async () => {
  await rejected(mint({ secret: undefined, privateKeyPem: rsaPrivate }), 'wrong algorithm');
});

test('rejects an HS256 token signed with the public key PEM at an RS256 verifier (key confusion)', async () => {
  const rs = TokenVerifier.create({ ...base, publicKeyPem: rsaPublic }, revocations);
  await rejected(hs256(claims(), rsaPublic), 'wrong algorithm', rs);
  // Even a header claiming RS256 over an HMAC made with the public key is only a bad signature.
  await rejected(hs256(claims(), rsaPublic, { alg: 'RS256', typ: 'JWT' }), 'invalid signature', rs);
});

test('rejects other algorithm swaps: ES256 at an RS256 verifier, HS512 at an HS256 one', async () => {
  const rs = TokenVerifier.create({ ...base, publicKeyPem: rsaPublic }, revocations);
  await rejected(mint({ secret: undefined, privateKeyPem: ecPrivate }), 'wrong algorithm', rs);
  await rejected(jwt.sign(claims(), secret, { algorithm: 'HS512' }), 'wrong algorithm');
});

test('rejects alg: none (unsigned tokens)', async () => {
  const unsigned = `${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims())}.`;
  await rejected(unsigned, 'unsigned token');
  await rejected(`${b64({ alg: 'NONE', typ: 'JWT' })}.${b64(claims())}.`, 'unsigned token');
  const rs = TokenVerifier.create({ ...base, publicKeyPem: rsaPublic }, revocations);
  await rejected(unsigned, 'unsigned token', rs);
  // An HS256 header with the signature stripped is no better.
  await rejected(`${mint().split('.').slice(0, 2).join('.')}.`, 'unsigned token');
});

test('rejects an expired token', async () => {
  await rejected(hs256(claims({ iat: now() - 600, exp: now() - 60 })), 'token expired');
});

test('accepts a token expired within the clock skew', async () => {
  const token = hs256(claims({ iat: now() - 600, exp: now() - 10 }));
  assert.is((await verifier().verify(token)).participantId, 'p-7f3a');
  await rejected(token, 'token expired', verifier({ clockSkewS: 0 }));
});

test('rejects a token not yet valid (nbf), tolerating the skew', async () => {
  await rejected(hs256(claims({ nbf: now() + 120 })), 'token not yet valid');
  assert.ok(await verifier().verify(hs256(claims({ nbf: now() + 10 }))));
  const minted = mint({ notBefore: 120 });
  assert.is((jwt.decode(minted) as { nbf: number }).nbf, now() + 120);
  await rejected(minted, 'token not yet valid');
});

test('rejects a token issued in the future beyond the skew', async () => {
  await rejected(hs256(claims({ iat: now() + 120, exp: now() + 600 })), 'token issued in the future');
  assert.ok(await verifier().verify(hs256(claims({ iat: now() + 10 }))));
});

test('rejects the wrong audience', async () => {
  await rejected(mint({ audience: 'other-app' }), 'wrong audience');
  await rejected(hs256(claims({ aud: ['a', 'b'] })), 'wrong audience');
});

test('rejects the wrong issuer', async () => {
  await rejected(mint({ issuer: 'evil-portal' }), 'wrong issuer');
});

for (const claim of ['exp', 'iss', 'aud', 'sub', 'room', 'role', 'name']) {
  test(`rejects a token without ${claim}`, async () => {
    const payload = claims();
    delete payload[claim];
    await rejected(hs256(payload), `missing claim: ${claim}`);
  });
}

test('rejects a bad role', async () => {
  await rejected(hs256(claims({ role: 'admin' })), 'invalid claim: role');
  await rejected(hs256(claims({ role: 'Facilitator' })), 'invalid claim: role');
});

test('rejects sub and room outside [A-Za-z0-9._:-]{1,128}', async () => {
  for (const sub of ['jane doe', 'p/1', 'p*', '', 'ü', 'x'.repeat(129), 42]) {
    await rejected(hs256(claims({ sub })), 'invalid claim: sub');
  }
  await rejected(hs256(claims({ room: 'room{1}' })), 'invalid claim: room');
  assert.ok(await verifier().verify(hs256(claims({ sub: `a.b_c:d-${'x'.repeat(120)}` }))));
});

test('rejects a blank name, non-numeric times and malformed caps', async () => {
  await rejected(hs256(claims({ name: '  ' })), 'invalid claim: name');
  await rejected(hs256(claims({ exp: String(now() + 600) })), 'invalid claim: exp');
  await rejected(hs256(claims({ caps: { admin: true } })), 'invalid claim: caps');
  await rejected(hs256(claims({ caps: { chat: 'yes' } })), 'invalid claim: caps');
  await rejected(hs256(claims({ caps: [true] })), 'invalid claim: caps');
});

test('rejects a tampered payload (one claim changed, signature kept)', async () => {
  const [header, payload, signature] = mint().split('.') as [string, string, string];
  const changed = { ...JSON.parse(Buffer.from(payload, 'base64url').toString()), role: 'facilitator' };
  await rejected(`${header}.${b64(changed)}.${signature}`, 'invalid signature');
  await rejected(mint({ secret: `${secret}-other` }), 'invalid signature');
});

test('rejects a lifetime over maxTokenLifetimeS', async () => {
  await rejected(mint({ ttlS: 4 * 3600 + 1 }), 'token lifetime too long');
  assert.ok(await verifier().verify(mint({ ttlS: 4 * 3600 })));
  const { iat: _, ...withoutIat } = claims({ exp: now() + 5 * 3600 });
  await rejected(hs256(withoutIat), 'token lifetime too long');
});

test('rejects a revoked jti; an unrelated jti still passes; the revocation expires with the token', async () => {
  const jti = randomUUID();
  const token = mint({ jti, ttlS: 600 });
  const identity = await verifier().verify(token);
  await revocations.revoke(jti, identity.expiresAtMs);
  assert.is(await revocations.isRevoked(jti), true);
  await rejected(token, 'token revoked');
  assert.is(await revocations.isRevoked(randomUUID()), false);
  assert.ok(await verifier().verify(mint({ jti: randomUUID() })));
  const ttlMs = await redis.pttl(`${prefix}revoked-jti:${jti}`);
  assert.ok(ttlMs > 600_000 && ttlMs <= 900_000, `revocation lives until exp + the largest skew, got ${ttlMs} ms`);
  // Revoking a long-dead token stores nothing.
  await revocations.revoke('dead', Date.now() - 3_600_000);
  assert.is(await revocations.isRevoked('dead'), false);
});

test('rejects non-string, empty, malformed and oversized tokens', async () => {
  await rejected(undefined, 'missing token');
  await rejected('', 'missing token');
  for (const token of [42, { token: 'x' }, ['a.b.c'], true]) await rejected(token, 'token is not a string');
  for (const token of ['abc', 'a.b', 'a.b.c.d', `${b64('str')}.${b64(claims())}.sig`, '!!!.???.sig']) {
    await rejected(token, 'malformed token');
  }
  // A well-signed token is still refused past 8 KB, before any parsing.
  await rejected(hs256(claims({ padding: 'x'.repeat(8192) })), 'token too large');
});

test('one encoding per token: spare bits, stray characters or padding in a segment are refused', async () => {
  const v = verifier({ secret: undefined, publicKeyPem: rsaPublic });
  const token = mint({ secret: undefined, privateKeyPem: rsaPrivate });
  assert.ok(await v.verify(token), 'control');
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  // A 256-byte signature leaves 4 unused bits in its last character: the same bytes, another string.
  const spare = token.slice(0, -1) + alphabet[alphabet.indexOf(token.at(-1) as string) ^ 1];
  for (const forged of [spare, `${token}=`, `${token.slice(0, -4)}!${token.slice(-4)}`, ` ${token}`]) {
    await rejected(forged, 'malformed token', v);
  }
});

test('headers that carry or point to a key, and crit, are refused even when the signature is right', async () => {
  for (const extra of [
    { jwk: { kty: 'oct', k: 'AAAA' } },
    { jku: 'http://127.0.0.1:9/k' },
    { x5u: 'x' },
    { x5c: ['MIIB'] },
    { crit: ['b64'] },
  ]) {
    await rejected(hs256(claims(), secret, { alg: 'HS256', ...extra }), 'key or critical header not accepted');
  }
  assert.ok(await verifier().verify(hs256(claims(), secret, { alg: 'HS256', kid: 'one' })), 'kid is ignored');
});

test('logs of rejections carry the reason and the token hash, never the token or the name', async () => {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      lines.push(String(chunk));
      done();
    },
  });
  const v = verifier({}, pino({ level: 'debug' }, sink));
  const name = 'Rosalind Quist';
  const tokens = [
    hs256(claims({ name, exp: now() - 3600, iat: now() - 4000 })),
    mint({ name, audience: 'elsewhere' }),
    mint({ name, secret: `${secret}-other` }),
  ];
  for (const token of tokens) await v.verify(token).catch(() => {});
  await v.verify(mint({ name }));
  const log = lines.join('');
  assert.is(lines.length, 3, 'one warning per rejection, nothing for an accepted token');
  for (const token of tokens) {
    assert.ok(log.includes(tokenFingerprint(token)), 'the hash identifies the token');
    for (const part of token.split('.')) assert.not.ok(log.includes(part), 'no part of the token is logged');
  }
  assert.not.ok(log.includes(name));
  assert.not.ok(log.includes('Rosalind'));
  const entries = lines.map((line) => JSON.parse(line));
  assert.equal(
    entries.map((e) => e.reason),
    ['token expired', 'wrong audience', 'invalid signature'],
  );
  assert.ok(entries.every((e) => e.level === 40));
});

/* ---- Minting -------------------------------------------------------------------------------- */

test('mintAccessToken sets iat, exp (ttl 3600 by default) and a random jti; refuses bad options', () => {
  const decoded = jwt.decode(mint()) as Record<string, number | string>;
  assert.is(decoded.exp, (decoded.iat as number) + 3600);
  assert.match(String(decoded.jti), /^[0-9a-f-]{36}$/);
  assert.is.not((jwt.decode(mint()) as { jti: string }).jti, decoded.jti);
  assert.throws(
    () => mint({ room: 'a room' }),
    (e: Error) => e instanceof TypeError && /invalid room/.test(e.message),
  );
  assert.throws(() => mint({ privateKeyPem: rsaPrivate }), /exactly one/);
  assert.throws(() => mint({ secret: undefined, privateKeyPem: rsaPrivate, algorithm: 'ES256' }), /signs RS256/);
  assert.throws(() => mint({ algorithm: 'RS256' }), /secret signs HS256/);
  assert.throws(() => mint({ ttlS: 0 }), /ttlS/);
  assert.throws(() => mint({ caps: { admin: true } as never }), /invalid caps/);
  assert.throws(() => mint({ issuer: '' }), /issuer/);
});

/* ---- CLI ------------------------------------------------------------------------------------- */

function cli(args: string[], env: Record<string, string | undefined> = {}) {
  return spawnSync(process.execPath, ['--import', 'tsx', join(root, 'bin/haven.ts'), ...args], {
    cwd: root,
    encoding: 'utf8',
    env: {
      ...process.env,
      HAVEN_AUTH_SECRET: secret,
      HAVEN_AUTH_ISSUER: undefined,
      HAVEN_AUTH_AUDIENCE: undefined,
      ...env,
    },
  });
}

test('CLI: haven token prints only a token the verifier accepts', async () => {
  const args = ['token', '--room', 'r-42', '--role', 'facilitator', '--sub', 's-1', '--name', 'Dr. Who'];
  const result = cli([...args, '--ttl', '900', '--caps', 'publishScreen=false,chat=true']);
  assert.is(result.status, 0, result.stderr);
  assert.is(result.stderr, '');
  assert.match(result.stdout, /^[\w-]+\.[\w-]+\.[\w-]+\n$/);
  const identity = await verifier().verify(result.stdout.trim());
  assert.is(identity.roomId, 'r-42');
  assert.is(identity.role, 'facilitator');
  assert.is(identity.name, 'Dr. Who');
  assert.is(identity.capabilities.publishScreen, false);
  assert.ok(Math.abs(identity.expiresAtMs - (Date.now() + 900_000)) < 5000);
  // Issuer and audience from the environment.
  const custom = cli(args, { HAVEN_AUTH_ISSUER: 'portal', HAVEN_AUTH_AUDIENCE: 'haven-prod' });
  assert.ok(await verifier({ issuer: 'portal', audience: 'haven-prod' }).verify(custom.stdout.trim()));
});

test('CLI: --key signs with a private key (RS256)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'haven-cli-'));
  try {
    writeFileSync(join(dir, 'private.pem'), rsaPrivate);
    const result = cli(
      ['token', '--room', 'r', '--role', 'observer', '--sub', 's', '--name', 'N', '--key', join(dir, 'private.pem')],
      { HAVEN_AUTH_SECRET: undefined },
    );
    assert.is(result.status, 0, result.stderr);
    const rs = TokenVerifier.create({ ...base, publicKeyPem: rsaPublic }, revocations);
    assert.is((await rs.verify(result.stdout.trim())).role, 'observer');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('CLI: missing or bad arguments exit 2 with a message on stderr; --help prints usage', () => {
  const missing = cli(['token', '--role', 'participant', '--sub', 's', '--name', 'N']);
  assert.is(missing.status, 2);
  assert.is(missing.stdout, '');
  assert.match(missing.stderr, /missing --room/);
  const noSecret = cli(['token', '--room', 'r', '--role', 'participant', '--sub', 's', '--name', 'N'], {
    HAVEN_AUTH_SECRET: undefined,
  });
  assert.is(noSecret.status, 2);
  assert.match(noSecret.stderr, /HAVEN_AUTH_SECRET/);
  const badCaps = cli(['token', '--room', 'r', '--role', 'participant', '--sub', 's', '--name', 'N', '--caps', 'x=1']);
  assert.is(badCaps.status, 2);
  assert.match(badCaps.stderr, /unknown capability "x"/);
  const help = cli(['token', '--help']);
  assert.is(help.status, 0);
  assert.match(help.stdout, /Usage: haven token --room ROOM/);
  assert.match(cli(['--help']).stdout, /Usage: haven <command>/);
  assert.is(cli([]).status, 2);
});

test.run();
