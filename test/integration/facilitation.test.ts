/**
 * Facilitation, enforced by the server: consent gate, waiting room, facilitator controls, hands,
 * chat. Who may send which request is permission-matrix.test.ts. Every moderation action lands in
 * the audit log.
 */
import { Redis } from 'ioredis';
import pino from 'pino';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { waitFor } from '../../bench/processes.ts';
import { type ModerationRequestName, protocolVersion } from '../../client-sdk/src/protocol/index.ts';
import { AuditLog } from '../../server/audit/audit-log.ts';
import { ChatArchive } from '../../server/rooms/chat-archive.ts';
import { rejects } from '../helpers/assert.ts';
import { opusAudioParameters } from '../helpers/rtp.ts';
import { sessionNode } from '../helpers/session-node.ts';
import {
  admin,
  admitted,
  codeOf,
  collect,
  connect,
  joinAs,
  next,
  ok,
  request,
  type TestSocket,
} from '../helpers/signaling-client.ts';

const consentText = 'What is said in group stays in group. Sessions are not recorded.';
const { node, redis, newRoom, client } = sessionNode(test, {
  redis: true,
  env: { HAVEN_SIGNALING_RATE_BURST: '200' },
  roomPrefix: 'fac',
  room: { title: 'Thursday group' },
});

async function auditLength(room: string): Promise<number> {
  const client = new Redis(redis.url);
  try {
    return await client.xlen(`haven:audit:${room}`);
  } finally {
    client.disconnect();
  }
}

/** A facilitator in a fresh room (waiting room on) and a participant they admitted. */
async function groupWithParticipant(extra: object = {}) {
  const room = await newRoom(extra);
  const facilitator = await client(room, 'f1', 'facilitator');
  admitted(await joinAs(facilitator));
  const participant = await client(room, 'p1');
  await enter(participant, facilitator, 'p1');
  return { room, facilitator, participant };
}

/** Joins; if the room has a waiting room, the facilitator admits. */
async function enter(socket: TestSocket, facilitator: TestSocket, id: string): Promise<void> {
  if ((await joinAs(socket)).stage === 'admitted') return;
  const entering = next(socket, 'admitted');
  await ok(facilitator, 'admit', { participantId: id });
  await entering;
}

const opusAudio = opusAudioParameters(11111111, 'haven-test');

/** Publishes a (silent) microphone without real media: enough for the server to moderate it. */
async function publishMicrophone(socket: TestSocket): Promise<string> {
  const send = await ok(socket, 'createTransport', { direction: 'send' });
  sendTransports.set(socket, send.id);
  return produceMicrophone(socket);
}

const sendTransports = new Map<TestSocket, string>();

function produceMicrophone(socket: TestSocket): Promise<string> {
  const transportId = sendTransports.get(socket) as string;
  return ok(socket, 'produce', { transportId, kind: 'audio', source: 'microphone', rtpParameters: opusAudio }).then(
    (r) => r.producerId,
  );
}

/* ---- consent gate and waiting room ---- */

test('consent → waiting → admitted, with the waiting room live for the facilitator', async () => {
  const room = await newRoom({ consentText });
  const participant = await client(room, 'pt-c');
  const atGate = await joinAs(participant);
  assert.is(atGate.stage, 'consent');
  if (atGate.stage !== 'consent') return;
  assert.is(atGate.consent.text, consentText);
  assert.is(atGate.consent.version, 1);
  assert.match(atGate.consent.hash, /^[0-9a-f]{64}$/);
  assert.is(await codeOf(participant, 'createTransport', { direction: 'recv' }), 'FORBIDDEN');
  const stale = await request(participant, 'acceptConsent', { version: 2 });
  assert.is(!stale.ok && stale.error.consent?.version, 1, 'a wrong version is refused with the current text');
  const waiting = await ok(participant, 'acceptConsent', { version: 1 });
  assert.equal(waiting, { stage: 'waiting', waiting: { facilitatorPresent: false }, reconnectGraceMs: 30_000 });

  // Waiting: no media, no chat, no hands, no list.
  for (const [name, payload] of [
    ['createTransport', { direction: 'recv' }],
    ['sendChat', { text: 'hello?', to: 'everyone' }],
    ['raiseHand', {}],
  ] as const) {
    assert.is(await codeOf(participant, name, payload), 'FORBIDDEN', name);
  }

  const told = next(participant, 'waiting');
  const facilitator = await client(room, 'fac-c', 'facilitator');
  const session = admitted(await joinAs(facilitator));
  assert.equal(session.participants, [], 'someone waiting is not in the session');
  assert.equal(
    session.waiting.map((w) => w.participantId),
    ['pt-c'],
  );
  assert.is((await told)[0].facilitatorPresent, true, 'the waiting room says a facilitator is here');

  const message = next(participant, 'waiting');
  await ok(facilitator, 'messageWaitingRoom', { text: 'We start in 5 minutes' });
  assert.is((await message)[0].message, 'We start in 5 minutes');

  const entering = next(participant, 'admitted');
  const changed = next(facilitator, 'waitingRoomChanged');
  const joinedNote = next(facilitator, 'participantJoined');
  await ok(facilitator, 'admit', { participantId: 'pt-c' });
  const [state] = await entering;
  assert.equal(
    state.participants.map((p) => p.id),
    ['fac-c'],
  );
  assert.equal((await changed)[0].waiting, []);
  assert.is((await joinedNote)[0].id, 'pt-c');
  assert.ok((await request(participant, 'createTransport', { direction: 'recv' })).ok, 'admitted: media allowed');
});

test('a new consent version must be accepted again; another version is refused (INVALID_REQUEST, with the text in force) and changes nothing', async () => {
  const room = await newRoom({ consentText, waitingRoom: false });
  const updated = await admin(node.url, 'PUT', `/v1/rooms/${room}/consent`, { text: `${consentText} Version two.` });
  assert.is(updated.status, 200);
  assert.is(updated.body.data.version, 2);
  const participant = await client(room, 'pt-v');
  const gate = await joinAs(participant);
  assert.is(gate.stage === 'consent' && gate.consent.version, 2);
  const auditBefore = await auditLength(room);
  for (const version of [1, 3]) {
    const refused = await request(participant, 'acceptConsent', { version });
    assert.is(refused.ok ? 'ok' : refused.error.code, 'INVALID_REQUEST', `version ${version} is not in force`);
    assert.equal(!refused.ok && refused.error.consent, gate.stage === 'consent' && gate.consent, 'the text in force');
  }
  // Nothing changed: still at the gate, nothing audited.
  assert.is(await codeOf(participant, 'createTransport', { direction: 'recv' }), 'FORBIDDEN');
  assert.is(await auditLength(room), auditBefore);
  assert.is((await ok(participant, 'acceptConsent', { version: 2 })).stage, 'admitted', 'no waiting room here');
});

test('deny: the person is told why and disconnected; admitAll admits everyone waiting', async () => {
  const room = await newRoom();
  const facilitator = await client(room, 'fac-d', 'facilitator');
  await joinAs(facilitator);
  const [a, b, c] = [await client(room, 'pt-d1'), await client(room, 'pt-d2'), await client(room, 'pt-d3')];
  for (const s of [a, b, c]) assert.is((await joinAs(s)).stage, 'waiting');
  const denied = next(a, 'denied');
  const gone = new Promise((r) => a.once('disconnect', r));
  await ok(facilitator, 'deny', { participantId: 'pt-d1', reason: 'Please join Tuesday’s group' });
  assert.equal((await denied)[0], { reason: 'Please join Tuesday’s group' });
  await gone;
  const admittedNotes = [next(b, 'admitted'), next(c, 'admitted')];
  assert.equal(await ok(facilitator, 'admitAll', {}), {
    admitted: 2,
    admittedIds: ['pt-d2', 'pt-d3'],
    leftWaiting: [],
  });
  await Promise.all(admittedNotes);
});

test('move back to the waiting room, then admit again', async () => {
  const { facilitator, participant } = await groupWithParticipant();
  const movedNote = next(participant, 'waiting');
  const left = next(facilitator, 'participantLeft');
  await ok(facilitator, 'moveToWaitingRoom', { participantId: 'p1' });
  assert.is((await movedNote)[0].reason, 'movedByFacilitator');
  assert.equal((await left)[0], { participantId: 'p1', reason: 'movedToWaitingRoom' });
  assert.is(await codeOf(participant, 'createTransport', { direction: 'recv' }), 'FORBIDDEN');
  const back = next(participant, 'admitted');
  await ok(facilitator, 'admit', { participantId: 'p1' });
  await back;
});

/* ---- moderation (who may send what, at which stage: permission-matrix.test.ts) ---- */

const moderation: Record<ModerationRequestName, unknown> = {
  admit: { participantId: 'p1' },
  admitAll: {},
  deny: { participantId: 'p1' },
  messageWaitingRoom: { text: 'hello' },
  moveToWaitingRoom: { participantId: 'p1' },
  mute: { participantId: 'p1' },
  muteAll: {},
  setAudioMode: { mode: 'controlled' },
  requestUnmute: { participantId: 'p1' },
  disableCamera: { participantId: 'p1' },
  stopScreenShare: { participantId: 'p1' },
  remove: { participantId: 'p1', ban: true },
  lockRoom: { locked: true },
  endSession: {},
  setDisplayName: { participantId: 'p1', name: 'Alias' },
  spotlight: { participantId: 'p1' },
  deleteChatMessage: { messageId: 'msg_x' },
  suggestAudioOnly: { participantId: 'p1' },
};

test('a facilitator can do each of them (co-facilitators alike)', async () => {
  const { room, participant } = await groupWithParticipant();
  const cofacilitator = await client(room, 'f2', 'facilitator');
  admitted(await joinAs(cofacilitator));
  await publishMicrophone(participant);
  const { messageId } = await ok(participant, 'sendChat', { text: 'hi all', to: 'everyone' });
  const waiting = await client(room, 'p5');
  await joinAs(waiting);
  const results: Record<string, string> = {};
  for (const [name, payload] of Object.entries({
    messageWaitingRoom: { text: 'Soon' },
    deny: { participantId: 'p5' },
    mute: { participantId: 'p1' },
    setAudioMode: { mode: 'controlled' },
    requestUnmute: { participantId: 'p1' },
    disableCamera: { participantId: 'p1' },
    stopScreenShare: { participantId: 'p1' },
    setDisplayName: { participantId: 'p1', name: 'J.' },
    spotlight: { participantId: 'p1' },
    deleteChatMessage: { messageId },
    suggestAudioOnly: { participantId: 'p1' },
    lockRoom: { locked: true },
    muteAll: {},
    moveToWaitingRoom: { participantId: 'p1' },
    admit: { participantId: 'p1' },
    admitAll: {},
    remove: { participantId: 'p1' },
    endSession: {},
  })) {
    results[name] = await codeOf(cofacilitator, name, payload);
  }
  assert.equal(
    Object.values(results).filter((r) => r !== 'ok'),
    [],
    JSON.stringify(results),
  );
  assert.equal(Object.keys(results).sort(), Object.keys(moderation).sort());
});

/* ---- media controls ---- */

test('mute: the server pauses the producer and tells the participant; in controlled mode, unmute only when asked', async () => {
  const { facilitator, participant } = await groupWithParticipant();
  const producerId = await publishMicrophone(participant);
  const muted = next(participant, 'mutedByFacilitator');
  const updated = next(facilitator, 'trackUpdated');
  await ok(facilitator, 'mute', { participantId: 'p1' });
  assert.equal((await muted)[0], { source: 'microphone', producerId });
  assert.is((await updated)[0].paused, true);
  // Open mode: the participant may unmute after a facilitator's mute.
  assert.is(await codeOf(participant, 'resumeProducer', { producerId }), 'ok');
  await ok(facilitator, 'setAudioMode', { mode: 'controlled' });
  assert.is(await codeOf(participant, 'pauseProducer', { producerId }), 'ok');
  assert.is(
    await codeOf(participant, 'resumeProducer', { producerId }),
    'FORBIDDEN',
    'controlled: not without being asked',
  );
  const asked = next(participant, 'unmuteRequested');
  await ok(facilitator, 'requestUnmute', { participantId: 'p1' });
  assert.equal((await asked)[0], { by: 'f1' });
  const producers = collect(facilitator, 'trackUpdated');
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(producers, [], 'asking to unmute unmutes nobody');
  assert.is(await codeOf(participant, 'resumeProducer', { producerId }), 'ok', 'asked: the participant unmutes');
  assert.equal(await ok(facilitator, 'muteAll', {}), { muted: 1 });
  assert.is(
    await codeOf(participant, 'resumeProducer', { producerId }),
    'FORBIDDEN',
    'a mute takes the permission back',
  );
  // Publishing the microphone anew does not get round the mute: it starts paused, and its owner is told.
  const mutedAgain = next(participant, 'mutedByFacilitator');
  const republished = next(facilitator, 'trackPublished');
  await ok(participant, 'closeProducer', { producerId });
  const again = await produceMicrophone(participant);
  assert.is((await republished)[0].paused, true);
  assert.is((await mutedAgain)[0].producerId, again);
});

/* ---- presence controls ---- */

test('remove with a ban: told, disconnected, the token revoked, the identity refused for the session', async () => {
  const { room, facilitator, participant } = await groupWithParticipant();
  const removed = next(participant, 'removed');
  const left = next(facilitator, 'participantLeft');
  const gone = new Promise((r) => participant.once('disconnect', r));
  await ok(facilitator, 'remove', { participantId: 'p1', ban: true });
  assert.equal((await removed)[0], { banned: true });
  assert.equal((await left)[0], { participantId: 'p1', reason: 'removed' });
  await gone;
  // The same token: revoked.
  await rejects(() => connect(node.url, (participant.auth as { token: string }).token), /UNAUTHORIZED/);
  // A new token for the same person: refused for this session.
  const again = await client(room, 'p1');
  assert.is(await codeOf(again, 'join', { protocolVersion }), 'FORBIDDEN');
  // A facilitator cannot be removed.
  assert.is(await codeOf(facilitator, 'remove', { participantId: 'f1' }), 'FORBIDDEN');
});

test('remove without a ban: the same token cannot come back; a new token may (through the waiting room)', async () => {
  const { room, facilitator, participant } = await groupWithParticipant();
  const removed = next(participant, 'removed');
  await ok(facilitator, 'remove', { participantId: 'p1' });
  assert.equal((await removed)[0], { banned: false });
  await rejects(() => connect(node.url, (participant.auth as { token: string }).token), /UNAUTHORIZED/);
  assert.is((await joinAs(await client(room, 'p1'))).stage, 'waiting');
});

test('lock: nobody new reaches the waiting room; facilitators still can; unlock', async () => {
  const { room, facilitator, participant } = await groupWithParticipant();
  const locked = next(participant, 'roomLocked');
  await ok(facilitator, 'lockRoom', { locked: true });
  assert.equal((await locked)[0], { locked: true });
  assert.is(await codeOf(await client(room, 'p9'), 'join', { protocolVersion }), 'ROOM_LOCKED');
  assert.is(await codeOf(await client(room, 'f9', 'facilitator'), 'join', { protocolVersion }), 'ok');
  await ok(facilitator, 'lockRoom', { locked: false });
  assert.is(await codeOf(await client(room, 'p10'), 'join', { protocolVersion }), 'ok');
});

test('display name alias and spotlight reach everyone', async () => {
  const { facilitator, participant } = await groupWithParticipant();
  const renamed = next(participant, 'displayNameChanged');
  await ok(facilitator, 'setDisplayName', { participantId: 'p1', name: 'J.' });
  assert.equal((await renamed)[0], { participantId: 'p1', name: 'J.' });
  const spot = next(participant, 'spotlightChanged');
  await ok(facilitator, 'spotlight', { participantId: 'f1' });
  assert.equal((await spot)[0], { participantId: 'f1' });
  assert.is(await codeOf(facilitator, 'spotlight', { participantId: 'nobody' }), 'NOT_FOUND');
});

test('observers are hidden from participants (unless the room shows them), seen by facilitators', async () => {
  const { room, facilitator, participant } = await groupWithParticipant();
  const participantSaw = collect(participant, 'participantJoined');
  const facilitatorSaw = next(facilitator, 'participantJoined');
  const observer = await client(room, 'sup', 'observer');
  const session = admitted(await joinAs(observer));
  assert.is((await facilitatorSaw)[0].id, 'sup');
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(participantSaw, []);
  assert.equal(session.participants.map((p) => p.id).sort(), ['f1', 'p1']);
  assert.is(await codeOf(observer, 'createTransport', { direction: 'send' }), 'FORBIDDEN');
  const shown = await newRoom({ observersVisible: true, waitingRoom: false });
  await joinAs(await client(shown, 'sup2', 'observer'));
  const p = admitted(await joinAs(await client(shown, 'p-s')));
  assert.equal(
    p.participants.map((x) => x.id),
    ['sup2'],
  );
});

/* ---- hands and chat ---- */

test('raised hands: an ordered queue the facilitators see; only they lower others’ hands', async () => {
  const { room, facilitator, participant } = await groupWithParticipant({ waitingRoom: false });
  const other = await client(room, 'p2');
  await enter(other, facilitator, 'p2');
  const otherSaw = collect(other, 'handRaised');
  const raised = next(facilitator, 'handRaised');
  await ok(participant, 'raiseHand', {});
  assert.is((await raised)[0].participantId, 'p1');
  await ok(other, 'raiseHand', {});
  const late = await client(room, 'f3', 'facilitator');
  const session = admitted(await joinAs(late));
  assert.equal(
    session.hands.map((h) => h.participantId),
    ['p1', 'p2'],
    'oldest first',
  );
  assert.is(otherSaw.length, 1, 'a participant sees only their own hand');
  assert.is(await codeOf(other, 'lowerHand', { participantId: 'p1' }), 'FORBIDDEN');
  const lowered = next(participant, 'handLowered');
  await ok(facilitator, 'lowerHand', { participantId: 'p1' });
  assert.equal((await lowered)[0], { participantId: 'p1' });
});

test('chat: to everyone, to the facilitators, privately only with a facilitator; a facilitator deletes', async () => {
  const { room, facilitator, participant } = await groupWithParticipant();
  const other = await client(room, 'p2');
  await enter(other, facilitator, 'p2');
  const waiting = await client(room, 'p-wait');
  assert.is((await joinAs(waiting)).stage, 'waiting');
  const otherGot = collect(other, 'chatMessage');
  const facilitatorGot = collect(facilitator, 'chatMessage');
  const waitingGot = collect(waiting, 'chatMessage');
  await ok(participant, 'sendChat', { text: 'Hello everyone', to: 'everyone' });
  await ok(participant, 'sendChat', { text: 'A word with the facilitators', to: 'facilitators' });
  await ok(participant, 'sendChat', { text: 'Private to you', to: 'f1' });
  assert.is(await codeOf(participant, 'sendChat', { text: 'psst', to: 'p2' }), 'FORBIDDEN');
  await waitFor(() => facilitatorGot.length === 3, 2_000, 'three messages to the facilitator');
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(
    otherGot.map(([m]) => m.text),
    ['Hello everyone'],
  );
  assert.equal(waitingGot, []);
  const deleted = next(other, 'chatMessageDeleted');
  const first = facilitatorGot[0]?.[0].id as string;
  await ok(facilitator, 'deleteChatMessage', { messageId: first });
  assert.equal((await deleted)[0], { messageId: first });
  const observer = await client(room, 'obs2', 'observer');
  await joinAs(observer);
  assert.is(await codeOf(observer, 'sendChat', { text: 'hi', to: 'everyone' }), 'FORBIDDEN', 'observers do not chat');
  const privateRoom = await newRoom({ privateChat: true, waitingRoom: false });
  const a = await client(privateRoom, 'pa');
  await joinAs(a);
  await joinAs(await client(privateRoom, 'pb'));
  assert.is(await codeOf(a, 'sendChat', { text: 'psst', to: 'pb' }), 'ok', 'where the room allows it');
});

test('chat is gone with the session, unless the room keeps it (then a deletion removes it there too)', async () => {
  const kept = await newRoom({ keepChat: true, waitingRoom: false });
  const f = await client(kept, 'fk', 'facilitator');
  await joinAs(f);
  const p = await client(kept, 'pk');
  await joinAs(p);
  await ok(p, 'sendChat', { text: 'Thank you all', to: 'everyone' });
  const { messageId } = await ok(p, 'sendChat', { text: 'Oops, wrong room', to: 'everyone' });
  await ok(f, 'deleteChatMessage', { messageId });
  await ok(f, 'endSession', {});
  const store = new Redis(redis.url);
  const archive = new ChatArchive(store, pino({ level: 'silent' }));
  await waitFor(async () => (await archive.messages(kept)).length === 1, 2_000, 'the kept message');
  assert.equal(
    (await archive.messages(kept)).map((m) => m.text),
    ['Thank you all'],
  );
  const notKept = (await store.keys('haven:chat:*')).filter((k) => !k.endsWith(kept));
  assert.equal(notKept, [], 'rooms without keepChat keep nothing');
  store.disconnect();
});

test('a facilitator ends the session: everyone, waiting or in, is told', async () => {
  const { room, facilitator, participant } = await groupWithParticipant();
  const waiting = await client(room, 'p-late');
  await joinAs(waiting);
  const ends = [next(participant, 'sessionEnded'), next(waiting, 'sessionEnded')];
  await ok(facilitator, 'endSession', {});
  await Promise.all(ends);
  assert.ok((await admin(node.url, 'GET', `/v1/rooms/${room}`)).body.data.endedAt);
});

/* ---- audit ---- */

test('a facilitator suggests audio only: the person is told by whom, nobody else; a participant cannot; not for the waiting', async () => {
  const { room, facilitator, participant } = await groupWithParticipant();
  const other = await client(room, 'p2');
  await enter(other, facilitator, 'p2');
  const othersHeard = collect(other, 'audioOnlySuggested');
  const suggested = next(participant, 'audioOnlySuggested');
  await ok(facilitator, 'suggestAudioOnly', { participantId: 'p1' });
  assert.equal((await suggested)[0], { by: 'f1' });
  assert.is(await codeOf(other, 'suggestAudioOnly', { participantId: 'p1' }), 'FORBIDDEN');
  assert.is(await codeOf(facilitator, 'suggestAudioOnly', { participantId: 'nobody' }), 'NOT_FOUND');
  const waiting = await client(room, 'p3');
  assert.is((await joinAs(waiting)).stage, 'waiting');
  assert.is(await codeOf(facilitator, 'suggestAudioOnly', { participantId: 'p3' }), 'NOT_FOUND', 'not in the session');
  // The person's own switch needs nobody's leave, and tells only them.
  const own = next(participant, 'audioOnlyChanged');
  await ok(participant, 'setAudioOnly', { enabled: true });
  assert.equal((await own)[0], { enabled: true, reason: 'self' });
  assert.equal(othersHeard, []);
});

test('the audit log holds every moderation action and consent, ids only, and verifies', async () => {
  const client = new Redis(redis.url);
  const audit = new AuditLog(client, pino({ level: 'silent' }));
  const rooms = (await client.keys('haven:audit:*')).map((k) => k.slice('haven:audit:'.length));
  assert.ok(rooms.length >= 5);
  const actions = new Set<string>();
  for (const room of rooms) {
    const verified = await audit.verify(room);
    assert.ok(verified.ok, `${room}: ${JSON.stringify(verified)}`);
    for (const entry of await audit.entries(room, { count: 1000 })) {
      actions.add(entry.action);
      assert.not.match(JSON.stringify(entry), /Name of|Hello everyone|Private to you|What is said/);
    }
  }
  for (const action of [
    'consent.accept',
    'admit',
    'deny',
    'mute',
    'ban',
    'lock',
    'endSession',
    'room.create',
    'consent.update',
    'suggestAudioOnly',
  ]) {
    assert.ok(actions.has(action), action);
  }
  client.disconnect();
});

test.run();
