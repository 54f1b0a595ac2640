/**
 * Signaling against a real node process: authentication, the admin API, joining, every request's
 * validation, state and permission checks, rate limits, replacement and reconnection grace.
 */
import { once } from 'node:events';
import jwt from 'jsonwebtoken';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { waitFor } from '../../bench/processes.ts';
import { protocolVersion, type RequestName } from '../../client-sdk/src/protocol/index.ts';
import { mintAccessToken } from '../../server-sdk/src/mint.ts';
import { rejects } from '../helpers/assert.ts';
import { sessionNode } from '../helpers/session-node.ts';
import {
  admin,
  admitted,
  collect,
  connect,
  joinAs,
  next,
  ok,
  request,
  type TestSocket,
  testSecret,
} from '../helpers/signaling-client.ts';

const haven = sessionNode(test, {
  env: {
    HAVEN_ROOMS_RECONNECT_GRACE_S: '2',
    HAVEN_ROOMS_EMPTY_TIMEOUT_S: '1',
    HAVEN_SIGNALING_RATE_LIMIT: '10',
    HAVEN_SIGNALING_RATE_BURST: '30',
  },
  // No waiting room here: this file tests sessions; the waiting room is tested in facilitation.test.ts.
  room: { title: 'Tuesday group', waitingRoom: false },
});
const { node, client } = haven;
const newRoom = (kind = 'group', extra: object = {}): Promise<string> => haven.newRoom({ kind, ...extra });

/** Joins and expects to be admitted at once; returns the session state. */
const join = async (socket: TestSocket) => admitted(await joinAs(socket));

/* ---- authentication ---- */

test('a connection without a token is refused UNAUTHORIZED', async () => {
  const err = (await rejects(() => connect(node.url, undefined), /UNAUTHORIZED/)) as Error & { data: { code: string } };
  assert.is(err.data.code, 'UNAUTHORIZED');
});

test('an expired, a forged and a wrong-audience token are refused, with the reason', async () => {
  const base = { issuer: 'haven', audience: 'haven', sub: 'p1', name: 'P', room: 'r', role: 'participant' } as const;
  const now = Math.floor(Date.now() / 1000);
  const { issuer, audience, ...claims } = base;
  const expired = jwt.sign({ ...claims, iss: issuer, aud: audience, iat: now - 3600, exp: now - 120 }, testSecret);
  const forged = mintAccessToken({ ...base, secret: 'another-secret-of-enough-length-0123456789' });
  const wrongAudience = mintAccessToken({ ...base, secret: testSecret, audience: 'someone-else' });
  for (const [tokenValue, reason] of [
    [expired, /expired/],
    [forged, /signature/],
    [wrongAudience, /audience/],
  ] as const) {
    const err = (await rejects(() => connect(node.url, tokenValue), /UNAUTHORIZED/)) as Error & {
      data: { message: string };
    };
    assert.match(err.data.message, reason);
  }
  // The log names the token by its hash only.
  assert.not.ok(node.output().includes(expired));
  assert.ok(node.logs.some((l) => typeof l.tokenHash === 'string'));
});

/* ---- admin API ---- */

test('admin API: no key or a wrong key is 401', async () => {
  assert.is((await admin(node.url, 'GET', '/v1/rooms', undefined, '')).status, 401);
  const wrong = await admin(node.url, 'GET', '/v1/rooms', undefined, 'wrong-key-wrong-key-wrong-key');
  assert.is(wrong.status, 401);
  assert.is(wrong.body.error?.code, 'UNAUTHORIZED');
});

test('admin API: creates, reads, lists with pagination, refuses duplicates and bad bodies', async () => {
  const id = await newRoom('group', {
    capacity: 8,
    schedule: { start: '2026-12-01T17:00:00-05:00', end: '2026-12-01T20:00:00-05:00', timeZone: 'America/New_York' },
    roster: ['pt-1', 'pt-2'],
  });
  const got = await admin(node.url, 'GET', `/v1/rooms/${id}`);
  assert.is(got.status, 200);
  assert.is(got.body.data.capacity, 8);
  assert.equal(got.body.data.roster, ['pt-1', 'pt-2']);
  assert.is(got.body.data.live, null);
  const dup = await admin(node.url, 'POST', '/v1/rooms', { id, title: 'again' });
  assert.is(dup.status, 409);
  for (const body of [
    '{not json',
    { title: '' },
    { title: 'x', kind: 'party' },
    { title: 'x', capacity: 0 },
    { title: 'x', id: 'has spaces' },
    // Dot-only ids cannot be a URL path segment (clients resolve them away): never a room's.
    { title: 'x', id: '.' },
    { title: 'x', id: '..' },
    { title: 'x', unknown: 1 },
    { title: 'x', schedule: { start: '2026-12-01T20:00:00Z', end: '2026-12-01T17:00:00Z', timeZone: 'UTC' } },
    { title: 'x', schedule: { start: '2026-12-01T17:00:00Z', end: '2026-12-01T20:00:00Z', timeZone: 'Mars/Olympus' } },
  ]) {
    const res = await admin(node.url, 'POST', '/v1/rooms', body);
    assert.is(res.status, 400, JSON.stringify(body));
    assert.is(res.body.error?.code, 'INVALID_REQUEST');
  }
  await newRoom();
  const page1 = await admin(node.url, 'GET', '/v1/rooms?limit=1');
  assert.is(page1.body.data.rooms.length, 1);
  assert.is(page1.body.data.nextCursor, 1);
  const page2 = await admin(node.url, 'GET', `/v1/rooms?limit=1&cursor=${page1.body.data.nextCursor}`);
  assert.is.not(page2.body.data.rooms[0].id, page1.body.data.rooms[0].id);
  assert.is((await admin(node.url, 'GET', '/v1/rooms/no-such-room')).status, 404);
  assert.is((await admin(node.url, 'GET', '/v1/rooms?limit=1000')).status, 400);
});

test('an individual room is always one client, whatever capacity is asked', async () => {
  const id = await newRoom('individual', { capacity: 5 });
  assert.is((await admin(node.url, 'GET', `/v1/rooms/${id}`)).body.data.capacity, 1);
});

/* ---- joining ---- */

test('a participant joining a room nobody created gets NOT_FOUND; a facilitator opens it', async () => {
  const room = `adhoc-${process.pid}`;
  const participant = await client(room, 'pt-a');
  const refused = await request(participant, 'join', { protocolVersion });
  assert.equal(refused.ok ? null : refused.error.code, 'NOT_FOUND');
  const facilitator = await client(room, 'fac-a', 'facilitator');
  const joined = await join(facilitator);
  assert.is(joined.room.id, room);
  assert.is(joined.room.kind, 'group');
  assert.is((await request(participant, 'join', { protocolVersion })).ok, true);
});

test('join answers the room, self, capabilities, others and router capabilities; others are told', async () => {
  const room = await newRoom();
  const facilitator = await client(room, 'fac-1', 'facilitator');
  const f = await join(facilitator);
  assert.equal(f.participants, []);
  assert.equal(f.self, { id: 'fac-1', name: 'Name of fac-1', role: 'facilitator', tracks: [] });
  assert.equal(f.capabilities, { publishAudio: true, publishVideo: true, publishScreen: true, chat: true });
  assert.is(f.resumed, false);
  assert.is(f.reconnectGraceMs, 2000);
  assert.ok(Array.isArray((f.routerRtpCapabilities as { codecs: unknown[] }).codecs));
  const joinedNote = next(facilitator, 'participantJoined');
  const participant = await client(room, 'pt-1');
  const p = await join(participant);
  assert.equal(
    p.participants.map((x) => x.id),
    ['fac-1'],
  );
  assert.is(p.capabilities.publishScreen, false);
  const [info] = await joinedNote;
  assert.is(info.id, 'pt-1');
  // Joining twice on one connection is a state error.
  const again = await request(participant, 'join', { protocolVersion });
  assert.is(again.ok ? '' : again.error.code, 'INVALID_STATE');
});

test('a wrong protocol version is refused', async () => {
  const socket = await client(await newRoom(), 'pt-v');
  const res = await request(socket, 'join', { protocolVersion: protocolVersion + 1 });
  assert.is(res.ok ? '' : res.error.code, 'INVALID_REQUEST');
});

test('an individual room admits one facilitator and one participant: anyone more is ROOM_FULL', async () => {
  const room = await newRoom('individual');
  await join(await client(room, 'fac-i', 'facilitator'));
  await join(await client(room, 'pt-i'));
  for (const [sub, role] of [
    ['pt-i2', 'participant'],
    ['fac-i2', 'facilitator'],
  ] as const) {
    const res = await request(await client(room, sub, role), 'join', { protocolVersion });
    assert.is(res.ok ? '' : res.error.code, 'ROOM_FULL', sub);
  }
});

test('a group room refuses participants past its capacity', async () => {
  const room = await newRoom('group', { capacity: 2 });
  await join(await client(room, 'g1'));
  await join(await client(room, 'g2'));
  const res = await request(await client(room, 'g3'), 'join', { protocolVersion });
  assert.is(res.ok ? '' : res.error.code, 'ROOM_FULL');
});

/* ---- validation, state, permissions ---- */

const malformed: Record<RequestName, unknown> = {
  liveAttendance: { extra: true },
  createPlainTransport: { direction: 'both' },
  connectPlainTransport: { transportId: 't', ip: 'example.org', port: 5004, srtpParameters: {} },
  join: { protocolVersion: 'one' },
  createTransport: { direction: 'sideways' },
  connectTransport: { transportId: 42, dtlsParameters: {} },
  restartIce: {},
  produce: { transportId: 't', kind: 'audio', source: 'telepathy', rtpParameters: {} },
  pauseProducer: { producerId: '' },
  resumeProducer: { producerId: 'x'.repeat(129) },
  closeProducer: null,
  consume: { transportId: 't', producerId: 'p', rtpCapabilities: 'all' },
  resumeConsumer: { consumerId: ['c'] },
  pauseConsumer: 'c',
  setPreferredSize: { consumerId: 'c', width: -1, height: 10 },
  setAudioOnly: { enabled: 'yes' },
  suggestAudioOnly: { participantId: 42 },
  leave: { extra: true },
  acceptConsent: { version: 0 },
  raiseHand: { now: true },
  lowerHand: { participantId: 7 },
  sendChat: { text: '', to: 'everyone' },
  admit: { participantId: '' },
  admitAll: [],
  deny: { participantId: 'p', reason: 'x'.repeat(201) },
  messageWaitingRoom: { text: '   ' },
  moveToWaitingRoom: {},
  mute: { participantId: null },
  muteAll: { all: true },
  setAudioMode: { mode: 'silent' },
  requestUnmute: { id: 'p' },
  disableCamera: { participantId: 1 },
  stopScreenShare: 'p',
  remove: { participantId: 'p', ban: 'yes' },
  lockRoom: { locked: 'true' },
  endSession: { now: 1 },
  setDisplayName: { participantId: 'p', name: '' },
  spotlight: {},
  deleteChatMessage: { messageId: '' },
  e2eeDistribute: { epoch: 1, keys: [{ participantId: 'p', wrapped: 'not base64!' }] },
  e2eeKeyReceived: { epoch: -1 },
  createBreakouts: { count: 0 },
  updateBreakouts: { groups: [] },
  startBreakouts: { durationS: 5 },
  moveToBreakout: { participantId: 'p' },
  visitBreakout: { breakoutId: 7 },
  broadcastToBreakouts: { text: 'x'.repeat(501) },
  recallBreakouts: { now: true },
  askForHelp: { urgent: true },
};

test('every request with a malformed payload is INVALID_REQUEST, and the connection lives on', async () => {
  const socket = await client(await newRoom(), 'pt-m');
  for (const [name, payload] of Object.entries(malformed)) {
    await new Promise((r) => setTimeout(r, 40)); // stay under the rate limit
    const res = await request(socket, name as RequestName, payload);
    assert.is(res.ok ? '' : res.error.code, 'INVALID_REQUEST', name);
  }
  assert.ok(socket.connected);
  await join(socket);
});

test('requests before join are INVALID_STATE', async () => {
  const socket = await client(await newRoom(), 'pt-s');
  for (const [name, payload] of [
    ['createTransport', { direction: 'send' }],
    ['consume', { transportId: 't', producerId: 'p', rtpCapabilities: {} }],
    ['leave', {}],
  ] as const) {
    const res = await request(socket, name, payload);
    assert.is(res.ok ? '' : res.error.code, 'INVALID_STATE', name);
  }
});

test('unknown ids are NOT_FOUND; mediasoup-invalid parameters are INVALID_REQUEST', async () => {
  const socket = await client(await newRoom(), 'pt-n');
  await join(socket);
  const send = await ok(socket, 'createTransport', { direction: 'send' });
  assert.ok(send.id && Array.isArray(send.iceCandidates) && send.iceCandidates.length > 0);
  for (const [name, payload] of [
    ['connectTransport', { transportId: 'nope', dtlsParameters: {} }],
    ['pauseProducer', { producerId: 'nope' }],
    ['resumeConsumer', { consumerId: 'nope' }],
  ] as const) {
    const res = await request(socket, name, payload);
    assert.is(res.ok ? '' : res.error.code, 'NOT_FOUND', name);
  }
  const bad = await request(socket, 'produce', {
    transportId: send.id,
    kind: 'audio',
    source: 'microphone',
    rtpParameters: { codecs: 'opus' },
  });
  assert.is(bad.ok ? '' : bad.error.code, 'INVALID_REQUEST');
  // A second send transport replaces the first: still one per direction.
  const second = await ok(socket, 'createTransport', { direction: 'send' });
  const stale = await request(socket, 'connectTransport', { transportId: send.id, dtlsParameters: {} });
  assert.is(stale.ok ? '' : stale.error.code, 'NOT_FOUND', 'the first is gone');
  assert.is.not(second.id, send.id);
});

test('plain RTP transports are refused unless the node allows them; a WebRTC transport is not one', async () => {
  const socket = await client(await newRoom(), 'pt-plain');
  await join(socket);
  const refused = await request(socket, 'createPlainTransport', { direction: 'recv' });
  assert.is(refused.ok ? '' : refused.error.code, 'FORBIDDEN');
  const webRtc = await ok(socket, 'createTransport', { direction: 'recv' });
  const keying = { cryptoSuite: 'AES_CM_128_HMAC_SHA1_80', keyBase64: Buffer.alloc(30, 7).toString('base64') };
  const wrong = await request(socket, 'connectPlainTransport', {
    transportId: webRtc.id,
    ip: '127.0.0.1',
    port: 5004,
    srtpParameters: keying,
  });
  assert.is(wrong.ok ? '' : wrong.error.code, 'INVALID_REQUEST');
});

test('permissions: an observer cannot publish; a participant cannot share a screen; a kind must match its source', async () => {
  const room = await newRoom();
  const observer = await client(room, 'obs-1', 'observer');
  await join(observer);
  const refused = await request(observer, 'createTransport', { direction: 'send' });
  assert.is(refused.ok ? '' : refused.error.code, 'FORBIDDEN');
  assert.ok((await request(observer, 'createTransport', { direction: 'recv' })).ok);
  const participant = await client(room, 'pt-p');
  await join(participant);
  const send = await ok(participant, 'createTransport', { direction: 'send' });
  const screen = await request(participant, 'produce', {
    transportId: send.id,
    kind: 'video',
    source: 'screen',
    rtpParameters: {},
  });
  assert.is(screen.ok ? '' : screen.error.code, 'FORBIDDEN');
  const mismatch = await request(participant, 'produce', {
    transportId: send.id,
    kind: 'video',
    source: 'microphone',
    rtpParameters: {},
  });
  assert.is(mismatch.ok ? '' : mismatch.error.code, 'INVALID_REQUEST');
});

test('an unknown event is answered UNKNOWN_EVENT; a request without acknowledgement is ignored', async () => {
  const socket = await client(await newRoom(), 'pt-u');
  const res = (await (
    socket.timeout(5_000) as unknown as { emitWithAck: (...a: unknown[]) => Promise<unknown> }
  ).emitWithAck('becomeFacilitator', {})) as { ok: boolean; error: { code: string } };
  assert.is(res.error.code, 'UNKNOWN_EVENT');
  (socket as unknown as { emit: (...a: unknown[]) => void }).emit('join', { protocolVersion });
  await new Promise((r) => setTimeout(r, 100));
  assert.ok(socket.connected);
  await join(socket);
});

test('a flood is answered RATE_LIMITED without dropping the connection', async () => {
  const socket = await client(await newRoom(), 'pt-f');
  const answers = await Promise.all(Array.from({ length: 60 }, () => request(socket, 'leave', {})));
  const codes = answers.map((a) => (a.ok ? 'ok' : a.error.code));
  assert.ok(codes.includes('RATE_LIMITED'));
  assert.ok(codes.filter((c) => c === 'INVALID_STATE').length >= 25, 'the burst was served');
  assert.ok(socket.connected);
  await new Promise((r) => setTimeout(r, 1_100));
  assert.ok((await request(socket, 'join', { protocolVersion })).ok, 'served again after a second');
});

/* ---- presence ---- */

test('leave: the others are told, with the reason', async () => {
  const room = await newRoom();
  const a = await client(room, 'pt-l1');
  await join(a);
  const b = await client(room, 'pt-l2');
  await join(b);
  const left = next(a, 'participantLeft');
  await ok(b, 'leave', {});
  assert.equal((await left)[0], { participantId: 'pt-l2', reason: 'left' });
});

test('the same identity joining again replaces its older connection: no ghost, no leave seen', async () => {
  const room = await newRoom();
  const watcher = await client(room, 'pt-w');
  await join(watcher);
  const leaves = collect(watcher, 'participantLeft');
  const joins = collect(watcher, 'participantJoined');
  const first = await client(room, 'pt-r');
  await join(first);
  const replaced = next(first, 'replaced');
  const second = await client(room, 'pt-r');
  const resumed = await join(second);
  await replaced;
  assert.is(resumed.resumed, true);
  await waitFor(() => !first.connected, 2_000, 'the old connection to close');
  await new Promise((r) => setTimeout(r, 200));
  assert.is(joins.length, 1);
  assert.is(leaves.length, 0);
});

test('a dropped connection keeps its place for the grace window; past it, the others see a leave', async () => {
  const room = await newRoom();
  const watcher = await client(room, 'pt-g0');
  await join(watcher);
  const leaves = collect(watcher, 'participantLeft');
  const dropping = await client(room, 'pt-g1');
  await join(dropping);
  dropping.close();
  await new Promise((r) => setTimeout(r, 500));
  const back = await client(room, 'pt-g1');
  assert.is((await join(back)).resumed, true);
  assert.is(leaves.length, 0, 'no leave within the grace window');
  back.close();
  const [left] = await next(watcher, 'participantLeft', 5_000);
  assert.equal(left, { participantId: 'pt-g1', reason: 'disconnected' });
});

test('a room empty past its timeout closes and frees its router; it opens again on the next join', async () => {
  const room = await newRoom();
  const a = await client(room, 'pt-t1');
  await join(a);
  assert.is((await admin(node.url, 'GET', `/v1/rooms/${room}`)).body.data.live.participants, 1);
  await ok(a, 'leave', {});
  await waitFor(
    async () => (await admin(node.url, 'GET', `/v1/rooms/${room}`)).body.data.live === null,
    5_000,
    'the room to close',
  );
  const b = await client(room, 'pt-t2');
  await join(b);
  assert.is((await admin(node.url, 'GET', `/v1/rooms/${room}`)).body.data.live.routers, 1);
});

test('ending a session through the admin API tells every participant and closes the room', async () => {
  const room = await newRoom();
  const a = await client(room, 'pt-e1');
  await join(a);
  const ended = next(a, 'sessionEnded');
  const res = await admin(node.url, 'POST', `/v1/rooms/${room}/end`);
  assert.is(res.status, 200);
  assert.match((await ended)[0].reason, /ended/);
  const late = await request(await client(room, 'pt-e2'), 'join', { protocolVersion });
  assert.is(late.ok ? '' : late.error.code, 'INVALID_STATE');
  assert.ok((await admin(node.url, 'GET', `/v1/rooms/${room}`)).body.data.endedAt);
});

test('no request made the node log an internal error', () => {
  const internal = node.logs.filter((l) => l.msg === 'request failed' || l.level === 50);
  assert.equal(internal, []);
});

test('SIGTERM with people in rooms: they are disconnected and the node exits 0, promptly', async () => {
  const room = await newRoom();
  const a = await client(room, 'pt-z1');
  const b = await client(room, 'pt-z2');
  await join(a);
  await join(b);
  await ok(a, 'createTransport', { direction: 'send' });
  const disconnected = Promise.all([a, b].map((s) => new Promise((r) => s.once('disconnect', r))));
  const exited = once(node.child, 'exit');
  const started = Date.now();
  node.child.kill('SIGTERM');
  const [code] = await exited;
  await disconnected;
  const tookMs = Date.now() - started;
  assert.is(code, 0);
  assert.ok(tookMs < 10_000, `took ${tookMs} ms`);
  console.log(`    shutdown with clients in a room took ${tookMs} ms`);
});

test.run();
