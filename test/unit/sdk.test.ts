/**
 * The browser SDK without a Haven server: argument checks, states, backoff, how requests and
 * handshake refusals surface (against a bare socket.io server that plays the server's part), and
 * the browser bundle.
 */
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import { Server } from 'socket.io';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  backoffDelay,
  type ConnectionState,
  HavenRequestError,
  InvalidStateError,
  RemoteTrack,
  SessionClient,
  type SessionClientOptions,
} from '../../client-sdk/src/index.ts';
import { buildSdk, bundleProblems } from '../../scripts/build-sdk.ts';

const url = 'http://127.0.0.1:1';
const fakeAudioTrack = { kind: 'audio', readyState: 'live', enabled: true, stop() {} } as unknown as MediaStreamTrack;

async function throwsAsync(fn: () => Promise<unknown>, type: new (...args: never[]) => Error, pattern?: RegExp) {
  try {
    await fn();
  } catch (error) {
    assert.instance(error, type);
    if (pattern) assert.match((error as Error).message, pattern);
    return error as Error;
  }
  assert.unreachable(`expected a ${type.name}`);
  throw new Error('unreachable');
}

/** A bare socket.io server on a free port, standing in for Haven's signaling. */
async function fakeServer(setup: (io: Server) => void): Promise<{ url: string; close(): Promise<void> }> {
  const http: HttpServer = createServer();
  const io = new Server(http);
  setup(io);
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(http.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        io.close();
        http.close(() => resolve());
      }),
  };
}

test('the constructor refuses bad options with a TypeError naming them', () => {
  const bad: [unknown, RegExp][] = [
    [undefined, /options/],
    [{ token: 't' }, /url/],
    [{ url: '', token: 't' }, /url/],
    [{ url }, /token/],
    [{ url, token: '' }, /token/],
    [{ url, token: 42 }, /token/],
    [{ url, token: 't', socketPath: 'socket.io' }, /socketPath/],
    [{ url, token: 't', mediasoupHandlerName: 'Netscape4' }, /mediasoupHandlerName/],
    [{ url, token: 't', reconnect: true }, /reconnect/],
    [{ url, token: 't', reconnect: { maxAttempts: -1 } }, /maxAttempts/],
    [{ url, token: 't', reconnect: { maxAttempts: 1.5 } }, /maxAttempts/],
    [{ url, token: 't', reconnect: { baseDelayMs: 0 } }, /baseDelayMs/],
    [{ url, token: 't', reconnect: { baseDelayMs: 1000, maxDelayMs: 500 } }, /maxDelayMs/],
    [{ url, token: 't', requestTimeoutMs: Number.NaN }, /requestTimeoutMs/],
  ];
  for (const [options, pattern] of bad) {
    assert.throws(
      () => new SessionClient(options as SessionClientOptions),
      (e: unknown) => {
        return e instanceof TypeError && pattern.test(e.message);
      },
    );
  }
  // Good ones.
  new SessionClient({ url, token: 't' });
  new SessionClient({ url, token: async () => 't', reconnect: false, mediasoupHandlerName: 'Chrome111' });
  new SessionClient({ url, token: 't', reconnect: { maxAttempts: Number.POSITIVE_INFINITY, baseDelayMs: 100 } });
});

test('a new client is disconnected, with nobody in it', () => {
  const client = new SessionClient({ url, token: 't' });
  assert.is(client.connectionState, 'disconnected');
  assert.is(client.participants.size, 0);
  assert.is(client.localParticipant, undefined);
  assert.is(client.room, undefined);
  assert.is(client.activeSpeakerId, null);
});

test('bad arguments are TypeErrors, checked before the state', async () => {
  const client = new SessionClient({ url, token: 't' });
  await throwsAsync(() => client.publishMicrophone('mic' as unknown as MediaStreamTrack), TypeError);
  await throwsAsync(() => client.publishCamera(fakeAudioTrack), TypeError, /video/);
  await throwsAsync(() => client.publishScreen(fakeAudioTrack), TypeError, /video/);
  await throwsAsync(() => client.setMicrophoneEnabled('yes' as unknown as boolean), TypeError);
  await throwsAsync(() => client.setCameraEnabled(undefined as unknown as boolean), TypeError);
  await throwsAsync(() => client.unpublish('mic' as never), TypeError);
});

test('calls in the wrong state are InvalidStateErrors', async () => {
  const client = new SessionClient({ url, token: 't' });
  await throwsAsync(() => client.join(), InvalidStateError, /connected/);
  await throwsAsync(() => client.publishMicrophone(fakeAudioTrack), InvalidStateError, /joined/);
  await throwsAsync(() => client.publishCamera(), InvalidStateError);
  await throwsAsync(() => client.publishScreen(), InvalidStateError);
  await throwsAsync(() => client.setMicrophoneEnabled(false), InvalidStateError);
  await throwsAsync(() => client.setCameraEnabled(true), InvalidStateError);
  await client.unpublish('camera'); // nothing published: nothing to do
});

test('leave() closes for good, idempotently; a closed client refuses to connect', async () => {
  const client = new SessionClient({ url, token: 't' });
  const closed: string[] = [];
  client.on('closed', (reason) => closed.push(reason));
  await client.leave();
  await client.leave();
  assert.is(client.connectionState, 'closed');
  assert.equal(closed, ['left']);
  await throwsAsync(() => client.connect(), InvalidStateError, /closed/);
});

test('RemoteTrack.setPreferredSize: checked, rounded, clamped, sent once per size, again after a failure', async () => {
  const sent: [number, number][] = [];
  let fail = false;
  const state = {
    consumerId: 'c1',
    producerId: 'p1',
    participantId: 'someone',
    kind: 'video' as const,
    source: 'camera' as const,
    track: {} as MediaStreamTrack,
    paused: false,
    ended: false,
    preferredSize: undefined,
    sendPreferredSize: async (width: number, height: number) => {
      if (fail) throw new HavenRequestError('DISCONNECTED', 'down', 'setPreferredSize');
      sent.push([width, height]);
    },
  };
  const remote = new RemoteTrack(state);
  for (const [w, h] of [
    [-1, 10],
    [10, Number.NaN],
    [Number.POSITIVE_INFINITY, 10],
    ['640', 360],
  ]) {
    await throwsAsync(() => remote.setPreferredSize(w as number, h as number), TypeError);
  }
  await remote.setPreferredSize(639.6, 359.5);
  await remote.setPreferredSize(640, 360);
  await remote.setPreferredSize(0, 0);
  await remote.setPreferredSize(100_000, 100_000);
  assert.equal(sent, [
    [640, 360],
    [0, 0],
    [16_384, 16_384],
  ]);
  fail = true;
  await throwsAsync(() => remote.setPreferredSize(320, 180), HavenRequestError);
  fail = false;
  await remote.setPreferredSize(320, 180);
  assert.equal(sent.at(-1), [320, 180], 'a size that failed is sent again');
  state.ended = true;
  await remote.setPreferredSize(1280, 720);
  assert.is(sent.length, 4, 'nothing is sent for an ended track');
  const audio = new RemoteTrack({ ...state, kind: 'audio', source: 'microphone', ended: false });
  await audio.setPreferredSize(1, 1);
  assert.is(sent.length, 4, 'nothing is sent for audio');
});

test('backoffDelay: full jitter under a cap that doubles up to maxDelayMs', () => {
  const policy = { baseDelayMs: 500, maxDelayMs: 5000 };
  assert.is(
    backoffDelay(0, policy, () => 0),
    0,
  );
  assert.is(
    backoffDelay(0, policy, () => 0.999999),
    499,
  );
  assert.is(
    backoffDelay(1, policy, () => 0.999999),
    999,
  );
  assert.is(
    backoffDelay(3, policy, () => 0.999999),
    3999,
  );
  assert.is(
    backoffDelay(4, policy, () => 0.999999),
    4999,
  );
  assert.is(
    backoffDelay(1000, policy, () => 0.999999),
    4999,
  );
  for (let attempt = 0; attempt < 12; attempt++) {
    const cap = Math.min(5000, 500 * 2 ** attempt);
    let max = 0;
    for (let i = 0; i < 500; i++) {
      const delay = backoffDelay(attempt, policy);
      assert.ok(
        Number.isInteger(delay) && delay >= 0 && delay < cap,
        `attempt ${attempt}: ${delay} not in [0, ${cap})`,
      );
      max = Math.max(max, delay);
    }
    // Full jitter spreads over the whole range, not just around the cap.
    assert.ok(max > cap * 0.8, `attempt ${attempt}: max ${max} of ${cap}`);
  }
  assert.throws(() => backoffDelay(-1, policy), TypeError);
  assert.throws(() => backoffDelay(0.5, policy), TypeError);
});

test('connect() to nothing fails with DISCONNECTED and goes back to disconnected', async () => {
  const client = new SessionClient({ url, token: 't', connectTimeoutMs: 3000 });
  const states: ConnectionState[] = [];
  client.on('connectionStateChanged', (state) => states.push(state));
  const error = await throwsAsync(() => client.connect(), HavenRequestError);
  assert.is((error as HavenRequestError).code, 'DISCONNECTED');
  assert.is((error as HavenRequestError).request, 'connect');
  assert.equal(states, ['connecting', 'disconnected']);
  assert.is(client.connectionState, 'disconnected');
});

test('a refused token surfaces as HavenRequestError UNAUTHORIZED; the token function is called per attempt', async () => {
  const server = await fakeServer((io) => {
    io.use((_socket, next) => {
      next(Object.assign(new Error('UNAUTHORIZED'), { data: { code: 'UNAUTHORIZED', message: 'token expired' } }));
    });
  });
  try {
    let calls = 0;
    const client = new SessionClient({
      url: server.url,
      token: async () => {
        calls++;
        return 'expired';
      },
    });
    const error = (await throwsAsync(() => client.connect(), HavenRequestError)) as HavenRequestError;
    assert.is(error.code, 'UNAUTHORIZED');
    assert.is(error.message, 'token expired');
    assert.is(client.connectionState, 'disconnected');
    await throwsAsync(() => client.connect(), HavenRequestError);
    assert.is(calls, 2);
  } finally {
    await server.close();
  }
});

test('requests: refusals carry the server code, no answer is TIMEOUT, RATE_LIMITED is retried', async () => {
  const tokens: unknown[] = [];
  let joins = 0;
  const server = await fakeServer((io) => {
    io.on('connection', (socket) => {
      tokens.push(socket.handshake.auth.token);
      socket.on('join', (request: { protocolVersion: number }, ack: (response: unknown) => void) => {
        joins++;
        assert.is(request.protocolVersion, 1);
        const mode = socket.handshake.auth.token;
        if (mode === 'locked') ack({ ok: false, error: { code: 'ROOM_LOCKED', message: 'the room is locked' } });
        else if (mode === 'limited' && joins === 1)
          ack({ ok: false, error: { code: 'RATE_LIMITED', message: 'slow' } });
        else if (mode === 'limited') ack({ ok: false, error: { code: 'ROOM_FULL', message: 'full' } });
        else if (mode === 'garbage') ack('hello');
        // 'silent': no answer
      });
    });
  });
  try {
    const locked = new SessionClient({ url: server.url, token: 'locked' });
    await locked.connect();
    assert.is(locked.connectionState, 'connected');
    const refused = (await throwsAsync(() => locked.join(), HavenRequestError)) as HavenRequestError;
    assert.is(refused.code, 'ROOM_LOCKED');
    assert.is(refused.request, 'join');
    assert.is(locked.connectionState, 'connected', 'a refused join leaves the client connected');
    await locked.leave();

    joins = 0;
    const limited = new SessionClient({ url: server.url, token: 'limited' });
    await limited.connect();
    const full = (await throwsAsync(() => limited.join(), HavenRequestError)) as HavenRequestError;
    assert.is(full.code, 'ROOM_FULL');
    assert.is(joins, 2, 'RATE_LIMITED was retried once');
    await limited.leave();

    const garbage = new SessionClient({ url: server.url, token: 'garbage' });
    await garbage.connect();
    assert.is(((await throwsAsync(() => garbage.join(), HavenRequestError)) as HavenRequestError).code, 'INTERNAL');
    await garbage.leave();

    const silent = new SessionClient({ url: server.url, token: 'silent', requestTimeoutMs: 200 });
    await silent.connect();
    const started = Date.now();
    assert.is(((await throwsAsync(() => silent.join(), HavenRequestError)) as HavenRequestError).code, 'TIMEOUT');
    assert.ok(Date.now() - started < 2000);
    assert.is(silent.connectionState, 'connected');
    await silent.leave();
    assert.equal(tokens, ['locked', 'limited', 'garbage', 'silent']);
  } finally {
    await server.close();
  }
});

test('a connection lost before join goes back to disconnected; a server disconnect closes the client', async () => {
  const server = await fakeServer((io) => {
    io.on('connection', (socket) => {
      setTimeout(() => {
        // A network drop (the transport closes) or the server closing this connection on purpose.
        if (socket.handshake.auth.token === 'drop') socket.conn.close();
        else socket.disconnect(true);
      }, 100);
    });
  });
  try {
    for (const [token, expected, reason] of [
      ['drop', ['connecting', 'connected', 'disconnected'], undefined],
      ['kick', ['connecting', 'connected', 'closed'], 'serverDisconnect'],
    ] as const) {
      const client = new SessionClient({ url: server.url, token });
      const states: ConnectionState[] = [];
      let closedWith: string | undefined;
      client.on('connectionStateChanged', (state) => states.push(state));
      client.on('closed', (why) => {
        closedWith = why;
      });
      await client.connect();
      await new Promise((resolve) => setTimeout(resolve, 400));
      assert.equal(states, [...expected], token);
      assert.is(closedWith, reason, token);
      await client.leave();
    }
  } finally {
    await server.close();
  }
});

test('the browser bundle builds: one ESM file, no require/imports/Node built-ins, exports the API', async () => {
  const build = await buildSdk();
  const { readFileSync, existsSync } = await import('node:fs');
  const code = readFileSync(build.bundle, 'utf8');
  assert.equal(bundleProblems(code), []);
  assert.not.match(code, /from\s*["']node:/);
  assert.ok(build.bytes < 400_000, `bundle is ${build.bytes} bytes`);
  assert.ok(build.gzipBytes < 90_000, `bundle is ${build.gzipBytes} bytes gzipped`);
  assert.ok(existsSync(build.declarations));
  const declarations = readFileSync(build.declarations.replace('haven-sdk.d.ts', 'types/session-client.d.ts'), 'utf8');
  assert.match(declarations, /export declare class SessionClient/);
  assert.not.match(declarations, /mediasoup-client|socket\.io-client/);
  // The bundle loads without a browser (nothing touches window/navigator at import time).
  const sdk = await import(pathToFileURL(build.bundle).href);
  for (const name of ['SessionClient', 'HavenRequestError', 'InvalidStateError', 'RemoteTrack', 'backoffDelay']) {
    assert.type(sdk[name], 'function', name);
  }
  assert.is(sdk.protocolVersion, 1);
  assert.throws(() => new sdk.SessionClient({}), TypeError);
  assert.is(new sdk.SessionClient({ url, token: 't' }).connectionState, 'disconnected');
  // Checks of the checker itself.
  assert.is(bundleProblems('var a=require("events");').length, 1);
  assert.is(bundleProblems('import{x as y}from"debug";').length, 1);
  assert.is(bundleProblems('import"./side.js";').length, 1);
  assert.is(bundleProblems('const f="node:fs";').length, 1);
});

test.run();
