/**
 * The key exchange of an E2EE room (server/rooms/e2ee-keys.ts), over a fake media layer: what
 * the integration test cannot time from outside (a newer distribution replacing a pending one,
 * a recipient dropping before it acknowledged) and members that have no key (restored after a
 * failover) or stand outside the session. test/integration/e2ee-keys.test.ts has the rest.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { E2eeRoster, Role } from '../../client-sdk/src/protocol/index.ts';
import type { HavenError } from '../../server/errors.ts';
import { closeFakeRooms, fakeRoom, identity } from '../helpers/fake-room.ts';

test.after.each(closeFakeRooms);

/** No timeout fires during a test: what activates an epoch here is an acknowledgement or a drop. */
const e2eeSettings = { e2ee: { rotationIntervalMs: 900_000, keyAckTimeoutMs: 600_000 } };

async function e2eeRoom(overrides: Parameters<typeof fakeRoom>[0] = {}) {
  const f = await fakeRoom({ e2ee: true, ...overrides }, e2eeSettings);
  const join = async (id: string, role: Role = 'participant', publicKey = `key-of-${id}`) => {
    await f.room.join(identity(id, role), `conn-${id}`, { publicKey });
    return f.room.caller(id, `conn-${id}`, 'joined');
  };
  const told = (name: string, to?: string) =>
    f.told.filter((t) => t.name === name && (to === undefined || t.to === to)).map((t) => t.args[0]);
  return { ...f, join, told };
}

/** An activation in the main room (the only space without breakouts). */
const main = (epoch: number) => ({ epoch, breakoutId: null });

const code = (fn: () => unknown) => {
  try {
    fn();
    return 'ok';
  } catch (err) {
    return (err as HavenError).code;
  }
};

test('a newer distribution replaces a pending one: the older epoch is never made active', async () => {
  const f = await e2eeRoom();
  const leader = await f.join('f1', 'facilitator');
  const p1 = await f.join('p1');
  await f.join('p2');
  const keys = [
    { participantId: 'p1', wrapped: 'AAAA' },
    { participantId: 'p2', wrapped: 'BBBB' },
  ];
  assert.equal(f.room.e2ee.distribute(leader, { epoch: 1, keys }).delivered, ['p1', 'p2']);
  assert.equal(f.room.e2ee.distribute(leader, { epoch: 2, keys }).delivered, ['p1', 'p2']);
  f.room.e2ee.received(p1, 1);
  f.room.e2ee.received(p1, 2);
  assert.equal(f.told('e2eeEpochActive'), [], 'p2 has not acknowledged epoch 2');
  f.room.e2ee.received(f.room.caller('p2', 'conn-p2', 'session'), 2);
  assert.equal(f.told('e2eeEpochActive'), [main(2), main(2), main(2)], 'epoch 2, to all three');
});

test('a recipient who drops before acknowledging is not waited for', async () => {
  const f = await e2eeRoom();
  const leader = await f.join('f1', 'facilitator');
  await f.join('p1');
  f.room.e2ee.distribute(leader, { epoch: 3, keys: [{ participantId: 'p1', wrapped: 'AAAA' }] });
  f.room.disconnected('p1', 'conn-p1');
  assert.equal(f.told('e2eeEpochActive'), [main(3)], 'to the one still connected');
  assert.equal(
    f.told('e2eeRoster').map((r) => (r as E2eeRoster).revision),
    [2],
    'the drop of someone not leading is no revision',
  );
});

test('no recipient connected: the epoch is active at once; the leader’s own key is never relayed', async () => {
  const f = await e2eeRoom();
  const leader = await f.join('f1', 'facilitator');
  const answer = f.room.e2ee.distribute(leader, { epoch: 1, keys: [{ participantId: 'f1', wrapped: 'AAAA' }] });
  assert.equal(answer.delivered, []);
  assert.equal(f.told('e2eeKey'), []);
  assert.equal(f.told('e2eeEpochActive', 'f1'), [main(1)]);
});

test('someone waiting may change their key (a reload) with no revision; a member rejoining is one', async () => {
  const f = await e2eeRoom({ waitingRoom: true });
  const leader = await f.join('f1', 'facilitator');
  await f.join('w1');
  await f.join('w1', 'participant', 'a-new-key');
  assert.equal(f.told('e2eeRoster'), [], 'nobody in the session was told');
  await f.room.moderation.admit(leader, 'w1');
  const admitted = f.told('admitted', 'w1')[0] as { e2ee: E2eeRoster };
  assert.equal(admitted.e2ee.members, [
    { participantId: 'f1', publicKey: 'key-of-f1' },
    { participantId: 'w1', publicKey: 'a-new-key' },
  ]);
  f.room.disconnected('w1', 'conn-w1');
  await f.join('w1', 'participant', 'a-new-key');
  const revisions = f.told('e2eeRoster', 'f1').map((r) => (r as E2eeRoster).revision);
  assert.equal(revisions, [2, 3], 'the admission, then the rejoin with the same key');
});

test('a member restored without a key (failover) is outside the roster until it rejoins with one', async () => {
  const f = await e2eeRoom();
  const leader = await f.join('f1', 'facilitator');
  f.room.restoreMember({
    identity: identity('r1', 'participant'),
    capabilities: leader.capabilities,
    stage: 'admitted',
    waitingSince: 0,
  });
  assert.equal(
    f.room.e2ee.roster(leader).members.map((m) => m.participantId),
    ['f1'],
  );
  assert.equal(
    f.room.e2ee.distribute(leader, { epoch: 1, keys: [{ participantId: 'r1', wrapped: 'AAAA' }] }).delivered,
    [],
  );
  await f.join('r1');
  const roster = f.told('e2eeRoster', 'f1').at(-1) as E2eeRoster;
  assert.equal(
    roster.members.map((m) => m.participantId),
    ['f1', 'r1'],
  );
  assert.is(roster.epoch, 1);
});

test('a room that is not E2EE: no roster, the key ignored, the requests INVALID_STATE, any codec', async () => {
  const f = await fakeRoom({ e2ee: false });
  await f.room.join(identity('f1', 'facilitator'), 'conn-f1', { publicKey: 'ignored' });
  const leader = f.room.caller('f1', 'conn-f1', 'session');
  assert.is(leader.e2eePublicKey, undefined, 'not kept');
  assert.is(
    code(() => f.room.e2ee.distribute(leader, { epoch: 1, keys: [] })),
    'INVALID_STATE',
  );
  assert.is(
    code(() => f.room.e2ee.received(leader, 0)),
    'INVALID_STATE',
  );
  assert.ok(f.room.e2ee.allowsCodec('video/h264'));
  assert.not.ok(f.told.some((t) => t.name.startsWith('e2ee')));
  const e2ee = await e2eeRoom();
  assert.equal(
    ['audio/opus', 'video/vp8', 'video/h264', 'video/vp9'].map((c) => e2ee.room.e2ee.allowsCodec(c)),
    [true, true, false, false],
  );
});

test.run();
