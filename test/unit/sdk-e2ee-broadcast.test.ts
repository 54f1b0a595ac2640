/**
 * A facilitator's broadcast in an E2EE room, in the SDK without a server: a copy of the text per
 * place of the running round (the main room and each group), each sealed with that place's send
 * epoch and bound to that place and sender, so that a copy relayed to another place, shown as
 * someone else's or as a chat message, does not open; the facilitator's call sends every copy it
 * holds a key for, and received broadcasts are decrypted and emitted in arrival order.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Breakouts, BreakoutsView, type BroadcastKeys } from '../../client-sdk/src/breakouts.ts';
import { broadcastTo } from '../../client-sdk/src/e2ee/chat-crypto.ts';
import { newEpochSecret } from '../../client-sdk/src/e2ee/epoch-secret.ts';
import { KeyRings } from '../../client-sdk/src/e2ee/key-rings.ts';
import { InvalidStateError } from '../../client-sdk/src/errors.ts';
import type { BreakoutBroadcast, BreakoutsState, SealedBroadcast } from '../../client-sdk/src/protocol/index.ts';
import { TypedEmitter } from '../../client-sdk/src/protocol/typed-emitter.ts';
import type { ReceivedBroadcast, SessionClientEvents } from '../../client-sdk/src/session-events.ts';
import { throwsAsync } from '../helpers/assert.ts';

/** The facilitator holds every place's keys; a participant of group b1, b1's only. */
function rings() {
  const secrets = { main: newEpochSecret(), b1: newEpochSecret(), b2: newEpochSecret() };
  const facilitator = new KeyRings();
  const inB1 = new KeyRings();
  for (const [space, epoch, secret] of [
    [null, 1, secrets.main],
    ['b1', 2, secrets.b1],
    ['b2', 3, secrets.b2],
  ] as const) {
    facilitator.install(space, epoch, secret);
    facilitator.activate(space, epoch);
  }
  inB1.install('b1', 2, secrets.b1);
  inB1.activate('b1', 2);
  return { facilitator, inB1 };
}

const from = 'f-1';
const waitMs = 50;

test('each place’s copy opens only there, from its sender, as a broadcast', async () => {
  const { facilitator, inB1 } = rings();
  const copies = new Map<string | null, string>();
  for (const place of [null, 'b1', 'b2', 'b9']) {
    const sealed = facilitator.seal(place, 'Two minutes left', { from, to: broadcastTo(place) });
    if (sealed) copies.set(place, await sealed);
  }
  assert.equal([...copies.keys()], [null, 'b1', 'b2'], 'no copy for a place without a key');
  const b1 = copies.get('b1') as string;
  assert.is(await inB1.open(b1, { from, to: broadcastTo('b1') }, waitMs), 'Two minutes left');
  assert.is(await inB1.open(copies.get('b2') as string, { from, to: broadcastTo('b2') }, waitMs), null, 'b2’s key');
  assert.is(await inB1.open(b1, { from, to: broadcastTo('b2') }, waitMs), null, 'relayed to another place');
  assert.is(await inB1.open(b1, { from: 'f-2', to: broadcastTo('b1') }, waitMs), null, 'as another facilitator’s');
  assert.is(await inB1.open(b1, { from, to: 'everyone' }, waitMs), null, 'as a chat message');
  assert.is(await facilitator.open(b1, { from, to: broadcastTo('b1') }, waitMs), 'Two minutes left');
});

const running: BreakoutsState = {
  status: 'running',
  groups: [
    { id: 'b1', name: 'A', members: [] },
    { id: 'b2', name: 'B', members: [] },
    { id: 'b3', name: 'C', members: [] },
  ],
  main: [],
  startedAt: 1_000,
  endsAt: null,
  noticeS: 60,
  help: [],
};

/** A facilitator's breakouts over `keys`, with every request recorded. */
function facilitatorBreakouts(keys: BroadcastKeys) {
  const events = new TypedEmitter<SessionClientEvents>();
  const view = new BreakoutsView(events, keys);
  const sent: unknown[] = [];
  const breakouts = new Breakouts(async (name, payload) => {
    sent.push([name, payload]);
    return { sentAt: 4_321 } as never;
  }, view);
  view.handlers().breakoutsChanged({ state: running, change: 'started' });
  return { events, view, sent, breakouts };
}

test('a broadcast in an E2EE room: a sealed copy for each place of the round a key is held for, none at all refused', async () => {
  const { facilitator } = rings();
  const keys: BroadcastKeys = {
    enabled: true,
    sealBroadcast: async (text, places) => {
      const copies: SealedBroadcast[] = [];
      for (const breakoutId of places) {
        const sealed = facilitator.seal(breakoutId, text, { from, to: broadcastTo(breakoutId) });
        if (sealed) copies.push({ breakoutId, text: await sealed });
      }
      return copies;
    },
    openBroadcast: async (b) => ({ ...b }),
  };
  const { sent, breakouts } = facilitatorBreakouts(keys);
  assert.is(await breakouts.broadcast(' Two minutes left '), 4_321);
  const [name, payload] = sent[0] as [string, { texts: SealedBroadcast[] }];
  assert.is(name, 'broadcastToBreakouts');
  assert.equal(
    payload.texts.map((t) => t.breakoutId),
    [null, 'b1', 'b2'],
    'the main room and every group of the round, b3 (no key yet) left out',
  );
  for (const { breakoutId, text } of payload.texts) {
    assert.is(await facilitator.open(text, { from, to: broadcastTo(breakoutId) }, waitMs), 'Two minutes left');
  }
  const keyless = facilitatorBreakouts({ ...keys, sealBroadcast: async () => [] });
  await throwsAsync(() => keyless.breakouts.broadcast('hello'), InvalidStateError);
  assert.equal(keyless.sent, [], 'nothing sent without a key');
});

test('broadcasts received in an E2EE room: decrypted, emitted in arrival order, one that fails undecryptable', async () => {
  const gates = new Map<string, () => void>();
  const keys: BroadcastKeys = {
    enabled: true,
    sealBroadcast: async () => [],
    // The first takes longest to open.
    openBroadcast: (b) =>
      new Promise<ReceivedBroadcast>((resolve, reject) => {
        gates.set(b.text, () =>
          b.text === 'bad' ? reject(new Error('no key')) : resolve({ ...b, text: `${b.text}!` }),
        );
      }),
  };
  const { events, view } = facilitatorBreakouts(keys);
  const seen: string[] = [];
  const all = new Promise<void>((resolve) =>
    events.on('broadcastReceived', (b) => {
      seen.push(b.undecryptable ? 'undecryptable' : b.text);
      if (seen.length === 3) resolve();
    }),
  );
  const broadcast = (text: string): BreakoutBroadcast => ({ from, name: 'Dr. Lee', text, sentAt: 1, breakoutId: null });
  const on = view.handlers();
  for (const text of ['first', 'bad', 'third']) on.broadcastReceived(broadcast(text));
  for (const text of ['third', 'bad', 'first']) gates.get(text)?.();
  await all;
  assert.equal(seen, ['first!', 'undecryptable', 'third!']);
});

test.run();
