/**
 * Breakouts in an end-to-end encrypted room, over raw sockets to a real node: each group is a key
 * space of its own (the main room another), whose roster holds the group's members and every
 * facilitator. A participant is told only its own space's roster, a facilitator every space's; a
 * leader's keys for a group reach only that group and the facilitators, and only that space's
 * leader may distribute them; a move is a new revision in both spaces, so that the one who left
 * gets no key of what follows; at the recall, one roster again.
 */
import { createECDH, randomBytes } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { waitFor } from '../../bench/processes.ts';
import { type E2eeRoster, protocolVersion, type Role } from '../../client-sdk/src/protocol/index.ts';
import { sessionNode } from '../helpers/session-node.ts';
import { admitted, codeOf, connect, ok, request, type TestSocket, token } from '../helpers/signaling-client.ts';

const haven = sessionNode(test, {
  // A long acknowledgement wait: an epoch active within a test's few seconds came from the acks.
  env: { HAVEN_E2EE_KEY_ACK_TIMEOUT_MS: '60000', HAVEN_MEDIA_WORKERS: '1' },
  roomPrefix: 'e2ee-breakouts',
  room: { title: 'Encrypted breakouts', e2ee: true, waitingRoom: false },
});
const { node } = haven;

interface Peer {
  id: string;
  socket: TestSocket;
  publicKey: string;
  /** Every notification it received, in order. */
  seen: { name: string; args: unknown[] }[];
}

async function joined(room: string, id: string, role: Role = 'participant'): Promise<Peer> {
  const socket = await connect(node.url, token(room, id, role));
  haven.sockets.push(socket);
  const seen: Peer['seen'] = [];
  socket.onAny((name: string, ...args: unknown[]) => seen.push({ name, args }));
  const publicKey = createECDH('prime256v1').generateKeys('base64');
  const p: Peer = { id, socket, publicKey, seen };
  admitted(await ok(socket, 'join', { protocolVersion, e2ee: { publicKey } }));
  return p;
}

/** A round trip: whatever the server sent them before is in their `seen` after it. */
async function settled(...peers: Peer[]): Promise<void> {
  for (const p of peers) assert.is((await request(p.socket, 'join', {})).ok, false);
}

const told = <T>(p: Peer, name: string): T[] => p.seen.filter((s) => s.name === name).map((s) => s.args[0] as T);
const rosters = (p: Peer) => told<E2eeRoster>(p, 'e2eeRoster');
/** The latest roster `p` was told of each space, by space (`main` for the main room). */
function latest(p: Peer): Record<string, E2eeRoster> {
  const bySpace: Record<string, E2eeRoster> = {};
  for (const r of rosters(p)) bySpace[r.breakoutId ?? 'main'] = r;
  return bySpace;
}
const idsOf = (roster: E2eeRoster | undefined) => roster?.members.map((m) => m.participantId);
const spacesTold = (p: Peer) => [...new Set(rosters(p).map((r) => r.breakoutId ?? 'main'))].sort();
const wrappedKey = () => randomBytes(113).toString('base64');
const keysFor = (...ids: string[]) => ids.map((participantId) => ({ participantId, wrapped: wrappedKey() }));

/** A room with a facilitator and four participants, in two groups (b1: p1 p2, b2: p3 p4) once started. */
async function inBreakouts() {
  const room = await haven.newRoom();
  const f = await joined(room, 'f', 'facilitator');
  const people: Peer[] = [];
  for (const id of ['p1', 'p2', 'p3', 'p4']) people.push(await joined(room, id));
  const plan = await ok(f.socket, 'createBreakouts', {
    groups: [
      { name: 'A', members: ['p1', 'p2'] },
      { name: 'B', members: ['p3', 'p4'] },
    ],
  });
  assert.equal(
    plan.groups.map((g) => g.id),
    ['b1', 'b2'],
  );
  await settled(f, ...people);
  const before = Object.fromEntries([f, ...people].map((p) => [p.id, p.seen.length]));
  await ok(f.socket, 'startBreakouts', {});
  await settled(f, ...people);
  return { room, f, people: people as [Peer, Peer, Peer, Peer], before };
}

test('each participant is told its own space only; the facilitator every space; keys for a group reach only it', async () => {
  const { f, people, before } = await inBreakouts();
  const [p1, p2, p3, p4] = people;
  for (const [p, group, ids] of [
    [p1, 'b1', ['f', 'p1', 'p2']],
    [p2, 'b1', ['f', 'p1', 'p2']],
    [p3, 'b2', ['f', 'p3', 'p4']],
    [p4, 'b2', ['f', 'p3', 'p4']],
  ] as const) {
    const moved = p.seen.findIndex((s, i) => i >= (before[p.id] ?? 0) && s.name === 'movedToBreakout');
    assert.ok(moved > 0, `${p.id} moved`);
    const since = p.seen.slice(moved).filter((s) => s.name === 'e2eeRoster');
    assert.ok(since.length > 0, `${p.id} told of its group`);
    const spaces = new Set(since.map((s) => (s.args[0] as E2eeRoster).breakoutId));
    assert.equal([...spaces], [group], `${p.id}: its own space only, once moved`);
    assert.equal(spacesTold(p), [group, 'main'], `${p.id}: never the other group's roster`);
    const own = latest(p)[group];
    assert.equal(idsOf(own), [...ids], `${p.id}: its group and the facilitator`);
    assert.is(own?.leader, 'f');
  }
  const spaces = latest(f);
  assert.equal(Object.keys(spaces).sort(), ['b1', 'b2', 'main']);
  assert.equal(idsOf(spaces.main), ['f'], 'the main room: the facilitator alone');
  assert.equal(idsOf(spaces.b1), ['f', 'p1', 'p2']);
  assert.equal(idsOf(spaces.b2), ['f', 'p3', 'p4']);
  const revisions = rosters(f).map((r) => r.revision);
  assert.equal(
    revisions,
    [...revisions].sort((a, b) => a - b),
    'one revision counter for the room',
  );

  // Group A's leader (the facilitator) distributes: only A's members get a key.
  const keys = keysFor('p1', 'p2', 'p3', 'p4');
  const answer = await ok(f.socket, 'e2eeDistribute', { epoch: 10, keys, breakoutId: 'b1' });
  assert.equal(answer.delivered.sort(), ['p1', 'p2']);
  await ok(p1.socket, 'e2eeKeyReceived', { epoch: 10 });
  await ok(p2.socket, 'e2eeKeyReceived', { epoch: 10 });
  await settled(f, ...people);
  for (const p of [p1, p2]) {
    assert.equal(told(p, 'e2eeKey'), [
      { epoch: 10, from: 'f', wrapped: keys.find((k) => k.participantId === p.id)?.wrapped, breakoutId: 'b1' },
    ]);
    assert.equal(told(p, 'e2eeEpochActive'), [{ epoch: 10, breakoutId: 'b1' }]);
  }
  for (const p of [p3, p4]) {
    assert.equal(told(p, 'e2eeKey'), [], `${p.id}: no key of the other group`);
    assert.equal(told(p, 'e2eeEpochActive'), [], `${p.id}: no activation of the other group`);
  }
  assert.equal(told(f, 'e2eeEpochActive'), [{ epoch: 10, breakoutId: 'b1' }], 'the facilitator decrypts group A too');

  // Only a space's leader distributes its keys; epochs stay unique across the spaces.
  assert.is(await codeOf(p1.socket, 'e2eeDistribute', { epoch: 11, keys: [], breakoutId: 'b1' }), 'FORBIDDEN');
  assert.is(await codeOf(p3.socket, 'e2eeDistribute', { epoch: 11, keys: [], breakoutId: 'b1' }), 'FORBIDDEN');
  assert.is(await codeOf(p3.socket, 'e2eeDistribute', { epoch: 11, keys: [] }), 'FORBIDDEN', 'nor the main room');
  assert.is(await codeOf(f.socket, 'e2eeDistribute', { epoch: 11, keys: [], breakoutId: 'b9' }), 'FORBIDDEN');
  assert.is(await codeOf(f.socket, 'e2eeDistribute', { epoch: 10, keys: [], breakoutId: 'b2' }), 'INVALID_STATE');
  const forB = await ok(f.socket, 'e2eeDistribute', { epoch: 11, keys, breakoutId: 'b2' });
  assert.equal(forB.delivered.sort(), ['p3', 'p4']);
  await settled(p1);
  assert.is(told(p1, 'e2eeKey').length, 1, 'group A got nothing of group B');
});

test('a move: a new revision in both spaces, and the one who left gets no key of its old group', async () => {
  const { f, people } = await inBreakouts();
  const [p1, p2, p3, p4] = people;
  await ok(f.socket, 'moveToBreakout', { participantId: 'p1', breakoutId: 'b2' });
  await settled(f, ...people);
  assert.equal(idsOf(latest(p2).b1), ['f', 'p2'], 'group A without the mover');
  assert.equal(idsOf(latest(p1).b2), ['f', 'p1', 'p3', 'p4'], 'the mover is told its new space');
  assert.equal(idsOf(latest(p3).b2), ['f', 'p1', 'p3', 'p4']);
  const last = rosters(p1).at(-1);
  assert.is(last?.breakoutId, 'b2', 'nothing of group A after the move');
  assert.equal(idsOf(latest(f).b1), ['f', 'p2']);
  assert.equal(idsOf(latest(f).b2), ['f', 'p1', 'p3', 'p4']);

  // Group A's next epoch (its rotation after the move) is not relayed to the one who left.
  const a = await ok(f.socket, 'e2eeDistribute', { epoch: 20, keys: keysFor('p1', 'p2'), breakoutId: 'b1' });
  assert.equal(a.delivered, ['p2'], 'the mover cannot decrypt the group it left');
  const forB = keysFor('p1', 'p3', 'p4');
  const b = await ok(f.socket, 'e2eeDistribute', { epoch: 21, keys: forB, breakoutId: 'b2' });
  assert.equal(b.delivered.sort(), ['p1', 'p3', 'p4']);
  for (const p of [p1, p3, p4]) await ok(p.socket, 'e2eeKeyReceived', { epoch: 21 });
  await settled(p1, p2);
  assert.equal(told(p1, 'e2eeKey'), [{ epoch: 21, from: 'f', wrapped: forB[0]?.wrapped, breakoutId: 'b2' }]);
  assert.equal(told(p1, 'e2eeEpochActive'), [{ epoch: 21, breakoutId: 'b2' }], 'its new space’s epoch to send with');
  assert.equal(told(p2, 'e2eeEpochActive'), [], 'group A still awaits p2');

  // The facilitator drops: each space's leader is its first connected member.
  const dropped = node.logs.filter((l) => l.msg === 'participant disconnected; place kept').length;
  f.socket.disconnect();
  await waitFor(
    () => node.logs.filter((l) => l.msg === 'participant disconnected; place kept').length > dropped,
    10_000,
    'the facilitator’s drop',
  );
  await settled(...people);
  assert.is(latest(p2).b1?.leader, 'p2');
  assert.is(latest(p3).b2?.leader, 'p1', 'longest present in group B');
  assert.is(await codeOf(p2.socket, 'e2eeDistribute', { epoch: 30, keys: [], breakoutId: 'b1' }), 'ok');
  assert.is(await codeOf(p2.socket, 'e2eeDistribute', { epoch: 31, keys: [], breakoutId: 'b2' }), 'FORBIDDEN');
});

test('a facilitator arriving during breakouts is told every space; after the recall, one roster again', async () => {
  const { room, f, people } = await inBreakouts();
  const f2 = await joined(room, 'f2', 'facilitator');
  await settled(f2, f, ...people);
  const own = told<{ e2ee: E2eeRoster }>(f2, 'admitted');
  assert.equal(own, [], 'admitted at once');
  assert.equal(Object.keys(latest(f2)).sort(), ['b1', 'b2'], 'the other spaces, told with the join');
  assert.equal(idsOf(latest(f2).b1), ['f', 'p1', 'p2', 'f2']);
  assert.equal(idsOf(latest(people[0]).b1), ['f', 'p1', 'p2', 'f2'], 'every facilitator is in every group’s roster');

  await ok(f.socket, 'recallBreakouts', {});
  await settled(f, f2, ...people);
  for (const p of [f, f2]) {
    const spaces = latest(p);
    for (const group of ['b1', 'b2']) {
      assert.equal(
        { members: spaces[group]?.members, leader: spaces[group]?.leader },
        { members: [], leader: null },
        `${p.id}: ${group} ended`,
      );
    }
  }
  for (const p of [f, f2, ...people]) {
    assert.equal(idsOf(latest(p).main), ['f', 'p1', 'p2', 'p3', 'p4', 'f2'], p.id);
  }
  for (const p of people) assert.is(rosters(p).at(-1)?.breakoutId, null, `${p.id}: back in the main room's space`);
  assert.is(await codeOf(f.socket, 'e2eeDistribute', { epoch: 99, keys: [], breakoutId: 'b1' }), 'FORBIDDEN');
  const all = await ok(f.socket, 'e2eeDistribute', { epoch: 100, keys: keysFor('p1', 'p3', 'f2'), breakoutId: null });
  assert.equal(all.delivered.sort(), ['f2', 'p1', 'p3']);
});

test('a broadcast: one sealed copy per place, each relayed to its own place only; refused unless every place someone is in has one', async () => {
  const { f, people } = await inBreakouts();
  const [p1, p2, p3, p4] = people;
  const sealed = (epoch: number) => `e2ee1.${epoch}.${randomBytes(40).toString('base64')}`;
  const copies = { main: sealed(1), b1: sealed(2), b2: sealed(3) };
  const texts = [
    { breakoutId: null, text: copies.main },
    { breakoutId: 'b1', text: copies.b1 },
    { breakoutId: 'b2', text: copies.b2 },
  ];
  const received = (p: Peer) => told<{ text: string; breakoutId: string | null }>(p, 'broadcastReceived');
  // Refused, and nothing relayed: clear text, a place someone is in left out, an unknown group,
  // two copies for one place, a copy in clear, a participant sending.
  const refusals: [string, unknown, string][] = [
    ['clear text in an E2EE room', { text: 'Five minutes left' }, 'INVALID_STATE'],
    ['no copy for group b2', { texts: texts.slice(0, 2) }, 'INVALID_STATE'],
    ['an unknown group', { texts: [...texts, { breakoutId: 'b9', text: sealed(4) }] }, 'NOT_FOUND'],
    ['two copies for b1', { texts: [...texts, { breakoutId: 'b1', text: sealed(4) }] }, 'INVALID_REQUEST'],
    ['a copy in clear', { texts: [...texts.slice(0, 2), { breakoutId: 'b2', text: 'hi' }] }, 'INVALID_REQUEST'],
  ];
  for (const [what, payload, code] of refusals) {
    assert.is(await codeOf(f.socket, 'broadcastToBreakouts', payload), code, what);
  }
  assert.is(await codeOf(p1.socket, 'broadcastToBreakouts', { texts }), 'FORBIDDEN', 'a participant');
  await settled(f, ...people);
  for (const p of [f, ...people]) assert.equal(received(p), [], `${p.id}: nothing relayed of a refused broadcast`);

  const { sentAt } = await ok(f.socket, 'broadcastToBreakouts', { texts });
  await settled(f, ...people);
  for (const [p, place] of [
    [f, null],
    [p1, 'b1'],
    [p2, 'b1'],
    [p3, 'b2'],
    [p4, 'b2'],
  ] as const) {
    const copy = copies[place ?? 'main'];
    assert.equal(
      told(p, 'broadcastReceived'),
      [{ from: 'f', name: 'Name of f', text: copy, sentAt, breakoutId: place }],
      `${p.id}: its place's copy only`,
    );
  }
  // An empty group needs no copy: everyone back but the facilitator, who visits b1.
  await ok(f.socket, 'moveToBreakout', { participantId: 'p3', breakoutId: 'b1' });
  await ok(f.socket, 'moveToBreakout', { participantId: 'p4', breakoutId: 'b1' });
  await ok(f.socket, 'visitBreakout', { breakoutId: 'b1' });
  await ok(f.socket, 'broadcastToBreakouts', { texts: [{ breakoutId: 'b1', text: copies.b1 }] });
});

test('texts are for E2EE rooms: a clear room refuses them (INVALID_REQUEST)', async () => {
  const room = await haven.newRoom({ e2ee: false });
  const f = await joined(room, 'f', 'facilitator');
  await joined(room, 'p1');
  await ok(f.socket, 'createBreakouts', { count: 1 });
  await ok(f.socket, 'startBreakouts', {});
  const texts = [{ breakoutId: null, text: `e2ee1.1.${randomBytes(40).toString('base64')}` }];
  assert.is(await codeOf(f.socket, 'broadcastToBreakouts', { texts }), 'INVALID_REQUEST');
});

test.run();
