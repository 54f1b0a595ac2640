/**
 * The HTTP app's routing and validation, in this process over real HTTP, in front of stand-ins
 * for the store and the rooms that record what they were asked.
 */
import { once } from 'node:events';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { AdminDeps } from '../../server/http/admin.ts';
import { createHttpApp } from '../../server/http/app.ts';
import { testAdminKey } from '../helpers/signaling-client.ts';

const asked: string[] = [];
const room = { id: 'r1', title: 'Group' };
const attendance = { room: 'r1', participants: [] };

function adminDeps(remoteOwnerUrl?: (room: string) => Promise<string | undefined>): AdminDeps {
  return {
    apiKey: testAdminKey,
    logger: pino({ level: 'silent' }),
    store: {
      list: async (limit: number, cursor: number) => {
        asked.push(`list ${limit} ${cursor}`);
        return { rooms: [room], nextCursor: null };
      },
      get: async (id: string) => {
        asked.push(`get ${id}`);
        return id === room.id ? room : undefined;
      },
    },
    rooms: { get: () => undefined, end: async (id: string) => id === room.id },
    audit: { recordInBackground: () => {} },
    attendanceOf: async (id: string) => (id === room.id ? attendance : undefined),
    sessionsOf: async (id: string, fromMs: number, toMs: number) => {
      asked.push(`sessions ${id} ${fromMs} ${toMs}`);
      return [];
    },
    deliveries: async (options: object) => {
      asked.push(`deliveries ${JSON.stringify(options)}`);
      return { deliveries: [], nextCursor: null };
    },
    program: { timeZone: 'UTC', weeklyThresholdHours: 9 },
    ...(remoteOwnerUrl ? { remoteOwnerUrl } : {}),
  } as unknown as AdminDeps;
}

async function listen(admin: AdminDeps): Promise<{ server: Server; url: string }> {
  const server = createServer(
    createHttpApp({ readiness: async () => ({ ready: true, redis: true, workers: 1, draining: false }), admin }),
  );
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

interface Answer {
  status: number;
  type: string;
  text: string;
  body: { ok?: boolean; data?: unknown; error?: { code: string; message: string } };
}

/** One request with the path written as given; with the admin key unless `key` is ''. */
function call(
  base: string,
  method: string,
  path: string,
  options: { key?: string; headers?: object; body?: string } = {},
) {
  const key = options.key ?? testAdminKey;
  const headers = { ...(key ? { authorization: `Bearer ${key}` } : {}), ...options.headers };
  return new Promise<Answer>((resolve, reject) => {
    const req = request(`${base}${path}`, { method, headers }, (res) => {
      let text = '';
      res.on('data', (chunk) => {
        text += chunk;
      });
      res.on('end', () => {
        const type = String(res.headers['content-type'] ?? '');
        const body = type.startsWith('application/json') && text ? JSON.parse(text) : {};
        resolve({ status: res.statusCode ?? 0, type, text, body });
      });
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

let app: { server: Server; url: string };
let owner: { server: Server; url: string };
let forwardingApp: { server: Server; url: string };

test.before(async () => {
  app = await listen(adminDeps());
  owner = await listen(adminDeps());
  forwardingApp = await listen(adminDeps(async (id) => (id === 'r1' ? owner.url : undefined)));
});

test.after(() => {
  for (const { server } of [app, owner, forwardingApp]) {
    server.closeAllConnections();
    server.close();
  }
});

test.before.each(() => {
  asked.length = 0;
});

test('a wrong method answers a coded 404 naming it, never 405', async () => {
  for (const [method, path] of <[string, string][]>[
    ['POST', '/healthz'],
    ['HEAD', '/readyz'],
    ['DELETE', '/v1/rooms'],
    ['GET', '/v1/rooms/r1/end'],
    ['PUT', '/v1/rooms/r1/attendance'],
    ['POST', '/v1/participants/p1/attendance'],
    ['POST', '/v1/webhooks/endpoints'],
    ['GET', '/demo/token'],
  ]) {
    const res = await call(app.url, method, path);
    assert.is(res.status, 404, `${method} ${path}`);
    if (method !== 'HEAD')
      assert.equal(res.body.error, { code: 'NOT_FOUND', message: `no route for ${method} ${path}` });
  }
  assert.equal(asked, []);
});

test('an unknown path: a coded 404; under /v1/ only after the admin key', async () => {
  for (const path of ['/nope', '/v1', '/healthz/', '/Healthz', '/heal%74hz', '/demo']) {
    const res = await call(app.url, 'GET', path, { key: '' });
    assert.is(res.status, 404, path);
    assert.equal(res.body.error, { code: 'NOT_FOUND', message: `no route for GET ${path}` });
  }
  for (const path of [
    '/v1/',
    '/v1/nope',
    '/v1/rooms/',
    '/v1/r%6Foms',
    '/v1/rooms/r1/x',
    '/v1/participants//attendance',
  ]) {
    assert.is((await call(app.url, 'GET', path, { key: '' })).status, 401, path);
    assert.is((await call(app.url, 'GET', path, { key: 'wrong-key' })).body.error?.code, 'UNAUTHORIZED', path);
    const res = await call(app.url, 'GET', path);
    assert.is(res.status, 404, path);
    assert.equal(res.body.error, { code: 'NOT_FOUND', message: `no route for GET ${path}` });
  }
});

test('the admin key is checked before the method, the path or the body', async () => {
  for (const [method, path] of <[string, string][]>[
    ['POST', '/v1/rooms'],
    ['GET', '/v1/rooms?limit=0'],
    ['DELETE', '/v1/rooms/r1'],
    ['GET', '/v1/participants/bad%20id/attendance'],
  ]) {
    const body = method === 'POST' ? { headers: { 'content-type': 'text/plain' }, body: 'x' } : {};
    const res = await call(app.url, method, path, { key: '', ...body });
    assert.is(res.status, 401, `${method} ${path}`);
    assert.is(res.body.error?.code, 'UNAUTHORIZED');
  }
});

test('path params are decoded once and checked by schema', async () => {
  assert.is((await call(app.url, 'GET', '/v1/rooms/r%31')).body.ok, true);
  assert.equal(asked, ['get r1']);
  for (const path of [
    '/v1/rooms/bad%20id',
    '/v1/rooms/a%2Fb',
    '/v1/rooms/a%2525',
    `/v1/rooms/${'r'.repeat(129)}/end`,
  ]) {
    const res = await call(app.url, path.endsWith('/end') ? 'POST' : 'GET', path);
    assert.is(res.status, 404, path);
    assert.match(res.body.error?.message ?? '', `no route for`);
  }
  assert.is((await call(app.url, 'GET', `/v1/rooms/${'r'.repeat(128)}`)).body.error?.message, 'no such room');
  const q = 'from=2026-01-05T00:00:00Z&to=2026-01-12T00:00:00Z';
  assert.is((await call(app.url, 'GET', `/v1/participants/p%2E1/attendance?${q}`)).status, 200);
  assert.equal(asked.slice(-1), [
    `sessions p.1 ${Date.parse('2026-01-05T00:00:00Z')} ${Date.parse('2026-01-12T00:00:00Z')}`,
  ]);
  for (const id of ['bad%20id', 'a%2Fb', 'p'.repeat(200)]) {
    const res = await call(app.url, 'GET', `/v1/participants/${id}/attendance?${q}`);
    assert.is(res.status, 400, id);
    assert.equal(res.body.error, { code: 'INVALID_REQUEST', message: 'not a participant id' });
  }
});

test('query strings are validated by schema: bounds, unknown keys, a repeated key by its last value', async () => {
  await call(app.url, 'GET', '/v1/rooms?limit=5&cursor=3');
  await call(app.url, 'GET', '/v1/rooms');
  await call(app.url, 'GET', '/v1/rooms?limit=1&limit=2');
  assert.equal(asked, ['list 5 3', 'list 20 0', 'list 2 0']);
  for (const query of ['limit=0', 'limit=101', 'cursor=-1', 'limit=x', 'nope=1']) {
    const res = await call(app.url, 'GET', `/v1/rooms?${query}`);
    assert.is(res.status, 400, query);
    assert.is(res.body.error?.code, 'INVALID_REQUEST');
  }
  assert.match((await call(app.url, 'GET', '/v1/rooms?limit=0')).body.error?.message ?? '', /^limit: /);
  await call(app.url, 'GET', '/v1/webhooks/deliveries?status=dead&limit=5');
  assert.equal(asked.slice(-1), ['deliveries {"status":"dead","limit":5,"cursor":0}']);
  assert.is((await call(app.url, 'GET', '/v1/webhooks/deliveries?status=lost')).status, 400);
  const noRange = await call(app.url, 'GET', '/v1/participants/p1/attendance?from=yesterday');
  assert.is(noRange.status, 400);
  assert.match(noRange.body.error?.message ?? '', /^from: .*; to: /);
  const zone = '/v1/participants/p1/attendance?from=2026-01-05T00:00:00Z&to=2026-01-12T00:00:00Z&timeZone=Mars/Base';
  assert.match((await call(app.url, 'GET', zone)).body.error?.message ?? '', /not an IANA time zone/);
});

test('bodies: JSON only, at most 64 KiB, validated by schema', async () => {
  const json = { 'content-type': 'application/json' };
  const tooBig = await call(app.url, 'PUT', '/v1/rooms/r1/consent', { headers: json, body: 'x'.repeat(70_000) });
  assert.is(tooBig.status, 413);
  assert.is(tooBig.body.error?.code, 'PAYLOAD_TOO_LARGE');
  const text = await call(app.url, 'POST', '/v1/rooms', { headers: { 'content-type': 'text/plain' }, body: '{}' });
  assert.equal(text.body.error, { code: 'INVALID_REQUEST', message: 'send application/json' });
  const broken = await call(app.url, 'POST', '/v1/rooms', { headers: json, body: '{"title": ' });
  assert.equal(broken.body.error, { code: 'INVALID_REQUEST', message: 'body is not valid JSON' });
  const extra = await call(app.url, 'PUT', '/v1/rooms/r1/consent', { headers: json, body: '{"text":"x","y":1}' });
  assert.is(extra.status, 400);
  assert.match(extra.body.error?.message ?? '', /payload: /);
});

test('answers: JSON uncached, attendance as CSV when asked', async () => {
  const health = await call(app.url, 'GET', '/healthz?x=1', { key: '' });
  assert.equal([health.status, health.type, health.body], [200, 'application/json; charset=utf-8', { status: 'ok' }]);
  const json = await call(app.url, 'GET', '/v1/rooms/r1/attendance');
  assert.equal(json.body, { ok: true, data: attendance });
  const csv = await call(app.url, 'GET', '/v1/rooms/r1/attendance', { headers: { accept: 'text/csv' } });
  assert.equal([csv.status, csv.type], [200, 'text/csv; charset=utf-8']);
  assert.ok(csv.text.length > 0);
  assert.is((await call(app.url, 'GET', '/v1/rooms/r2/attendance')).body.error?.code, 'NOT_FOUND');
});

test('calls on a live room served by another node are forwarded there, whatever the method; once', async () => {
  assert.is((await call(forwardingApp.url, 'GET', '/v1/rooms/r1')).body.ok, true);
  assert.is((await call(forwardingApp.url, 'POST', '/v1/rooms/r1/end')).body.ok, true);
  const wrongMethod = await call(forwardingApp.url, 'DELETE', '/v1/rooms/r1/consent');
  assert.equal(wrongMethod.body.error, { code: 'NOT_FOUND', message: 'no route for DELETE /v1/rooms/r1/consent' });
  assert.equal(asked, ['get r1'], 'only the owner read the store');
  // Already forwarded, not a live room's call, or not the owner's room: answered here.
  await call(forwardingApp.url, 'GET', '/v1/rooms/r1', { headers: { 'haven-forwarded': '1' } });
  await call(forwardingApp.url, 'GET', '/v1/rooms/r2');
  assert.equal(asked, ['get r1', 'get r1', 'get r2']);
  assert.is((await call(forwardingApp.url, 'GET', '/v1/rooms/r1', { key: '' })).status, 401);
});

test.run();
