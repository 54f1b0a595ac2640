/**
 * The SDK's key exchange during breakouts, without a server: each place (the main room, each
 * breakout group) is a key space with its own roster, leader and active epoch. A facilitator is a
 * member of every space: it leads and holds several spaces' keys at once (one KeyRing each),
 * decrypts any of them by the epoch a message carries, and sends with its own space's active
 * epoch. A participant holds its own space's keys only: moved to another space, it forgets the
 * old one and sends nothing until the new space's epoch is active.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { newEpochSecret } from '../../client-sdk/src/e2ee/epoch-secret.ts';
import { KeyExchange } from '../../client-sdk/src/e2ee/key-exchange.ts';
import { E2eeKeyPair } from '../../client-sdk/src/e2ee/key-pair.ts';
import { KeyRings } from '../../client-sdk/src/e2ee/key-rings.ts';
import type { E2eeDistributeRequest, E2eeRoster, Role, SessionState } from '../../client-sdk/src/protocol/index.ts';

const roomId = 'grp-breakouts';

/** A client's key exchange in `role`; its distributions answered after a turn of the event loop (so that two could overlap). */
function member(id: string, role: Role, keyPair: E2eeKeyPair) {
  const distributions: E2eeDistributeRequest[] = [];
  const acknowledged: number[] = [];
  const errors: unknown[] = [];
  let inFlight = 0;
  let mostInFlight = 0;
  const exchange = new KeyExchange({
    request: async (name, payload) => {
      if (name === 'e2eeKeyReceived') {
        acknowledged.push((payload as { epoch: number }).epoch);
        return {} as never;
      }
      const request = payload as E2eeDistributeRequest;
      distributions.push(request);
      mostInFlight = Math.max(mostInFlight, ++inFlight);
      await new Promise(setImmediate);
      inFlight--;
      return { delivered: request.keys.map((k) => k.participantId) } as never;
    },
    keyPair: () => Promise.resolve(keyPair),
    createTransforms: () => undefined,
    onError: (error) => errors.push(error),
    activated: () => {},
  });
  const on = exchange.handlers();
  return {
    id,
    exchange,
    on,
    distributions,
    acknowledged,
    errors,
    mostInFlight: () => mostInFlight,
    enter(roster: E2eeRoster) {
      exchange.enter({
        room: { id: roomId, kind: 'group', title: 'Breakouts', e2ee: true },
        self: { id, name: id, role, tracks: [] },
        resumed: false,
        e2ee: roster,
      } as unknown as SessionState);
    },
    /** Hands it the key `leader` wrapped for it in `distribution`. */
    keyFrom(leader: string, distribution: E2eeDistributeRequest) {
      const wrapped = distribution.keys.find((k) => k.participantId === id)?.wrapped as string;
      on.e2eeKey({ epoch: distribution.epoch, from: leader, wrapped, breakoutId: distribution.breakoutId ?? null });
    },
  };
}

function rosterOf(breakoutId: string | null, members: [string, E2eeKeyPair][], revision: number, epoch = 0) {
  return {
    breakoutId,
    leader: members[0]?.[0] ?? null,
    members: members.map(([participantId, pair]) => ({ participantId, publicKey: pair.publicKey })),
    revision,
    epoch,
    rotationIntervalMs: 900_000,
  } satisfies E2eeRoster;
}

async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; !condition(); i++) {
    assert.ok(i < 10_000, 'waited too long');
    await new Promise(setImmediate);
  }
}

test('key rings: each space keeps its own last epochs and its own active epoch; decryption finds any', async () => {
  const rings = new KeyRings();
  for (let epoch = 1; epoch <= 6; epoch++) rings.install('b1', epoch, newEpochSecret());
  rings.install(null, 7, newEpochSecret());
  rings.install('b2', 8, newEpochSecret());
  assert.equal(rings.epochs(), [3, 4, 5, 6, 7, 8], 'the last 4 of group b1, whatever the other spaces hold');
  assert.ok(rings.activate('b1', 5));
  assert.is(rings.sendEpoch('b1'), 5);
  assert.is(rings.sendEpoch(null), null, 'the main room has no active epoch yet');
  assert.ok(rings.activate(null, 7));
  assert.not.ok(rings.activate(null, 6), 'activation only moves forward, per space');
  assert.ok(rings.activate('b2', 8), 'a space activates above another’s epoch or below it, independently');
  assert.is(rings.sendEpoch(null), 7);
  for (const epoch of [4, 7, 8]) assert.ok(await rings.chatKey(epoch), `epoch ${epoch}`);
  assert.is(rings.install('b1', 1, newEpochSecret()), 'stale', 'older than every epoch b1 keeps');
  // An epoch names one space's key: installed for another space, it moves there.
  rings.install('b2', 6, newEpochSecret());
  rings.drop('b1');
  assert.equal(rings.epochs(), [6, 7, 8], 'b1 forgotten, b2 and the main room kept');
  assert.is(rings.sendEpoch('b1'), null);
  const waiting = rings.awaitChatKey(12, 60_000);
  rings.install('b2', 12, newEpochSecret());
  assert.ok(await waiting, 'a key on its way in any space is waited for');
  rings.clear();
  assert.equal(rings.epochs(), []);
});

test('a facilitator leads every space one distribution at a time, holds their keys and sends with its own space’s', async () => {
  const [fk, ak, bk, ck] = await Promise.all([1, 2, 3, 4].map(() => E2eeKeyPair.generate()));
  const pairs = { f: fk, a: ak, b: bk, c: ck } as Record<string, E2eeKeyPair>;
  const at = (...ids: string[]) => ids.map((id) => [id, pairs[id] as E2eeKeyPair] as [string, E2eeKeyPair]);
  const f = member('f', 'facilitator', fk as E2eeKeyPair);
  const a = member('a', 'participant', ak as E2eeKeyPair);
  f.enter(rosterOf(null, at('f', 'a', 'b', 'c'), 1));
  await until(() => f.distributions.length === 1);
  const main = f.distributions[0] as E2eeDistributeRequest;
  assert.equal({ epoch: main.epoch, breakoutId: main.breakoutId }, { epoch: 1, breakoutId: null });
  f.on.e2eeEpochActive({ epoch: 1, breakoutId: null });
  assert.is(f.exchange.epoch, 1);

  // Breakouts start: group b1 (a, b) and b2 (c); the main room holds the facilitator alone.
  a.enter(rosterOf('b1', at('f', 'a', 'b'), 3, 1));
  for (const roster of [
    rosterOf(null, at('f'), 2, 1),
    rosterOf('b1', at('f', 'a', 'b'), 3, 1),
    rosterOf('b2', at('f', 'c'), 4, 1),
  ]) {
    f.on.e2eeRoster(roster);
  }
  await until(() => f.distributions.length === 4);
  const [, ...sent] = f.distributions;
  const bySpace = (space: string | null) => sent.find((d) => d.breakoutId === space) as E2eeDistributeRequest;
  assert.equal(
    [null, 'b1', 'b2'].map((space) => bySpace(space)?.keys.map((k) => k.participantId)),
    [[], ['a', 'b'], ['c']],
    'one epoch per space, wrapped for that space’s members only',
  );
  assert.equal(
    sent.map((d) => d.epoch),
    [2, 3, 4],
    'epochs unique across the spaces, each above the last sent',
  );
  assert.is(f.mostInFlight(), 1, 'one distribution at a time');
  assert.ok(f.exchange.isLeader);
  assert.is(f.exchange.memberCount, 1, 'its own space: the main room, alone');

  const [mainEpoch, b1Epoch, b2Epoch] = [null, 'b1', 'b2'].map((space) => bySpace(space).epoch) as number[];
  a.keyFrom('f', bySpace('b1'));
  await until(() => a.acknowledged.includes(b1Epoch as number));
  for (const c of [f, a]) {
    c.on.e2eeEpochActive({ epoch: mainEpoch as number, breakoutId: null });
    c.on.e2eeEpochActive({ epoch: b1Epoch as number, breakoutId: 'b1' });
    c.on.e2eeEpochActive({ epoch: b2Epoch as number, breakoutId: 'b2' });
  }
  assert.is(f.exchange.epoch, mainEpoch, 'the facilitator sends with its own space’s epoch, not a group’s');
  assert.is(a.exchange.epoch, b1Epoch, 'a participant with its group’s');
  assert.is(a.exchange.state, 'active');

  // Group b1's chat opens for the facilitator in the main room, by the epoch it carries.
  const sealed = await a.exchange.sealChat('we practised the breathing', 'everyone');
  assert.ok(sealed.startsWith(`e2ee1.${b1Epoch}.`));
  const message = { id: 'm-1', from: 'a', to: 'everyone', text: sealed, sentAt: 1 };
  assert.is((await f.exchange.openChat(message)).text, 'we practised the breathing');
  const fromMain = await f.exchange.sealChat('back in five minutes', 'everyone');
  assert.ok(fromMain.startsWith(`e2ee1.${mainEpoch}.`));
  assert.is((await a.exchange.openChat({ ...message, text: fromMain })).undecryptable, true, 'not a group’s key');

  // The facilitator visits group b1: it sends with b1's active epoch at once (it holds it).
  f.exchange.moved('b1');
  assert.equal([f.exchange.place, f.exchange.epoch, f.exchange.state], ['b1', b1Epoch, 'active']);
  assert.is(f.exchange.memberCount, 3);
  f.exchange.moved('b2');
  const inB2 = await f.exchange.sealChat('a word for group b2', 'everyone');
  f.exchange.moved('b1');
  assert.is((await f.exchange.openChat({ ...message, from: 'f', text: inB2 })).text, 'a word for group b2');
  // Group b2 ends (told once more, empty): its keys and the lead there are dropped.
  f.on.e2eeRoster({ ...rosterOf('b2', [], 5, 4), leader: null });
  const before = f.distributions.length;
  f.on.e2eeRoster(rosterOf('b1', at('f', 'a'), 6, 4));
  await until(() => f.distributions.length === before + 1);
  assert.equal(f.distributions.at(-1)?.breakoutId, 'b1', 'nothing more for the group that ended');
  assert.is((await f.exchange.openChat({ ...message, from: 'f', text: inB2 })).undecryptable, true, 'b2’s keys gone');
  assert.is(f.exchange.epoch, b1Epoch, 'until the new epoch is active, the old one');
  assert.equal(f.errors, []);
  for (const c of [f, a]) c.exchange.close();
});

test('a participant moved: the old space forgotten, nothing sent until the new space’s epoch is active', async () => {
  const [fk, ak, bk] = await Promise.all([1, 2, 3].map(() => E2eeKeyPair.generate()));
  const f = member('f', 'facilitator', fk as E2eeKeyPair);
  const a = member('a', 'participant', ak as E2eeKeyPair);
  const everyone: [string, E2eeKeyPair][] = [
    ['f', fk as E2eeKeyPair],
    ['a', ak as E2eeKeyPair],
    ['b', bk as E2eeKeyPair],
  ];
  const inMain = rosterOf(null, everyone, 1);
  f.enter(inMain);
  a.enter(inMain);
  await until(() => f.distributions.length === 1);
  a.keyFrom('f', f.distributions[0] as E2eeDistributeRequest);
  await until(() => a.acknowledged.includes(1));
  a.on.e2eeEpochActive({ epoch: 1, breakoutId: null });
  assert.is(a.exchange.epoch, 1);

  // Moved to group b1: the roster of the new space is how a participant learns it (or `moved`).
  const group = rosterOf('b1', everyone.slice(0, 2), 3, 1);
  a.on.e2eeRoster(group);
  f.on.e2eeRoster(group);
  assert.equal([a.exchange.place, a.exchange.state, a.exchange.epoch], ['b1', 'waiting', null]);
  a.on.e2eeRoster(rosterOf(null, everyone, 2, 1));
  assert.is(a.exchange.place, 'b1', 'an older roster of the space it left changes nothing');
  a.on.e2eeEpochActive({ epoch: 5, breakoutId: 'b2' });
  assert.is(a.exchange.epoch, null, 'another group’s activation is not its own');
  const message = { id: 'm-2', from: 'f', to: 'everyone', text: '', sentAt: 1 };
  await until(() => f.distributions.length === 2);
  const forGroup = f.distributions[1] as E2eeDistributeRequest;
  assert.equal(forGroup.breakoutId, 'b1');
  a.keyFrom('f', forGroup);
  await until(() => a.acknowledged.includes(forGroup.epoch));
  for (const c of [f, a]) c.on.e2eeEpochActive({ epoch: forGroup.epoch, breakoutId: 'b1' });
  f.on.e2eeEpochActive({ epoch: 1, breakoutId: null });
  assert.equal([a.exchange.state, a.exchange.epoch], ['active', forGroup.epoch]);
  // A main-room message of epoch 1 (from before the move) no longer opens: that key is gone.
  f.exchange.moved(null);
  const oldKey = await f.exchange.sealChat('said in the main room', 'everyone');
  assert.ok(oldKey.startsWith('e2ee1.1.'));
  assert.is((await a.exchange.openChat({ ...message, text: oldKey })).undecryptable, true);
  assert.equal(a.errors, []);
  for (const c of [f, a]) c.exchange.close();
});

test.run();
