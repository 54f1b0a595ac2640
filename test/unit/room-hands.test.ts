/** Raised hands, over a fake media layer (test/helpers/fake-room.ts). */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { HavenError } from '../../server/errors.ts';
import { closeFakeRooms, fakeRoom } from '../helpers/fake-room.ts';

test.after.each(closeFakeRooms);

test('a raised hand is told to the facilitators and its owner only, in the queue’s order', async () => {
  const f = await fakeRoom();
  await f.join('f1', 'facilitator');
  const p1 = await f.join('p1', 'participant');
  const p2 = await f.join('p2', 'participant');
  f.room.hands.raise(p1);
  f.room.hands.raise(p2);
  f.room.hands.raise(p1);
  assert.equal(
    f.told.filter((t) => t.name === 'handRaised').map((t) => t.to),
    ['f1', 'p1', 'f1', 'p2'],
    'raising twice is told once',
  );
  assert.equal(
    f.room.hands.list().map((h) => h.participantId),
    ['p1', 'p2'],
  );
  assert.equal(
    f.room.hands.seenBy(p2).map((h) => h.participantId),
    ['p2'],
    'a participant sees their own hand only',
  );
});

test('one’s own hand is lowered unaudited; a facilitator lowers anyone’s, audited; a participant cannot', async () => {
  const f = await fakeRoom();
  const f1 = await f.join('f1', 'facilitator');
  const p1 = await f.join('p1', 'participant');
  const p2 = await f.join('p2', 'participant');
  f.room.hands.raise(p1);
  f.room.hands.raise(p2);
  await f.room.moderation.lowerHand(p1, 'p1');
  assert.equal(f.audited, []);
  const refused = await f.room.moderation.lowerHand(p1, 'p2').catch((err: HavenError) => err);
  assert.is((refused as HavenError).code, 'FORBIDDEN');
  await f.room.moderation.lowerHand(f1, 'p2');
  assert.equal(f.audited, [{ room: 'room-1', actor: 'f1', action: 'lowerHand', target: 'p2', result: 'ok' }]);
  assert.equal(f.room.hands.list(), []);
  const none = await f.room.moderation.lowerHand(f1, 'p2').catch((err: HavenError) => err);
  assert.is((none as HavenError).code, 'NOT_FOUND');
});

test('a hand goes down when its owner leaves the session', async () => {
  const f = await fakeRoom();
  await f.join('f1', 'facilitator');
  const p1 = await f.join('p1', 'participant');
  f.room.hands.raise(p1);
  f.room.leave('p1', 'left');
  assert.equal(f.room.hands.list(), []);
  assert.equal(
    f.told.filter((t) => t.name === 'handLowered').map((t) => t.to),
    ['f1'],
  );
});

test.run();
