/**
 * A notification meant for someone whose join the room has just answered, before the signaling
 * layer subscribed their connection to its channel, must still reach them (a track published,
 * a hand raised, the room locked in that window was lost: neither in the join answer nor told).
 * The node runs in this process so that the test can act at exactly that moment: the room's
 * `join` is wrapped to raise a participant's hand right after it answers the facilitator.
 */
import { rmSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { HavenNode } from '../../server/node.ts';
import type { Room } from '../../server/rooms/room.ts';
import { startInProcessNode } from '../helpers/in-process-node.ts';
import { admin, connect, ok, type TestSocket, testAdminKey, testSecret, token } from '../helpers/signaling-client.ts';

let node: HavenNode;
let dataDir: string;
const sockets: TestSocket[] = [];

test.before(async () => {
  ({ node, dataDir } = await startInProcessNode('join-window', {
    HAVEN_AUTH_SECRET: testSecret,
    HAVEN_ADMIN_API_KEY: testAdminKey,
  }));
});

test.after(async () => {
  for (const s of sockets) s.close();
  await node?.stop();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

test('a hand raised just after a facilitator’s join is answered reaches that facilitator', async () => {
  const room = `jw-${process.pid}`;
  const res = await admin(node.url, 'POST', '/v1/rooms', {
    id: room,
    kind: 'group',
    title: 'Group',
    waitingRoom: false,
  });
  assert.is(res.status, 201);
  const participant = await connect(node.url, token(room, 'p1', 'participant'));
  sockets.push(participant);
  await ok(participant, 'join', { protocolVersion: 1 });

  const target = node.rooms.get(room) as Room;
  const realJoin = target.join.bind(target);
  target.join = async (identity, connectionId) => {
    const answer = await realJoin(identity, connectionId);
    if (identity.participantId === 'f1') target.hands.raise(target.caller('p1', participant.id as string, 'session'));
    return answer;
  };

  const facilitator = await connect(node.url, token(room, 'f1', 'facilitator'));
  sockets.push(facilitator);
  const told: string[] = [];
  facilitator.on('handRaised', () => told.push('raised'));
  const lowered = new Promise<void>((resolve) => facilitator.on('handLowered', () => resolve()));
  const answer = await ok(facilitator, 'join', { protocolVersion: 1 });
  const inAnswer = answer.stage === 'admitted' && answer.session.hands.some((h) => h.participantId === 'p1');
  assert.is(inAnswer, false, 'raised after the answer was made');
  // Notifications arrive in order: once the lowering is told, the raising was told before it, or lost.
  await ok(participant, 'lowerHand', {});
  await lowered;
  assert.equal(told, ['raised'], 'the facilitator was told of the hand raised just after its join was answered');
});

test.run();
