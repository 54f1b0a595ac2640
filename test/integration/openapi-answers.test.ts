/**
 * docs/openapi.json against a running node: every route is called (a room with a live session,
 * its attendance in JSON and CSV, a participant's weeks, webhook endpoints and deliveries, health,
 * readiness, coded errors) and each answer is validated against the schema documented for its
 * status. Then TypeScript types generated from the file (openapi-typescript) type-check those
 * same answers, so a portal's generated client reads what the API really sends.
 */
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import openapiTS, { astToString } from 'openapi-typescript';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { waitFor } from '../../bench/processes.ts';
import { protocolVersion } from '../../client-sdk/src/protocol/index.ts';
import { attendanceCsvHeader, parseCsv } from '../../server/attendance/csv.ts';
import { openapiPath, responseSchemaName, schemaErrors, spec } from '../helpers/openapi-schemas.ts';
import { sessionNode } from '../helpers/session-node.ts';
import { admin, next, ok, testAdminKey } from '../helpers/signaling-client.ts';

const root = join(import.meta.dirname, '..', '..');
// The receiver listens before the node starts: its URL is in the node's settings.
const receiver = createServer((req, res) => {
  req.resume();
  req.on('end', () => res.end());
});
receiver.listen(0, '127.0.0.1');
await once(receiver, 'listening');
const haven = sessionNode(test, {
  env: {
    HAVEN_WEBHOOK_URLS: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks`,
    HAVEN_WEBHOOK_SECRET: 'openapi-test-webhook-secret',
    HAVEN_ATTENDANCE_INTERVAL_S: '1',
  },
});
const node = haven.node;

test.after(() => {
  receiver.close();
});

interface Answer {
  /** `METHOD path-template status` */
  route: string;
  body: unknown;
}

/** Every answer validated so far, for the type check. */
const answers: Answer[] = [];

/** Validates an answer against the schema documented for its route and status, and keeps it. */
function conforms(template: string, method: string, status: number, body: unknown): void {
  const name = responseSchemaName(template, method, status);
  assert.equal(schemaErrors(name, body), [], `${method.toUpperCase()} ${template} ${status} is a ${name}`);
  answers.push({ route: `${method} ${template} ${status}`, body });
}

async function call(method: string, template: string, path: string, expected: number, body?: unknown) {
  const res = await admin(node.url, method, path, body);
  assert.is(res.status, expected, JSON.stringify(res.body));
  conforms(template, method.toLowerCase(), res.status, res.body);
  return res.body;
}

const rangeQuery = () => {
  const from = new Date(Date.now() - 86_400_000).toISOString();
  const to = new Date(Date.now() + 86_400_000).toISOString();
  return `from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`;
};

test('every route’s answers conform to the documented schemas', async () => {
  for (const path of ['/healthz', '/readyz']) {
    const res = await fetch(`${node.url}${path}`);
    conforms(path, 'get', res.status, await res.json());
  }
  const schedule = {
    start: new Date(Date.now() - 60_000).toISOString(),
    end: new Date(Date.now() + 3_600_000).toISOString(),
    timeZone: 'America/New_York',
  };
  const room = `oa-${process.pid}`;
  const fields = { id: room, title: 'Group', roster: ['pt-1', 'pt-2'], schedule, waitingRoom: true };
  await call('POST', '/v1/rooms', '/v1/rooms', 201, fields);
  await call('GET', '/v1/rooms/{id}', `/v1/rooms/${room}`, 200);
  await call('GET', '/v1/rooms', '/v1/rooms?limit=5', 200);

  const facilitator = await haven.client(room, 'fac', 'facilitator');
  await ok(facilitator, 'join', { protocolVersion });
  const participant = await haven.client(room, 'pt-1');
  const waiting = await ok(participant, 'join', { protocolVersion });
  assert.is(waiting.stage, 'waiting');
  const atTheDoor = await call('GET', '/v1/rooms/{id}', `/v1/rooms/${room}`, 200);
  const live = atTheDoor.data.live;
  assert.equal(live.stages, { consent: 0, waiting: 1, admitted: 1 });
  assert.is(live.participants, 2, 'everyone in the room, waiting or not');
  assert.is(new URL(live.node.url).port, new URL(node.url).port, 'the node serving the room');
  assert.type(live.node.id, 'string');

  const admitted = next(participant, 'admitted');
  await ok(facilitator, 'admit', { participantId: 'pt-1' });
  await admitted;
  const inSession = await call('GET', '/v1/rooms/{id}', `/v1/rooms/${room}`, 200);
  assert.equal(inSession.data.live.stages, { consent: 0, waiting: 0, admitted: 2 });
  // A breakout round and the recall: the record lists both moves (checked against the schema below).
  await ok(facilitator, 'createBreakouts', { groups: [{ name: 'Pairs', members: ['pt-1'] }] });
  const inGroup = next(participant, 'movedToBreakout');
  await ok(facilitator, 'startBreakouts', {});
  const group = (await inGroup)[0].group?.id;
  const backInMain = next(participant, 'movedToBreakout');
  await ok(facilitator, 'recallBreakouts', {});
  await backInMain;
  await call('PUT', '/v1/rooms/{id}/consent', `/v1/rooms/${room}/consent`, 200, { text: 'What is said here stays.' });
  const withConsent = await call('GET', '/v1/rooms/{id}', `/v1/rooms/${room}`, 200);
  assert.is(withConsent.data.consent.version, 1);
  await call('POST', '/v1/rooms/{id}/end', `/v1/rooms/${room}/end`, 200);
  const ended = await call('GET', '/v1/rooms/{id}', `/v1/rooms/${room}`, 200);
  assert.is(ended.data.live, null);

  const attendance = await waitFor(
    async () => {
      const res = await admin(node.url, 'GET', `/v1/rooms/${room}/attendance`);
      return res.status === 200 && res.body.data.sessionEndedAt ? res.body : undefined;
    },
    15_000,
    'the final attendance',
  );
  conforms('/v1/rooms/{id}/attendance', 'get', 200, attendance);
  type Entry = { participant: string; moves: { at: number; breakout: string | null }[] };
  const recordOf = (id: string): Entry => attendance.data.participants.find((p: Entry) => p.participant === id);
  assert.equal(
    recordOf('pt-1').moves.map((m) => m.breakout),
    [group, null],
    'into the group, back at the recall',
  );
  assert.equal(recordOf('fac').moves, [], 'facilitators stay in the main room unless they visit');
  const csv = await fetch(`${node.url}/v1/rooms/${room}/attendance`, {
    headers: { authorization: `Bearer ${testAdminKey}`, accept: 'text/csv' },
  });
  assert.match(csv.headers.get('content-type') ?? '', /^text\/csv/);
  const [header, ...rows] = parseCsv(await csv.text());
  const documented = spec.paths['/v1/rooms/{id}/attendance'].get.responses['200'].content['text/csv'];
  assert.equal(header, documented.schema['x-haven-csv-header']);
  assert.equal(header, [...attendanceCsvHeader]);
  assert.is(rows.length, attendance.data.participants.length);
  const moves = rows.find((r) => r[1] === 'pt-1')?.[header?.indexOf('breakout_moves') ?? -1];
  assert.match(moves ?? '', new RegExp(`^\\S+Z ${group};\\S+Z main$`));

  await call('GET', '/v1/participants/{id}/attendance', `/v1/participants/pt-1/attendance?${rangeQuery()}`, 200);
  await waitFor(
    async () => (await admin(node.url, 'GET', '/v1/webhooks/deliveries')).body.data.deliveries.length > 0,
    15_000,
    'a webhook delivery',
  );
  await call('GET', '/v1/webhooks/deliveries', '/v1/webhooks/deliveries?limit=2', 200);
  const endpoints = await call('GET', '/v1/webhooks/endpoints', '/v1/webhooks/endpoints', 200);
  assert.is(endpoints.data.endpoints.length, 1);
});

test('errors conform too, each with its code’s documented status', async () => {
  const statusOf = spec.components.schemas.ErrorAnswer['x-haven-http-status'];
  const cases: [method: string, template: string, path: string, body?: unknown][] = [
    ['GET', '/v1/rooms/{id}', '/v1/rooms/no-such-room'],
    ['POST', '/v1/rooms/{id}/end', '/v1/rooms/no-such-room/end'],
    ['GET', '/v1/rooms/{id}/attendance', '/v1/rooms/no-such-room/attendance'],
    ['GET', '/v1/rooms', '/v1/rooms?limit=0'],
    ['POST', '/v1/rooms', '/v1/rooms', { title: '' }],
    ['POST', '/v1/rooms', '/v1/rooms', { title: 'x'.repeat(70_000) }],
    ['GET', '/v1/participants/{id}/attendance', '/v1/participants/pt-1/attendance?from=yesterday&to=today'],
    ['GET', '/v1/webhooks/deliveries', '/v1/webhooks/deliveries?status=lost'],
  ];
  for (const [method, template, path, body] of cases) {
    const res = await admin(node.url, method, path, body);
    assert.is(res.status, statusOf[res.body.error?.code ?? ''], `${method} ${path}`);
    conforms(template, method.toLowerCase(), res.status, res.body);
  }
  const noKey = await admin(node.url, 'GET', '/v1/rooms', undefined, 'wrong-key');
  assert.is(noKey.status, statusOf.UNAUTHORIZED);
  conforms('/v1/rooms', 'get', noKey.status, noKey.body);
});

test('shareConnectionQuality: false unless asked, kept as created, in every room answer', async () => {
  const plain = `oa-q-${process.pid}`;
  const shared = `oa-qs-${process.pid}`;
  const created = await call('POST', '/v1/rooms', '/v1/rooms', 201, { id: plain, title: 'Group' });
  assert.is(created.data.shareConnectionQuality, false);
  const body = { id: shared, title: 'Group', shareConnectionQuality: true };
  assert.is((await call('POST', '/v1/rooms', '/v1/rooms', 201, body)).data.shareConnectionQuality, true);
  assert.is((await call('GET', '/v1/rooms/{id}', `/v1/rooms/${shared}`, 200)).data.shareConnectionQuality, true);
  assert.is((await call('GET', '/v1/rooms/{id}', `/v1/rooms/${plain}`, 200)).data.shareConnectionQuality, false);
  const listed: { id: string; shareConnectionQuality: boolean }[] = (
    await call('GET', '/v1/rooms', '/v1/rooms?limit=100', 200)
  ).data.rooms;
  const sharing = (id: string) => listed.find((r) => r.id === id)?.shareConnectionQuality;
  assert.equal([sharing(plain), sharing(shared)], [false, true]);
  const refused = await admin(node.url, 'POST', '/v1/rooms', { title: 'Group', shareConnectionQuality: 'yes' });
  assert.is(refused.body.error?.code, 'INVALID_REQUEST');
  conforms('/v1/rooms', 'post', refused.status, refused.body);
});

/** `paths[...]` type of the JSON answered to `route` (`method template status`). */
function answerType(route: string): string {
  const [method, template, status] = route.split(' ');
  return `paths[${JSON.stringify(template)}][${JSON.stringify(method)}]['responses'][${status}]['content']['application/json']`;
}

test('types generated from the file by openapi-typescript type-check the real answers', async () => {
  assert.ok(answers.length >= 20, 'the answers of the tests above');
  const dir = mkdtempSync(join(tmpdir(), 'haven-openapi-types-'));
  try {
    writeFileSync(join(dir, 'openapi.ts'), astToString(await openapiTS(new URL(`file://${openapiPath}`))));
    const checks = answers.map(
      (a, i) => `export const answer${i}: ${answerType(a.route)} = ${JSON.stringify(a.body)};`,
    );
    // A portal reading fields by the generated names: a typo here would not compile.
    checks.push(
      `type Room = components['schemas']['RoomWithLive'];`,
      `export const servedBy = (room: Room): string | undefined => room.live?.node?.url;`,
      `export const waitingNow = (room: Room): number => room.live?.stages.waiting ?? 0;`,
    );
    writeFileSync(
      join(dir, 'answers.ts'),
      `import type { components, paths } from './openapi.ts';\n${checks.join('\n')}\n`,
    );
    const tsc = spawnSync(
      join(root, 'node_modules', '.bin', 'tsc'),
      [
        '--noEmit',
        '--strict',
        '--exactOptionalPropertyTypes',
        '--target',
        'es2022',
        '--module',
        'nodenext',
        '--allowImportingTsExtensions',
        '--skipLibCheck',
        join(dir, 'answers.ts'),
      ],
      { encoding: 'utf8' },
    );
    assert.is(tsc.status, 0, tsc.stdout + tsc.stderr);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
