/**
 * TLS in front of a node, with the nginx site configuration Haven ships (deploy/nginx/haven.conf):
 * the admin API and the health checks answer over HTTPS, plain HTTP is redirected, TLS below 1.2
 * is refused, `/metrics` is not reachable through it, and two Chromium pages loaded over HTTPS
 * join one room through `wss` and receive each other's media. Then the trusted-proxy rules,
 * through the same real nginx: clients from distinct loopback addresses are counted each under
 * its own address whatever X-Forwarded-For they send, a direct client's header gains it nothing,
 * and without trusted proxies everyone behind nginx counts as nginx.
 */
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { connect as tlsConnect } from 'node:tls';
import type { Page } from 'playwright-core';
import { io, type Socket } from 'socket.io-client';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { NodeProcess } from '../../bench/node-process.ts';
import { waitFor } from '../../bench/processes.ts';
import { socketPath } from '../../client-sdk/src/protocol/index.ts';
import { launchBrowser, recordPeerConnections, type TestBrowser } from '../helpers/browser.ts';
import { lateBound, runAll } from '../helpers/hooks.ts';
import { type RunningNginx, startNginx } from '../helpers/nginx.ts';
import { sessionNode } from '../helpers/session-node.ts';
import { testAdminKey } from '../helpers/signaling-client.ts';

const metricsToken = 'metrics-token-for-the-tls-test-0123';
const browserSlot = lateBound<TestBrowser>('the browser');
const browser = browserSlot.handle;
const nginxSlot = lateBound<RunningNginx>('nginx');
/** nginx in front of the file's first node. */
const nginx = nginxSlot.handle;
const proxies: RunningNginx[] = [];
const sockets: Socket[] = [];

// Registered before the node's own hooks: pages and sockets close, and nginx stops, before the nodes do.
test.after(() =>
  runAll([
    ...sockets.map((s) => () => s.close()),
    () => browserSlot.get()?.close(),
    ...proxies.map((p) => () => p.stop()),
  ]),
);

// The demo signs its own tokens (a random secret per start, as in development); nginx on 127.0.0.1 is trusted.
const haven = sessionNode(test, {
  env: {
    HAVEN_AUTH_SECRET: undefined,
    HAVEN_TRUSTED_PROXIES: '127.0.0.1',
    HAVEN_METRICS_TOKEN: metricsToken,
    HAVEN_LOG_LEVEL: 'info',
  },
});
const room = `tls-${process.pid}`;

const portOf = (node: NodeProcess) => Number(new URL(node.url).port);

async function proxyFor(node: NodeProcess): Promise<RunningNginx> {
  const proxy = await startNginx({ upstreamPort: portOf(node) });
  proxies.push(proxy);
  return proxy;
}

test.before(async () => {
  nginxSlot.set(await proxyFor(haven.node));
  browserSlot.set(await launchBrowser({ ignoreHTTPSErrors: true }));
  await browser.context.addInitScript(recordPeerConnections);
});

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  // biome-ignore lint/suspicious/noExplicitAny: tests read whatever JSON the API answers.
  body: any;
}

/** An HTTPS request through `proxy`, trusting its certificate only; the body parsed when it is JSON. */
function https(
  proxy: RunningNginx,
  method: string,
  path: string,
  options: { body?: unknown; headers?: Record<string, string> } = {},
): Promise<Answer> {
  const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
  const headers = { ...(payload ? { 'content-type': 'application/json' } : {}), ...options.headers };
  return new Promise((resolve, reject) => {
    const req = request(`${proxy.url}${path}`, { method, headers, ca: readFileSync(proxy.certFile) }, (res) => {
      let text = '';
      res.on('data', (chunk) => {
        text += String(chunk);
      });
      res.on('end', () => {
        const json = String(res.headers['content-type']).startsWith('application/json');
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: json ? JSON.parse(text) : text });
      });
    });
    req.on('error', reject);
    req.end(payload);
  });
}

const asAdmin = { authorization: `Bearer ${testAdminKey}` };

test('the admin API answers through HTTPS with the bearer key, and only with it', async () => {
  const created = await https(nginx, 'POST', '/v1/rooms', {
    headers: asAdmin,
    body: { id: room, title: 'TLS group', waitingRoom: false },
  });
  assert.is(created.status, 201, JSON.stringify(created.body));
  const read = await https(nginx, 'GET', `/v1/rooms/${room}`, { headers: asAdmin });
  assert.is(read.status, 200);
  assert.is(read.body.data.id, room);
  assert.is(read.headers['strict-transport-security'], 'max-age=63072000');
  const anonymous = await https(nginx, 'GET', `/v1/rooms/${room}`);
  assert.is(anonymous.status, 401);
  assert.is(anonymous.body.error.code, 'UNAUTHORIZED');
});

test('health and readiness answer through HTTPS; /metrics does not, though the node serves it', async () => {
  assert.is((await https(nginx, 'GET', '/healthz')).status, 200);
  const ready = await https(nginx, 'GET', '/readyz');
  assert.is(ready.status, 200);
  assert.is(ready.body.ready, true, JSON.stringify(ready.body));
  const direct = await fetch(`${haven.node.url}/metrics`, { headers: { authorization: `Bearer ${metricsToken}` } });
  assert.is(direct.status, 200, 'the node itself serves its metrics');
  await direct.text();
  for (const path of ['/metrics', '/metrics/', '/%6Detrics', '//metrics?x=1']) {
    const res = await https(nginx, 'GET', path, { headers: { authorization: `Bearer ${metricsToken}` } });
    assert.is(res.status, 404, path);
    assert.not.ok(String(res.body).includes('haven_'), `${path}: no metric leaked`);
  }
});

test('plain HTTP is redirected to HTTPS, path and query kept', async () => {
  const res = await fetch(`${nginx.httpUrl}/v1/rooms/${room}?x=1`, { redirect: 'manual' });
  assert.is(res.status, 301);
  assert.is(res.headers.get('location'), `${nginx.url}/v1/rooms/${room}?x=1`);
  await res.text();
});

/** The TLS version a handshake limited to `min`–`max` gets, or the error nginx answers with. */
function handshake(min: 'TLSv1.1' | 'TLSv1.2', max: 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3'): Promise<string> {
  const { hostname, port } = new URL(nginx.url);
  return new Promise((resolve) => {
    const socket = tlsConnect({
      host: hostname,
      port: Number(port),
      ca: readFileSync(nginx.certFile),
      minVersion: min,
      maxVersion: max,
      // Our side would refuse TLS 1.1 itself at OpenSSL's default security level: only nginx may refuse here.
      ciphers: 'DEFAULT@SECLEVEL=0',
      ALPNProtocols: ['h2', 'http/1.1'],
    });
    socket.once('secureConnect', () => {
      resolve(`${socket.getProtocol()} ${socket.getCipher().name} ${socket.alpnProtocol}`);
      socket.end();
    });
    socket.once('error', (err) => resolve(`refused: ${/alert [a-z ]+/.exec(err.message)?.[0] ?? err.message}`));
  });
}

test('TLS 1.3 and 1.2 (forward-secret AEAD) are spoken, with HTTP/2; 1.1 is refused', async () => {
  const outcomes = [
    await handshake('TLSv1.2', 'TLSv1.3'),
    await handshake('TLSv1.2', 'TLSv1.2'),
    await handshake('TLSv1.1', 'TLSv1.1'),
  ];
  console.log(`    TLS: ${outcomes.join('; ')}`);
  assert.match(outcomes[0] as string, /^TLSv1\.3 \S+ h2$/);
  assert.match(outcomes[1] as string, /^TLSv1\.2 ECDHE-ECDSA-(AES(128|256)-GCM|CHACHA20-POLY1305)\S* h2$/);
  assert.match(outcomes[2] as string, /^refused: .*(protocol version|alert)/i);
});

/** The video frames decoded and the audio bytes received, per inbound stream, of the page's peer connections. */
function received(page: Page): Promise<{ video: number[]; audio: number[] }> {
  return page.evaluate(async () => {
    const out = { video: [] as number[], audio: [] as number[] };
    for (const pc of (window as unknown as { peerConnections: RTCPeerConnection[] }).peerConnections) {
      const stats = await pc.getStats();
      for (const s of stats.values()) {
        // mediasoup's bandwidth probe (ssrc 1234) carries no media.
        if (s.type !== 'inbound-rtp' || s.ssrc === 1234) continue;
        if (s.kind === 'video') out.video.push(s.framesDecoded ?? 0);
        else out.audio.push(s.bytesReceived ?? 0);
      }
    }
    return out;
  });
}

const total = (values: number[]) => values.reduce((a, b) => a + b, 0);

async function joinPage(name: string, role: string): Promise<{ page: Page; sockets: string[] }> {
  const page = await browser.context.newPage();
  const opened: string[] = [];
  page.on('websocket', (ws) => opened.push(ws.url()));
  page.on('pageerror', (err) => console.log(`    [${name}] page error: ${err.message}`));
  await page.goto(`${nginx.url}/demo?room=${room}&name=${name}&role=${role}&auto=1`);
  assert.is(new URL(page.url()).protocol, 'https:');
  await page.waitForFunction(
    () =>
      (window as unknown as { havenDemo: { timings: { joinedMs?: number } } }).havenDemo.timings.joinedMs !== undefined,
    undefined,
    { timeout: 20_000 },
  );
  return { page, sockets: opened };
}

test('two pages loaded over HTTPS join through wss and receive each other’s audio and video', async () => {
  const ana = await joinPage('Ana', 'facilitator');
  const ben = await joinPage('Ben', 'participant');
  const { host } = new URL(nginx.url);
  for (const { sockets: urls } of [ana, ben]) {
    assert.ok(
      urls.some((url) => url.startsWith(`wss://${host}${socketPath}/`)),
      `signaling through nginx over wss: ${urls.join(', ')}`,
    );
  }
  for (const [name, { page }] of [
    ['Ana', ana],
    ['Ben', ben],
  ] as const) {
    const first = await waitFor(
      async () => {
        const now = await received(page);
        return total(now.video) > 0 && total(now.audio) > 0 ? now : undefined;
      },
      20_000,
      `${name} to decode video and receive audio`,
    );
    // Still flowing: more frames decoded, more audio received, however slow a loaded machine is.
    await waitFor(
      async () => {
        const now = await received(page);
        return total(now.video) > total(first.video) && total(now.audio) > total(first.audio);
      },
      15_000,
      `${name}'s media to keep flowing`,
    );
  }
  await ana.page.close();
  await ben.page.close();
});

/** A development token for `roomId` from the node's demo, through `proxy`. */
async function demoToken(proxy: RunningNginx, roomId: string): Promise<string> {
  const res = await https(proxy, 'POST', '/demo/token', { body: { room: roomId, role: 'participant', name: 'P' } });
  assert.is(res.status, 200, JSON.stringify(res.body));
  return res.body.data.token;
}

type Outcome = { socket: Socket } | { refused: string };

/** A socket.io connection to `url` from `localAddress`, sending `forwardedFor` as X-Forwarded-For. */
function connectFrom(
  url: string,
  accessToken: string,
  localAddress: string,
  forwardedFor: string,
  ca?: Buffer,
): Promise<Outcome> {
  const socket = io(url, {
    path: socketPath,
    auth: { token: accessToken },
    transports: ['websocket'],
    reconnection: false,
    forceNew: true,
    localAddress,
    extraHeaders: { 'x-forwarded-for': forwardedFor },
    ...(ca ? { ca } : {}),
  } as Parameters<typeof io>[1]);
  sockets.push(socket);
  return new Promise((resolve) => {
    socket.once('connect', () => resolve({ socket }));
    socket.once('connect_error', (err: Error & { data?: { code?: string } }) => {
      socket.close();
      resolve({ refused: err.data?.code ?? err.message });
    });
  });
}

/** The socket of a connection that must succeed. */
function connected(outcome: Outcome, what: string): Socket {
  assert.ok('socket' in outcome, `${what}: ${'refused' in outcome ? outcome.refused : ''}`);
  return (outcome as { socket: Socket }).socket;
}

/** The node's first "cap reached" log line, once it has come through the node's output. */
function capLogged(node: NodeProcess): Promise<Record<string, unknown>> {
  return waitFor(
    () => node.logs.find((l) => l.msg === 'signaling connections refused: per-address cap reached'),
    10_000,
    'the cap to be logged',
  );
}

/** A node with a cap of 2 connections per address, nginx in front, and a room to connect to. */
async function cappedNode(env: Record<string, string | undefined>) {
  const node = await haven.startNode({ HAVEN_SIGNALING_MAX_CONNECTIONS_PER_ADDRESS: '2', ...env });
  const proxy = await proxyFor(node);
  const roomId = await haven.newRoom({ title: 'Capped group', waitingRoom: false }, node.url);
  const ca = readFileSync(proxy.certFile);
  const through = async (from: string, spoofed: string) =>
    connectFrom(proxy.url, await demoToken(proxy, roomId), from, spoofed, ca);
  const direct = async (from: string, spoofed: string) =>
    connectFrom(node.url, await demoToken(proxy, roomId), from, spoofed);
  return { node, through, direct };
}

test('behind a trusted nginx, each client is counted under its own address, whatever it claims', async () => {
  const { node, through, direct } = await cappedNode({ HAVEN_TRUSTED_PROXIES: '127.0.0.1' });
  // 127.0.0.2 claims to be 127.0.0.3, then a fresh address each time: it still has 2 places.
  const two = [
    connected(await through('127.0.0.2', '127.0.0.3'), 'first from .2'),
    connected(await through('127.0.0.2', '127.0.0.3, 127.0.0.1'), 'second from .2'),
  ];
  assert.equal(await through('127.0.0.2', '203.0.113.9'), { refused: 'TOO_MANY_CONNECTIONS' });
  assert.equal(await through('127.0.0.2', '198.51.100.1, 127.0.0.1'), { refused: 'TOO_MANY_CONNECTIONS' });
  // The address .2 named is unaffected: 127.0.0.3 has its own 2 places (while claiming to be .2).
  const three = [
    connected(await through('127.0.0.3', '127.0.0.2'), 'first from .3'),
    connected(await through('127.0.0.3', '127.0.0.2'), 'second from .3'),
  ];
  assert.equal(await through('127.0.0.3', '127.0.0.4'), { refused: 'TOO_MANY_CONNECTIONS' });
  // Directly, not through nginx: the header is ignored, the peer 127.0.0.4 is counted.
  const four = [
    connected(await direct('127.0.0.4', '198.51.100.1'), 'first direct from .4'),
    connected(await direct('127.0.0.4', '198.51.100.2'), 'second direct from .4'),
  ];
  assert.equal(await direct('127.0.0.4', '198.51.100.3'), { refused: 'TOO_MANY_CONNECTIONS' });
  for (const socket of [...two, ...three, ...four]) assert.ok(socket.connected, 'the admitted stay connected');
  // A place given back is free again.
  two[0]?.close();
  await waitFor(async () => 'socket' in (await through('127.0.0.2', '127.0.0.3')), 10_000, 'a place for .2 again');
  // The node's log comes through a pipe: wait for the line rather than race it.
  await capLogged(node);
  assert.not.match(node.output(), /127\.0\.0\.[234]|198\.51\.100|203\.0\.113/, 'no client address is logged');
});

test('without trusted proxies, every client behind nginx counts as nginx', async () => {
  const { node, through, direct } = await cappedNode({ HAVEN_TRUSTED_PROXIES: undefined });
  const admitted = [
    connected(await through('127.0.0.2', '127.0.0.2'), 'first through nginx'),
    connected(await through('127.0.0.3', '127.0.0.3'), 'second through nginx'),
  ];
  assert.equal(await through('127.0.0.5', '127.0.0.5'), { refused: 'TOO_MANY_CONNECTIONS' });
  // A client reaching the node directly is counted under its own address.
  connected(await direct('127.0.0.6', '127.0.0.1'), 'direct from .6');
  for (const socket of admitted) assert.ok(socket.connected, 'the admitted stay connected');
  // The log tells the operator what is wrong: a peer that forwards but is not trusted.
  const refusal = await capLogged(node);
  assert.match(String(refusal.hint), /X-Forwarded-For from a peer not in HAVEN_TRUSTED_PROXIES/);
});

test.run();
