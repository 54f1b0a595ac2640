/**
 * The SDK against a real node process that dies: it keeps trying until the grace the server
 * announced has passed since the drop, then closes with `GRACE_EXPIRED`; a node back within the
 * grace gets everyone back in their place; a token function that fails is a coded
 * `TOKEN_UNAVAILABLE`, on connect and while reconnecting. And `moderation.endSession()` resolves
 * once the session has ended.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { NodeProcess } from '../../bench/node-process.ts';
import { waitFor } from '../../bench/processes.ts';
import type { CloseReason, ConnectionState } from '../../client-sdk/src/index.ts';
import { HavenRequestError } from '../../client-sdk/src/index.ts';
import { sessionNode } from '../helpers/session-node.ts';
import { token } from '../helpers/signaling-client.ts';
import { createNodeSessionClient, type NodeSession } from '../helpers/wrtc-session.ts';

const haven = sessionNode(test, {
  redis: true,
  start: false, // the tests start their own nodes
  env: { HAVEN_CLUSTER_NODE_TIMEOUT_S: '1' },
  roomPrefix: 'sdkrc',
  room: { kind: 'group', title: 'Group', waitingRoom: false },
});
const sessions: NodeSession[] = [];
haven.atEnd(async () => {
  for (const session of sessions) await session.close();
});

const startNode = (graceS: number, env: Record<string, string> = {}): Promise<NodeProcess> =>
  haven.startNode({ HAVEN_ROOMS_RECONNECT_GRACE_S: String(graceS), ...env });

const newRoom = (node: NodeProcess): Promise<string> => haven.newRoom({}, node.url);

/** A client whose states and close are recorded with the client's own clock. */
function watched(url: string, accessToken: Parameters<typeof createNodeSessionClient>[1]) {
  const session = createNodeSessionClient(url, accessToken, { reconnect: { baseDelayMs: 100, maxDelayMs: 1_000 } });
  sessions.push(session);
  const record = {
    session,
    states: [] as ConnectionState[],
    droppedAt: 0,
    closed: undefined as { reason: CloseReason; error: Error | undefined; at: number } | undefined,
  };
  session.client.on('connectionStateChanged', (state) => {
    record.states.push(state);
    if (state === 'reconnecting' && record.droppedAt === 0) record.droppedAt = Date.now();
  });
  session.client.on('closed', (reason, error) => {
    record.closed = { reason, error, at: Date.now() };
  });
  return record;
}

test('node refusing connections: the SDK tries until the announced grace has passed since the drop, then GRACE_EXPIRED', async () => {
  const graceS = 4;
  const node = await startNode(graceS);
  const room = await newRoom(node);
  const accessToken = token(room, 'pt-grace', 'participant');
  let attemptsAfterDrop = 0;
  const watch = watched(node.url, async () => {
    if (watch.droppedAt > 0) attemptsAfterDrop++;
    return accessToken;
  });
  await watch.session.client.connect();
  await watch.session.client.join();
  // The drop as early as it can be: the client cannot see it before the node is killed.
  const droppedAt = Date.now();
  node.kill(); // SIGKILL, nothing restarted: every attempt is refused.
  const closed = await waitFor(() => watch.closed, 30_000, 'the client to close');
  const afterDrop = closed.at - droppedAt;
  console.log(`    closed ${afterDrop} ms after the drop (grace ${graceS * 1000} ms), ${attemptsAfterDrop} attempts`);
  assert.is(closed.reason, 'reconnectFailed');
  assert.instance(closed.error, HavenRequestError);
  const error = closed.error as HavenRequestError;
  assert.is(error.code, 'GRACE_EXPIRED');
  assert.ok(afterDrop >= graceS * 1000, `closed ${afterDrop} ms after the drop, before the ${graceS} s grace`);
  // Within a retry step of the end of the grace (maxDelayMs 1 s), with slack for a loaded machine.
  assert.ok(afterDrop < graceS * 1000 + 5_000, `closed ${afterDrop} ms after the drop`);
  assert.ok(attemptsAfterDrop >= 2, `${attemptsAfterDrop} attempts`);
  assert.instance(error.cause, HavenRequestError);
  assert.is((error.cause as HavenRequestError).code, 'DISCONNECTED', 'the last attempt was refused');
  assert.equal(watch.states.slice(-2), ['reconnecting', 'closed']);
});

test('node back within the grace: the client is back in the same place', async () => {
  const graceS = 15;
  const first = await startNode(graceS);
  const room = await newRoom(first);
  const facilitator = watched(first.url, token(room, 'fac-back', 'facilitator'));
  await facilitator.session.client.connect();
  await facilitator.session.client.join();
  const participant = watched(first.url, token(room, 'pt-back'));
  await participant.session.client.connect();
  await participant.session.client.join();
  const left: string[] = [];
  facilitator.session.client.on('participantLeft', (p) => left.push(p.id));
  const port = new URL(first.url).port;
  first.kill();
  await waitFor(() => participant.droppedAt && facilitator.droppedAt, 10_000, 'both to see the drop');
  await startNode(graceS, { HAVEN_HTTP_PORT: port });
  for (const { session } of [facilitator, participant]) {
    await waitFor(() => session.client.connectionState === 'joined', 20_000, 'the rejoin');
  }
  assert.is(participant.closed, undefined);
  assert.ok(facilitator.session.client.participants.has('pt-back'), 'the facilitator sees the participant again');
  assert.equal(left, [], 'nobody left');
  assert.equal(participant.states.slice(-2), ['reconnecting', 'joined']);
});

test('a token function that fails: TOKEN_UNAVAILABLE on connect, and while reconnecting until the grace', async () => {
  const graceS = 3;
  const node = await startNode(graceS);
  const room = await newRoom(node);
  const accessToken = token(room, 'pt-token');
  let failing = true;
  const fetchToken = async () => {
    if (failing) throw new TypeError('Failed to fetch');
    return accessToken;
  };
  const watch = watched(node.url, fetchToken);
  const refused = await watch.session.client.connect().then(
    () => undefined,
    (error: unknown) => error,
  );
  assert.instance(refused, HavenRequestError);
  assert.is((refused as HavenRequestError).code, 'TOKEN_UNAVAILABLE');
  assert.match((refused as HavenRequestError).message, /Failed to fetch/);
  assert.is(watch.session.client.connectionState, 'disconnected', 'connect() may be tried again');
  failing = false;
  await watch.session.client.connect();
  await watch.session.client.join();
  // The backend that mints tokens goes away, and so does the connection (the node is still up).
  failing = true;
  const droppedAt = Date.now();
  node.kill();
  const closed = await waitFor(() => watch.closed, 30_000, 'the client to close');
  assert.ok(closed.at - droppedAt >= graceS * 1000, 'kept trying until the grace had passed');
  assert.is((closed.error as HavenRequestError).code, 'GRACE_EXPIRED');
  assert.is(((closed.error as HavenRequestError).cause as HavenRequestError).code, 'TOKEN_UNAVAILABLE');
});

test('moderation.endSession() resolves once the session has ended; everyone gets sessionEnded', async () => {
  const node = await startNode(10);
  const room = await newRoom(node);
  const facilitator = watched(node.url, token(room, 'fac-end', 'facilitator'));
  const participant = watched(node.url, token(room, 'pt-end'));
  const ended: string[] = [];
  for (const [who, record] of [
    ['facilitator', facilitator],
    ['participant', participant],
  ] as const) {
    record.session.client.on('sessionEnded', () => ended.push(who));
    await record.session.client.connect();
    await record.session.client.join();
  }
  await facilitator.session.client.moderation.endSession();
  await waitFor(() => participant.closed, 10_000, 'the participant to close');
  assert.is(facilitator.closed?.reason, 'sessionEnded');
  assert.is(participant.closed?.reason, 'sessionEnded');
  assert.equal(ended.sort(), ['facilitator', 'participant']);
  assert.is(facilitator.session.client.connectionState, 'closed');
  node.kill();
});

test.run();
