/**
 * A clinic's production layout, end to end, from what it installs: the portal of the README's
 * embedding guide, installed from the two packed tarballs; a node in production mode behind nginx
 * (deploy/nginx/haven.conf) with TLS; coturn (deploy/coturn/turnserver.conf); Prometheus scraping
 * the node's separate metrics listener. The patient's browser runs in a network namespace that
 * reaches nginx, coturn and the portal on the host's veth address and nothing else: not the node's
 * media ports (127.0.0.1), so its media can only go through the relay. The facilitator's browser is
 * on the host. Both join from the portal's page over `https`/`wss` and decode each other.
 */
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import type { Page } from 'playwright-core';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { waitFor } from '../../bench/processes.ts';
import { launchBrowser, recordPeerConnections, type TestBrowser } from '../helpers/browser.ts';
import { type Coturn, startCoturn } from '../helpers/coturn.ts';
import { runAll } from '../helpers/hooks.ts';
import { createNetns, type Netns } from '../helpers/netns.ts';
import { type RunningNginx, startNginx } from '../helpers/nginx.ts';
import { receivingFrom, selectedCandidateTypes } from '../helpers/page-media.ts';
import { type PortalApp, packHavenPackages, startPortalApp } from '../helpers/portal-app.ts';
import { freePort } from '../helpers/ports.ts';
import { type Prometheus, startPrometheus } from '../helpers/prometheus.ts';
import { sessionNode } from '../helpers/session-node.ts';
import { testAdminKey, testSecret } from '../helpers/signaling-client.ts';

const turnSecret = `turn-secret-${process.pid}-0123456789abcdef`;
const webhookSecret = `webhook-secret-${process.pid}-0123456789`;
const room = `clinic-${process.pid}`;
let ns: Netns | undefined;
let turn: Coturn | undefined;
let nginx: RunningNginx | undefined;
let portal: PortalApp | undefined;
let prometheus: Prometheus | undefined;
let patientBrowser: TestBrowser | undefined;
let facilitatorBrowser: TestBrowser | undefined;
let metricsUrl = '';
const pages: Page[] = [];

// Registered before the node's hooks: the pages close and the services stop before the node does.
test.after(() =>
  runAll([
    () => patientBrowser?.close(),
    () => facilitatorBrowser?.close(),
    () => portal?.stop(),
    () => prometheus?.stop(),
    () => nginx?.stop(),
    () => turn?.stop(),
  ]),
);
const haven = sessionNode(test, { start: false });
test.after(() => ns?.remove());

test.before(async () => {
  ns = await createNetns();
  const [httpPort, metricsPort, portalPort, tarballs] = await Promise.all([
    freePort(),
    freePort(),
    freePort(),
    packHavenPackages(),
  ]);
  turn = await startCoturn({ listenAddress: ns.hostAddress, secret: turnSecret });
  nginx = await startNginx({ upstreamPort: httpPort, listenAddress: ns.hostAddress });
  const portalUrl = `http://${ns.hostAddress}:${portalPort}`;
  await haven.startNode({
    HAVEN_ENV: 'production',
    HAVEN_AUDIT_HMAC_KEY: `audit-key-${process.pid}-0123456789abcdef0123`,
    HAVEN_HTTP_PORT: String(httpPort),
    HAVEN_PUBLIC_URL: nginx.url,
    HAVEN_TRUSTED_PROXIES: '127.0.0.1',
    HAVEN_TURN_URLS: turn.urls.join(','),
    HAVEN_TURN_SECRET: turnSecret,
    HAVEN_METRICS_PORT: String(metricsPort),
    HAVEN_WEBHOOK_URLS: `${portalUrl}/webhooks/haven`,
    HAVEN_WEBHOOK_SECRET: webhookSecret,
  });
  metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
  prometheus = await startPrometheus({ targets: [`127.0.0.1:${metricsPort}`] });
  portal = await startPortalApp({
    tarballs,
    havenUrl: nginx.url,
    host: ns.hostAddress,
    // The portal's backend trusts the clinic's certificate: here, the test's own.
    env: {
      HAVEN_AUTH_SECRET: testSecret,
      HAVEN_ADMIN_API_KEY: testAdminKey,
      HAVEN_WEBHOOK_SECRET: webhookSecret,
      PORT: String(portalPort),
      NODE_EXTRA_CA_CERTS: nginx.certFile,
    },
  });
  // The portal is plain HTTP on the veth address here (a clinic's is HTTPS): let it use the devices.
  const options = { ignoreHTTPSErrors: true, secureOrigins: [portal.url] };
  patientBrowser = await launchBrowser({ ...options, netns: ns.name });
  facilitatorBrowser = await launchBrowser(options);
  for (const browser of [patientBrowser, facilitatorBrowser])
    await browser.context.addInitScript(recordPeerConnections);
});

async function joinFromPortal(browser: TestBrowser, user: string, name: string, role: string): Promise<Page> {
  const page = await browser.context.newPage();
  page.on('pageerror', (err) => console.log(`    [${user}] page error: ${err.message}`));
  await page.goto(`${portal?.url}/?${new URLSearchParams({ room, user, name, role })}`);
  await page.waitForSelector('#status:not([data-state="joining"])', { timeout: 30_000 });
  assert.is(await page.getAttribute('#status', 'data-state'), 'joined', (await page.textContent('#status')) ?? '');
  pages.push(page);
  return page;
}

test('the portal creates the session’s room through nginx, with the admin client over TLS', async () => {
  const res = await fetch(`${portal?.url}/api/sessions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ id: room, title: 'Evening group', waitingRoom: false }),
  });
  assert.is(res.status, 201, await res.clone().text());
  assert.equal(await res.json(), { room });
});

test('a patient who can reach only nginx and coturn joins from the portal; media goes through the relay, both ways', async () => {
  const [patient, facilitator] = await Promise.all([
    joinFromPortal(patientBrowser as TestBrowser, 'p-1', 'Sam', 'participant'),
    joinFromPortal(facilitatorBrowser as TestBrowser, 'f-1', 'Dr. Lee', 'facilitator'),
  ]);
  await receivingFrom(patient, 1, 'the patient to decode the facilitator', 30_000);
  await receivingFrom(facilitator, 1, 'the facilitator to decode the patient', 30_000);
  const pairs = await waitFor(
    async () => {
      const found = await selectedCandidateTypes(patient);
      return found.length === 2 ? found : undefined;
    },
    10_000,
    'both of the patient’s transports to have a selected pair',
  );
  for (const pair of pairs) assert.is(pair.local, 'relay', JSON.stringify(pairs));
});

test('Prometheus scrapes the session from the node’s metrics listener; nginx does not serve /metrics', async () => {
  const scraper = prometheus as Prometheus;
  await scraper.scraped('haven_participants{job="haven",stage="admitted"}', (v) => v === 2);
  await scraper.scraped('haven_signaling_requests_total{job="haven",event="join",code="ok"}', (v) => v >= 2);
  await scraper.scraped('haven_join_first_media_seconds_count{job="haven"}', (v) => v >= 2);
  assert.is((await fetch(metricsUrl)).status, 200);
  const proxied = await new Promise<number>((resolve, reject) => {
    // nginx's certificate is the test's: trusted for this request only.
    request(`${nginx?.url}/metrics`, { ca: readFileSync((nginx as RunningNginx).certFile) }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    })
      .on('error', reject)
      .end();
  });
  assert.is(proxied, 404);
});

test('the portal verified Haven’s signed session.started webhook', async () => {
  const line = await (portal as PortalApp).waitForOutput(/"webhook":"session\.started"/, 'session.started', 20_000);
  assert.is(JSON.parse(line).room, room);
});

test.run();
