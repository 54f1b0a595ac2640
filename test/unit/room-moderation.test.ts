/** The room's moderation policy and its audit, over a fake media layer (test/helpers/fake-room.ts). */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { HavenError } from '../../server/errors.ts';
import { closeFakeRooms, fakeRoom, identity, publish } from '../helpers/fake-room.ts';

test.after.each(closeFakeRooms);

const code = (err: unknown) => (err as HavenError).code;

test('mute pauses the microphone, tells its owner and everyone, and is audited', async () => {
  const f = await fakeRoom();
  const f1 = await f.join('f1', 'facilitator');
  const p1 = await f.join('p1', 'participant');
  const mic = await publish(p1, 'microphone');
  await f.room.moderation.mute(f1, 'p1');
  assert.is(p1.media.tracks.get(mic)?.producer.paused, true);
  assert.equal(f.told.find((t) => t.to === 'p1' && t.name === 'mutedByFacilitator')?.args, [
    { source: 'microphone', producerId: mic },
  ]);
  assert.ok(f.namesFor('f1').includes('trackUpdated'));
  assert.equal(f.audited.at(-1), { room: 'room-1', actor: 'f1', action: 'mute', target: 'p1', result: 'ok' });
});

test('a refused action is audited with its code', async () => {
  const f = await fakeRoom();
  const f1 = await f.join('f1', 'facilitator');
  const err = await f.room.moderation.mute(f1, 'nobody').catch((e) => e);
  assert.is(code(err), 'NOT_FOUND');
  assert.equal(f.audited.at(-1), {
    room: 'room-1',
    actor: 'f1',
    action: 'mute',
    target: 'nobody',
    result: 'NOT_FOUND',
  });
});

test('stopping a screen share closes the track; mute all spares the facilitators', async () => {
  const f = await fakeRoom();
  const f1 = await f.join('f1', 'facilitator');
  const p1 = await f.join('p1', 'participant', { publishScreen: true });
  const p2 = await f.join('p2', 'participant');
  const screen = await publish(p1, 'screen');
  await publish(p2, 'microphone');
  const ownMic = await publish(f1, 'microphone');
  await f.room.moderation.stopScreenShare(f1, 'p1');
  assert.is(p1.media.tracks.has(screen), false);
  assert.ok(f.namesFor('f1').includes('trackUnpublished'));
  assert.equal(await f.room.moderation.muteAll(f1), { muted: 1 });
  assert.is(f1.media.tracks.get(ownMic)?.producer.paused, false);
});

test('controlled audio: a microphone starts muted and stays so until the facilitator asks to unmute', async () => {
  const f = await fakeRoom();
  const f1 = await f.join('f1', 'facilitator');
  const p1 = await f.join('p1', 'participant');
  await f.room.moderation.setAudioMode(f1, 'controlled');
  assert.ok(f.namesFor('p1').includes('audioModeChanged'));
  const mic = await publish(p1, 'microphone');
  assert.is(p1.media.tracks.get(mic)?.producer.paused, true);
  assert.ok(f.namesFor('p1').includes('mutedByFacilitator'));
  assert.is(code(await p1.media.setProducerPaused(mic, false).catch((e) => e)), 'FORBIDDEN');
  await f.room.moderation.requestUnmute(f1, 'p1');
  assert.equal(f.told.find((t) => t.to === 'p1' && t.name === 'unmuteRequested')?.args, [{ by: 'f1' }]);
  await p1.media.setProducerPaused(mic, false);
  assert.is(p1.media.tracks.get(mic)?.producer.paused, false);
  // A mute withdraws the grant.
  await f.room.moderation.mute(f1, 'p1');
  assert.is(code(await p1.media.setProducerPaused(mic, false).catch((e) => e)), 'FORBIDDEN');
});

test('removing revokes the token and closes the connection; a ban refuses a new join', async () => {
  const f = await fakeRoom();
  const f1 = await f.join('f1', 'facilitator');
  await f.join('p1', 'participant');
  await f.join('p2', 'participant');
  await f.room.moderation.remove(f1, 'p1', false);
  await f.room.moderation.remove(f1, 'p2', true);
  assert.equal(f.revoked, ['p1', 'p2']);
  assert.equal(f.evicted, ['p1', 'p2']);
  assert.equal(f.told.find((t) => t.to === 'p2' && t.name === 'removed')?.args, [{ banned: true }]);
  assert.is(f.audited.at(-1)?.action, 'ban');
  assert.ok(await f.room.join(identity('p1', 'participant'), 'c1'), 'a removal without a ban lets a new token in');
  assert.is(code(await f.room.join(identity('p2', 'participant'), 'c2').catch((e) => e)), 'FORBIDDEN');
});

test('a facilitator cannot be removed', async () => {
  const f = await fakeRoom();
  const f1 = await f.join('f1', 'facilitator');
  await f.join('f2', 'facilitator');
  assert.is(code(await f.room.moderation.remove(f1, 'f2', false).catch((e) => e)), 'FORBIDDEN');
  assert.is(f.room.has('f2'), true);
});

test('a locked room refuses newcomers but facilitators', async () => {
  const f = await fakeRoom();
  const f1 = await f.join('f1', 'facilitator');
  await f.room.moderation.lock(f1, true);
  assert.ok(f.namesFor('f1').includes('roomLocked'));
  assert.is(code(await f.join('p1', 'participant').catch((e) => e)), 'ROOM_LOCKED');
  assert.is((await f.join('f2', 'facilitator')).stage, 'admitted');
  await f.room.moderation.lock(f1, false);
  assert.is((await f.join('p1', 'participant')).stage, 'admitted');
});

test('an alias replaces the name for everyone; a spotlight goes out when its subject leaves', async () => {
  const f = await fakeRoom();
  const f1 = await f.join('f1', 'facilitator');
  const p1 = await f.join('p1', 'participant');
  await f.room.moderation.setDisplayName(f1, 'p1', 'Robin');
  assert.is(p1.info().name, 'Robin');
  assert.equal(f.told.find((t) => t.name === 'displayNameChanged')?.args, [{ participantId: 'p1', name: 'Robin' }]);
  await f.room.moderation.spotlight(f1, 'p1');
  assert.is(f.room.moderation.spotlit, 'p1');
  f.room.leave('p1', 'left');
  assert.is(f.room.moderation.spotlit, null);
  assert.equal(f.told.filter((t) => t.name === 'spotlightChanged').at(-1)?.args, [{ participantId: null }]);
});

test('moving someone back to the waiting room closes their media and tells the others they left', async () => {
  const f = await fakeRoom();
  const f1 = await f.join('f1', 'facilitator');
  const p1 = await f.join('p1', 'participant');
  await publish(p1, 'microphone');
  await f.room.moderation.moveToWaitingRoom(f1, 'p1');
  assert.is(p1.stage, 'waiting');
  assert.is(p1.media.transports.size, 0);
  assert.equal(f.told.find((t) => t.to === 'f1' && t.name === 'participantLeft')?.args, [
    { participantId: 'p1', reason: 'movedToWaitingRoom' },
  ]);
  // Only participants wait.
  assert.is(code(await f.room.moderation.moveToWaitingRoom(f1, 'f1').catch((e) => e)), 'FORBIDDEN');
});

test.run();
