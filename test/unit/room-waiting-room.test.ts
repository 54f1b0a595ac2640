/** The consent gate and the waiting room, over a fake media layer (test/helpers/fake-room.ts). */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { HavenError } from '../../server/errors.ts';
import { closeFakeRooms, fakeRoom, identity } from '../helpers/fake-room.ts';

test.after.each(closeFakeRooms);

const consent = { version: 2, hash: 'h2', text: 'What happens here stays here.' };

test('with a waiting room, a participant waits and the facilitators see the list change', async () => {
  const f = await fakeRoom({ waitingRoom: true });
  await f.join('f1', 'facilitator');
  const p1 = await f.join('p1', 'participant');
  assert.is(p1.stage, 'waiting');
  const changed = f.told.filter((t) => t.to === 'f1' && t.name === 'waitingRoomChanged').at(-1);
  assert.equal(changed?.args, [
    { waiting: [{ participantId: 'p1', name: 'Name of p1', waitingSince: p1.waitingSince }] },
  ]);
  assert.not.ok(f.namesFor('p1').includes('participantJoined'), 'someone waiting sees nothing of the session');
});

test('admitting tells the person, with their session, and everyone in it', async () => {
  const f = await fakeRoom({ waitingRoom: true });
  const f1 = await f.join('f1', 'facilitator');
  await f.join('p1', 'participant');
  await f.room.moderation.admit(f1, 'p1');
  assert.is(f.room.stageOf('p1'), 'admitted');
  assert.ok(f.namesFor('p1').includes('admitted'));
  assert.ok(f.namesFor('f1').includes('participantJoined'));
  assert.equal(f.audited.at(-1), { room: 'room-1', actor: 'f1', action: 'admit', target: 'p1', result: 'ok' });
});

test('admit all stops at the capacity; who is left is named and told the session is full', async () => {
  const f = await fakeRoom({ waitingRoom: true, capacity: 2 });
  const f1 = await f.join('f1', 'facilitator');
  for (const id of ['p1', 'p2', 'p3']) await f.join(id, 'participant');
  const answer = await f.room.moderation.admitAll(f1);
  assert.equal(answer, {
    admitted: 2,
    admittedIds: ['p1', 'p2'],
    leftWaiting: [{ participantId: 'p3', reason: 'ROOM_FULL' }],
  });
  const full = f.told.find((t) => t.to === 'p3' && t.name === 'waiting');
  assert.equal(full?.args, [{ facilitatorPresent: true, message: undefined, reason: 'sessionFull' }]);
  const refused = await f.room.moderation.admit(f1, 'p3').catch((err: HavenError) => err);
  assert.is((refused as HavenError).code, 'ROOM_FULL');
  assert.is(f.audited.at(-1)?.result, 'ROOM_FULL', 'a refusal is audited with its code');
});

test('denying tells the person why, takes them out and closes their connection', async () => {
  const f = await fakeRoom({ waitingRoom: true });
  const f1 = await f.join('f1', 'facilitator');
  await f.join('p1', 'participant');
  await f.room.moderation.deny(f1, 'p1', 'not today');
  assert.is(f.room.has('p1'), false);
  assert.equal(f.told.find((t) => t.to === 'p1' && t.name === 'denied')?.args, [{ reason: 'not today' }]);
  assert.equal(f.evicted, ['p1']);
  assert.equal(f.told.filter((t) => t.to === 'f1' && t.name === 'waitingRoomChanged').at(-1)?.args, [{ waiting: [] }]);
});

test('the waiting room’s message and a facilitator’s arrival reach those waiting', async () => {
  const f = await fakeRoom({ waitingRoom: true });
  await f.join('p1', 'participant');
  const f1 = await f.join('f1', 'facilitator');
  assert.equal(f.told.filter((t) => t.to === 'p1' && t.name === 'waiting').at(-1)?.args, [
    { facilitatorPresent: true, message: undefined },
  ]);
  await f.room.moderation.messageWaitingRoom(f1, 'Five minutes');
  assert.equal(f.told.filter((t) => t.to === 'p1' && t.name === 'waiting').at(-1)?.args, [
    { facilitatorPresent: true, message: 'Five minutes' },
  ]);
});

test('the consent gate: the version in force only, then the waiting room; not asked again in the session', async () => {
  const f = await fakeRoom({ waitingRoom: true, consent });
  const p1 = await f.join('p1', 'participant');
  assert.is(p1.stage, 'consent');
  const stale = await f.room.waitingRoom.acceptConsent(p1, 1).catch((err: HavenError) => err);
  assert.is((stale as HavenError).code, 'INVALID_REQUEST');
  assert.equal((stale as HavenError).consent, consent, 'the refusal carries the text in force');
  const answer = await f.room.waitingRoom.acceptConsent(p1, 2);
  assert.is(answer.stage, 'waiting');
  assert.equal(f.audited.at(-1), {
    room: 'room-1',
    actor: 'p1',
    action: 'consent.accept',
    details: { version: 2, hash: 'h2' },
  });
  f.room.leave('p1', 'left');
  const again = await f.room.join(identity('p1', 'participant'), 'conn-again');
  assert.is(again.response.stage, 'waiting');
});

test('facilitators and observers go straight in, past the gate and the waiting room', async () => {
  const f = await fakeRoom({ waitingRoom: true, consent });
  assert.is((await f.join('f1', 'facilitator')).stage, 'admitted');
  assert.is((await f.join('o1', 'observer')).stage, 'admitted');
});

test('a grace that was running when someone was denied never takes out who comes back with that id', async () => {
  const f = await fakeRoom({ waitingRoom: true }, { reconnectGraceMs: 50 });
  const f1 = await f.join('f1', 'facilitator');
  await f.join('p1', 'participant');
  await f.join('p2', 'participant');
  f.room.disconnected('p1', 'conn-p1');
  await f.room.moderation.deny(f1, 'p1');
  await f.room.join(identity('p1', 'participant'), 'conn-p1-again');
  // p2's grace starts after p1's old one and lasts as long: timers of one duration fire in order,
  // so when p2 is gone, p1's old grace would have run out too.
  const p2Gone = new Promise<void>((resolve) =>
    f.room.on('presence', (event) => {
      if (event.type === 'left' && event.participant === 'p2') resolve();
    }),
  );
  f.room.disconnected('p2', 'conn-p2');
  await p2Gone;
  assert.is(f.room.stageOf('p1'), 'waiting', 'p1, back after the denial, is still waiting');
});

test.run();
