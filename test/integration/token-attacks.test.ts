/**
 * Token attacks against real nodes: every forged, tampered, malformed or out-of-policy access token
 * is refused at the socket.io handshake with a code and a reason, and the log carries neither the
 * token nor its signature. Three nodes: one verifying HS256 with a secret, one RS256 and one ES256
 * with a public key file (so the RS256→HS256 confusion, the public PEM as an HMAC secret, is tried
 * against a node that really holds that PEM). Each token is built by hand, segment by segment.
 * Also wrong, malformed and oversized `Authorization` headers on the admin API.
 */
import { createHmac, generateKeyPairSync, type KeyObject, randomUUID, sign } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { type NodeProcess, startNodeProcess } from '../../bench/node-process.ts';
import { waitFor } from '../../bench/processes.ts';
import { tokenFingerprint } from '../../server/auth/tokens.ts';
import { connect, testAdminKey, testSecret } from '../helpers/signaling-client.ts';

const keyDir = mkdtempSync(join(tmpdir(), 'haven-token-attacks-'));
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const attackerRsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const publicPem = (key: KeyObject) => String(key.export({ type: 'spki', format: 'pem' }));
const rsaPem = publicPem(rsa.publicKey);
const ecPem = publicPem(ec.publicKey);

type Server = 'hs' | 'rs' | 'es';
const nodes = {} as Record<Server, NodeProcess>;

test.before(async () => {
  writeFileSync(join(keyDir, 'rsa.pem'), rsaPem);
  writeFileSync(join(keyDir, 'ec.pem'), ecPem);
  const common = { HAVEN_ADMIN_API_KEY: testAdminKey, HAVEN_MEDIA_WEBRTC_PORT: '0', HAVEN_AUTH_CLOCK_SKEW_S: '30' };
  [nodes.hs, nodes.rs, nodes.es] = await Promise.all([
    startNodeProcess({ ...common, HAVEN_AUTH_SECRET: testSecret }),
    startNodeProcess({ ...common, HAVEN_AUTH_PUBLIC_KEY_FILE: join(keyDir, 'rsa.pem') }),
    startNodeProcess({ ...common, HAVEN_AUTH_PUBLIC_KEY_FILE: join(keyDir, 'ec.pem') }),
  ]);
});

test.after(() => {
  for (const node of Object.values(nodes)) node?.kill();
  rmSync(keyDir, { recursive: true, force: true });
});

/* ---- building tokens by hand ---- */

const b64 = (text: string | Buffer) => Buffer.from(text).toString('base64url');
const json = (value: unknown) => b64(JSON.stringify(value));
const now = () => Math.floor(Date.now() / 1000);

function claims(extra: Record<string, unknown> = {}): Record<string, unknown> {
  const iat = now();
  return {
    iss: 'haven',
    aud: 'haven',
    sub: `attack-${randomUUID().slice(0, 8)}`,
    name: 'Attack Name Z',
    room: 'attack-room',
    role: 'facilitator',
    iat,
    exp: iat + 600,
    jti: randomUUID(),
    ...extra,
  };
}

type Signer = 'none' | { hmac: string | Buffer } | { rsa: KeyObject } | { ec: KeyObject };

function signature(input: string, signer: Signer): string {
  if (signer === 'none') return '';
  if ('hmac' in signer) return createHmac('sha256', signer.hmac).update(input).digest('base64url');
  if ('rsa' in signer) return sign('sha256', Buffer.from(input), signer.rsa).toString('base64url');
  return sign('sha256', Buffer.from(input), { key: signer.ec, dsaEncoding: 'ieee-p1363' }).toString('base64url');
}

/** header.payload.signature, the payload given as JSON text (so it may be anything) or an object. */
function forge(header: Record<string, unknown>, payload: unknown, signer: Signer): string {
  const body = typeof payload === 'string' ? b64(payload) : json(payload);
  const input = `${json(header)}.${body}`;
  return `${input}.${signature(input, signer)}`;
}

const hs = { hmac: testSecret };
const rs = { rsa: rsa.privateKey };
const es = { ec: ec.privateKey };
const validFor: Record<Server, () => string> = {
  hs: () => forge({ alg: 'HS256', typ: 'JWT' }, claims(), hs),
  rs: () => forge({ alg: 'RS256', typ: 'JWT' }, claims(), rs),
  es: () => forge({ alg: 'ES256', typ: 'JWT' }, claims(), es),
};

/** Changes the signature's last character to another that decodes to the same bytes (a spare bit set). */
function spareBitsFlipped(token: string): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  // 32, 64 and 256 bytes leave 2 or 4 unused bits in the last character: its lowest bit is one of them.
  return token.slice(0, -1) + alphabet[alphabet.indexOf(token.at(-1) as string) ^ 1];
}

function flipBit(token: string, position: number): string {
  const dot = token.lastIndexOf('.');
  const bytes = Buffer.from(token.slice(dot + 1), 'base64url');
  bytes[position] = (bytes[position] as number) ^ 0x01;
  return `${token.slice(0, dot + 1)}${bytes.toString('base64url')}`;
}

function oversized(size: number): string {
  const base = claims();
  return forge({ alg: 'HS256', typ: 'JWT' }, { ...base, pad: 'x'.repeat(Math.ceil((size * 3) / 4)) }, hs);
}

interface Attack {
  name: string;
  server: Server;
  token: () => unknown;
}

const eightHours = 8 * 3600;
const attacks: Attack[] = [
  // alg: none, several spellings, with and without a signature
  ...['none', 'None', 'NONE', 'nOnE', ' none', 'none '].map((alg) => ({
    name: `alg "${alg}", no signature`,
    server: 'hs' as const,
    token: () => forge({ alg, typ: 'JWT' }, claims(), 'none'),
  })),
  { name: 'alg none with an HMAC signature', server: 'hs', token: () => forge({ alg: 'none' }, claims(), hs) },
  { name: 'alg none at an RS256 node', server: 'rs', token: () => forge({ alg: 'none' }, claims(), 'none') },
  { name: 'alg missing', server: 'hs', token: () => forge({ typ: 'JWT' }, claims(), hs) },
  { name: 'alg HS256, signature empty', server: 'hs', token: () => forge({ alg: 'HS256' }, claims(), 'none') },
  // secrets and keys
  { name: 'wrong secret', server: 'hs', token: () => forge({ alg: 'HS256' }, claims(), { hmac: `${testSecret}x` }) },
  { name: 'empty secret', server: 'hs', token: () => forge({ alg: 'HS256' }, claims(), { hmac: '' }) },
  { name: 'HS512 with the right secret', server: 'hs', token: () => hs512(claims()) },
  { name: 'RS256 token at an HS256 node', server: 'hs', token: validFor.rs },
  {
    name: 'RS256→HS256: public PEM as secret',
    server: 'rs',
    token: () => forge({ alg: 'HS256' }, claims(), { hmac: rsaPem }),
  },
  {
    name: 'RS256→HS256: PEM without newline',
    server: 'rs',
    token: () => forge({ alg: 'HS256' }, claims(), { hmac: rsaPem.trim() }),
  },
  {
    name: 'RS256→HS256: DER as secret',
    server: 'rs',
    token: () => forge({ alg: 'HS256' }, claims(), { hmac: rsa.publicKey.export({ type: 'spki', format: 'der' }) }),
  },
  {
    name: 'ES256→HS256: public PEM as secret',
    server: 'es',
    token: () => forge({ alg: 'HS256' }, claims(), { hmac: ecPem }),
  },
  {
    name: 'RS256 by another key',
    server: 'rs',
    token: () => forge({ alg: 'RS256' }, claims(), { rsa: attackerRsa.privateKey }),
  },
  { name: 'ES256 token at an RS256 node', server: 'rs', token: validFor.es },
  { name: 'RS256 token at an ES256 node', server: 'es', token: () => forge({ alg: 'RS256' }, claims(), rs) },
  // keys named by the token
  {
    name: 'embedded jwk (attacker key)',
    server: 'rs',
    token: () =>
      forge({ alg: 'RS256', jwk: attackerRsa.publicKey.export({ format: 'jwk' }) }, claims(), {
        rsa: attackerRsa.privateKey,
      }),
  },
  {
    name: 'embedded jwk, right key',
    server: 'rs',
    token: () => forge({ alg: 'RS256', jwk: rsa.publicKey.export({ format: 'jwk' }) }, claims(), rs),
  },
  {
    name: 'jku to an attacker URL',
    server: 'rs',
    token: () =>
      forge({ alg: 'RS256', jku: 'http://127.0.0.1:9/jwks.json' }, claims(), { rsa: attackerRsa.privateKey }),
  },
  {
    name: 'jku, right key',
    server: 'hs',
    token: () => forge({ alg: 'HS256', jku: 'http://127.0.0.1:9/k' }, claims(), hs),
  },
  { name: 'x5c, right key', server: 'rs', token: () => forge({ alg: 'RS256', x5c: ['MIIB'] }, claims(), rs) },
  { name: 'crit extension', server: 'hs', token: () => forge({ alg: 'HS256', crit: ['exp'], exp: 1 }, claims(), hs) },
  {
    name: 'kid path traversal, empty key',
    server: 'hs',
    token: () => forge({ alg: 'HS256', kid: '../../../../../../dev/null' }, claims(), { hmac: '' }),
  },
  {
    name: 'kid SQL injection',
    server: 'hs',
    token: () => forge({ alg: 'HS256', kid: "x' UNION SELECT 'key" }, claims(), { hmac: 'key' }),
  },
  // times
  { name: 'nbf in the future', server: 'hs', token: () => forge({ alg: 'HS256' }, claims({ nbf: now() + 300 }), hs) },
  { name: 'iat in the future', server: 'hs', token: () => forge({ alg: 'HS256' }, claims({ iat: now() + 300 }), hs) },
  { name: 'exp missing', server: 'hs', token: () => forge({ alg: 'HS256' }, claims({ exp: undefined }), hs) },
  { name: 'exp a string', server: 'hs', token: () => forge({ alg: 'HS256' }, claims({ exp: String(now() + 60) }), hs) },
  { name: 'exp null', server: 'hs', token: () => forge({ alg: 'HS256' }, claims({ exp: null }), hs) },
  { name: 'exp 1e999 (Infinity)', server: 'hs', token: () => forge({ alg: 'HS256' }, rawClaims('"exp":1e999'), hs) },
  { name: 'exp in the past', server: 'hs', token: () => forge({ alg: 'HS256' }, claims({ exp: now() - 120 }), hs) },
  {
    name: 'exp past the maximum lifetime',
    server: 'hs',
    token: () => forge({ alg: 'HS256' }, claims({ exp: now() + eightHours }), hs),
  },
  {
    name: 'exp far off, no iat',
    server: 'hs',
    token: () => forge({ alg: 'HS256' }, claims({ iat: undefined, exp: now() + 10 * 365 * 86400 }), hs),
  },
  {
    name: 'old iat hides a long lifetime',
    server: 'hs',
    token: () => forge({ alg: 'HS256' }, claims({ iat: now() - eightHours, exp: now() + 60 }), hs),
  },
  // issuer and audience
  { name: 'iss mismatch', server: 'hs', token: () => forge({ alg: 'HS256' }, claims({ iss: 'someone-else' }), hs) },
  { name: 'aud mismatch', server: 'hs', token: () => forge({ alg: 'HS256' }, claims({ aud: 'another-app' }), hs) },
  {
    name: 'aud array without ours',
    server: 'hs',
    token: () => forge({ alg: 'HS256' }, claims({ aud: ['a', 'b'] }), hs),
  },
  { name: 'iss missing', server: 'rs', token: () => forge({ alg: 'RS256' }, claims({ iss: undefined }), rs) },
  // tampered signatures
  ...(['hs', 'rs', 'es'] as const).flatMap((server) => [
    { name: `${server}: signature truncated by 1`, server, token: () => validFor[server]().slice(0, -1) },
    { name: `${server}: signature truncated by 4`, server, token: () => validFor[server]().slice(0, -4) },
    { name: `${server}: signature halved`, server, token: () => halfSignature(validFor[server]()) },
    { name: `${server}: bit flipped in the signature`, server, token: () => flipBit(validFor[server](), 5) },
    {
      name: `${server}: last bit of the signature`,
      server,
      token: () => flipBit(validFor[server](), lastByte(server)),
    },
    { name: `${server}: spare bits of the signature set`, server, token: () => spareBitsFlipped(validFor[server]()) },
    { name: `${server}: payload changed, signature kept`, server, token: () => payloadSwapped(validFor[server]()) },
  ]),
  // encodings and shapes
  { name: 'padding "=" appended', server: 'rs', token: () => `${validFor.rs()}=` },
  { name: 'stray "!" in the signature', server: 'es', token: () => strayCharacter(validFor.es(), '!') },
  { name: 'whitespace in the signature', server: 'rs', token: () => strayCharacter(validFor.rs(), ' ') },
  { name: 'standard base64 (+/) header', server: 'hs', token: () => `+/+/${validFor.hs()}` },
  { name: 'header not JSON', server: 'hs', token: () => signedRaw(b64('{"alg":"HS256"'), json(claims())) },
  { name: 'header a JSON array', server: 'hs', token: () => signedRaw(json(['HS256']), json(claims())) },
  { name: 'payload not JSON', server: 'hs', token: () => forge({ alg: 'HS256' }, '{"sub":', hs) },
  { name: 'payload a string', server: 'hs', token: () => forge({ alg: 'HS256' }, '"facilitator"', hs) },
  { name: 'payload a number', server: 'hs', token: () => forge({ alg: 'HS256' }, '12345', hs) },
  { name: 'payload null', server: 'hs', token: () => forge({ alg: 'HS256' }, 'null', hs) },
  { name: 'payload an array', server: 'hs', token: () => forge({ alg: 'HS256' }, JSON.stringify([claims()]), hs) },
  { name: 'payload true', server: 'rs', token: () => forge({ alg: 'RS256' }, 'true', rs) },
  { name: 'two segments', server: 'hs', token: () => validFor.hs().split('.').slice(0, 2).join('.') },
  { name: 'four segments', server: 'hs', token: () => `${validFor.hs()}.${json({})}` },
  { name: 'dots only', server: 'hs', token: () => '..' },
  { name: 'not a JWT', server: 'hs', token: () => 'Bearer abc' },
  { name: 'empty string', server: 'hs', token: () => '' },
  { name: 'no token', server: 'hs', token: () => undefined },
  { name: 'token a number', server: 'hs', token: () => 12345 },
  { name: 'token an object', server: 'hs', token: () => ({ alg: 'none' }) },
  { name: 'token an array', server: 'hs', token: () => [validFor.hs()] },
  // claims a valid signature cannot excuse
  { name: 'role admin', server: 'hs', token: () => forge({ alg: 'HS256' }, claims({ role: 'admin' }), hs) },
  { name: 'room with a path', server: 'hs', token: () => forge({ alg: 'HS256' }, claims({ room: '../x' }), hs) },
  {
    name: 'role only inherited through __proto__',
    server: 'hs',
    token: () => forge({ alg: 'HS256' }, rawClaims('"__proto__":{"role":"facilitator"}', 'role'), hs),
  },
  // size
  { name: 'oversized: 16 KB', server: 'hs', token: () => oversized(16 * 1024) },
  { name: 'oversized: 64 KB', server: 'hs', token: () => oversized(64 * 1024) },
];

function hs512(payload: object): string {
  const input = `${json({ alg: 'HS512' })}.${json(payload)}`;
  return `${input}.${createHmac('sha512', testSecret).update(input).digest('base64url')}`;
}

/** Valid claims as JSON text with one member written verbatim (for values JSON.stringify cannot produce). */
function rawClaims(member: string, without = member.slice(1, member.indexOf('"', 1))): string {
  const others = claims();
  delete others[without];
  return `{${member},${JSON.stringify(others).slice(1)}`;
}

function signedRaw(header: string, payload: string): string {
  const input = `${header}.${payload}`;
  return `${input}.${signature(input, hs)}`;
}

const lastByte = (server: Server) => (server === 'hs' ? 31 : server === 'es' ? 63 : 255);

function halfSignature(token: string): string {
  const dot = token.lastIndexOf('.');
  const bytes = Buffer.from(token.slice(dot + 1), 'base64url');
  return `${token.slice(0, dot + 1)}${bytes.subarray(0, bytes.length / 2).toString('base64url')}`;
}

function payloadSwapped(token: string): string {
  const [header, , sig] = token.split('.');
  return `${header}.${json(claims({ role: 'facilitator', sub: 'someone-else' }))}.${sig}`;
}

function strayCharacter(token: string, character: string): string {
  return `${token.slice(0, -6)}${character}${token.slice(-6)}`;
}

/* ---- the attacks ---- */

interface Outcome {
  name: string;
  server: Server;
  accepted: boolean;
  code?: string;
  message?: string;
  token: unknown;
}

async function attempt(server: Server, token: unknown): Promise<Omit<Outcome, 'name' | 'server' | 'token'>> {
  try {
    const socket = await connect(nodes[server].url, token);
    socket.close();
    return { accepted: true };
  } catch (err) {
    const data = (err as { data?: { code?: string; message?: string } }).data;
    return { accepted: false, code: data?.code, message: data?.message };
  }
}

const outcomes: Outcome[] = [];

test('control: a valid token is accepted by each node (the attacks below could pass)', async () => {
  for (const server of ['hs', 'rs', 'es'] as const) {
    const result = await attempt(server, validFor[server]());
    assert.ok(result.accepted, `${server}: ${result.code} ${result.message}`);
  }
});

test('every attack token is refused at the handshake with UNAUTHORIZED and a reason', async () => {
  for (const attack of attacks) {
    const token = attack.token();
    outcomes.push({ name: attack.name, server: attack.server, token, ...(await attempt(attack.server, token)) });
  }
  const width = Math.max(...outcomes.map((o) => o.name.length));
  console.log(`\n  ${'attack'.padEnd(width)}  node  refusal`);
  for (const o of outcomes) {
    const answer = o.accepted ? 'ACCEPTED' : `${o.code}: ${o.message}`;
    console.log(`  ${o.name.padEnd(width)}  ${o.server.padEnd(4)}  ${answer}`);
  }
  const refused = outcomes.filter((o) => !o.accepted && o.code === 'UNAUTHORIZED' && o.message);
  console.log(
    `  ${refused.length}/${outcomes.length} refused with a code (${Math.round((100 * refused.length) / outcomes.length)} %)`,
  );
  assert.equal(
    outcomes.filter((o) => !refused.includes(o)).map((o) => `${o.name}: ${o.accepted ? 'accepted' : o.code}`),
    [],
  );
  assert.ok(outcomes.length >= 80, `${outcomes.length} attacks`);
});

test('each refusal is logged with its reason and fingerprint, never the token or its signature', async () => {
  const texts = outcomes.filter((o): o is Outcome & { token: string } => typeof o.token === 'string' && o.token !== '');
  for (const o of texts) {
    const logs = nodes[o.server].logs;
    const line = await waitFor(
      () => logs.find((l) => l.msg === 'access token rejected' && l.tokenHash === tokenFingerprint(o.token)),
      10_000,
      `the log line of "${o.name}"`,
    );
    assert.is(line.reason, o.message, o.name);
  }
  for (const server of ['hs', 'rs', 'es'] as const) {
    const output = nodes[server].output();
    for (const o of texts.filter((t) => t.server === server)) {
      const signature = o.token.slice(o.token.lastIndexOf('.') + 1);
      assert.not.ok(output.includes(o.token), `${o.name}: the token is in the log`);
      if (signature.length >= 16) assert.not.ok(output.includes(signature), `${o.name}: its signature is in the log`);
      assert.not.ok(output.includes('Attack Name Z'), 'a name from a token is in the log');
    }
  }
});

/* ---- the admin API's bearer key ---- */

test('the admin API answers 401 UNAUTHORIZED, as JSON, to every wrong, malformed or oversized key', async () => {
  const url = `${nodes.hs.url}/v1/rooms`;
  const call = (authorization?: string) =>
    fetch(url, authorization === undefined ? {} : { headers: { authorization } }).then(async (res) => ({
      status: res.status,
      body: (await res.json()) as { ok: boolean; error?: { code: string; message: string } },
    }));
  assert.is((await call(`Bearer ${testAdminKey}`)).status, 200, 'control: the right key works');
  const headers: Record<string, string | undefined> = {
    missing: undefined,
    empty: '',
    'Bearer, no key': 'Bearer ',
    'wrong key': 'Bearer not-the-admin-key-0123456789',
    'key with a character more': `Bearer ${testAdminKey}x`,
    'key a character short': `Bearer ${testAdminKey.slice(0, -1)}`,
    'lower-case scheme': `bearer ${testAdminKey}`,
    'Basic scheme': `Basic ${Buffer.from(`admin:${testAdminKey}`).toString('base64')}`,
    'key without scheme': testAdminKey,
    'two spaces': `Bearer  ${testAdminKey}`,
    'an access token': `Bearer ${validFor.hs()}`,
    'non-ASCII bytes': `Bearer ${Buffer.from('clé-ü-0123456789abcdef0123', 'utf8').toString('latin1')}`,
    '8 KB key': `Bearer ${'k'.repeat(8 * 1024)}`,
  };
  const answers: Record<string, string> = {};
  for (const [name, header] of Object.entries(headers)) {
    const { status, body } = await call(header);
    answers[name] = `${status} ${body.error?.code}`;
    assert.ok(body.error?.message, `${name}: a reason`);
  }
  assert.equal(
    Object.entries(answers).filter(([, a]) => a !== '401 UNAUTHORIZED'),
    [],
    JSON.stringify(answers),
  );
  const output = nodes.hs.output();
  assert.not.ok(output.includes(testAdminKey.slice(0, 20)), 'the admin key is in the log');
});

test.run();
