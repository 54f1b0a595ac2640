/**
 * The SDK's key exchange without a server: clients (`KeyExchange` behind `client.e2ee`) with real
 * P-256 key pairs, their requests recorded and the server's notifications played by the test.
 * The leader starts a new epoch on each roster revision (above the roster's epoch and every epoch
 * seen), wraps it for every other member it can see (not itself, not hidden members, not a bad
 * key), and again on its timer; members accept keys only from the roster's leader; everyone
 * switches only when the epoch is activated; chat is sealed and opened with the epoch's key.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { E2ee } from '../../client-sdk/src/e2ee/e2ee.ts';
import { KeyExchange } from '../../client-sdk/src/e2ee/key-exchange.ts';
import { E2eeKeyPair } from '../../client-sdk/src/e2ee/key-pair.ts';
import { InvalidStateError } from '../../client-sdk/src/errors.ts';
import type {
  E2eeDistributeRequest,
  E2eeRoster,
  E2eeWrappedKey,
  ServerNotifications,
  SessionState,
} from '../../client-sdk/src/protocol/index.ts';
import { e2eeChatPattern } from '../../client-sdk/src/protocol/index.ts';
import { throwsAsync } from '../helpers/assert.ts';

const roomId = 'grp-e2ee';

/** One client's key exchange, its requests (awaitable one by one) and its `client.e2ee` events. */
/** What the fake server answers a request: a response, or a thrown refusal. */
type Respond = (name: string, payload: unknown) => unknown;

function client(id: string, keyPair: E2eeKeyPair, respond?: Respond) {
  const requests: [string, unknown][] = [];
  const waiters: { name: string; resolve: (payload: unknown) => void }[] = [];
  let seen = 0;
  const errors: unknown[] = [];
  const events: string[] = [];
  let activations = 0;
  const exchange = new KeyExchange({
    request: async (name, payload) => {
      requests.push([name, payload]);
      const at = waiters.findIndex((w) => w.name === name);
      if (at >= 0) waiters.splice(at, 1)[0]?.resolve(payload);
      const response = respond
        ? respond(name, payload)
        : name === 'e2eeDistribute'
          ? { delivered: (payload as E2eeDistributeRequest).keys.map((k) => k.participantId) }
          : {};
      return response as never;
    },
    keyPair: () => Promise.resolve(keyPair),
    createTransforms: () => undefined,
    onError: (error) => errors.push(error),
    activated: () => activations++,
  });
  const e2ee = new E2ee(exchange);
  e2ee.on('stateChanged', (state) => events.push(`state ${state}`));
  e2ee.on('epochChanged', (epoch) => events.push(`epoch ${epoch}`));
  e2ee.on('securityCodeChanged', (code) => events.push(`code ${code === null ? null : 'set'}`));
  const handlers = exchange.handlers();
  return {
    id,
    keyPair,
    exchange,
    e2ee,
    requests,
    errors,
    events,
    activations: () => activations,
    /** The next request `name` not yet waited for (already made, or the next one). */
    next<T>(name: string): Promise<T> {
      const made = requests.filter(([n]) => n === name);
      const index = made.length > seen ? made[seen] : undefined;
      if (index) {
        seen++;
        return Promise.resolve(index[1] as T);
      }
      return new Promise((resolve) =>
        waiters.push({
          name,
          resolve: (payload) => {
            seen++;
            resolve(payload as T);
          },
        }),
      );
    },
    count: (name: string) => requests.filter(([n]) => n === name).length,
    roster: (roster: E2eeRoster) => handlers.e2eeRoster(roster),
    /** A key relayed to this client, in the main room (the only space without breakouts). */
    key: (key: KeyNotification) => handlers.e2eeKey({ breakoutId: null, ...key }),
    activate: (epoch: number) => handlers.e2eeEpochActive({ epoch, breakoutId: null }),
    enter(roster: E2eeRoster, resumed = false) {
      exchange.enter({
        room: { id: roomId, kind: 'group', title: 'E2EE', e2ee: true },
        self: { id, name: id, role: 'participant', tracks: [] },
        resumed,
        e2ee: roster,
      } as unknown as SessionState);
    },
  };
}
type Client = ReturnType<typeof client>;
type KeyNotification = Omit<ServerNotifications['e2eeKey'][0], 'breakoutId'>;

function rosterOf(
  leader: string | null,
  members: { id: string | null; publicKey: string }[],
  revision: number,
  epoch = 0,
  rotationIntervalMs = 900_000,
): E2eeRoster {
  return {
    breakoutId: null,
    leader,
    members: members.map(({ id, publicKey }) => ({ participantId: id, publicKey })),
    revision,
    epoch,
    rotationIntervalMs,
  };
}

/** Resolves once `c` acknowledged `epoch` (or at once if it did). */
async function acknowledged(c: Client, epoch: number): Promise<void> {
  for (;;) {
    const { epoch: acked } = await c.next<{ epoch: number }>('e2eeKeyReceived');
    if (acked === epoch) return;
  }
}

/** Resolves once the security code is known. */
function codeOf(c: Client): Promise<string> {
  if (c.e2ee.securityCode) return Promise.resolve(c.e2ee.securityCode);
  return new Promise((resolve) => c.e2ee.once('securityCodeChanged', (code) => resolve(code as string)));
}

async function pairs(n: number): Promise<E2eeKeyPair[]> {
  return Promise.all(Array.from({ length: n }, () => E2eeKeyPair.generate()));
}

test('the leader: a new epoch per revision, wrapped for each member it can see, not itself nor hidden nor bad keys', async () => {
  const [lk, ak, bk, hk] = (await pairs(4)) as [E2eeKeyPair, E2eeKeyPair, E2eeKeyPair, E2eeKeyPair];
  const leader = client('f-1', lk);
  const ann = client('p-1', ak);
  const ben = client('p-2', bk);
  const members = [
    { id: 'f-1', publicKey: lk.publicKey },
    { id: 'p-1', publicKey: ak.publicKey },
    { id: null, publicKey: hk.publicKey },
    { id: 'p-2', publicKey: bk.publicKey },
    { id: 'p-bad', publicKey: `B${'A'.repeat(86)}=` },
  ];
  const roster = rosterOf('f-1', members, 5, 3);
  assert.is(leader.e2ee.state, 'off');
  leader.enter(roster);
  ann.enter(roster);
  ben.enter(roster);
  assert.is(leader.e2ee.state, 'waiting');
  assert.ok(leader.e2ee.enabled && leader.e2ee.isLeader && !ann.e2ee.isLeader);
  assert.is(leader.e2ee.memberCount, 5);
  const first = await leader.next<E2eeDistributeRequest>('e2eeDistribute');
  assert.is(first.epoch, 4, 'above the roster’s epoch');
  assert.equal(
    first.keys.map((k) => k.participantId),
    ['p-1', 'p-2'],
    'every visible member with a good key, not the leader itself',
  );
  assert.is(ann.count('e2eeDistribute'), 0, 'members do not distribute');
  assert.is(leader.e2ee.state, 'waiting', 'the leader too waits for activation');

  // Relayed to the members: they open it, keep it and say so; nobody switches before activation.
  for (const [member, key] of [
    [ann, first.keys[0]],
    [ben, first.keys[1]],
  ] as const) {
    const { participantId, wrapped } = key as E2eeWrappedKey;
    assert.is(participantId, member.id);
    member.key({ epoch: 4, from: 'f-1', wrapped });
    await acknowledged(member, 4);
    assert.is(member.e2ee.state, 'waiting');
    assert.is(member.e2ee.epoch, null);
  }
  // A key for Ann, replayed to Ben, does not open.
  ben.key({ epoch: 9, from: 'f-1', wrapped: first.keys[0]?.wrapped as string });
  await new Promise<void>((resolve) => setImmediate(resolve));
  for (const c of [leader, ann, ben]) {
    c.activate(4);
    assert.is(c.e2ee.state, 'active', c.id);
    assert.is(c.e2ee.epoch, 4, c.id);
    assert.is(c.activations(), 1);
  }
  assert.is(ben.count('e2eeKeyReceived'), 1, 'no acknowledgement for a key that did not open');
  await waitForErrors(ben, 1);
  assert.match(String(ben.errors[0]), /could not be opened/);
  const code = await codeOf(leader);
  assert.match(code, /^\d{4} \d{4} \d{4}$/);
  assert.is(await codeOf(ann), code, 'the same security code everywhere');
  assert.is(await codeOf(ben), code);

  // A newer revision (someone left): a new epoch, for those left.
  const shrunk = rosterOf('f-1', members.slice(0, 2), 6, 4);
  for (const c of [leader, ann, ben]) c.roster(shrunk);
  const second = await leader.next<E2eeDistributeRequest>('e2eeDistribute');
  assert.is(second.epoch, 5);
  assert.equal(
    second.keys.map((k) => k.participantId),
    ['p-1'],
  );
  await waitFor(() => leader.e2ee.securityCode !== code);
  // An old or repeated revision changes nothing.
  leader.roster(rosterOf('f-1', members, 6, 4));
  leader.roster(rosterOf('f-1', members, 2, 0));
  ann.key({ epoch: 5, from: 'f-1', wrapped: second.keys[0]?.wrapped as string });
  await acknowledged(ann, 5);
  assert.is(ann.e2ee.epoch, 4, 'still sending with epoch 4 until 5 is activated');
  leader.activate(5);
  ann.activate(5);
  assert.is(ann.e2ee.epoch, 5);
  ann.activate(4);
  assert.is(ann.e2ee.epoch, 5, 'activation never goes back');
  assert.is(leader.count('e2eeDistribute'), 2, 'no distribution for stale revisions');
  assert.equal(ann.events, ['state waiting', 'code set', 'state active', 'epoch 4', 'code set', 'epoch 5']);
  for (const c of [leader, ann, ben]) c.exchange.close();
  assert.is(ann.e2ee.state, 'off');
  assert.is(ann.e2ee.securityCode, null);
  assert.is(ann.e2ee.epoch, null);
  assert.equal(leader.errors, []);
});

test('a revision while the leader wraps supersedes it: who left gets no key of the next epoch', async () => {
  const [lk, ak, ck] = (await pairs(3)) as [E2eeKeyPair, E2eeKeyPair, E2eeKeyPair];
  const leader = client('f-1', lk);
  const everyone = [
    { id: 'f-1', publicKey: lk.publicKey },
    { id: 'p-1', publicKey: ak.publicKey },
    { id: 'p-3', publicKey: ck.publicKey },
  ];
  leader.enter(rosterOf('f-1', everyone, 1));
  // Before the first distribution is wrapped, p-3 is removed.
  leader.roster(rosterOf('f-1', everyone.slice(0, 2), 2));
  const sent = await leader.next<E2eeDistributeRequest>('e2eeDistribute');
  assert.equal(
    sent.keys.map((k) => k.participantId),
    ['p-1'],
  );
  leader.roster(rosterOf('f-1', everyone.slice(0, 2), 3));
  assert.is((await leader.next<E2eeDistributeRequest>('e2eeDistribute')).epoch, sent.epoch + 1);
  assert.is(leader.count('e2eeDistribute'), 2, 'the superseded one was never sent');
  leader.exchange.close();
});

test('epochs only go up: a new leader continues above the roster’s epoch and every epoch it saw', async () => {
  const [ak, bk] = (await pairs(2)) as [E2eeKeyPair, E2eeKeyPair];
  const ann = client('p-1', ak);
  const members = [
    { id: 'f-1', publicKey: bk.publicKey },
    { id: 'p-1', publicKey: ak.publicKey },
  ];
  ann.enter(rosterOf('f-1', members, 1, 2));
  ann.activate(11);
  ann.key({ epoch: 12, from: 'f-1', wrapped: 'AAAA' });
  // The facilitator leaves; Ann leads a roster whose epoch lags behind what she saw.
  ann.roster(rosterOf('p-1', members.slice(1), 2, 7));
  assert.is((await ann.next<E2eeDistributeRequest>('e2eeDistribute')).epoch, 13);
  ann.roster(rosterOf('p-1', members.slice(1), 3, 40));
  assert.is((await ann.next<E2eeDistributeRequest>('e2eeDistribute')).epoch, 41);
  ann.exchange.close();
});

test('keys only from the leader: another member’s key, or a key the leader did not wrap, is not kept', async () => {
  const [lk, ak, mk] = (await pairs(3)) as [E2eeKeyPair, E2eeKeyPair, E2eeKeyPair];
  const leader = client('f-1', lk);
  const mallory = client('p-9', mk);
  const ann = client('p-1', ak);
  const members = [
    { id: 'f-1', publicKey: lk.publicKey },
    { id: 'p-1', publicKey: ak.publicKey },
    { id: 'p-9', publicKey: mk.publicKey },
  ];
  const roster = rosterOf('f-1', members, 1);
  for (const c of [leader, ann]) c.enter(roster);
  const { keys } = await leader.next<E2eeDistributeRequest>('e2eeDistribute');
  const forAnn = keys.find((k) => k.participantId === 'p-1')?.wrapped as string;
  // Mallory leads a roster of her own making: her distribution reaches Ann as a key "from" her.
  mallory.enter(rosterOf('p-9', members, 1));
  const forged = await mallory.next<E2eeDistributeRequest>('e2eeDistribute');
  const forgedForAnn = forged.keys.find((k) => k.participantId === 'p-1')?.wrapped as string;
  ann.key({ epoch: forged.epoch, from: 'p-9', wrapped: forgedForAnn });
  // …or claimed to come from the leader: it does not open with the leader's key.
  ann.key({ epoch: forged.epoch + 1, from: 'f-1', wrapped: forgedForAnn });
  await waitForErrors(ann, 1);
  assert.is(ann.count('e2eeKeyReceived'), 0);
  ann.key({ epoch: 1, from: 'f-1', wrapped: forAnn });
  await acknowledged(ann, 1);
  ann.activate(1);
  assert.is(ann.e2ee.state, 'active');
  assert.is(ann.e2ee.epoch, 1);
  for (const c of [leader, ann, mallory]) c.exchange.close();
});

test('the leader rotates on its timer; stepping down stops it; leaving forgets the keys', async () => {
  const [lk, ak] = (await pairs(2)) as [E2eeKeyPair, E2eeKeyPair];
  const leader = client('f-1', lk);
  const members = [
    { id: 'f-1', publicKey: lk.publicKey },
    { id: 'p-1', publicKey: ak.publicKey },
  ];
  leader.enter(rosterOf('f-1', members, 1, 0, 10));
  const epochs: number[] = [];
  for (let i = 0; i < 3; i++) epochs.push((await leader.next<E2eeDistributeRequest>('e2eeDistribute')).epoch);
  assert.equal(epochs, [1, 2, 3], 'one revision, then the timer');
  leader.activate(3);
  assert.is(leader.e2ee.state, 'active');
  leader.roster(rosterOf('p-1', members, 2, 3, 10));
  assert.not.ok(leader.e2ee.isLeader);
  const made = leader.count('e2eeDistribute');
  // The timer would have fired several times by now.
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.ok(leader.count('e2eeDistribute') <= made + 1, 'at most the one already under way');
  const settled = leader.count('e2eeDistribute');
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.is(leader.count('e2eeDistribute'), settled, 'no rotation once another leads');
  leader.exchange.leave();
  assert.is(leader.e2ee.state, 'off');
  assert.is(leader.e2ee.enabled, false);
  assert.is(leader.e2ee.memberCount, 0);
  leader.exchange.close();
});

test('a resumed place keeps its keys; a new admission starts without them', async () => {
  const [lk, ak] = (await pairs(2)) as [E2eeKeyPair, E2eeKeyPair];
  const leader = client('f-1', lk);
  const ann = client('p-1', ak);
  const members = [
    { id: 'f-1', publicKey: lk.publicKey },
    { id: 'p-1', publicKey: ak.publicKey },
  ];
  leader.enter(rosterOf('f-1', members, 1));
  ann.enter(rosterOf('f-1', members, 1));
  const { keys } = await leader.next<E2eeDistributeRequest>('e2eeDistribute');
  ann.key({ epoch: 1, from: 'f-1', wrapped: keys[0]?.wrapped as string });
  await acknowledged(ann, 1);
  ann.activate(1);
  ann.enter(rosterOf('f-1', members, 2, 1), true);
  assert.is(ann.e2ee.state, 'active', 'resumed: still sending with epoch 1');
  ann.enter(rosterOf('f-1', members, 3, 1), false);
  assert.is(ann.e2ee.state, 'waiting', 'admitted afresh: a key is needed');
  for (const c of [leader, ann]) c.exchange.close();
});

test('a distribution refused in a race: the own secret dropped, an epoch taken is retried above it, the leader’s key wins', async () => {
  const [fk, bk] = (await pairs(2)) as [E2eeKeyPair, E2eeKeyPair];
  const refusal = (code: string) => Object.assign(new Error(code), { code });
  const answers: string[] = ['INVALID_STATE', 'FORBIDDEN'];
  // Ben rejoins first after a failover and leads for a moment; the server refuses its epochs.
  const ben = client('p-2', bk, (name, payload) => {
    if (name !== 'e2eeDistribute') return {};
    const code = answers.shift();
    if (code) throw refusal(code);
    return { delivered: (payload as E2eeDistributeRequest).keys.map((k) => k.participantId) };
  });
  const fay = client('f-1', fk);
  const members = [
    { id: 'p-2', publicKey: bk.publicKey },
    { id: 'f-1', publicKey: fk.publicKey },
  ];
  ben.enter(rosterOf('p-2', members, 1, 0), true);
  const first = await ben.next<E2eeDistributeRequest>('e2eeDistribute');
  // INVALID_STATE (another leader took that epoch): tried again above it.
  const second = await ben.next<E2eeDistributeRequest>('e2eeDistribute');
  assert.is(first.epoch, 1);
  assert.is(second.epoch, 2, 'retried above the refused epoch');
  // FORBIDDEN: no longer the leader; its own secret for epoch 2 is dropped, not kept to send with.
  // The refusal is handled in microtasks: all done by the next turn of the event loop.
  await new Promise(setImmediate);
  ben.activate(2);
  assert.is(ben.e2ee.state, 'waiting', 'no secret of a refused distribution to send with');
  // The facilitator leads and draws epoch 2 itself: Ben takes the leader's secret.
  fay.enter(rosterOf('f-1', members, 2, 1));
  ben.roster(rosterOf('f-1', members, 2, 1));
  const real = await fay.next<E2eeDistributeRequest>('e2eeDistribute');
  assert.is(real.epoch, 2);
  ben.key({ epoch: 2, from: 'f-1', wrapped: real.keys.find((k) => k.participantId === 'p-2')?.wrapped as string });
  await acknowledged(ben, 2);
  for (const c of [ben, fay]) c.activate(2);
  assert.is(ben.e2ee.state, 'active');
  const sealed = await ben.exchange.sealChat('one key for both', 'everyone');
  const opened = await fay.exchange.openChat({ id: 'm-9', from: 'p-2', to: 'everyone', text: sealed, sentAt: 1 });
  assert.is(opened.text, 'one key for both', 'Ben sends with the leader’s secret');
  assert.equal(ben.errors, [], 'a race is not an error for the app');
  for (const c of [ben, fay]) c.exchange.close();
});

test('chat: sealed with the active epoch’s key, opened by members, undecryptable without the key; the test hook', async () => {
  const hook: { secrets?: Record<number, string> } = {};
  (globalThis as { __havenE2eeTest?: unknown }).__havenE2eeTest = hook;
  try {
    const [lk, ak, bk] = (await pairs(3)) as [E2eeKeyPair, E2eeKeyPair, E2eeKeyPair];
    const leader = client('f-1', lk);
    const ann = client('p-1', ak);
    const late = client('p-2', bk);
    const members = [
      { id: 'f-1', publicKey: lk.publicKey },
      { id: 'p-1', publicKey: ak.publicKey },
    ];
    for (const c of [leader, ann]) c.enter(rosterOf('f-1', members, 1));
    await throwsAsync(() => leader.exchange.sealChat('too early', 'everyone'), InvalidStateError, /not active/);
    const { keys, epoch } = await leader.next<E2eeDistributeRequest>('e2eeDistribute');
    ann.key({ epoch, from: 'f-1', wrapped: keys[0]?.wrapped as string });
    await acknowledged(ann, epoch);
    assert.ok(hook.secrets?.[epoch], 'the hook holds the epoch secret');
    for (const c of [leader, ann]) c.activate(epoch);
    const text = 'Today I called my sponsor. 💬';
    const sealed = await leader.exchange.sealChat(text, 'everyone');
    assert.match(sealed, e2eeChatPattern);
    assert.ok(sealed.startsWith(`e2ee1.${epoch}.`));
    assert.not.ok(sealed.includes('sponsor'));
    const message = { id: 'm-1', from: 'f-1', to: 'everyone', text: sealed, sentAt: 1 };
    assert.equal(await ann.exchange.openChat(message), { ...message, text });
    assert.equal(await leader.exchange.openChat(message), { ...message, text }, 'the sender reads its own');
    // Re-attributed or re-addressed by the server: it does not open.
    assert.equal(await ann.exchange.openChat({ ...message, from: 'p-1' }), {
      ...message,
      from: 'p-1',
      text: '',
      undecryptable: true,
    });
    assert.is((await ann.exchange.openChat({ ...message, to: 'facilitators' })).undecryptable, true);
    assert.is((await ann.exchange.openChat({ ...message, text: 'plain text' })).undecryptable, true);
    // Someone admitted later gets the next epoch's key, not the one of what was said before.
    const joined = rosterOf('f-1', [...members, { id: 'p-2', publicKey: bk.publicKey }], 2, epoch);
    late.enter(joined);
    leader.roster(joined);
    const next = await leader.next<E2eeDistributeRequest>('e2eeDistribute');
    late.key({
      epoch: next.epoch,
      from: 'f-1',
      wrapped: next.keys.find((k) => k.participantId === 'p-2')?.wrapped ?? '',
    });
    await acknowledged(late, next.epoch);
    assert.is((await late.exchange.openChat(message)).undecryptable, true);
    const longest = await leader.exchange.sealChat('\u{1F600}'.repeat(1_000), 'p-1');
    assert.match(longest, e2eeChatPattern);
    for (const c of [leader, ann, late]) c.exchange.close();
  } finally {
    delete (globalThis as { __havenE2eeTest?: unknown }).__havenE2eeTest;
  }
});

async function waitFor(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise<void>((resolve) => setImmediate(resolve));
}

function waitForErrors(c: Client, n: number): Promise<void> {
  return waitFor(() => c.errors.length >= n);
}

test.run();
