/**
 * End-to-end encrypted rooms, as the server enforces them, over raw sockets to a real node: the
 * public key at join (E2EE_UNSUPPORTED without one), the key roster and its revisions at each
 * change of who is in the session, the leader, hidden observers, the relay of wrapped keys to
 * their own recipient only, the epoch's activation (after every acknowledgement, or the
 * timeout), ciphertext-only chat that never reaches Redis or the log in clear, and the codecs an
 * E2EE room carries. A second node has a short reconnection grace and acknowledgement timeout.
 */
import { createCipheriv, createECDH, randomBytes } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { NodeProcess } from '../../bench/node-process.ts';
import { waitFor } from '../../bench/processes.ts';
import {
  type E2eeRoster,
  maxE2eeRecipients,
  maxE2eeWrappedKeyLength,
  maxEncryptedChatLength,
  type NotificationName,
  protocolVersion,
  type Role,
  type SessionState,
} from '../../client-sdk/src/protocol/index.ts';
import { lateBound } from '../helpers/hooks.ts';
import { opusAudioParameters } from '../helpers/rtp.ts';
import { sessionNode } from '../helpers/session-node.ts';
import {
  admin,
  admitted,
  codeOf,
  connect,
  next,
  ok,
  request,
  type TestSocket,
  token,
} from '../helpers/signaling-client.ts';
import { redisContents } from '../helpers/test-redis.ts';

const haven = sessionNode(test, {
  redis: true,
  // A long acknowledgement wait: an epoch active within a test's few seconds came from the acks.
  env: { HAVEN_E2EE_KEY_ACK_TIMEOUT_MS: '60000', HAVEN_LOG_LEVEL: 'debug', HAVEN_MEDIA_WORKERS: '1' },
  roomPrefix: 'e2ee',
  room: { title: 'Encrypted group', e2ee: true },
});
const { node } = haven;
const redis = haven.redisClient();
/** Short grace and acknowledgement timeout, and rooms E2EE by default. */
const quick = lateBound<NodeProcess>('the quick node');

test.before(async () => {
  quick.set(
    await haven.startNode({
      HAVEN_ROOMS_RECONNECT_GRACE_S: '1',
      HAVEN_E2EE_KEY_ACK_TIMEOUT_MS: '300',
      HAVEN_E2EE_DEFAULT: 'true',
      HAVEN_MEDIA_WORKERS: '1',
      // Its own (embedded) Redis: two nodes on one Redis would share, and redirect, the rooms.
      REDIS_URL: undefined,
    }),
  );
});

const e2eeNames: NotificationName[] = ['e2eeRoster', 'e2eeKey', 'e2eeEpochActive'];

/** A fresh ECDH P-256 public key, as a browser exports it (uncompressed point, base64). */
const newPublicKey = (): string => createECDH('prime256v1').generateKeys('base64');

interface Peer {
  id: string;
  socket: TestSocket;
  publicKey: string;
  /** Every notification it received, in order. */
  seen: { name: string; args: unknown[] }[];
}

/** A connected socket for `id` (on the main node unless `url`), not joined yet. */
async function peer(room: string, id: string, role: Role = 'participant', url = node.url): Promise<Peer> {
  const socket = await connect(url, token(room, id, role));
  haven.sockets.push(socket);
  const seen: Peer['seen'] = [];
  socket.onAny((name: string, ...args: unknown[]) => seen.push({ name, args }));
  return { id, socket, publicKey: newPublicKey(), seen };
}

const join = (p: Peer) => ok(p.socket, 'join', { protocolVersion, e2ee: { publicKey: p.publicKey } });

async function joined(room: string, id: string, role: Role = 'participant', url = node.url): Promise<Peer> {
  const p = await peer(room, id, role, url);
  await join(p);
  return p;
}

/** Admits `p` (waiting) through `facilitator`; resolves with the session it was given. */
async function admit(facilitator: Peer, p: Peer): Promise<SessionState> {
  const entering = next(p.socket, 'admitted');
  await ok(facilitator.socket, 'admit', { participantId: p.id });
  return (await entering)[0];
}

/**
 * A round trip: whatever the server sent `p` before is in `p.seen` after it (so that a `next`
 * set up then waits for what comes after, not for something already on its way).
 */
async function settled(...peers: Peer[]): Promise<void> {
  for (const p of peers) assert.is((await request(p.socket, 'join', {})).ok, false);
}

const idsOf = (roster: E2eeRoster) => roster.members.map((m) => m.participantId);
const seenNames = (p: Peer) => p.seen.map((s) => s.name);
const nextRoster = async (p: Peer) => (await next(p.socket, 'e2eeRoster'))[0];

/** Closes `p`'s socket and waits until the room saw it go (its log line: a drop tells nobody else). */
async function drop(p: Peer, on: NodeProcess = node): Promise<void> {
  const seen = () => on.logs.filter((l) => l.msg === 'participant disconnected; place kept' && l.participant === p.id);
  const before = seen().length;
  p.socket.disconnect();
  await waitFor(() => seen().length > before, 10_000, `${p.id}'s drop`);
}

/* ---- joining ---- */

test('an E2EE room refuses a join without a public key (E2EE_UNSUPPORTED) and a key that is not a P-256 point', async () => {
  const room = await haven.newRoom();
  const p = await peer(room, 'no-key', 'facilitator');
  assert.is(await codeOf(p.socket, 'join', { protocolVersion }), 'E2EE_UNSUPPORTED');
  const valid = Buffer.from(newPublicKey(), 'base64');
  const offCurve = Buffer.from(valid);
  offCurve[64] = (offCurve[64] ?? 0) ^ 1;
  for (const publicKey of ['not a key', valid.subarray(0, 33).toString('base64'), offCurve.toString('base64')]) {
    assert.is(await codeOf(p.socket, 'join', { protocolVersion, e2ee: { publicKey } }), 'INVALID_REQUEST', publicKey);
  }
  assert.is(await codeOf(p.socket, 'join', { protocolVersion, e2ee: { publicKey: 7 } }), 'INVALID_REQUEST');
  // Nobody got in: the same connection joins once it brings a key.
  assert.is((await admin(node.url, 'GET', `/v1/rooms/${room}`)).body.data.live.participants, 0);
  const session = admitted(await join(p));
  assert.is(session.room.e2ee, true);
  assert.equal(session.e2ee, {
    breakoutId: null,
    leader: 'no-key',
    members: [{ participantId: 'no-key', publicKey: p.publicKey }],
    revision: 1,
    epoch: 0,
    rotationIntervalMs: 900_000,
  });
  assert.is((await admin(node.url, 'GET', `/v1/rooms/${room}`)).body.data.e2ee, true);
});

test('a room that is not E2EE ignores the key: no roster, no key exchange, clear chat and H264', async () => {
  const room = await haven.newRoom({ e2ee: false, waitingRoom: false });
  assert.is((await admin(node.url, 'GET', `/v1/rooms/${room}`)).body.data.e2ee, false);
  const f = await peer(room, 'plain-f', 'facilitator');
  const session = admitted(await join(f));
  assert.is(session.room.e2ee, false);
  assert.is(session.e2ee, undefined);
  const p = await joined(room, 'plain-p');
  assert.is(await codeOf(f.socket, 'e2eeDistribute', { epoch: 1, keys: [] }), 'INVALID_STATE');
  assert.is(await codeOf(p.socket, 'e2eeKeyReceived', { epoch: 0 }), 'INVALID_STATE');
  assert.is(await codeOf(p.socket, 'sendChat', { text: 'hello, in clear', to: 'everyone' }), 'ok');
  assert.is(await codeOf(p.socket, 'sendChat', { text: 'x'.repeat(2_001), to: 'everyone' }), 'INVALID_REQUEST');
  const send = await ok(f.socket, 'createTransport', { direction: 'send' });
  assert.is(await codeOf(f.socket, 'produce', camera(send.id, h264)), 'ok');
  await settled(f, p);
  assert.equal(
    [...seenNames(f), ...seenNames(p)].filter((n) => e2eeNames.includes(n as NotificationName)),
    [],
  );
});

/* ---- the roster ---- */

test('the roster: admission order, a revision for each change, never anyone waiting or at the consent gate', async () => {
  const room = await haven.newRoom({ consentText: 'What is said here stays here.' });
  const f = await joined(room, 'r-f', 'facilitator');
  const atGate = await peer(room, 'r-gate');
  assert.is((await join(atGate)).stage, 'consent');
  const waiters: Peer[] = [];
  for (const id of ['r-p1', 'r-p2', 'r-p3', 'r-denied']) {
    const p = await peer(room, id);
    assert.is((await join(p)).stage, 'consent');
    assert.is((await ok(p.socket, 'acceptConsent', { version: 1 })).stage, 'waiting');
    waiters.push(p);
  }
  const [p1, p2, p3, denied] = waiters as [Peer, Peer, Peer, Peer];
  const told: E2eeRoster[] = [];
  f.socket.on('e2eeRoster', (roster) => told.push(roster));

  // Admitted from the waiting room: the session carries the roster, everyone else is told.
  const toldF = nextRoster(f);
  const s1 = await admit(f, p1);
  const r1 = await toldF;
  assert.equal(s1.e2ee, r1, 'the newcomer gets the revision everyone else is told');
  assert.is(r1.revision, 2);
  assert.equal(idsOf(r1), ['r-f', 'r-p1']);
  assert.equal(
    r1.members.map((m) => m.publicKey),
    [f.publicKey, p1.publicKey],
  );
  assert.is(r1.leader, 'r-f');

  // Denied: never a member, no revision.
  const gone = new Promise((resolve) => denied.socket.once('disconnect', resolve));
  await ok(f.socket, 'deny', { participantId: 'r-denied' });
  await gone;

  const toldP1 = nextRoster(p1);
  await admit(f, p2);
  const r2 = await toldP1;
  assert.is(r2.revision, 3, 'the denial made no revision');
  assert.equal(idsOf(r2), ['r-f', 'r-p1', 'r-p2']);

  // Moved to the waiting room: out of the roster; admitted again, last in it.
  await settled(f);
  let toldF2 = nextRoster(f);
  await ok(f.socket, 'moveToWaitingRoom', { participantId: 'r-p1' });
  const r3 = await toldF2;
  assert.is(r3.revision, 4);
  assert.equal(idsOf(r3), ['r-f', 'r-p2']);
  toldF2 = nextRoster(f);
  await admit(f, p3);
  await toldF2;
  toldF2 = nextRoster(f);
  const again = await admit(f, p1);
  const r5 = await toldF2;
  assert.is(r5.revision, 6);
  assert.equal(idsOf(r5), ['r-f', 'r-p2', 'r-p3', 'r-p1'], 'longest-present first');
  assert.equal(again.e2ee, r5);

  // Leaving, and being removed.
  toldF2 = nextRoster(f);
  await ok(p2.socket, 'leave', {});
  assert.equal(idsOf(await toldF2), ['r-f', 'r-p3', 'r-p1']);
  toldF2 = nextRoster(f);
  await ok(f.socket, 'remove', { participantId: 'r-p3' });
  const r7 = await toldF2;
  assert.is(r7.revision, 8);
  assert.equal(idsOf(r7), ['r-f', 'r-p1']);

  await settled(f, p1, atGate);
  assert.equal(
    told.map((r) => r.revision),
    [2, 3, 4, 5, 6, 7, 8],
    'one revision per change, each told once',
  );
  assert.ok(
    told.every((r) => !idsOf(r).includes('r-denied') && !idsOf(r).includes('r-gate')),
    'nobody waiting or at the gate is a member',
  );
  for (const p of [atGate, denied]) {
    assert.equal(
      seenNames(p).filter((n) => e2eeNames.includes(n as NotificationName)),
      [],
      p.id,
    );
  }
  // While they waited, p1 (moved out) and p3 (before admission) were told nothing of the key exchange.
  const revisionsTo = (p: Peer) =>
    p.seen.filter((s) => s.name === 'e2eeRoster').map((s) => (s.args[0] as E2eeRoster).revision);
  assert.equal(revisionsTo(p1), [3, 7, 8], 'p1: told in the session only (2 and 6 came with its admission)');
  assert.equal(revisionsTo(p3), [6, 7], 'p3: nothing while waiting, nothing once removed');
});

test('the leader drops: the next member leads; rejoining (same or new key) is a new revision', async () => {
  const room = await haven.newRoom({ waitingRoom: false });
  const f = await joined(room, 'l-f', 'facilitator');
  const p1 = await joined(room, 'l-p1');
  const p2 = await joined(room, 'l-p2');
  await settled(p1);
  let toldP1 = nextRoster(p1);
  await drop(f);
  const r1 = await toldP1;
  assert.is(r1.leader, 'l-p1', 'the longest-present connected member');
  assert.equal(idsOf(r1), ['l-f', 'l-p1', 'l-p2'], 'the dropped leader is still a member, within its grace');

  // A member who is not the leader drops: nothing changes (next is told for the rejoin only).
  toldP1 = nextRoster(p1);
  await drop(p2);
  const back = await peer(room, 'l-p2');
  back.publicKey = p2.publicKey;
  const resumed = admitted(await join(back));
  assert.ok(resumed.resumed);
  const r2 = await toldP1;
  assert.is(r2.revision, r1.revision + 1, 'a drop of someone who does not lead is no revision; the rejoin is');
  assert.equal(resumed.e2ee, r2);

  // The facilitator comes back from a reloaded page: a new key, and the lead again.
  toldP1 = nextRoster(p1);
  const f2 = await peer(room, 'l-f', 'facilitator');
  const session = admitted(await join(f2));
  const r3 = await toldP1;
  assert.is(r3.revision, r2.revision + 1);
  assert.is(r3.leader, 'l-f');
  assert.is(r3.members[0]?.publicKey, f2.publicKey, 'the new key replaces the old');
  assert.equal(session.e2ee, r3);
});

test('a dropped member whose grace runs out leaves the roster (short grace)', async () => {
  const url = quick.handle.url;
  const room = await haven.newRoom({ waitingRoom: false }, url);
  const f = await joined(room, 'g-f', 'facilitator', url);
  const p = await joined(room, 'g-p', 'participant', url);
  await settled(f);
  const toldF = nextRoster(f);
  await drop(p, quick.handle);
  const r = await toldF;
  assert.equal(idsOf(r), ['g-f'], 'told once the grace ran out, not at the drop');
  assert.is(r.revision, 3);
});

test('hidden observers are null to participants and named to facilitators; a participant leads before one', async () => {
  const room = await haven.newRoom({ waitingRoom: false });
  const o = await joined(room, 'h-o', 'observer');
  const p = await joined(room, 'h-p');
  await settled(o);
  const toldP = nextRoster(p);
  const toldO = nextRoster(o);
  const f = await peer(room, 'h-f', 'facilitator');
  const own = admitted(await join(f)).e2ee as E2eeRoster;
  const seenByP = await toldP;
  assert.equal(idsOf(seenByP), [null, 'h-p', 'h-f']);
  assert.is(seenByP.members[0]?.publicKey, o.publicKey, 'the observer’s key still counts');
  assert.equal(idsOf(own), ['h-o', 'h-p', 'h-f']);
  assert.equal(idsOf(await toldO), ['h-o', 'h-p', 'h-f']);
  assert.is(own.leader, 'h-f');

  // Without a facilitator, the participant leads, not the observer who came first.
  const room2 = await haven.newRoom({ waitingRoom: false });
  const o2 = await joined(room2, 'h2-o', 'observer');
  const p2 = await peer(room2, 'h2-p');
  const s2 = admitted(await join(p2)).e2ee as E2eeRoster;
  assert.equal(idsOf(s2), [null, 'h2-p']);
  assert.is(s2.leader, 'h2-p');
  await settled(o2);
  const seen = o2.seen.filter((s) => s.name === 'e2eeRoster').map((s) => s.args[0] as E2eeRoster);
  assert.equal(idsOf(seen.at(-1) as E2eeRoster), ['h2-o', 'h2-p']);

  // A room that shows observers names them to everyone.
  const room3 = await haven.newRoom({ waitingRoom: false, observersVisible: true });
  await joined(room3, 'h3-o', 'observer');
  const p3 = await peer(room3, 'h3-p');
  assert.equal(idsOf(admitted(await join(p3)).e2ee as E2eeRoster), ['h3-o', 'h3-p']);
});

/* ---- distributing keys ---- */

const wrappedKey = () => randomBytes(113).toString('base64');

test('e2eeDistribute: the leader only, a new epoch, well formed', async () => {
  const room = await haven.newRoom({ waitingRoom: false });
  const p = await joined(room, 'd-p');
  const f = await joined(room, 'd-f', 'facilitator');
  const keys = [{ participantId: 'd-p', wrapped: wrappedKey() }];
  assert.is(await codeOf(p.socket, 'e2eeDistribute', { epoch: 1, keys: [] }), 'FORBIDDEN', 'a facilitator leads');
  assert.is(await codeOf(f.socket, 'e2eeDistribute', { epoch: 0, keys }), 'INVALID_STATE', 'epoch 0 is not new');
  for (const [what, payload] of [
    ['a fractional epoch', { epoch: 1.5, keys }],
    ['a negative epoch', { epoch: -1, keys }],
    ['an epoch past 32 bits', { epoch: 2 ** 32, keys }],
    ['no keys field', { epoch: 1 }],
    ['a key for someone twice', { epoch: 1, keys: [...keys, ...keys] }],
    [
      'a wrapped key too long',
      { epoch: 1, keys: [{ participantId: 'd-p', wrapped: 'A'.repeat(maxE2eeWrappedKeyLength + 4) }] },
    ],
    ['a wrapped key not base64', { epoch: 1, keys: [{ participantId: 'd-p', wrapped: 'not base64!' }] }],
    ['an empty wrapped key', { epoch: 1, keys: [{ participantId: 'd-p', wrapped: '' }] }],
    ['an extra field', { epoch: 1, keys, leader: 'd-p' }],
    [
      'too many keys',
      {
        epoch: 1,
        keys: Array.from({ length: maxE2eeRecipients + 1 }, (_, i) => ({ participantId: `x${i}`, wrapped: 'AAAA' })),
      },
    ],
  ] as const) {
    assert.is(await codeOf(f.socket, 'e2eeDistribute', payload), 'INVALID_REQUEST', what);
  }
  await settled(p);
  assert.not.ok(seenNames(p).includes('e2eeKey'), 'nothing refused was relayed');
  assert.equal(await ok(f.socket, 'e2eeDistribute', { epoch: 5, keys }), { delivered: ['d-p'] });
  for (const epoch of [5, 3]) {
    assert.is(await codeOf(f.socket, 'e2eeDistribute', { epoch, keys }), 'INVALID_STATE', `epoch ${epoch}`);
  }
  assert.is(await codeOf(p.socket, 'e2eeKeyReceived', { epoch: 6 }), 'INVALID_STATE', 'no key for epoch 6 yet');
  assert.is(await codeOf(p.socket, 'e2eeKeyReceived', { epoch: 5 }), 'ok');
  assert.is(await codeOf(p.socket, 'e2eeKeyReceived', { epoch: 5 }), 'ok', 'idempotent');
  assert.is(await codeOf(p.socket, 'e2eeKeyReceived', { epoch: 2 }), 'ok', 'an older epoch');
});

test('keys go to their own recipient only, connected members of the roster; the epoch is active once all acked', async () => {
  const room = await haven.newRoom();
  const f = await joined(room, 'k-f', 'facilitator');
  const members: Peer[] = [];
  for (const id of ['k-p1', 'k-p2', 'k-p3', 'k-gone']) {
    const p = await peer(room, id);
    assert.is((await join(p)).stage, 'waiting');
    await admit(f, p);
    members.push(p);
  }
  const [p1, p2, p3, removed] = members as [Peer, Peer, Peer, Peer];
  const waiting = await peer(room, 'k-w');
  assert.is((await join(waiting)).stage, 'waiting');
  await settled(f);
  const told = nextRoster(f);
  await ok(f.socket, 'remove', { participantId: 'k-gone' });
  await told;
  await drop(p3);

  const wrapped = Object.fromEntries(
    ['k-p1', 'k-p2', 'k-p3', 'k-gone', 'k-w', 'k-f', 'k-nobody'].map((id) => [id, wrappedKey()]),
  );
  const keys = Object.entries(wrapped).map(([participantId, w]) => ({ participantId, wrapped: w }));
  const toP1 = next(p1.socket, 'e2eeKey');
  const toP2 = next(p2.socket, 'e2eeKey');
  const answer = await ok(f.socket, 'e2eeDistribute', { epoch: 1, keys });
  assert.equal(answer.delivered.sort(), ['k-p1', 'k-p2'], 'not the dropped, removed, waiting, unknown or the leader');
  assert.equal((await toP1)[0], { epoch: 1, from: 'k-f', wrapped: wrapped['k-p1'], breakoutId: null });
  assert.equal((await toP2)[0], { epoch: 1, from: 'k-f', wrapped: wrapped['k-p2'], breakoutId: null });

  // One acknowledgement of two: not active yet.
  await ok(p1.socket, 'e2eeKeyReceived', { epoch: 1 });
  await settled(f, p1, p2);
  assert.not.ok([f, p1, p2].some((p) => seenNames(p).includes('e2eeEpochActive')));
  const active = [f, p1, p2].map((p) => next(p.socket, 'e2eeEpochActive'));
  await ok(p2.socket, 'e2eeKeyReceived', { epoch: 1 });
  for (const a of active) assert.equal((await a)[0], { epoch: 1, breakoutId: null });

  await settled(f, p1, p2, waiting);
  const keysSeen = (p: Peer) => p.seen.filter((s) => s.name === 'e2eeKey').map((s) => s.args[0]);
  assert.equal(
    keysSeen(p1),
    [{ epoch: 1, from: 'k-f', wrapped: wrapped['k-p1'], breakoutId: null }],
    'p1 saw its own key only',
  );
  assert.equal(
    keysSeen(p2),
    [{ epoch: 1, from: 'k-f', wrapped: wrapped['k-p2'], breakoutId: null }],
    'p2 saw its own key only',
  );
  for (const p of [f, waiting, removed, p3]) assert.equal(keysSeen(p), [], p.id);
  assert.not.ok(
    seenNames(waiting).some((n) => e2eeNames.includes(n as NotificationName)),
    'nothing to the waiting',
  );
  // A recipient who leaves before acknowledging is not waited for.
  const toP1Again = next(p1.socket, 'e2eeKey');
  assert.equal((await ok(f.socket, 'e2eeDistribute', { epoch: 2, keys })).delivered.sort(), ['k-p1', 'k-p2']);
  await toP1Again;
  const activeAgain = next(f.socket, 'e2eeEpochActive');
  await ok(p1.socket, 'e2eeKeyReceived', { epoch: 2 });
  await ok(p2.socket, 'leave', {});
  assert.equal((await activeAgain)[0], { epoch: 2, breakoutId: null });

  // Never a key, a public key or a wrapped key in the log.
  const log = node.output();
  for (const secret of [...Object.values(wrapped), f.publicKey, p1.publicKey, p2.publicKey]) {
    assert.not.ok(log.includes(secret), 'key material in the log');
  }
  assert.ok(log.includes('"recipients":2'), 'the relay is logged (debug) with counts only');
});

test('a recipient who never acknowledges: the epoch is active after the timeout; none to wait for: at once', async () => {
  const url = quick.handle.url;
  const room = await haven.newRoom({ waitingRoom: false }, url);
  const f = await joined(room, 't-f', 'facilitator', url);
  const p = await joined(room, 't-p', 'participant', url);
  const key = next(p.socket, 'e2eeKey');
  const active = next(p.socket, 'e2eeEpochActive');
  await ok(f.socket, 'e2eeDistribute', { epoch: 1, keys: [{ participantId: 't-p', wrapped: wrappedKey() }] });
  await key;
  assert.equal((await active)[0], { epoch: 1, breakoutId: null }, 'told without its acknowledgement');
  const atOnce = next(f.socket, 'e2eeEpochActive');
  assert.equal(await ok(f.socket, 'e2eeDistribute', { epoch: 2, keys: [] }), { delivered: [] });
  assert.equal((await atOnce)[0], { epoch: 2, breakoutId: null });
});

test('a new leader’s roster carries the latest epoch, above which it goes on', async () => {
  const room = await haven.newRoom({ waitingRoom: false });
  const f = await joined(room, 'n-f', 'facilitator');
  const p = await joined(room, 'n-p');
  await ok(f.socket, 'e2eeDistribute', { epoch: 7, keys: [{ participantId: 'n-p', wrapped: wrappedKey() }] });
  await settled(p);
  const told = nextRoster(p);
  await ok(f.socket, 'leave', {});
  const roster = await told;
  assert.equal({ leader: roster.leader, epoch: roster.epoch }, { leader: 'n-p', epoch: 7 });
  assert.is(await codeOf(p.socket, 'e2eeDistribute', { epoch: 7, keys: [] }), 'INVALID_STATE');
  assert.is(await codeOf(p.socket, 'e2eeDistribute', { epoch: 8, keys: [] }), 'ok');
});

/* ---- chat and media ---- */

/** What an SDK sends: `e2ee1.<epoch>.<base64 of IV, AES-GCM ciphertext and tag>`. */
function encryptChat(text: string, epoch: number): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', randomBytes(32), iv);
  const sealed = Buffer.concat([iv, cipher.update(text, 'utf8'), cipher.final(), cipher.getAuthTag()]);
  return `e2ee1.${epoch}.${sealed.toString('base64')}`;
}

test('chat in an E2EE room: ciphertext only, relayed, deleted by id; clear text reaches neither Redis nor the log', async () => {
  const room = await haven.newRoom({ waitingRoom: false, keepChat: true });
  const f = await joined(room, 'c-f', 'facilitator');
  const p = await joined(room, 'c-p');
  const clear = `clear-${randomBytes(6).toString('hex')} I relapsed on Saturday`;
  const refused = await request(p.socket, 'sendChat', { text: clear, to: 'everyone' });
  assert.equal(refused.ok ? '' : refused.error, {
    code: 'INVALID_REQUEST',
    message: 'this room is end-to-end encrypted: send encrypted chat',
  });
  for (const text of ['e2ee1.x.AAAA', 'e2ee1.1.', `e2ee1.1.${'A'.repeat(maxEncryptedChatLength)}`]) {
    assert.is(await codeOf(p.socket, 'sendChat', { text, to: 'everyone' }), 'INVALID_REQUEST', text.slice(0, 20));
  }
  const ciphertext = encryptChat(clear, 1);
  const long = encryptChat('x'.repeat(2_000), 1);
  assert.ok(long.length > 2_000, 'an encrypted message may be longer than a clear one');
  const toF = next(f.socket, 'chatMessage');
  const { messageId } = await ok(p.socket, 'sendChat', { text: ciphertext, to: 'everyone' });
  const [message] = await toF;
  assert.equal(
    { id: message.id, from: message.from, text: message.text },
    { id: messageId, from: 'c-p', text: ciphertext },
  );
  assert.is(await codeOf(p.socket, 'sendChat', { text: long, to: 'facilitators' }), 'ok');

  const archived = async () => (await redisContents(redis)).includes(ciphertext);
  for (let i = 0; !(await archived()); i++) {
    assert.ok(i < 100, 'the ciphertext is archived (keepChat)');
    await new Promise((r) => setTimeout(r, 50));
  }
  const stored = await redisContents(redis);
  assert.not.ok(stored.includes(clear), 'clear text in Redis');
  assert.not.ok(node.output().includes(clear), 'clear text in the log');

  const deleted = next(p.socket, 'chatMessageDeleted');
  await ok(f.socket, 'deleteChatMessage', { messageId });
  assert.equal((await deleted)[0], { messageId });
});

const h264 = {
  mimeType: 'video/H264',
  payloadType: 102,
  clockRate: 90000,
  parameters: { 'packetization-mode': 1, 'profile-level-id': '42e01f', 'level-asymmetry-allowed': 1 },
};
const vp8 = { mimeType: 'video/VP8', payloadType: 96, clockRate: 90000, parameters: {} };

/** A camera as a client sends it (with retransmission); the router offers H264 to rooms that are not E2EE. */
function camera(transportId: string, codec: typeof h264 | typeof vp8 = h264) {
  const rtx = {
    mimeType: 'video/rtx',
    payloadType: codec.payloadType + 1,
    clockRate: 90000,
    parameters: { apt: codec.payloadType },
  };
  return {
    transportId,
    kind: 'video',
    source: 'camera',
    rtpParameters: {
      codecs: [codec, rtx],
      encodings: [{ ssrc: 33333333, rtx: { ssrc: 33333334 } }],
      rtcp: { cname: 'e2ee-test' },
    },
  };
}

test('an E2EE room carries Opus and VP8 only: H264 is INVALID_REQUEST', async () => {
  const room = await haven.newRoom({ waitingRoom: false });
  const f = await joined(room, 'm-f', 'facilitator');
  const send = await ok(f.socket, 'createTransport', { direction: 'send' });
  const refused = await request(f.socket, 'produce', camera(send.id, h264));
  assert.equal(refused.ok ? '' : refused.error, {
    code: 'INVALID_REQUEST',
    message: 'codec video/h264 is not allowed in this room',
  });
  assert.is(await codeOf(f.socket, 'produce', camera(send.id, vp8)), 'ok');
  const microphone = {
    transportId: send.id,
    kind: 'audio',
    source: 'microphone',
    rtpParameters: opusAudioParameters(4444, 'e2ee-test'),
  };
  assert.is(await codeOf(f.socket, 'produce', microphone), 'ok');
});

/* ---- the node's default ---- */

test('with HAVEN_E2EE_DEFAULT, rooms created without `e2ee` and rooms a facilitator opens are E2EE', async () => {
  const url = quick.handle.url;
  const id = `e2ee-default-${process.pid}`;
  const created = await admin(url, 'POST', '/v1/rooms', { id, title: 'Default' });
  assert.is(created.body.data.e2ee, true);
  const opened = `e2ee-opened-${process.pid}`;
  const f = await peer(opened, 'o-f', 'facilitator', url);
  assert.is(await codeOf(f.socket, 'join', { protocolVersion }), 'E2EE_UNSUPPORTED');
  assert.is(admitted(await join(f)).room.e2ee, true);
  assert.is((await admin(url, 'GET', `/v1/rooms/${opened}`)).body.data.e2ee, true);
  const notEncrypted = await admin(url, 'POST', '/v1/rooms', { id: `${id}-off`, title: 'Off', e2ee: false });
  assert.is(notEncrypted.body.data.e2ee, false);
  assert.is((await admin(url, 'POST', '/v1/rooms', { title: 'Bad', e2ee: 'yes' })).status, 400);
});

test.run();
