/**
 * Breakouts across the death of the node running them: node A runs a timed round and is killed
 * (SIGKILL); node B, on the same Redis, takes the session back when its people reconnect. Every
 * group is restored (who is in which, its name, the help request, the round's end), each person
 * sees their group again, and the timer runs on from the stored end.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { NodeProcess } from '../../bench/node-process.ts';
import { waitFor } from '../../bench/processes.ts';
import { sessionNode } from '../helpers/session-node.ts';
import {
  admin,
  admitted,
  codeOf,
  connect,
  connectWhenServed,
  joinAs,
  next,
  ok,
  type TestSocket,
  token,
} from '../helpers/signaling-client.ts';

const haven = sessionNode(test, { redis: true, start: false });
const redis = haven.redisClient();
const graceS = 15;

const startNode = (): Promise<NodeProcess> => haven.startNode({ HAVEN_ROOMS_RECONNECT_GRACE_S: String(graceS) });

test('kill -9 of the node running breakouts: another node restores every group', async () => {
  const room = `bo-failover-${process.pid}`;
  const a = await startNode();
  const created = await admin(a.url, 'POST', '/v1/rooms', { id: room, title: 'Skills group', waitingRoom: false });
  assert.is(created.status, 201, JSON.stringify(created.body));
  const tokens = new Map<string, string>();
  const tokenOf = (sub: string) => {
    const role = sub === 'f1' ? 'facilitator' : 'participant';
    if (!tokens.has(sub)) tokens.set(sub, token(room, sub, role));
    return tokens.get(sub) as string;
  };
  const everyone = ['f1', 'p1', 'p2', 'p3', 'p4'];
  const onA = new Map<string, TestSocket>();
  for (const sub of everyone) {
    const socket = await connect(a.url, tokenOf(sub));
    haven.sockets.push(socket);
    admitted(await joinAs(socket));
    onA.set(sub, socket);
  }
  const f = onA.get('f1') as TestSocket;
  await ok(f, 'createBreakouts', {
    groups: [
      { name: 'Pairs', members: ['p1', 'p2'] },
      { name: 'Threes', members: ['p3', 'p4'] },
    ],
  });
  const before = await ok(f, 'startBreakouts', { durationS: 3_600 });
  await ok(f, 'visitBreakout', { breakoutId: 'b2' });
  await ok(onA.get('p1') as TestSocket, 'askForHelp', {});

  // What a kill -9 may lose is the last instant's writes: wait until the state is in Redis.
  const key = (k: string) => `haven:room-state:${room}:${k}`;
  await waitFor(
    async () => {
      const stored = await redis.get(key('breakouts'));
      const f1 = await redis.hget(key('members'), 'f1');
      return stored?.includes('"help":[{') && f1?.includes('"bo":"b2"');
    },
    5_000,
    'the breakouts in Redis',
  );
  a.kill();
  for (const socket of onA.values()) socket.close();

  const b = await startNode();
  const onB = new Map<string, TestSocket>();
  const sessions = new Map<string, ReturnType<typeof admitted>>();
  for (const sub of everyone) {
    const socket = await connectWhenServed(b.url, tokenOf(sub));
    haven.sockets.push(socket);
    sessions.set(sub, admitted(await joinAs(socket)));
    onB.set(sub, socket);
  }
  const seen = (sub: string) =>
    sessions
      .get(sub)
      ?.participants.map((p) => p.id)
      .sort();
  const placeOf = (sub: string) => sessions.get(sub)?.breakout.group?.id ?? null;
  assert.equal(everyone.map(placeOf), ['b2', 'b1', 'b1', 'b2', 'b2'], 'each back in their group');
  // Those who rejoined first saw the others come back as they did: the latest joiner sees them all.
  assert.equal(seen('p4'), ['f1', 'p3']);
  assert.equal(sessions.get('p1')?.breakout, {
    running: true,
    group: { id: 'b1', name: 'Pairs' },
    endsAt: before.endsAt,
  });

  assert.is(
    await codeOf(onB.get('f1') as TestSocket, 'createBreakouts', { count: 2 }),
    'INVALID_STATE',
    'still running',
  );
  const restored = sessions.get('f1')?.breakouts;
  assert.ok(restored);
  assert.is(restored.status, 'running');
  assert.is(restored.endsAt, before.endsAt, 'the timer runs on from the stored end');
  assert.equal(
    restored.groups.map((g) => [g.id, g.name]),
    [
      ['b1', 'Pairs'],
      ['b2', 'Threes'],
    ],
  );
  assert.equal(
    restored.help.map((h) => [h.breakoutId, h.participantId]),
    [['b1', 'p1']],
  );

  // The round goes on here: a recall brings everyone back.
  const ended = next(onB.get('p1') as TestSocket, 'breakoutEnded');
  await ok(onB.get('f1') as TestSocket, 'recallBreakouts', {});
  await ended;
});

test.run();
