/**
 * A browser session through the TURN relay, end to end: coturn started from
 * deploy/coturn/turnserver.conf, a real node handing out its credentials, and two Chromium pages
 * in one room. One page runs in a network namespace that reaches the node's HTTP port and coturn
 * (on the host's veth address) but not the node's media ports (127.0.0.1, which inside the
 * namespace is its own loopback): its media can only go through the relay, and does, both ways.
 * The other page, on the host, could reach the media ports but is told to use the relay only
 * (`iceTransportPolicy: 'relay'`). Given only TURN over TCP (UDP blocked), the namespace's page
 * relays over TCP; given only TURN over TLS, over TLS. Without TURN configured, the relay-only policy leaves a page without a single
 * candidate: its media never connects.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { NodeProcess } from '../../bench/node-process.ts';
import { waitFor } from '../../bench/processes.ts';
import { type BrowserOptions, launchBrowser, recordPeerConnections, type TestBrowser } from '../helpers/browser.ts';
import { makeCertificate } from '../helpers/certificate.ts';
import { type Coturn, startCoturn } from '../helpers/coturn.ts';
import { runAll } from '../helpers/hooks.ts';
import { createNetns, type Netns } from '../helpers/netns.ts';
import { inboundTracks, receivingFrom, selectedCandidateTypes } from '../helpers/page-media.ts';
import { sessionNode } from '../helpers/session-node.ts';
import { token } from '../helpers/signaling-client.ts';

const turnSecret = `turn-secret-${process.pid}-0123456789abcdef`;
let ns: Netns;
let turn: Coturn;
let node: NodeProcess;
let inside: TestBrowser;
let outside: TestBrowser;
const room = `e2e-turn-${process.pid}`;

// Registered first: the pages close before the node stops (none is left reconnecting), the
// namespace goes last.
test.before(async () => {
  ns = await createNetns();
  turn = await startCoturn({ listenAddress: ns.hostAddress, secret: turnSecret });
  node = await haven.startNode({
    HAVEN_HTTP_HOST: ns.hostAddress,
    HAVEN_TURN_URLS: turn.urls.join(','),
    HAVEN_TURN_SECRET: turnSecret,
  });
  // Plain HTTP on the veth address is no secure context: the node's origin may use the devices.
  inside = await launchBrowser({ netns: ns.name, secureOrigins: [node.url] });
  outside = await launchBrowser({ secureOrigins: [node.url] });
  for (const browser of [inside, outside]) await browser.context.addInitScript(recordPeerConnections);
  await haven.newRoom({ id: room, title: 'Relayed group', waitingRoom: false }, node.url);
});
test.after(() =>
  runAll([() => inside?.close(), () => outside?.close(), () => turn?.stop(), () => node?.kill(), () => ns?.remove()]),
);
const haven = sessionNode(test, { start: false });

/** A page of `browser` on the node's demo origin, where the SDK bundle is served. */
async function openPage(browser: TestBrowser, url: string, name: string): Promise<Page> {
  const page = await browser.context.newPage();
  page.on('pageerror', (err) => console.log(`    [${name}] page error: ${err.message}`));
  await page.goto(`${url}/demo`);
  return page;
}

/** Joins `roomId` as `sub` with a SessionClient in `page`, publishing the fake camera and microphone. */
async function joinIn(page: Page, roomId: string, sub: string, policy: 'all' | 'relay'): Promise<Page> {
  await page.evaluate(
    async ({ accessToken, iceTransportPolicy }) => {
      const sdk = '/demo/haven-sdk.js';
      const { SessionClient } = await import(sdk);
      const client = new SessionClient({
        url: location.origin,
        token: accessToken,
        reconnect: false,
        iceTransportPolicy,
      });
      await client.connect();
      await client.join();
      await client.publishMicrophone();
      await client.publishCamera();
    },
    { accessToken: token(roomId, sub), iceTransportPolicy: policy },
  );
  return page;
}

/** A new page of `browser` joined to `roomId` at `url`. */
async function joinPage(
  browser: TestBrowser,
  url: string,
  roomId: string,
  sub: string,
  policy: 'all' | 'relay',
): Promise<Page> {
  return joinIn(await openPage(browser, url, sub), roomId, sub, policy);
}

/** coturn's log lines about sessions (`verbose`). */
const turnLog = (server: Coturn) =>
  server
    .output()
    .split('\n')
    .filter((line) => line.includes(': session '));

/** Which of the page's open peer connections send and which receive, and their connection states. */
function transports(page: Page): Promise<{ sends: boolean; state: string }[]> {
  return page.evaluate(() =>
    (window as unknown as { peerConnections: RTCPeerConnection[] }).peerConnections
      .filter((pc) => pc.signalingState !== 'closed')
      .map((pc) => ({
        sends: pc.getTransceivers().some((t) => t.direction === 'sendonly'),
        state: pc.connectionState,
      })),
  );
}

/** Waits until the page's send and receive transports are both connected through the relay. */
async function relayedBothWays(page: Page, what: string): Promise<void> {
  await waitFor(
    async () => {
      const open = await transports(page);
      if (open.length !== 2 || !open.some((t) => t.sends) || open.some((t) => t.state !== 'connected')) return false;
      return (await selectedCandidateTypes(page)).length === 2;
    },
    20_000,
    `${what}: send and receive transports connected`,
  );
  assert.equal(
    (await selectedCandidateTypes(page)).map((pair) => pair.local),
    ['relay', 'relay'],
    `${what}: both selected pairs start at a relay candidate`,
  );
}

/** Waits until every audio and decoded video stream the page receives has grown past `before`. */
async function stillFlowing(page: Page, what: string): Promise<void> {
  const before = await receivingFrom(page, 1, `${what} to receive the other page`);
  await waitFor(
    async () => {
      const after = await inboundTracks(page);
      return before
        .filter((t) => t.kind === 'audio' || t.frames > 0)
        .every((t) => {
          const later = after.find((a) => a.ssrc === t.ssrc);
          return !!later && later.bytes > t.bytes && (t.kind === 'audio' || later.frames > t.frames);
        });
    },
    15_000,
    `${what}: audio and video to keep flowing`,
  );
}

test('a page that cannot reach the media ports connects through coturn; media flows both ways', async () => {
  const started = Date.now();
  const inner = await joinPage(inside, node.url, room, 'in-netns', 'all');
  const outer = await joinPage(outside, node.url, room, 'on-host', 'relay');
  await relayedBothWays(inner, 'the page in the namespace');
  const relayedMs = Date.now() - started;
  await relayedBothWays(outer, 'the page told to use the relay only');
  await stillFlowing(inner, 'the page in the namespace');
  await stillFlowing(outer, 'the page on the host');
  console.log(`    joined and connected through the relay, both transports, in ${relayedMs} ms`);
  assert.not.ok(turn.output().includes(turnSecret), 'the secret is not in coturn’s log');
});

/**
 * Joins a page in the namespace to a node given only `turnUrls`, and resolves with the protocols
 * (`udp`, `tcp`, `tls`) its connected send transport's relay candidates reach coturn over.
 */
async function relayedOnlyThrough(turnUrls: string[], what: string, browserOptions: BrowserOptions = {}) {
  const onlyNode = await haven.startNode({
    HAVEN_HTTP_HOST: ns.hostAddress,
    HAVEN_TURN_URLS: turnUrls.join(','),
    HAVEN_TURN_SECRET: turnSecret,
  });
  const onlyRoom = `${room}-${what}`;
  await haven.newRoom({ id: onlyRoom, title: `Relay over ${what}`, waitingRoom: false }, onlyNode.url);
  const browser = await launchBrowser({ ...browserOptions, netns: ns.name, secureOrigins: [onlyNode.url] });
  try {
    await browser.context.addInitScript(recordPeerConnections);
    const page = await joinPage(browser, onlyNode.url, onlyRoom, `${what}-only`, 'all');
    await waitFor(
      async () => (await selectedCandidateTypes(page)).length === 1,
      20_000,
      'the send transport to connect',
    );
    assert.equal(
      (await selectedCandidateTypes(page)).map((pair) => pair.local),
      ['relay'],
    );
    return await page.evaluate(async () => {
      const protocols: string[] = [];
      for (const pc of (window as unknown as { peerConnections: RTCPeerConnection[] }).peerConnections) {
        (await pc.getStats()).forEach((s) => {
          if (s.type === 'local-candidate' && s.candidateType === 'relay') protocols.push(s.relayProtocol);
        });
      }
      return protocols;
    });
  } finally {
    await browser.close();
    onlyNode.kill();
  }
}

test('only TURN over TCP given (networks that block UDP): the page connects through it', async () => {
  const tcpOnly = turn.urls.filter((url) => url.endsWith('?transport=tcp'));
  assert.is(tcpOnly.length, 1);
  const relays = await relayedOnlyThrough(tcpOnly, 'tcp');
  assert.ok(relays.length > 0 && relays.every((protocol) => protocol === 'tcp'), `relays over ${relays.join(', ')}`);
});

test('only TURN over TLS given (networks that let out HTTPS only): the page connects through it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'haven-turns-'));
  const tlsTurn = await startCoturn({
    listenAddress: ns.hostAddress,
    secret: turnSecret,
    tls: makeCertificate(dir, ns.hostAddress, 'turn.localhost'),
  });
  try {
    const tlsOnly = tlsTurn.urls.filter((url) => url.startsWith('turns:'));
    assert.is(tlsOnly.length, 1);
    // The certificate is the test's own: Chromium checks a turns: server's as a web site's.
    const relays = await relayedOnlyThrough(tlsOnly, 'tls', { ignoreHTTPSErrors: true });
    assert.ok(relays.length > 0 && relays.every((protocol) => protocol === 'tls'), `relays over ${relays.join(', ')}`);
  } finally {
    await tlsTurn.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a relayed session outlives its TURN credentials', async () => {
  const ttlS = 3;
  // Short allocation lifetimes and nonces, so that refreshes (every lifetime/2) and new nonces
  // come within seconds; `verbose` logs each refresh.
  // coturn prefixes its lines with seconds since it started: from before it started, a line's
  // time is never later than it really was.
  const turnStartedS = Date.now() / 1000;
  const shortTurn = await startCoturn({
    listenAddress: ns.hostAddress,
    secret: turnSecret,
    extraConfig: ['verbose', 'max-allocate-lifetime=10', 'stale-nonce=4'],
  });
  const ttlNode = await haven.startNode({
    HAVEN_HTTP_HOST: ns.hostAddress,
    HAVEN_TURN_URLS: shortTurn.urls.filter((url) => url.endsWith('?transport=udp')).join(','),
    HAVEN_TURN_SECRET: turnSecret,
    HAVEN_TURN_TTL_S: String(ttlS),
  });
  const ttlRoom = `${room}-ttl`;
  await haven.newRoom({ id: ttlRoom, title: 'Long session', waitingRoom: false }, ttlNode.url);
  const browser = await launchBrowser({ netns: ns.name, secureOrigins: [ttlNode.url] });
  try {
    await browser.context.addInitScript(recordPeerConnections);
    const page = await openPage(browser, ttlNode.url, 'ttl');
    await joinIn(page, ttlRoom, 'ttl-a', 'all');
    await joinIn(page, ttlRoom, 'ttl-b', 'all');
    await receivingFrom(page, 2, 'each client in the namespace to receive the other');
    // The usernames say `<expiry>:<tag>` (`floor(now) + ttl` when minted). A refresh counts once it
    // came after its own username expired, whenever the page got here (a slow machine may get
    // here after the first refreshes).
    const afterExpiry = (line: string) => {
      const refresh = /^(\d+): .*user <(\d+):[\w-]+>: incoming packet REFRESH processed, success/.exec(line);
      return refresh !== null && turnStartedS + Number(refresh[1]) > Number(refresh[2]);
    };
    // Each refresh after the expiry meets a stale nonce first (4 s < 5 s): coturn asks again, and
    // the client answers with the same, expired, credentials.
    const log = await waitFor(
      () => {
        const lines = turnLog(shortTurn);
        return lines.filter(afterExpiry).length >= 4 ? lines : undefined;
      },
      30_000,
      'four allocation refreshes after the credentials expired',
    );
    assert.ok(
      log.some((line) => /438: Stale nonce/.test(line)),
      'new nonces were handed out meanwhile',
    );
    assert.not.ok(
      log.some((line) => /error 401/.test(line) && !/user <>/.test(line)),
      'no authenticated request was refused',
    );
    await stillFlowing(page, 'the clients after their credentials expired');
    // Usernames are in coturn's log (and in clear on the wire): a tag, never the participant id.
    const text = turnLog(shortTurn).join('\n');
    assert.match(text, /user <\d+:[\w-]{22}>/);
    assert.not.ok(/ttl-a|ttl-b/.test(text), 'no participant id in coturn’s log');
  } finally {
    await browser.close();
    await shortTurn.stop();
    ttlNode.kill();
  }
});

test('relay only, and no TURN configured: the transports gather no candidate and never connect', async () => {
  const bare = await haven.startNode({ HAVEN_HTTP_HOST: ns.hostAddress });
  const controlRoom = `${room}-no-turn`;
  await haven.newRoom({ id: controlRoom, title: 'No relay', waitingRoom: false }, bare.url);
  const browser = await launchBrowser({ secureOrigins: [bare.url] });
  try {
    await browser.context.addInitScript(recordPeerConnections);
    const page = await joinPage(browser, bare.url, controlRoom, 'relay-only', 'relay');
    // Gathering ends at once (there is nothing to gather); then the state is final.
    const gathered = await waitFor(
      () =>
        page.evaluate(async () => {
          const open = (window as unknown as { peerConnections: RTCPeerConnection[] }).peerConnections.filter(
            (pc) => pc.connectionState !== 'closed',
          );
          if (open.length === 0 || open.some((pc) => pc.iceGatheringState !== 'complete')) return undefined;
          let candidates = 0;
          for (const pc of open) {
            (await pc.getStats()).forEach((s) => {
              if (s.type === 'local-candidate') candidates++;
            });
          }
          return { candidates, states: open.map((pc) => pc.connectionState) };
        }),
      15_000,
      'ICE gathering to complete',
    );
    assert.is(gathered.candidates, 0, 'no local candidate: nothing to connect with');
    assert.not.ok(gathered.states.includes('connected'), `states: ${gathered.states.join(', ')}`);
  } finally {
    await browser.close();
    bare.kill();
  }
});

test.run();
