/**
 * No frame, event name, payload or HTTP request takes a node down or disturbs anyone else's
 * connection: odd and reserved event names, malformed packets, oversized tokens and frames,
 * hostile nesting, malformed URLs and bodies, against a real node process. Each test ends by
 * checking that the node still answers and that a bystander's session still works.
 */
import { EventEmitter, once } from 'node:events';
import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { connect as netConnect } from 'node:net';
import { Writable } from 'node:stream';
import pino from 'pino';
import { Server as SocketServer } from 'socket.io';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { isAlive, waitFor } from '../../bench/processes.ts';
import { protocolVersion } from '../../client-sdk/src/protocol/index.ts';
import type { TokenVerifier } from '../../server/auth/tokens.ts';
import type { AdminDeps } from '../../server/http/admin.ts';
import { createHttpApp } from '../../server/http/app.ts';
import type { RoomManager } from '../../server/rooms/room-manager.ts';
import { loggableEventName } from '../../server/signaling/guard.ts';
import { attachSignaling, type HavenSocketServer } from '../../server/signaling/signaling.ts';
import { sessionNode } from '../helpers/session-node.ts';
import {
  connect,
  connectOutcome,
  ok,
  request,
  sendRawPacket,
  type TestSocket,
  testAdminKey,
  token,
} from '../helpers/signaling-client.ts';

const haven = sessionNode(test, {
  env: { HAVEN_SIGNALING_RATE_BURST: '500', HAVEN_DEMO: 'true' },
  roomPrefix: 'robust',
  room: { title: 'Group', waitingRoom: false },
});
const { node, client } = haven;
let seq = 0;

/** A test that took the node down must not take the next tests with it: they get a new node. */
test.before.each(async () => {
  if (!node.child.pid || !isAlive(node.child.pid)) await haven.restart();
});

/** A facilitator alone in a fresh room, joined: the bystander whose session must not notice. */
async function bystander(): Promise<TestSocket> {
  const socket = await client(await haven.newRoom(), `f-${++seq}`, 'facilitator');
  await ok(socket, 'join', { protocolVersion });
  return socket;
}

/** The node process is alive, `/healthz` answers, and the bystander's next request works. */
async function assertUnharmed(other: TestSocket): Promise<void> {
  assert.ok(node.child.pid && isAlive(node.child.pid), `node died:\n${node.output().slice(-2_000)}`);
  const health = await fetch(`${node.url}/healthz`);
  assert.is(health.status, 200);
  assert.ok(other.connected, "the bystander's connection was closed");
  const locked = await request(other, 'lockRoom', { locked: true });
  assert.ok(locked.ok, JSON.stringify(locked));
  await ok(other, 'lockRoom', { locked: false });
}

/** A connected socket that has not joined any room: a token is all it took. */
async function stranger(): Promise<TestSocket> {
  return client(`nowhere-${process.pid}-${++seq}`, `s-${seq}`);
}

function emitWithAck(socket: TestSocket, name: unknown, ...args: unknown[]): Promise<unknown> {
  const untyped = socket.timeout(5_000) as unknown as { emitWithAck(...a: unknown[]): Promise<unknown> };
  return untyped.emitWithAck(name, ...args);
}

const untyped = (socket: TestSocket) => socket as unknown as { emit(...args: unknown[]): void };

const codeOf = (answer: unknown) => (answer as { error?: { code?: string } }).error?.code;

test('an event whose name is a number is answered UNKNOWN_EVENT, and nothing else happens', async () => {
  const other = await bystander();
  const s = await stranger();
  untyped(s).emit(1, {});
  assert.is(codeOf(await emitWithAck(s, 2, {})), 'UNKNOWN_EVENT');
  assert.is(codeOf(await emitWithAck(s, 3.5)), 'UNKNOWN_EVENT');
  assert.ok(s.connected);
  await assertUnharmed(other);
});

test('odd event names (empty, huge, prototype names, error) are answered UNKNOWN_EVENT', async () => {
  const other = await bystander();
  const s = await stranger();
  const names = ['', 'x'.repeat(20_000), '__proto__', 'constructor', 'hasOwnProperty', 'toString', 'error', '\u0000'];
  for (const name of names) {
    assert.is(codeOf(await emitWithAck(s, name, { a: 1 })), 'UNKNOWN_EVENT', JSON.stringify(name.slice(0, 20)));
  }
  // Without an acknowledgement, too (the `error` event once reached an EventEmitter with no listener).
  for (const name of names) untyped(s).emit(name, { a: 1 });
  assert.is(codeOf(await emitWithAck(s, 'join', 'not an object')), 'INVALID_REQUEST');
  assert.ok(s.connected);
  // An unknown name is logged by type, length and hash: a client may put anything in it.
  assert.is(codeOf(await emitWithAck(s, 'MaryJaneSmith', {})), 'UNKNOWN_EVENT');
  await waitFor(() => node.output().includes(loggableEventName('MaryJaneSmith')), 5_000, 'the unknown event logged');
  assert.not.ok(node.output().includes('MaryJaneSmith'));
  await assertUnharmed(other);
});

test("reserved names and malformed packets close at most the sender's own connection", async () => {
  const other = await bystander();
  const packets = [
    '2["connect",{}]',
    '2["connect_error",{}]',
    '2["disconnect"]',
    '21["disconnecting",{}]',
    '2["newListener","x"]',
    '2["removeListener","x"]',
    '2[',
    '2{}',
    '2[]',
    '2[null]',
    '2[{"__proto__":1}]',
    '9',
    '3["orphan ack"]',
    '399[]',
    '0{}',
    '0/other,{}',
    '1',
    '5-["join"]',
    '2/nowhere,["join",{}]',
  ];
  for (const packet of packets) {
    const s = await stranger();
    const closed = new Promise<void>((r) => s.once('disconnect', () => r()));
    sendRawPacket(s, packet);
    // The sender is still served (the packet was ignored) or was disconnected (a protocol violation).
    await Promise.race([closed, emitWithAck(s, 'join', null).catch(() => undefined)]);
  }
  await assertUnharmed(other);
});

test('a token of any size up to the frame limit is refused with a code', async () => {
  const other = await bystander();
  for (const size of [16_000, 100_000, 200_000, 1_000_000]) {
    const outcome = await connectOutcome(node.url, { token: 'e'.repeat(size) });
    assert.is(outcome.outcome, 'refused', `${size}: ${JSON.stringify(outcome)}`);
    if (outcome.outcome === 'refused') assert.is(outcome.error?.code, 'UNAUTHORIZED', `${size}`);
  }
  const junk = await connectOutcome(node.url, { token: token('r', 'u'), junk: 'j'.repeat(900_000) });
  assert.is(junk.outcome, 'connected', junk.outcome === 'refused' ? JSON.stringify(junk.error) : junk.outcome);
  if (junk.outcome === 'connected') junk.socket.close();
  await assertUnharmed(other);
});

test('a frame over the transport limit closes only its sender, with WebSocket close code 1009', async () => {
  const other = await bystander();
  const outcome = await connectOutcome(node.url, { token: 'e'.repeat(2_000_000) });
  assert.equal(outcome, { outcome: 'closed', reason: 'transport close', closeCode: 1009 });
  const s = await stranger();
  const closed = new Promise<unknown>((r) => s.once('disconnect', (_reason, d) => r(d)));
  untyped(s).emit('sendChat', { text: 't'.repeat(2_000_000), to: 'everyone' });
  const description = (await closed) as { context?: { code?: number } };
  assert.is(description.context?.code, 1009);
  await assertUnharmed(other);
});

test('a 1 MB string, 1,000-deep and 150,000-deep nesting get coded answers, not INTERNAL', async () => {
  const other = await bystander();
  const s = await stranger();
  await ok(s, 'join', { protocolVersion }).catch(() => undefined);
  assert.is(
    codeOf(await emitWithAck(s, 'sendChat', { text: 't'.repeat(1_000_000), to: 'everyone' })),
    'INVALID_REQUEST',
  );
  let nested: unknown = 1;
  for (let i = 0; i < 1_000; i++) nested = { a: nested };
  // Within the size limit: it reaches the room, which knows no such transport.
  assert.is(
    codeOf(await emitWithAck(other, 'connectTransport', { transportId: 't', dtlsParameters: nested })),
    'NOT_FOUND',
  );
  assert.is(codeOf(await emitWithAck(other, 'sendChat', { text: 'hello', to: nested })), 'INVALID_REQUEST');
  // Deeper than the client library can serialise: written by hand, as an attacker would.
  const depth = 150_000;
  const deep = `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
  const engine = (other as unknown as { io: { engine: { on(e: string, l: (d: unknown) => void): void } } }).io.engine;
  const answer = new Promise<string>((r) => engine.on('message', (d) => String(d).startsWith('3777') && r(String(d))));
  sendRawPacket(other, `2777["connectTransport",{"transportId":"t","dtlsParameters":${deep}}]`);
  const raw = String(await answer);
  assert.ok(raw.startsWith('3777'), raw.slice(0, 80));
  assert.is(JSON.parse(raw.slice(4))[0].error.code, 'INVALID_REQUEST', raw.slice(0, 200));
  await assertUnharmed(other);
});

test('binary payloads and forged attachments get INVALID_REQUEST or close only their sender', async () => {
  const other = await bystander();
  const s = await stranger();
  assert.is(codeOf(await emitWithAck(s, 'join', Buffer.alloc(16))), 'INVALID_REQUEST');
  assert.is(
    codeOf(await emitWithAck(other, 'sendChat', { text: Buffer.from('hi'), to: 'everyone' })),
    'INVALID_REQUEST',
  );
  assert.is(
    codeOf(await emitWithAck(other, 'connectTransport', { transportId: 't', dtlsParameters: Buffer.alloc(8) })),
    'INVALID_REQUEST',
  );
  const engine = (s as unknown as { io: { engine: { write(d: unknown): void } } }).io.engine;
  for (const packet of ['51-["join",{"_placeholder":true,"num":7}]', '51-["join",{"_placeholder":"x","num":{}}]']) {
    const forged = await stranger();
    const closed = new Promise<void>((r) => forged.once('disconnect', () => r()));
    const forgedEngine = (forged as unknown as { io: { engine: { write(d: unknown): void } } }).io.engine;
    forgedEngine.write(packet);
    forgedEngine.write(Buffer.from('attachment'));
    await Promise.race([closed, emitWithAck(forged, 'join', null).catch(() => undefined)]);
  }
  // Announced attachments that never come: the packet waits, nothing else does.
  engine.write('5999999-["join",{"_placeholder":true,"num":0}]');
  await assertUnharmed(other);
});

/** One raw HTTP/1.1 request, written as given: status line and body of the answer. */
function rawHttp(text: string): Promise<{ status: number; body: string }> {
  const { port } = new URL(node.url);
  return new Promise((resolve, reject) => {
    const socket = netConnect(Number(port), '127.0.0.1', () => socket.end(text));
    let data = '';
    socket.on('data', (c) => {
      data += c.toString();
    });
    socket.on('error', reject);
    socket.on('close', () => {
      const status = Number(/^HTTP\/1\.1 (\d+)/.exec(data)?.[1] ?? 0);
      resolve({ status, body: data.slice(data.indexOf('\r\n\r\n') + 4) });
    });
  });
}

test('malformed URLs get a coded 400, never a crash', async () => {
  const other = await bystander();
  for (const path of ['//[', '/v1/rooms/%E0%A4%A', '/v1/rooms/%', '/v1/participants/%C0/attendance']) {
    const res = await rawHttp(
      `GET ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${testAdminKey}\r\nConnection: close\r\n\r\n`,
    );
    assert.is(res.status, 400, `${path}: ${res.status} ${res.body}`);
    assert.is(JSON.parse(res.body).error.code, 'INVALID_REQUEST', path);
  }
  await assertUnharmed(other);
});

test('requests the HTTP parser refuses get a coded JSON answer too', async () => {
  const other = await bystander();
  const garbage = await rawHttp('GARBAGE\r\n\r\n');
  assert.is(garbage.status, 400, garbage.body);
  assert.is(JSON.parse(garbage.body).error.code, 'INVALID_REQUEST');
  const bigHeaders = await rawHttp(`GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'h'.repeat(20_000)}\r\n\r\n`);
  assert.is(bigHeaders.status, 431, bigHeaders.body);
  assert.is(JSON.parse(bigHeaders.body).error.code, 'INVALID_REQUEST');
  await assertUnharmed(other);
});

/** POSTs `body` with a content type; the status and JSON answer. */
function post(path: string, body: string | Buffer, type = 'application/json') {
  return new Promise<{ status: number; body: { ok: boolean; error?: { code: string } } }>((resolve, reject) => {
    const req = httpRequest(`${node.url}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${testAdminKey}`, 'content-type': type },
    });
    req.on('response', (res) => {
      let text = '';
      res.on('data', (c) => {
        text += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
    });
    // The server may answer and close before reading a large body: that answer is what counts.
    req.on('error', reject);
    req.end(body);
  });
}

test('HTTP bodies: over 64 KiB 413, malformed JSON 400, other content types 400, all coded', async () => {
  const other = await bystander();
  for (const path of ['/v1/rooms', '/demo/token']) {
    for (const size of [70_000, 1_000_000, 8_000_000]) {
      const res = await post(path, JSON.stringify({ title: 'x'.repeat(size) }));
      assert.is(res.status, 413, `${path} ${size}`);
      assert.equal(res.body.ok, false);
      assert.is(res.body.error?.code, 'PAYLOAD_TOO_LARGE');
    }
    const bad = await post(path, '{"title": ');
    assert.is(bad.status, 400);
    assert.is(bad.body.error?.code, 'INVALID_REQUEST');
    const text = await post(path, 'title=x', 'text/plain');
    assert.is(text.status, 400);
    assert.is(text.body.error?.code, 'INVALID_REQUEST');
  }
  await assertUnharmed(other);
});

/**
 * Handlers that throw. The real rooms and stores cannot be made to fail on demand, so these run
 * Haven's real signaling and HTTP layers in this process, over real socket.io and HTTP, in front
 * of stand-ins whose methods throw (the one place this file does not use a node process).
 */
function memoryLogger() {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n')) if (line) lines.push(JSON.parse(line));
      done();
    },
  });
  return { logger: pino({ level: 'debug' }, sink), lines };
}

test('a request handler that throws answers INTERNAL with the errorId of its log line; the connection goes on', async () => {
  const { logger, lines } = memoryLogger();
  const room = Object.assign(new EventEmitter(), {
    id: 'r1',
    closed: false,
    join: async () => ({ response: { stage: 'admitted' }, replacedConnectionId: undefined }),
    stageOf: () => 'admitted',
    caller: () => ({ id: 'p1' }),
    hands: {
      raise() {
        throw new TypeError('a bug in a room');
      },
    },
    moderation: { lowerHand: async () => {} },
    disconnected() {
      throw new Error('a bug on disconnect');
    },
  });
  const rooms = Object.assign(new EventEmitter(), { roomFor: async () => room });
  const verifier = {
    verify: async (t: unknown) => {
      if (t === 'sync-throw') throw new RangeError('a bug in the verifier');
      return { participantId: 'p1', roomId: 'r1', role: 'participant', name: 'N' };
    },
  };
  const http = createServer();
  const io: HavenSocketServer = new SocketServer(http, { serveClient: false });
  attachSignaling(io, {
    verifier: verifier as unknown as TokenVerifier,
    rooms: rooms as unknown as RoomManager,
    logger,
    rateLimit: 100,
    rateBurst: 100,
  });
  http.listen(0, '127.0.0.1');
  await once(http, 'listening');
  const url = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
  try {
    const s = await connect(url, 'a token');
    await ok(s, 'join', { protocolVersion });
    const answer = (await request(s, 'raiseHand', {})) as { ok: false; error: { code: string; errorId?: string } };
    assert.is(answer.error.code, 'INTERNAL');
    assert.match(String(answer.error.errorId), /^[A-Za-z0-9_-]{12}$/);
    const logged = lines.find((l) => l.errorId === answer.error.errorId);
    assert.ok(logged, 'the errorId is in the log');
    assert.is(logged?.level, 50);
    assert.ok(s.connected);
    await ok(s, 'lowerHand', {});
    // A failing verifier refuses the connection with INTERNAL and an id, and the server goes on.
    const refused = await connectOutcome(url, { token: 'sync-throw' });
    assert.is(refused.outcome === 'refused' && refused.error?.code, 'INTERNAL');
    // A throwing disconnect listener is logged, never fatal.
    s.close();
    await waitFor(
      () => lines.some((l) => l.listener === 'disconnect' && l.errorId),
      5_000,
      'the disconnect fault logged',
    );
    const again = await connect(url, 'a token');
    await ok(again, 'join', { protocolVersion });
    again.close();
  } finally {
    io.close();
  }
});

test('an HTTP route that throws answers 500 INTERNAL with the errorId of its log line', async () => {
  const { logger, lines } = memoryLogger();
  const failing = () => {
    throw new TypeError('a bug in the store');
  };
  const http = createServer(
    createHttpApp({
      readiness: failing,
      admin: { apiKey: testAdminKey, logger, store: { list: failing } } as unknown as AdminDeps,
      logger,
    }),
  );
  http.listen(0, '127.0.0.1');
  await once(http, 'listening');
  const url = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
  try {
    for (const path of ['/v1/rooms', '/readyz']) {
      const res = await fetch(`${url}${path}`, { headers: { authorization: `Bearer ${testAdminKey}` } });
      const body = (await res.json()) as { ok: boolean; error: { code: string; errorId: string } };
      assert.is(res.status, 500, path);
      assert.is(body.error.code, 'INTERNAL');
      assert.ok(
        lines.some((l) => l.errorId === body.error.errorId && l.path === path),
        path,
      );
    }
    assert.is((await fetch(`${url}/healthz`)).status, 200);
  } finally {
    http.closeAllConnections();
    http.close();
  }
});

test.run();
