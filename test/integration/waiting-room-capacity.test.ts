/**
 * The waiting room at a room's capacity: when admitting would go over it, the facilitator's answer
 * names who was left waiting and why, and the person left waiting is told the session is full
 * (two people arriving together at an individual session; a group with a small capacity).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { waitFor } from '../../bench/processes.ts';
import { sessionNode } from '../helpers/session-node.ts';
import { collect, joinAs, next, ok, request } from '../helpers/signaling-client.ts';

const { newRoom, client } = sessionNode(test, { roomPrefix: 'cap', room: { title: 'Session' } });

test('individual session, two people arriving together: admitAll says who was left waiting, and they are told it is full', async () => {
  const room = await newRoom({ kind: 'individual' });
  const facilitator = await client(room, 'clin-1', 'facilitator');
  await joinAs(facilitator);
  const first = await client(room, 'pt-a');
  const second = await client(room, 'pt-b');
  assert.is((await joinAs(first)).stage, 'waiting');
  assert.is((await joinAs(second)).stage, 'waiting');
  const firstIn = next(first, 'admitted');
  const secondTold = next(second, 'waiting');
  const answer = await ok(facilitator, 'admitAll', {});
  assert.equal(answer, {
    admitted: 1,
    admittedIds: ['pt-a'],
    leftWaiting: [{ participantId: 'pt-b', reason: 'ROOM_FULL' }],
  });
  await firstIn;
  assert.is((await secondTold)[0].reason, 'sessionFull');
  const list = await ok(facilitator, 'admitAll', {});
  assert.equal(list, { admitted: 0, admittedIds: [], leftWaiting: [{ participantId: 'pt-b', reason: 'ROOM_FULL' }] });
});

test('an explicit admit over capacity is ROOM_FULL for the facilitator and "full" for the person waiting', async () => {
  const room = await newRoom({ kind: 'individual' });
  const facilitator = await client(room, 'clin-2', 'facilitator');
  await joinAs(facilitator);
  const first = await client(room, 'pt-c');
  const second = await client(room, 'pt-d');
  await joinAs(first);
  await joinAs(second);
  const firstIn = next(first, 'admitted');
  // Admitting the first fills the session: the other person waiting learns it at once.
  const secondTold = next(second, 'waiting');
  await ok(facilitator, 'admit', { participantId: 'pt-c' });
  await firstIn;
  assert.is((await secondTold)[0].reason, 'sessionFull');
  const toldAgain = next(second, 'waiting');
  const res = await request(facilitator, 'admit', { participantId: 'pt-d' });
  assert.is(res.ok ? '' : res.error.code, 'ROOM_FULL');
  assert.is((await toldAgain)[0].reason, 'sessionFull');
});

test('a group at capacity: admitAll admits in arrival order up to it and names everyone left waiting', async () => {
  const room = await newRoom({ kind: 'group', capacity: 2 });
  const facilitator = await client(room, 'clin-3', 'facilitator');
  await joinAs(facilitator);
  const people = [];
  for (const sub of ['pt-1', 'pt-2', 'pt-3', 'pt-4']) {
    const socket = await client(room, sub);
    assert.is((await joinAs(socket)).stage, 'waiting');
    people.push(socket);
  }
  const told = people.slice(2).map((s) => collect(s, 'waiting'));
  const answer = await ok(facilitator, 'admitAll', {});
  assert.equal(answer, {
    admitted: 2,
    admittedIds: ['pt-1', 'pt-2'],
    leftWaiting: [
      { participantId: 'pt-3', reason: 'ROOM_FULL' },
      { participantId: 'pt-4', reason: 'ROOM_FULL' },
    ],
  });
  for (const [i, seen] of told.entries()) {
    await waitFor(() => seen.some(([info]) => info.reason === 'sessionFull'), 5_000, `pt-${i + 3} told it is full`);
  }
  // Nobody was left unexplained: the facilitator's waiting list still holds both.
  const left = await ok(facilitator, 'admitAll', {});
  assert.equal(
    left.leftWaiting.map((l) => l.participantId),
    ['pt-3', 'pt-4'],
  );
});

test.run();
