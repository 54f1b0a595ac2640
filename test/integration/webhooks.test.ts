/**
 * Webhooks against a local HTTP receiver: events of a session arrive signed (HMAC-SHA256 over
 * timestamp and body), are retried after a 500, and are dead-lettered after the last attempt,
 * which the admin API shows. The session's end brings a signed `audit.checkpoint`, against which
 * `haven audit verify` finds the audit chain cut afterwards.
 */
import { spawnSync } from 'node:child_process';
import { createHmac, createPublicKey, timingSafeEqual, verify as verifySignature } from 'node:crypto';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { NodeProcess } from '../../bench/node-process.ts';
import { waitFor } from '../../bench/processes.ts';
import { protocolVersion } from '../../client-sdk/src/protocol/index.ts';
import { checkpointMessage } from '../../server/audit/checkpoint.ts';
import { sessionNode } from '../helpers/session-node.ts';
import { admin, connect, next, ok, token } from '../helpers/signaling-client.ts';

const webhookSecret = 'clinic-webhook-secret-0123';
const auditSecret = 'webhooks-test-audit-secret-0123456789';
const root = join(import.meta.dirname, '..', '..');
// The node is started once the receiver listens: its URLs are in the node's settings.
const haven = sessionNode(test, { redis: true, start: false });
const { redis: redisServer, redisDir } = haven;

interface Received {
  path: string;
  timestamp: string;
  signature: string;
  body: string;
}

const received: Received[] = [];
const flakyAttempts = new Map<string, number>();
const receiver = createServer(async (req: IncomingMessage, res) => {
  let body = '';
  for await (const chunk of req) body += chunk;
  const path = req.url ?? '/';
  received.push({
    path,
    timestamp: String(req.headers['haven-timestamp']),
    signature: String(req.headers['haven-signature']),
    body,
  });
  const id = JSON.parse(body).id as string;
  if (path === '/down') res.statusCode = 500;
  else if (path === '/flaky') {
    const attempt = (flakyAttempts.get(id) ?? 0) + 1;
    flakyAttempts.set(id, attempt);
    res.statusCode = attempt === 1 ? 500 : 200;
  }
  res.end();
});

/** What a clinic's receiver does: recompute the HMAC over "<timestamp>.<body>" and compare. */
function verify(r: Received): boolean {
  const expected = `v1=${createHmac('sha256', webhookSecret).update(`${r.timestamp}.${r.body}`).digest('hex')}`;
  return (
    expected.length === r.signature.length &&
    timingSafeEqual(Buffer.from(expected), Buffer.from(r.signature)) &&
    Math.abs(Date.now() / 1000 - Number(r.timestamp)) < 300
  );
}

let node: NodeProcess;

test.before(async () => {
  receiver.listen(0, '127.0.0.1');
  await once(receiver, 'listening');
  const base = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
  node = await haven.startNode({
    HAVEN_AUDIT_HMAC_KEY: auditSecret,
    // Only a session's end checkpoints during the test: one audit.checkpoint per session.
    HAVEN_AUDIT_CHECKPOINT_INTERVAL_S: '3600',
    HAVEN_WEBHOOK_URLS: `${base}/ok,${base}/flaky,${base}/down`,
    HAVEN_WEBHOOK_SECRET: webhookSecret,
    HAVEN_WEBHOOK_MAX_ATTEMPTS: '3',
    HAVEN_WEBHOOK_BACKOFF_MS: '100',
  });
});

test.after(() => {
  receiver.close();
});

test('a session’s events arrive signed; a 500 is retried; a dead endpoint is dead-lettered', async () => {
  const room = `hook-${process.pid}`;
  await admin(node.url, 'POST', '/v1/rooms', { id: room, title: 'Group', waitingRoom: false });
  const facilitator = await connect(node.url, token(room, 'fac', 'facilitator'));
  const participant = await connect(node.url, token(room, 'pt-1'));
  try {
    await ok(facilitator, 'join', { protocolVersion });
    await ok(participant, 'join', { protocolVersion });
    const removed = next(participant, 'removed');
    await ok(facilitator, 'remove', { participantId: 'pt-1' });
    await removed;
    await ok(facilitator, 'endSession', {});
  } finally {
    facilitator.close();
    participant.close();
  }
  const types = ['session.started', 'participant.removed', 'session.ended', 'attendance.ready', 'audit.checkpoint'];
  const at = (path: string) => received.filter((r) => r.path === path);
  await waitFor(
    () => types.every((t) => at('/ok').some((r) => JSON.parse(r.body).type === t)),
    15_000,
    'every event at /ok',
  );
  for (const r of at('/ok')) {
    assert.ok(verify(r), 'signature verifies');
    const event = JSON.parse(r.body);
    assert.is(event.room, room);
    assert.not.match(r.body, /Name of/, 'ids only');
  }
  assert.is(
    JSON.parse(at('/ok').find((r) => JSON.parse(r.body).type === 'participant.removed')?.body ?? '{}').participant,
    'pt-1',
  );
  // /flaky answers 500 to each first attempt: every event arrives on its second.
  await waitFor(
    () => [...flakyAttempts.values()].filter((n) => n >= 2).length >= types.length,
    15_000,
    'retries at /flaky',
  );
  // /down never accepts: after 3 attempts each delivery is dead.
  const dead = await waitFor(
    async () => {
      const res = await admin(node.url, 'GET', '/v1/webhooks/deliveries?status=dead');
      const list = res.body.data.deliveries as { url: string; attempts: number; event: { type: string } }[];
      return list.length >= types.length ? list : undefined;
    },
    20_000,
    'dead-lettered deliveries',
  );
  for (const d of dead) {
    assert.match(d.url, /\/down$/);
    assert.is(d.attempts, 3);
  }
  assert.is(at('/down').length, types.length * 3, 'three attempts each, no more');
  const delivered = await admin(node.url, 'GET', '/v1/webhooks/deliveries?status=delivered');
  assert.ok(delivered.body.data.deliveries.length >= types.length * 2);
  assert.is((await admin(node.url, 'GET', '/v1/webhooks/deliveries?status=lost')).status, 400);
  assert.is((await admin(node.url, 'GET', '/v1/webhooks/deliveries?limit=0')).status, 400);
});

test('audit.checkpoint: signed by the node’s audit key; haven audit verify with it finds a later cut', async () => {
  const room = `hook-${process.pid}`;
  const hooks = received.filter((r) => r.path === '/ok' && JSON.parse(r.body).type === 'audit.checkpoint');
  assert.is(hooks.length, 1);
  const body = hooks[0]?.body as string;
  const event = JSON.parse(body);
  assert.is(event.room, room);
  assert.equal(Object.keys(event.data).sort(), ['at', 'hash', 'kid', 'seq', 'signature']);
  // What a clinic does with the public key the node logs at start: check the Ed25519 signature.
  const key = node.logs.find((l) => l.msg === 'audit checkpoint signing key') as { kid: string; publicKey: string };
  assert.is(event.data.kid, key.kid);
  const publicKey = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: key.publicKey }, format: 'jwk' });
  const message = checkpointMessage({ room, seq: event.data.seq, hash: event.data.hash, at: event.data.at });
  assert.ok(verifySignature(null, Buffer.from(message), publicKey, Buffer.from(event.data.signature, 'base64url')));

  // The chain reaches it; then its newest entries are cut, Redis' count reset with them.
  const keyFile = join(redisDir, 'audit.key');
  writeFileSync(keyFile, `${auditSecret}\n`);
  const verifyCli = () =>
    spawnSync(
      process.execPath,
      [
        '--import',
        'tsx',
        join(root, 'bin/haven.ts'),
        'audit',
        'verify',
        '--room',
        room,
        '--redis',
        redisServer.url,
        '--key',
        keyFile,
        '--checkpoint',
        body,
      ],
      { cwd: root, encoding: 'utf8', env: { ...process.env, REDIS_URL: undefined } },
    );
  const before = verifyCli();
  assert.is(before.status, 0, before.stdout + before.stderr);
  assert.match(before.stdout, new RegExp(`reaches checkpoint seq ${event.data.seq};`));
  const redis = new Redis(redisServer.url);
  try {
    const stream = `haven:audit:${room}`;
    const entries = await redis.xrange(stream, '-', '+');
    const kept = entries.filter(([, fields]) => Number(fields[fields.indexOf('seq') + 1]) < event.data.seq);
    const cut = entries.slice(kept.length).map(([id]) => id);
    await redis.xdel(stream, ...cut);
    await redis.call('XSETID', stream, cut.at(-1) as string, 'ENTRIESADDED', String(kept.length));
  } finally {
    redis.disconnect();
  }
  const after = verifyCli();
  assert.is(after.status, 1, after.stdout + after.stderr);
  assert.is(
    after.stdout,
    `BROKEN at seq ${event.data.seq}: truncated (checkpoint seq ${event.data.seq}, chain ends at ${event.data.seq - 1})\n`,
  );
});

test('the endpoints are listed with how their deliveries stand, never the secret', async () => {
  const res = await admin(node.url, 'GET', '/v1/webhooks/endpoints');
  assert.is(res.status, 200);
  const endpoints = res.body.data.endpoints as { url: string; deliveries: Record<string, number> }[];
  assert.equal(
    endpoints.map((e) => e.url.replace(/^http:\/\/127\.0\.0\.1:\d+/, '')),
    ['/ok', '/flaky', '/down'],
  );
  assert.is(endpoints[0]?.deliveries.delivered, 5);
  assert.is(endpoints[1]?.deliveries.delivered, 5, 'each after a retry');
  assert.equal(endpoints[2]?.deliveries, { pending: 0, delivered: 0, retrying: 0, dead: 5 });
  assert.not.match(JSON.stringify(res.body), new RegExp(webhookSecret));
});

test('deliveries are listed a page at a time, newest event first, each once', async () => {
  const all = (await admin(node.url, 'GET', '/v1/webhooks/deliveries?limit=100')).body.data;
  assert.is(all.nextCursor, null);
  assert.ok(all.deliveries.length >= 15, 'five events to three endpoints');
  const seen: string[] = [];
  let cursor: number | null = 0;
  while (cursor !== null) {
    const page: { deliveries: { id: string }[]; nextCursor: number | null } = (
      await admin(node.url, 'GET', `/v1/webhooks/deliveries?limit=5&cursor=${cursor}`)
    ).body.data;
    assert.ok(page.deliveries.length <= 5);
    seen.push(...page.deliveries.map((d: { id: string }) => d.id));
    cursor = page.nextCursor;
  }
  assert.equal(
    seen,
    all.deliveries.map((d: { id: string }) => d.id),
  );
  assert.is(new Set(seen).size, seen.length, 'no delivery twice');
  const times = all.deliveries.map((d: { event: { occurredAt: string } }) => Date.parse(d.event.occurredAt));
  assert.equal(
    times,
    [...times].sort((a: number, b: number) => b - a),
    'newest first',
  );
});

test.run();
