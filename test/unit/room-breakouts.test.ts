/**
 * A room's breakouts over a fake media layer (test/helpers/fake-room.ts): what a member's group
 * is after the stages around a round (the whole round over real signaling is
 * test/integration/breakouts.test.ts).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { RoomStateSnapshot } from '../../server/rooms/room-state.ts';
import { fakeRoom } from '../helpers/fake-room.ts';

test('someone sent back to the waiting room from a group is admitted again into the main room', async () => {
  const f = await fakeRoom({ waitingRoom: false });
  const facilitator = await f.join('f1', 'facilitator');
  const p1 = await f.join('p1', 'participant');
  await f.room.breakouts.create(facilitator, { groups: [{ name: 'A', members: ['p1'] }] });
  await f.room.breakouts.start(facilitator, {});
  assert.is(p1.breakout, 'b1');
  f.room.moveToWaitingRoom(p1);
  assert.is(p1.breakout, undefined, 'out of the group');
  await f.room.admit(p1, true);
  assert.is(p1.breakout, undefined, 'in the main room');
  assert.equal(f.room.breakouts.placeOf(p1), { running: true, group: null, endsAt: null });
});

test('a restored member who was waiting has no group, even if the store still named one', async () => {
  const saved: RoomStateSnapshot = {
    locked: false,
    audioMode: 'open',
    spotlight: null,
    members: [
      { participantId: 'p1', role: 'participant', stage: 'admitted', waitingSince: 1, dropped: true, breakout: 'b1' },
      { participantId: 'p2', role: 'participant', stage: 'waiting', waitingSince: 2, dropped: true, breakout: 'b1' },
    ],
    hands: [],
    bans: [],
    unmuteGranted: [],
    aliases: new Map(),
    consents: new Map(),
    breakouts: {
      status: 'running',
      groups: [{ id: 'b1', name: 'A', planned: ['p1', 'p2'] }],
      startedAt: 1,
      endsAt: null,
      noticeS: 60,
      noticed: false,
      help: [],
      nextId: 2,
    },
  };
  const f = await fakeRoom({}, {}, saved);
  assert.is(f.room.members.get('p1')?.breakout, 'b1', 'an admitted member keeps their group');
  assert.is(f.room.members.get('p2')?.breakout, undefined, 'a waiting one has none');
});

test('a timed round’s notice: a minute by default, half a round of 2 minutes or less; one asked for is kept', async () => {
  for (const [options, noticeS] of [
    [{ durationS: 10 }, 5],
    [{ durationS: 31 }, 15],
    [{ durationS: 120 }, 60],
    [{ durationS: 3_600 }, 60],
    [{ durationS: 30, noticeS: 25 }, 25],
  ] as const) {
    const f = await fakeRoom({ waitingRoom: false });
    const facilitator = await f.join('f1', 'facilitator');
    await f.join('p1', 'participant');
    await f.room.breakouts.create(facilitator, { groups: [{ name: 'A', members: ['p1'] }] });
    const state = await f.room.breakouts.start(facilitator, options);
    assert.is(state.noticeS, noticeS, JSON.stringify(options));
    await f.room.breakouts.recall(facilitator);
  }
});

test.run();
