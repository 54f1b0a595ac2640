/**
 * The SDK's `iceTransportPolicy`: checked like every option, and given, with the node's TURN
 * credentials, to the peer connection of each media transport (send and receive). Against a node
 * in this process, with WebRTC from `@roamhq/wrtc`; no TURN server is needed to see what the
 * transports are configured with.
 */
import { rmSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { waitFor } from '../../bench/processes.ts';
import { SessionClient, type SessionClientOptions } from '../../client-sdk/src/index.ts';
import type { HavenNode } from '../../server/node.ts';
import { startInProcessNode } from '../helpers/in-process-node.ts';
import { admin, testAdminKey, testSecret, token } from '../helpers/signaling-client.ts';
import { createNodeSessionClient, installWrtcGlobals, type NodeSession } from '../helpers/wrtc-session.ts';

let node: HavenNode;
let dataDir: string;
const sessions: NodeSession[] = [];
const room = `ice-policy-${process.pid}`;
const turnUrl = 'turn:127.0.0.1:3478?transport=udp';

/** Every peer connection made in this process, with the configuration it was made with. */
const made: { pc: RTCPeerConnection; config: RTCConfiguration; seen: RTCPeerConnection }[] = [];
/** Connections whose ICE is reported failed. */
const failing = new WeakSet<RTCPeerConnection>();

test.before(async () => {
  installWrtcGlobals();
  const Original = globalThis.RTCPeerConnection;
  globalThis.RTCPeerConnection = class extends Original {
    constructor(config: RTCConfiguration = {}) {
      super(config);
      // wrtc's connectionState is an own, non-configurable getter: a proxy can report a failure.
      const seen = new Proxy(this, {
        get: (target, key) => {
          if (key === 'connectionState' && failing.has(target)) return 'failed';
          const value = Reflect.get(target, key, target);
          return typeof value === 'function' ? value.bind(target) : value;
        },
      });
      made.push({ pc: this, config, seen });
      // biome-ignore lint/correctness/noConstructorReturn: the proxy stands for the connection
      return seen;
    }
  } as typeof RTCPeerConnection;
  ({ node, dataDir } = await startInProcessNode('ice-policy', {
    HAVEN_AUTH_SECRET: testSecret,
    HAVEN_ADMIN_API_KEY: testAdminKey,
    HAVEN_TURN_URLS: turnUrl,
    HAVEN_TURN_SECRET: 'turn-secret-0123456789abcdef',
  }));
  for (const id of [room, `${room}-default`, `${room}-restart`]) {
    const res = await admin(node.url, 'POST', '/v1/rooms', { id, title: 'ICE policy', waitingRoom: false });
    assert.is(res.status, 201, JSON.stringify(res.body));
  }
});

test.after(async () => {
  for (const session of sessions) await session.close();
  await node?.stop();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

test('iceTransportPolicy is all or relay; anything else is a TypeError naming it', () => {
  const url = 'http://127.0.0.1:1';
  for (const bad of ['none', 'RELAY', 42, null]) {
    assert.throws(
      () => new SessionClient({ url, token: 't', iceTransportPolicy: bad } as unknown as SessionClientOptions),
      (e: unknown) => e instanceof TypeError && /iceTransportPolicy/.test(e.message),
      String(bad),
    );
  }
  new SessionClient({ url, token: 't', iceTransportPolicy: 'relay' });
  new SessionClient({ url, token: 't', iceTransportPolicy: 'all' });
});

/** Joins `roomId` as `sub` with `options` and publishes a tone. */
async function joinAndPublish(roomId: string, sub: string, options: Partial<SessionClientOptions>): Promise<void> {
  const session = createNodeSessionClient(node.url, token(roomId, sub), { reconnect: false, ...options });
  sessions.push(session);
  await session.client.connect();
  await session.client.join();
  await session.client.publishMicrophone(session.audioTrack());
}

/** The open peer connections made since `from` (mediasoup-client's capability probes are closed at once). */
const openSince = (from: number) => made.slice(from).filter(({ pc }) => pc.signalingState !== 'closed');

test('relay-only clients make both transports relay-only, with the node’s TURN server', async () => {
  const from = made.length;
  // Two of them, each publishing: each has a send and a receive transport.
  await joinAndPublish(room, 'relay-a', { iceTransportPolicy: 'relay' });
  await joinAndPublish(room, 'relay-b', { iceTransportPolicy: 'relay' });
  const transports = await waitFor(
    () => (openSince(from).length === 4 ? openSince(from) : undefined),
    10_000,
    'four transports',
  );
  for (const { config } of transports) {
    assert.is(config.iceTransportPolicy, 'relay');
    const [server] = config.iceServers ?? [];
    assert.equal(server?.urls, [turnUrl]);
    assert.match(String(server?.username), /^\d+:/, 'coturn REST API username: expiry, then the participant’s tag');
  }
});

/** The expiry (Unix seconds) of the TURN username a peer connection is configured with now. */
function turnExpiry(pc: RTCPeerConnection): number {
  const [server] = pc.getConfiguration().iceServers ?? [];
  return Number(String(server?.username).split(':')[0]);
}

test('an ICE restart brings the transport TURN credentials issued at that moment', async () => {
  const from = made.length;
  await joinAndPublish(`${room}-restart`, 'restarting', {});
  const [send] = await waitFor(
    () => (openSince(from).length === 1 ? openSince(from) : undefined),
    10_000,
    'the send transport',
  );
  const pc = (send as { pc: RTCPeerConnection }).pc;
  const issued = turnExpiry(pc);
  assert.ok(issued >= Math.floor(Date.now() / 1000) + 3600 - 5, `expiry ${issued}: the default one-hour lifetime`);
  // Credentials issued from the next second on expire later than these.
  await waitFor(() => Math.floor(Date.now() / 1000) + 3600 > issued, 5_000, 'the clock to pass a second');
  // ICE failing, as mediasoup-client's handler sees it (a real failure takes libwebrtc ~30 s).
  failing.add(pc);
  pc.dispatchEvent(new Event('connectionstatechange'));
  const renewed = await waitFor(
    () => (turnExpiry(pc) > issued ? turnExpiry(pc) : undefined),
    10_000,
    'the restarted transport to get new credentials',
  );
  assert.ok(renewed > issued);
  failing.delete(pc);
});

test('by default the transports may use every candidate', async () => {
  const from = made.length;
  await joinAndPublish(`${room}-default`, 'default', {});
  const [send] = await waitFor(
    () => (openSince(from).length === 1 ? openSince(from) : undefined),
    10_000,
    'the send transport',
  );
  assert.is(send?.config.iceTransportPolicy, 'all');
});

test.run();
