/**
 * Three node processes sharing one Redis on loopback: rooms spread over them, a client reaching
 * the wrong node ends up on the right one, admin calls work from any node, a killed node's rooms
 * come back on the others with their clients and media, a frozen node cannot serve a room it
 * lost, and a Redis restart is survived without restarting the nodes.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { NodeProcess } from '../../bench/node-process.ts';
import { waitFor } from '../../bench/processes.ts';
import { protocolVersion } from '../../client-sdk/src/protocol/index.ts';
import { sessionNode } from '../helpers/session-node.ts';
import { admin, connect, next, ok, request, type TestSocket, token } from '../helpers/signaling-client.ts';
import { createNodeSessionClient, type NodeSession, type Reception, receiveFrom } from '../helpers/wrtc-session.ts';

const nodeTimeoutS = 5; // the default
const haven = sessionNode(test, {
  redis: true,
  start: false,
  env: { HAVEN_CLUSTER_NODE_TIMEOUT_S: String(nodeTimeoutS) },
});
const redis = haven.redisClient(); // reconnects after the Redis restart below
const { redis: embedded, sockets } = haven;
const nodes = new Map<string, NodeProcess>();
const sessions: NodeSession[] = [];
haven.atEnd(async () => {
  for (const s of sessions) await s.close();
});

async function startNode(id: string): Promise<NodeProcess> {
  const node = await haven.startNode({ HAVEN_NODE_ID: id });
  nodes.set(id, node);
  return node;
}

test.before(async () => {
  for (const id of ['n1', 'n2', 'n3']) await startNode(id);
});

const urlOf = (id: string) => (nodes.get(id) as NodeProcess).url;
const idOfUrl = (url: string) => [...nodes].find(([, n]) => n.url === url)?.[0];
const ownerOf = async (room: string) => (await redis.get(`haven:room-owner:${room}`))?.split('|')[0];

/** Connects through `url`, following redirects as the SDK does; says where it landed. */
async function connectVia(
  url: string,
  accessToken: string,
  avoid?: string,
): Promise<{ socket: TestSocket; landed: string }> {
  let target = url;
  for (let hop = 0; hop < 3; hop++) {
    try {
      const socket = await connect(target, accessToken);
      sockets.push(socket);
      return { socket, landed: target };
    } catch (err) {
      const data = (err as { data?: { code?: string; url?: string } }).data;
      if (data?.code !== 'REDIRECT' || !data.url || data.url === avoid) throw err;
      target = data.url;
    }
  }
  throw new Error('redirected too many times');
}

async function newRoom(id: string, via = urlOf('n1')): Promise<string> {
  const res = await admin(via, 'POST', '/v1/rooms', { id, title: 'Group', waitingRoom: false });
  assert.is(res.status, 201);
  return id;
}

test('the nodes register and see each other', async () => {
  await waitFor(async () => (await redis.smembers('haven:nodes')).length === 3, 5_000, 'three nodes registered');
  for (const [id, node] of nodes) {
    const info = JSON.parse((await redis.get(`haven:node:${id}`)) as string);
    assert.is(info.url, node.url);
    assert.is(info.draining, false);
  }
});

test('first joins spread rooms over the nodes, each served by exactly one', async () => {
  const landed: string[] = [];
  for (let i = 0; i < 6; i++) {
    const room = await newRoom(`spread-${i}`);
    const { socket, landed: url } = await connectVia(urlOf('n1'), token(room, `fac-${i}`, 'facilitator'));
    await ok(socket, 'join', { protocolVersion });
    assert.is(await ownerOf(room), idOfUrl(url), 'the lease names the node it landed on');
    landed.push(idOfUrl(url) as string);
  }
  const perNode = [...nodes.keys()].map((id) => landed.filter((l) => l === id).length);
  assert.equal(perNode, [2, 2, 2], 'the least-loaded node each time');
});

test('a connection to a node that does not serve the room is redirected to the one that does', async () => {
  const room = 'spread-0';
  const owner = (await ownerOf(room)) as string;
  const other = [...nodes.keys()].find((id) => id !== owner) as string;
  const refused = await connect(urlOf(other), token(room, 'pt-r')).then(
    () => undefined,
    (err) => (err as { data?: { code: string; url: string } }).data,
  );
  assert.equal(refused, {
    code: 'REDIRECT',
    message: 'the room is served by another node',
    url: urlOf(owner),
  });
  const facilitator = sockets[0] as TestSocket;
  const joinedSeen = next(facilitator, 'participantJoined');
  const { socket, landed } = await connectVia(urlOf(other), token(room, 'pt-r'));
  assert.is(landed, urlOf(owner));
  await ok(socket, 'join', { protocolVersion });
  assert.is((await joinedSeen)[0].id, 'pt-r', 'in the same room as the facilitator');
});

test('admin calls about a live room work from any node', async () => {
  const room = 'spread-1';
  const owner = (await ownerOf(room)) as string;
  const other = [...nodes.keys()].find((id) => id !== owner) as string;
  const live = await admin(urlOf(other), 'GET', `/v1/rooms/${room}`);
  assert.equal(
    live.body.data.live,
    {
      participants: 1,
      stages: { consent: 0, waiting: 0, admitted: 1 },
      routers: 1,
      node: { id: owner, url: urlOf(owner) },
    },
    'the live figures of the serving node, which it names',
  );
  const facilitator = sockets[1] as TestSocket;
  const ended = next(facilitator, 'sessionEnded');
  const res = await admin(urlOf(other), 'POST', `/v1/rooms/${room}/end`);
  assert.is(res.status, 200);
  assert.is((await ended)[0].reason, 'ended by the clinic');
});

test('kill -9 of the node serving a session: its clients are back with media within 10 s', async () => {
  const room = await newRoom('failover');
  // Place the room, then give the SDK clients another node as their entry (a load balancer's job).
  const { socket: placer, landed } = await connectVia(urlOf('n1'), token(room, 'placer', 'observer'));
  placer.close();
  const owner = idOfUrl(landed) as string;
  const entry = [...nodes.keys()].find((id) => id !== owner) as string;
  const people: { session: NodeSession; rx: Reception }[] = [];
  for (const [sub, role, other] of [
    ['fac-f', 'facilitator', 'pt-f'],
    ['pt-f', 'participant', 'fac-f'],
  ] as const) {
    const session = createNodeSessionClient(urlOf(entry), token(room, sub, role));
    sessions.push(session);
    people.push({ session, rx: receiveFrom(session, other) });
    await session.client.connect();
    await session.client.join();
    await session.client.publishMicrophone(session.audioTrack());
    await session.client.publishCamera(session.videoTrack());
  }
  const flowing = async (what: string) => {
    const before = people.map(({ rx }) => [rx.frames(), rx.audible()]);
    await waitFor(
      () =>
        people.every(
          ({ rx }, i) => rx.frames() > (before[i]?.[0] ?? 0) + 5 && rx.audible() > (before[i]?.[1] ?? 0) + 4_800,
        ),
      15_000,
      what,
    );
  };
  await flowing('media both ways before the failure');
  const leftSeen: string[] = [];
  for (const { session } of people) session.client.on('participantLeft', (p) => leftSeen.push(p.id));

  const killedAt = Date.now();
  (nodes.get(owner) as NodeProcess).kill();
  nodes.delete(owner);
  await waitFor(
    () => people.every(({ session }) => session.client.connectionState === 'reconnecting'),
    10_000,
    'the drop',
  );
  await waitFor(
    () => people.every(({ session }) => session.client.connectionState === 'joined'),
    20_000,
    'back in the room',
  );
  await flowing('media both ways after the failover');
  const backAfterMs = Date.now() - killedAt;
  console.log(`    back in the session with media ${backAfterMs} ms after the kill`);
  assert.ok(backAfterMs < 10_000, `within 10 s (took ${backAfterMs} ms)`);
  const newOwner = (await ownerOf(room)) as string;
  assert.ok(newOwner && newOwner !== owner, 'another node serves the room');
  assert.equal(leftSeen, [], 'nobody saw anyone leave');
  // Attendance: one session, the gap a reconnection.
  const events = (await redis.xrange(`haven:attendance:${room}`, '-', '+')).map(([, f]) => f[f.indexOf('type') + 1]);
  assert.is(events.filter((t) => t === 'sessionStarted').length, 1, 'one session, not two');
  assert.ok(events.includes('reconnected'), 'the gap recorded as a reconnection');
});

test('a node frozen past its lease cannot serve the room when it wakes (fencing)', async () => {
  const room = await newRoom('frozen', urlOf([...nodes.keys()][0] as string));
  const { socket: facilitator, landed } = await connectVia(
    urlOf([...nodes.keys()][0] as string),
    token(room, 'fac-z', 'facilitator'),
  );
  await ok(facilitator, 'join', { protocolVersion });
  const frozenId = idOfUrl(landed) as string;
  const frozen = nodes.get(frozenId) as NodeProcess;
  const fenceBefore = Number((await redis.get(`haven:room-owner:${room}`))?.split('|')[1]);
  process.kill(frozen.child.pid as number, 'SIGSTOP');
  try {
    // The lease runs out; a newcomer through another node gets the room placed elsewhere.
    const live = [...nodes.keys()].find((id) => id !== frozenId) as string;
    // Until then the live nodes send it to the frozen one (REDIRECT) or say it is moving (UNAVAILABLE).
    const newcomer = await waitFor(
      () =>
        connectVia(urlOf(live), token(room, 'pt-z'), frozen.url).catch((err) => {
          const data = (err as { data?: { code?: string; url?: string } }).data;
          if (data?.code === 'UNAVAILABLE') return undefined;
          if (data?.code === 'REDIRECT' && data.url === frozen.url) return undefined;
          throw err;
        }),
      (nodeTimeoutS + 5) * 1000,
      'the room placed on a live node',
    );
    await ok(newcomer.socket, 'join', { protocolVersion });
    assert.is.not(idOfUrl(newcomer.landed), frozenId);
    const [owner, fence] = ((await redis.get(`haven:room-owner:${room}`)) as string).split('|');
    assert.is.not(owner, frozenId);
    assert.ok(Number(fence) > fenceBefore, 'a newer fencing token');
  } finally {
    process.kill(frozen.child.pid as number, 'SIGCONT');
  }
  // Awake: the old node refuses to act for the room and sends its client to the new one.
  const moved = next(facilitator, 'moved', 5_000);
  const answer = await request(facilitator, 'raiseHand', {}).then(
    (a) => (a.ok ? 'served' : a.error.code),
    () => 'closed before answering',
  );
  assert.ok(['UNAVAILABLE', 'closed before answering'].includes(answer), `not served (${answer})`);
  assert.is((await moved)[0].reason, 'failover');
  await waitFor(() => facilitator.disconnected, 2_000, 'the old node to close the connection');
});

test('SIGTERM drains a node: its clients are moved to another node, then it exits 0', async () => {
  const ids = [...nodes.keys()];
  const room = await newRoom('drained', urlOf(ids[0] as string));
  const { socket, landed } = await connectVia(urlOf(ids[0] as string), token(room, 'fac-d', 'facilitator'));
  await ok(socket, 'join', { protocolVersion });
  const drainedId = idOfUrl(landed) as string;
  const drained = nodes.get(drainedId) as NodeProcess;
  const moved = next(socket, 'moved', 10_000);
  const exited = new Promise<number | null>((resolve) => drained.child.once('exit', (code) => resolve(code)));
  drained.child.kill('SIGTERM');
  assert.is((await moved)[0].reason, 'draining');
  assert.is(await exited, 0);
  nodes.delete(drainedId);
  drained.kill();
  assert.is(await redis.exists(`haven:node:${drainedId}`), 0, 'it left the registry');
  // Coming back through a live node: the room is placed there, at once (the lease was given up).
  const survivor = [...nodes.keys()][0] as string;
  const again = await connectVia(urlOf(survivor), token(room, 'fac-d', 'facilitator'));
  await ok(again.socket, 'join', { protocolVersion });
  assert.is.not(await ownerOf(room), drainedId);
  // Two nodes left: start one again, for the next test.
  await startNode(drainedId);
});

test('Redis restarted: the nodes recover without a restart', async () => {
  const pid = embedded.pid as number;
  process.kill(pid, 'SIGKILL');
  await waitFor(() => embedded.pid !== undefined && embedded.pid !== pid, 10_000, 'Redis back');
  for (const node of nodes.values()) {
    await waitFor(async () => (await fetch(`${node.url}/readyz`)).status === 200, 15_000, 'every node ready again');
  }
  await waitFor(
    async () => (await redis.smembers('haven:nodes').catch(() => [])).length === nodes.size,
    10_000,
    'heartbeats again',
  );
  const room = await newRoom('after-restart', urlOf([...nodes.keys()][0] as string));
  const { socket } = await connectVia(urlOf([...nodes.keys()][0] as string), token(room, 'fac-after', 'facilitator'));
  await ok(socket, 'join', { protocolVersion });
});

test.run();
