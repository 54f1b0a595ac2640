/**
 * The permission matrix, generated: every request of the protocol × every role × every stage a
 * connection can be at (not joined, consent gate, waiting room, admitted, removed), sent as raw
 * socket events (as a modified client would) to a real node. A cell the table in
 * server/signaling/permissions.ts refuses gets that coded refusal and changes nothing: the room as
 * the admin API shows it, the audit log's length and every notification to everyone else stay as
 * they were. A cell the table allows is not refused for permission reasons (the request may still
 * fail on its made-up ids). Tokens grant every capability, so that capabilities, which are the
 * room's to check, never stand in for the table.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { waitFor } from '../../bench/processes.ts';
import { protocolVersion, type RequestName, type RequestOf, type Role } from '../../client-sdk/src/protocol/index.ts';
import type { HavenError } from '../../server/errors.ts';
import {
  authorize,
  type ConnectionStage,
  isAllowed,
  permissions,
  roles,
  stages,
} from '../../server/signaling/permissions.ts';
import { requestNames } from '../../server/signaling/schemas.ts';
import { sessionNode } from '../helpers/session-node.ts';
import { admin, connect, next, ok, request, type TestSocket } from '../helpers/signaling-client.ts';

const haven = sessionNode(test, {
  redis: true,
  env: {
    HAVEN_MEDIA_PLAIN_TRANSPORTS: 'true',
    HAVEN_SIGNALING_RATE_LIMIT: '1000',
    HAVEN_SIGNALING_RATE_BURST: '5000',
  },
  roomPrefix: 'perm',
  room: { title: 'Matrix group', consentText: 'What is said here stays here.' },
});
const { node } = haven;
const client = haven.redisClient();

/* ---- one valid-shaped payload per request (typed: a new request cannot be left out) ---- */

const dtlsParameters = {
  role: 'client',
  fingerprints: [{ algorithm: 'sha-256', value: `${'AB:'.repeat(31)}AB` }],
};
const rtpParameters = {
  codecs: [{ mimeType: 'audio/opus', payloadType: 111, clockRate: 48000, channels: 2, parameters: {} }],
  encodings: [{ ssrc: 22222222 }],
  rtcp: { cname: 'matrix' },
};

/** Targets: each moderation request acts on its own person, so that the order of the cells does not matter. */
const samples: { [K in RequestName]: RequestOf<K> } = {
  join: { protocolVersion },
  acceptConsent: { version: 1 },
  leave: {},
  createTransport: { direction: 'recv' },
  connectTransport: { transportId: 'transport-x', dtlsParameters },
  restartIce: { transportId: 'transport-x' },
  createPlainTransport: { direction: 'recv' },
  connectPlainTransport: {
    transportId: 'transport-x',
    ip: '127.0.0.1',
    port: 40000,
    srtpParameters: { cryptoSuite: 'AES_CM_128_HMAC_SHA1_80', keyBase64: Buffer.alloc(30, 7).toString('base64') },
  },
  produce: { transportId: 'transport-x', kind: 'audio', source: 'microphone', rtpParameters },
  pauseProducer: { producerId: 'producer-x' },
  resumeProducer: { producerId: 'producer-x' },
  closeProducer: { producerId: 'producer-x' },
  consume: { transportId: 'transport-x', producerId: 'producer-x', rtpCapabilities: { codecs: [] } },
  resumeConsumer: { consumerId: 'consumer-x' },
  pauseConsumer: { consumerId: 'consumer-x' },
  setPreferredSize: { consumerId: 'consumer-x', width: 320, height: 180 },
  setAudioOnly: { enabled: true },
  raiseHand: {},
  lowerHand: {},
  sendChat: { text: 'matrix', to: 'everyone' },
  admit: { participantId: 'w1' },
  admitAll: {},
  deny: { participantId: 'w2' },
  messageWaitingRoom: { text: 'soon' },
  moveToWaitingRoom: { participantId: 't2' },
  mute: { participantId: 't1' },
  muteAll: {},
  setAudioMode: { mode: 'controlled' },
  requestUnmute: { participantId: 't1' },
  disableCamera: { participantId: 't1' },
  stopScreenShare: { participantId: 't1' },
  remove: { participantId: 't3' },
  lockRoom: { locked: true },
  endSession: {},
  setDisplayName: { participantId: 't1', name: 'Alias' },
  spotlight: { participantId: 't1' },
  deleteChatMessage: { messageId: 'message-x' },
  suggestAudioOnly: { participantId: 't1' },
  liveAttendance: {},
  e2eeDistribute: { epoch: 1, keys: [] },
  e2eeKeyReceived: { epoch: 1 },
  createBreakouts: { count: 2 },
  updateBreakouts: { groups: [{ name: 'Pairs', members: ['t1'] }] },
  startBreakouts: {},
  moveToBreakout: { participantId: 't1', breakoutId: null },
  visitBreakout: { breakoutId: null },
  broadcastToBreakouts: { text: 'two minutes' },
  recallBreakouts: {},
  askForHelp: {},
};

/**
 * Allowed by the table, refused by the room for what the table does not know: the matrix's room
 * is not end-to-end encrypted (test/integration/e2ee-keys.test.ts has the key exchange in rooms
 * that are), and its actor is in no breakout group (test/integration/breakouts.test.ts).
 */
const refusedByTheRoom: Partial<Record<RequestName, { code: string; message: RegExp }>> = {
  e2eeDistribute: { code: 'INVALID_STATE', message: /not end-to-end encrypted/ },
  e2eeKeyReceived: { code: 'INVALID_STATE', message: /not end-to-end encrypted/ },
  askForHelp: { code: 'INVALID_STATE', message: /not in a breakout group/ },
};

/** Requests after which the caller's cells cannot go on: each gets a room of its own. */
const terminal = new Set<RequestName>(['leave', 'endSession']);

/* ---- rooms with everyone in place ---- */

type Row = { role: Role; stage: ConnectionStage | 'removed' };

interface Fixture {
  room: string;
  /** Everyone but the actor: facilitator f1, admitted t1–t3, waiting w1–w2. */
  others: TestSocket[];
  facilitator: TestSocket;
  actor: TestSocket;
  /** Every notification anyone but the actor received. */
  notes: string[];
}

const allCaps = { publishAudio: true, publishVideo: true, publishScreen: true, chat: true };

const joined = (room: string, sub: string, role: Role = 'participant'): Promise<TestSocket> =>
  haven.client(room, sub, role, { caps: allCaps });

/**
 * The audit entries a room's set-up made: the node writes them in the background, so a snapshot
 * waits until they are all there (else one landing late reads as a change).
 */
const audited = new Map<string, number>();
const audit = (room: string) => audited.set(room, (audited.get(room) ?? 0) + 1);

/** A participant through the consent gate (audited) into the waiting room. */
async function waiting(room: string, sub: string): Promise<TestSocket> {
  const socket = await joined(room, sub);
  assert.is((await ok(socket, 'join', { protocolVersion })).stage, 'consent');
  assert.is((await ok(socket, 'acceptConsent', { version: 1 })).stage, 'waiting');
  audit(room);
  return socket;
}

async function admitted(room: string, facilitator: TestSocket, sub: string): Promise<TestSocket> {
  const socket = await waiting(room, sub);
  const entering = next(socket, 'admitted');
  await ok(facilitator, 'admit', { participantId: sub });
  audit(room);
  await entering;
  return socket;
}

async function fixture({ role, stage }: Row): Promise<Fixture> {
  const room = await haven.newRoom();
  audit(room); // its creation
  const facilitator = await joined(room, 'f1', 'facilitator');
  assert.is((await ok(facilitator, 'join', { protocolVersion })).stage, 'admitted');
  const others = [facilitator];
  for (const sub of ['t1', 't2', 't3']) others.push(await admitted(room, facilitator, sub));
  for (const sub of ['w1', 'w2']) others.push(await waiting(room, sub));

  let actor = await joined(room, 'a1', role);
  if (stage === 'consent') await ok(actor, 'join', { protocolVersion });
  if (stage === 'waiting') actor = await waiting(room, 'a1');
  if (stage === 'admitted' && role === 'participant') actor = await admitted(room, facilitator, 'a1');
  if (stage === 'admitted' && role !== 'participant') await ok(actor, 'join', { protocolVersion });
  if (stage === 'removed') {
    const old = await admitted(room, facilitator, 'a1');
    const gone = new Promise((resolve) => old.once('disconnect', resolve));
    await ok(facilitator, 'remove', { participantId: 'a1', ban: true });
    audit(room);
    await gone;
    const again = await connect(node.url, (old.auth as { token: string }).token).then(
      () => 'accepted',
      (err: { data?: { code: string } }) => err.data?.code,
    );
    assert.is(again, 'UNAUTHORIZED', 'the removed token is revoked');
    actor = await joined(room, 'a1', role); // a new token, same person: banned for the session
  }
  const notes: string[] = [];
  for (const socket of others) socket.onAny((name: string) => notes.push(name));
  const expected = audited.get(room) ?? 0;
  await waitFor(async () => (await client.xlen(`haven:audit:${room}`)) >= expected, 10_000, 'the set-up audited');
  return { room, others, facilitator, actor, notes };
}

/**
 * What a refused request must not change. Each other connection first makes a round trip (a join
 * without its version, refused as INVALID_REQUEST): a notification caused before it arrives before
 * its answer.
 */
async function snapshot(f: Fixture): Promise<string> {
  for (const socket of f.others) assert.is((await request(socket, 'join', {})).ok, false);
  const room = (await admin(node.url, 'GET', `/v1/rooms/${f.room}`)).body.data;
  const audit = await client.xlen(`haven:audit:${f.room}`);
  return JSON.stringify({ room, audit, notes: f.notes });
}

function expectedRefusal(name: RequestName, { role, stage }: Row): string | undefined {
  try {
    authorize(name, role, stage === 'removed' ? 'none' : stage);
    return undefined;
  } catch (err) {
    return (err as HavenError).code;
  }
}

/* ---- the matrix ---- */

const rows: Row[] = [
  ...roles.flatMap((role) => stages.map((stage) => ({ role, stage }))),
  { role: 'participant', stage: 'removed' },
];
/** Only participants meet the consent gate and the waiting room. */
const reachable = (row: Row) => row.role === 'participant' || row.stage === 'none' || row.stage === 'admitted';
const results = new Map<string, string>();
const cell = (name: RequestName, row: Row) => `${name} ${row.role}@${row.stage}`;

test('the table decides every request of the protocol, for every role and stage', () => {
  assert.equal(Object.keys(permissions).sort(), [...requestNames].sort());
  assert.equal(Object.keys(samples).sort(), [...requestNames].sort());
  for (const name of requestNames) {
    assert.ok(
      permissions[name].roles.length > 0 && permissions[name].stages.length > 0,
      `${name}: someone may send it`,
    );
  }
});

for (const row of rows.filter(reachable)) {
  test(`${row.role} @ ${row.stage}: refused cells change nothing; allowed ones pass the table`, async () => {
    const removed = row.stage === 'removed';
    const f = await fixture(row);
    // Refused cells first, one by one, each against a fresh snapshot.
    const refused = requestNames.filter((name) => removed || expectedRefusal(name, row) !== undefined);
    for (const name of refused) {
      const before = await snapshot(f);
      const answer = await request(f.actor, name, samples[name]);
      const code = answer.ok ? 'ok' : answer.error.code;
      results.set(cell(name, row), code);
      // Removed and banned: joining again is refused by the room (FORBIDDEN); all else is before joining.
      const expected = removed && name === 'join' ? 'FORBIDDEN' : expectedRefusal(name, row);
      assert.is(code, expected, `${cell(name, row)}: ${answer.ok ? 'accepted' : answer.error.message}`);
      assert.ok(!answer.ok && answer.error.message, `${cell(name, row)}: a reason`);
      assert.is(await snapshot(f), before, `${cell(name, row)} changed something`);
    }
    // Allowed cells: not refused by the table. Terminal ones each in a room of their own.
    const allowed = requestNames.filter((name) => !refused.includes(name));
    for (const name of allowed) {
      const actor = terminal.has(name) ? (await fixture(row)).actor : f.actor;
      const answer = await request(actor, name, samples[name]);
      const code = answer.ok ? 'ok' : answer.error.code;
      results.set(cell(name, row), code);
      const byTheRoom = refusedByTheRoom[name];
      if (byTheRoom) {
        assert.is(code, byTheRoom.code, cell(name, row));
        assert.match(answer.ok ? '' : answer.error.message, byTheRoom.message, cell(name, row));
        continue;
      }
      assert.not.ok(
        ['FORBIDDEN', 'UNAUTHORIZED', 'INVALID_STATE'].includes(code),
        `${cell(name, row)} is allowed, answered ${code}: ${answer.ok ? '' : answer.error.message}`,
      );
    }
  });
}

test('the matrix, printed (✓ allowed by the table, else the refusal)', () => {
  const columns = rows.filter(reachable);
  const width = Math.max(...requestNames.map((n) => n.length));
  const head = columns.map((r) => `${r.role.slice(0, 4)}@${r.stage.slice(0, 5)}`.padEnd(12)).join('');
  const lines = requestNames.map((name) => {
    const marks = columns.map((row) => {
      const code = results.get(cell(name, row)) ?? '?';
      const allowed = row.stage !== 'removed' && isAllowed(name, row.role, row.stage as ConnectionStage);
      return (allowed ? `✓ ${code === 'ok' ? '' : code.slice(0, 9)}` : code.slice(0, 11)).padEnd(12);
    });
    return `  ${name.padEnd(width)}  ${marks.join('')}`;
  });
  console.log(`\n  ${''.padEnd(width)}  ${head}\n${lines.join('\n')}`);
  assert.is(results.size, requestNames.length * columns.length, 'every reachable cell was sent');
});

test.run();
