/**
 * A portal built from the README's example, installed from the two packed tarballs, over a real
 * node: it creates the session's room with the admin client, two people (a facilitator and a
 * participant) join from its page in Chromium and decode each other's audio and video, and its
 * webhook receiver accepts Haven's signed `session.started` and refuses forged deliveries.
 */
import { pathToFileURL } from 'node:url';
import type { Page } from 'playwright-core';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { waitFor } from '../../bench/processes.ts';
import type * as ServerSdk from '../../server-sdk/src/index.ts';
import { launchBrowser, recordPeerConnections, type TestBrowser } from '../helpers/browser.ts';
import { runAll } from '../helpers/hooks.ts';
import { receivingFrom } from '../helpers/page-media.ts';
import { type PortalApp, packHavenPackages, startPortalApp } from '../helpers/portal-app.ts';
import { freePort } from '../helpers/ports.ts';
import { sessionNode } from '../helpers/session-node.ts';
import { admin, testAdminKey, testSecret } from '../helpers/signaling-client.ts';

const webhookSecret = 'portal-webhook-secret-0123456789';
const room = `portal-${process.pid}`;
let portal: PortalApp | undefined;
let browser: TestBrowser | undefined;
// Registered first, so the pages close before the node stops (no page is left reconnecting).
test.after(() => runAll([() => browser?.close(), () => portal?.stop()]));
// The node starts once the portal's port is known: its webhooks go there.
const haven = sessionNode(test, { redis: true, start: false });
let havenUrl = '';
/** The server package as installed in the portal (its bundle, not the sources). */
let sdk: typeof ServerSdk;

test.before(async () => {
  const portalPort = await freePort();
  const [node, tarballs] = await Promise.all([
    haven.startNode({
      HAVEN_WEBHOOK_URLS: `http://127.0.0.1:${portalPort}/webhooks/haven`,
      HAVEN_WEBHOOK_SECRET: webhookSecret,
    }),
    packHavenPackages(),
  ]);
  havenUrl = node.url;
  portal = await startPortalApp({
    tarballs,
    havenUrl,
    env: {
      HAVEN_AUTH_SECRET: testSecret,
      HAVEN_ADMIN_API_KEY: testAdminKey,
      HAVEN_WEBHOOK_SECRET: webhookSecret,
      PORT: String(portalPort),
    },
  });
  sdk = await import(pathToFileURL(`${portal.dir}/node_modules/@haven/server-sdk/dist/index.js`).href);
  browser = await launchBrowser();
  await browser.context.addInitScript(recordPeerConnections);
});

const app = (): PortalApp => portal as PortalApp;

test('the portal creates the session’s room through the admin client', async () => {
  const created = await fetch(`${app().url}/api/sessions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ id: room, title: 'Portal group', waitingRoom: false }),
  });
  assert.is(created.status, 201);
  assert.equal(await created.json(), { room });
  const res = await admin(havenUrl, 'GET', `/v1/rooms/${room}`);
  assert.is(res.status, 200);
  assert.is(res.body.data.title, 'Portal group');
  // The same id again: Haven's coded refusal, passed through by the portal with its status.
  const again = await fetch(`${app().url}/api/sessions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ id: room, title: 'Portal group' }),
  });
  assert.is(again.status, 409);
  assert.type(((await again.json()) as { error: string }).error, 'string');
});

async function joinFromPortal(user: string, name: string, role: string): Promise<Page> {
  const page = await (browser as TestBrowser).context.newPage();
  page.on('pageerror', (err) => console.log(`    [${user}] page error: ${err.message}`));
  const query = new URLSearchParams({ room, user, name, role });
  await page.goto(`${app().url}/?${query}`);
  await page.waitForSelector('#status:not([data-state="joining"])', { timeout: 30_000 });
  assert.is(
    await page.getAttribute('#status', 'data-state'),
    'joined',
    (await page.textContent('#status')) ?? undefined,
  );
  return page;
}

test('a facilitator and a participant join from the portal’s page and decode each other’s media', async () => {
  const pages = await Promise.all([
    joinFromPortal('f-1', 'Dr. Lee', 'facilitator'),
    joinFromPortal('p-1', 'Sam', 'participant'),
  ]);
  for (const [i, page] of pages.entries()) {
    await receivingFrom(
      page,
      1,
      `${i ? 'the participant' : 'the facilitator'} to decode the other's video and receive their audio`,
    );
  }
  const live = await admin(havenUrl, 'GET', `/v1/rooms/${room}`);
  assert.is(live.body.data.live?.participants, 2);
});

test('the portal verified Haven’s session.started webhook', async () => {
  const line = await app().waitForOutput(/"webhook":"session\.started"/, 'session.started to be accepted', 20_000);
  assert.is(JSON.parse(line).room, room);
  const delivered = await waitFor(
    async () => {
      const page = await new sdk.HavenAdmin({ url: havenUrl, apiKey: testAdminKey }).webhookDeliveries({
        status: 'delivered',
      });
      return page.deliveries.find((d) => d.event.type === 'session.started' && d.event.room === room);
    },
    10_000,
    'the delivery to be recorded as delivered',
  );
  assert.is(delivered.lastStatus, 200);
});

test('the portal refuses a forged, an unsigned and a replayed webhook with 401', async () => {
  const body = JSON.stringify({ id: 'forged-1', type: 'session.ended', room, occurredAt: new Date().toISOString() });
  const now = Math.floor(Date.now() / 1000);
  const post = (headers: Record<string, string>) =>
    fetch(`${app().url}/webhooks/haven`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body,
    });
  const cases: [string, Record<string, string>, string][] = [
    [
      'forged',
      { 'haven-timestamp': String(now), 'haven-signature': sdk.signWebhook('not-the-secret', now, body) },
      'INVALID_SIGNATURE',
    ],
    ['unsigned', {}, 'MISSING_SIGNATURE'],
    [
      'replayed',
      { 'haven-timestamp': String(now - 3600), 'haven-signature': sdk.signWebhook(webhookSecret, now - 3600, body) },
      'STALE_TIMESTAMP',
    ],
  ];
  for (const [what, headers, code] of cases) {
    const res = await post(headers);
    assert.is(res.status, 401, what);
    assert.equal(await res.json(), { error: code }, what);
  }
  assert.not.ok(
    app().output.some((l) => l.includes('forged-1')),
    'nothing forged was accepted',
  );
  // Signed with the right secret, the same body is taken: the refusals above were the signatures'.
  const signed = await post({
    'haven-timestamp': String(now),
    'haven-signature': sdk.signWebhook(webhookSecret, now, body),
  });
  assert.is(signed.status, 200);
});

test('the installed admin client answers with typed data, and Haven’s errors as HavenApiError', async () => {
  const client = new sdk.HavenAdmin({ url: havenUrl, apiKey: testAdminKey });
  const got = await client.getRoom(room);
  assert.is(got.id, room);
  assert.ok((await client.listRooms({ limit: 100 })).rooms.some((r) => r.id === room));
  assert.ok((await client.readiness()).ready);
  const refusal = async (call: Promise<unknown>) => {
    try {
      await call;
    } catch (err) {
      return err as ServerSdk.HavenApiError;
    }
    throw new Error('the call succeeded');
  };
  const notFound = await refusal(client.getRoom('no-such-room'));
  assert.instance(notFound, sdk.HavenApiError);
  assert.equal([notFound.code, notFound.status], ['NOT_FOUND', 404]);
  const wrongKey = await refusal(new sdk.HavenAdmin({ url: havenUrl, apiKey: 'wrong-key' }).listRooms());
  assert.equal([wrongKey.code, wrongKey.status], ['UNAUTHORIZED', 401]);
  const badQuery = await refusal(client.webhookDeliveries({ limit: 0 }));
  assert.equal([badQuery.code, badQuery.status], ['INVALID_REQUEST', 400]);
});

test.run();
