/**
 * Who is told whose connection quality, over a fake media layer (test/helpers/fake-room.ts):
 * the person and facilitators; everyone admitted when the room shares quality; a hidden
 * observer's to facilitators only. A dropped connection is `lost` at once and back at once.
 * The room's own feed is sampled by hand here (its timer may sample too: changes are told once).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { ConnectionQualityInfo } from '../../client-sdk/src/protocol/index.ts';
import type { RoomDefinition } from '../../server/rooms/room-store.ts';
import { closeFakeRooms, type FakeRoom, fakeRoom } from '../helpers/fake-room.ts';

test.after.each(closeFakeRooms);

/** `subject`'s qualities as told to each, in order. */
function toldOf(f: FakeRoom, subject: string): Record<string, string[]> {
  const told: Record<string, string[]> = {};
  for (const t of f.told) {
    const info = t.args[0] as ConnectionQualityInfo;
    if (t.name !== 'connectionQualityChanged' || info.participantId !== subject) continue;
    told[t.to] = [...(told[t.to] ?? []), info.quality];
  }
  return told;
}

async function room(overrides: Partial<RoomDefinition> = {}) {
  const f = await fakeRoom(overrides);
  for (const [id, role] of [
    ['f1', 'facilitator'],
    ['p1', 'participant'],
    ['p2', 'participant'],
    ['o1', 'observer'],
    ['o2', 'observer'],
  ] as const) {
    await f.join(id, role);
  }
  // Each admission told those who may see the newcomer (excellent until measured); the tests
  // look at what follows.
  await f.room.quality.sample();
  f.told.length = 0;
  return { f, feed: f.room.quality };
}

test('each newcomer’s quality is told once, on admission, to those who may see it: excellent until measured', async () => {
  const f = await fakeRoom();
  await f.join('f1', 'facilitator');
  await f.join('p1', 'participant');
  await f.join('p2', 'participant');
  assert.equal(toldOf(f, 'p1'), { f1: ['excellent'] }, 'with the admission, not at the next round');
  assert.equal(toldOf(f, 'f1'), {}, 'the newcomer’s own is in its session state');
  const p1 = f.room.members.get('p1');
  assert.ok(p1);
  assert.equal(f.room.quality.visibleTo(p1), [{ participantId: 'p1', quality: 'excellent', reason: null }]);
  await f.room.quality.sample();
  await f.room.quality.sample();
  assert.equal(toldOf(f, 'p1'), { f1: ['excellent'] }, 'rounds that measure nothing new tell nothing');
});

test('someone sent back to the waiting room and admitted again is told afresh', async () => {
  const { f } = await room();
  const p1 = f.room.members.get('p1');
  assert.ok(p1);
  f.room.moveToWaitingRoom(p1);
  await f.room.admit(p1, true);
  assert.equal(toldOf(f, 'p1'), { f1: ['excellent'] });
});

test('a dropped connection is lost to the person’s viewers at once, and back at once', async () => {
  const { f, feed } = await room();
  f.room.disconnected('p1', 'conn-p1');
  await feed.sample();
  assert.equal(toldOf(f, 'p1'), { f1: ['lost'] }, 'the facilitator only (p1 itself is not connected)');
  await f.join('p1', 'participant');
  await feed.sample();
  assert.equal(toldOf(f, 'p1'), { f1: ['lost', 'excellent'], p1: ['excellent'] }, 'back at once: a fact');
  const p1 = f.room.members.get('p1');
  assert.ok(p1);
  assert.equal(feed.visibleTo(p1), [{ participantId: 'p1', quality: 'excellent', reason: null }]);
});

test('a room sharing quality tells everyone admitted, but a hidden observer’s goes to facilitators only', async () => {
  const { f, feed } = await room({ shareConnectionQuality: true });
  f.room.disconnected('p1', 'conn-p1');
  f.room.disconnected('o1', 'conn-o1');
  await feed.sample();
  assert.equal(toldOf(f, 'p1'), { f1: ['lost'], p2: ['lost'], o2: ['lost'] });
  assert.equal(toldOf(f, 'o1'), { f1: ['lost'] });
  const p2 = f.room.members.get('p2');
  const o2 = f.room.members.get('o2');
  assert.ok(p2 && o2);
  assert.equal(
    feed
      .visibleTo(p2)
      .map((q) => q.participantId)
      .sort(),
    ['f1', 'p1', 'p2'],
  );
  assert.ok(!feed.visibleTo(o2).some((q) => q.participantId === 'o1'), 'nor to another observer');
});

test('without sharing, participants and observers see only their own; facilitators everyone’s', async () => {
  const { f, feed } = await room();
  const member = (id: string) => {
    const found = f.room.members.get(id);
    if (!found) throw new Error(`no member ${id}`);
    return found;
  };
  assert.equal(
    feed.visibleTo(member('p2')).map((q) => q.participantId),
    ['p2'],
  );
  assert.equal(
    feed.visibleTo(member('o2')).map((q) => q.participantId),
    ['o2'],
  );
  assert.equal(
    feed
      .visibleTo(member('f1'))
      .map((q) => q.participantId)
      .sort(),
    ['f1', 'o1', 'o2', 'p1', 'p2'],
  );
});

test('someone gone is forgotten: a later member with the id starts at excellent', async () => {
  const { f, feed } = await room();
  f.room.disconnected('p1', 'conn-p1');
  await feed.sample();
  f.room.leave('p1', 'left');
  feed.forget('p1');
  await f.join('p1', 'participant');
  const f1 = f.room.members.get('f1');
  assert.ok(f1);
  assert.equal(
    feed.visibleTo(f1).find((q) => q.participantId === 'p1'),
    { participantId: 'p1', quality: 'excellent', reason: null },
  );
});

test.run();
