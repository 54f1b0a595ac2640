/** Who sees whom in a room, over a fake media layer (test/helpers/fake-room.ts). */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { SessionState } from '../../client-sdk/src/protocol/index.ts';
import { closeFakeRooms, fakeRoom, publish } from '../helpers/fake-room.ts';

test.after.each(closeFakeRooms);

const sessionOf = (response: { stage: string; session?: SessionState }) => response.session as SessionState;

test('observers are hidden from participants; facilitators see them', async () => {
  const f = await fakeRoom();
  await f.join('f1', 'facilitator');
  await f.join('p1', 'participant');
  const o1 = await f.join('o1', 'observer');
  const joinedFor = (id: string) =>
    f.told.filter((t) => t.to === id && t.name === 'participantJoined').map((t) => (t.args[0] as { id: string }).id);
  assert.equal(joinedFor('p1'), [], 'the participant is not told of the observer');
  assert.equal(joinedFor('f1'), ['p1', 'o1']);
  const p1 = f.room.members.get('p1');
  assert.ok(p1);
  const seen = sessionOf(f.room.view.stageResponse(p1, false)).participants.map((p) => p.id);
  assert.equal(seen, ['f1']);
  assert.equal(
    sessionOf(f.room.view.stageResponse(o1, false)).participants.map((p) => p.id),
    ['f1', 'p1'],
  );
});

test('a room that shows observers shows them to participants', async () => {
  const f = await fakeRoom({ observersVisible: true });
  await f.join('p1', 'participant');
  await f.join('o1', 'observer');
  assert.ok(f.namesFor('p1').includes('participantJoined'));
});

test('those at the consent gate or waiting see nothing of the session', async () => {
  const f = await fakeRoom({ waitingRoom: true, consent: { version: 1, hash: 'h', text: 'Consent' } });
  const f1 = await f.join('f1', 'facilitator');
  await f.join('p1', 'participant');
  await f.join('p2', 'participant');
  const p2 = f.room.members.get('p2');
  assert.ok(p2);
  await f.room.waitingRoom.acceptConsent(p2, 1);
  await f.join('f2', 'facilitator');
  await publish(f1, 'camera');
  f.room.hands.raise(f1);
  for (const id of ['p1', 'p2']) {
    const seen = f.namesFor(id).filter((name) => name !== 'waiting');
    assert.equal(seen, [], `${id} sees nothing of the session`);
  }
});

test('a track published is told to those who may see its owner, not to the owner', async () => {
  const f = await fakeRoom();
  await f.join('f1', 'facilitator');
  await f.join('p1', 'participant');
  const o1 = await f.join('o1', 'observer', { publishVideo: true });
  await publish(o1, 'camera');
  const told = f.told.filter((t) => t.name === 'trackPublished').map((t) => t.to);
  assert.equal(told, ['f1']);
});

test('a disconnected member is told nothing until they come back', async () => {
  const f = await fakeRoom();
  await f.join('f1', 'facilitator');
  await f.join('p1', 'participant');
  f.room.disconnected('p1', 'conn-p1');
  const before = f.namesFor('p1').length;
  await f.join('p2', 'participant');
  assert.is(f.namesFor('p1').length, before);
  assert.ok(f.namesFor('f1').includes('participantJoined'));
});

test.run();
