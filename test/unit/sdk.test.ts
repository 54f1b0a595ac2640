/**
 * The browser SDK without a Haven server: argument checks, states, backoff, how requests and
 * handshake refusals surface, the join's stages (consent, waiting room, admission, denial) and
 * facilitation (against a bare socket.io server that plays the server's part; a Device is loaded
 * with WebRTC from `@roamhq/wrtc`), and the browser bundle.
 */
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import { Server, type Socket } from 'socket.io';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { graceExpired, ReconnectDeadline } from '../../client-sdk/src/connection/reconnect-deadline.ts';
import {
  BackoffReconnectPolicy,
  backoffDelay,
  type ConnectionState,
  HavenRequestError,
  InvalidStateError,
  type ReconnectPolicy,
  RemoteTrack,
  SessionClient,
  type SessionClientEvents,
  type SessionClientOptions,
  type SessionState,
  type WaitingEntry,
} from '../../client-sdk/src/index.ts';
import { obtainToken } from '../../client-sdk/src/options.ts';
import { buildSdk, bundleProblems } from '../../scripts/build-sdk.ts';
import { throwsAsync } from '../helpers/assert.ts';
import { sessionStateFixture } from '../helpers/sdk-fixtures.ts';
import { createNodeSessionClient } from '../helpers/wrtc-session.ts';

const url = 'http://127.0.0.1:1';
const fakeAudioTrack = { kind: 'audio', readyState: 'live', enabled: true, stop() {} } as unknown as MediaStreamTrack;

/** The next `event` of `client`, with its arguments: what a test waits for instead of a timer. */
function nextEvent<K extends keyof SessionClientEvents>(
  client: SessionClient,
  event: K,
): Promise<SessionClientEvents[K]> {
  return new Promise((resolve) => client.once(event, (...args) => resolve(args)));
}

/** Resolves once `client` is in `state` (at once if it is already). */
function inState(client: SessionClient, state: ConnectionState): Promise<void> {
  if (client.connectionState === state) return Promise.resolve();
  return new Promise((resolve) => {
    const check = (now: ConnectionState) => {
      if (now !== state) return;
      client.off('connectionStateChanged', check);
      resolve();
    };
    client.on('connectionStateChanged', check);
  });
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
    pausedReason: null,
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

test('ReconnectDeadline: waits never run past the grace; retryAfterMs waited exactly; maxAttempts; expiry once', async () => {
  let now = 1_000;
  const policy = new BackoffReconnectPolicy({ maxAttempts: 3, baseDelayMs: 500, maxDelayMs: 5_000 });
  let expired = 0;
  const window = new ReconnectDeadline(
    policy,
    4_000,
    () => expired++,
    () => now,
  );
  assert.is(window.remainingMs, 4_000);
  const unavailable = new HavenRequestError('UNAVAILABLE', 'moving', 'connect', { retryAfterMs: 1_234 });
  assert.is(window.nextDelay(unavailable), 1_234, 'retryAfterMs as the server said');
  now += 3_900;
  const delay = window.nextDelay(new Error('refused'));
  assert.ok(delay !== undefined && delay <= 100, `cut to the 100 ms left, not ${delay}`);
  assert.ok(window.open);
  now += 100;
  assert.is(window.nextDelay(undefined), 0);
  assert.not.ok(window.open, 'no time left');
  assert.is(window.nextDelay(undefined), undefined, 'maxAttempts used up');
  window.stop();
  assert.is(expired, 0, 'stopped before its timer');

  // The timer: called once when the grace has passed; stop() ends a wait at once.
  const fired = new Promise<void>((resolve) => new ReconnectDeadline(policy, 10, resolve));
  await fired;
  const idle = new ReconnectDeadline(policy, 60_000, () => expired++);
  const waiting = idle.wait(60_000);
  idle.stop();
  await waiting;
  assert.is(expired, 0);
  const error = graceExpired(8_000, new HavenRequestError('DISCONNECTED', 'refused', 'connect'));
  assert.is(error.code, 'GRACE_EXPIRED');
  assert.match(error.message, /8000 ms grace window \(last attempt: refused\)/);
  assert.is((error.cause as HavenRequestError).code, 'DISCONNECTED');
});

test('obtainToken: a string as is; a function that throws, hangs or gives no string is TOKEN_UNAVAILABLE', async () => {
  assert.is(await obtainToken('abc', 10), 'abc');
  assert.is(await obtainToken(async () => 'minted', 1_000), 'minted');
  const failed = new TypeError('Failed to fetch');
  const cases: [() => Promise<string>, RegExp][] = [
    [() => Promise.reject(failed), /token function failed: Failed to fetch/],
    [
      () => {
        throw failed;
      },
      /Failed to fetch/,
    ],
    [async () => '', /non-empty string/],
    [async () => 42 as unknown as string, /non-empty string/],
    [() => new Promise<string>(() => {}), /took over 20 ms/],
  ];
  for (const [token, pattern] of cases) {
    const error = (await throwsAsync(() => obtainToken(token, 20), HavenRequestError, pattern)) as HavenRequestError;
    assert.is(error.code, 'TOKEN_UNAVAILABLE');
    assert.is(error.request, 'connect');
  }
  const error = (await throwsAsync(() => obtainToken(() => Promise.reject(failed), 20), HavenRequestError)) as Error;
  assert.is(error.cause, failed, 'what the function threw is the cause');
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
        else if (mode === 'fault')
          ack({ ok: false, error: { code: 'INTERNAL', message: 'internal error', errorId: 'e-4f2a9c1b7d30' } });
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

    const fault = new SessionClient({ url: server.url, token: 'fault' });
    await fault.connect();
    const internal = (await throwsAsync(() => fault.join(), HavenRequestError)) as HavenRequestError;
    assert.is(internal.code, 'INTERNAL');
    assert.is(internal.errorId, 'e-4f2a9c1b7d30', 'the id to quote, from the node’s log');
    await fault.leave();

    const silent = new SessionClient({ url: server.url, token: 'silent', requestTimeoutMs: 200 });
    await silent.connect();
    const timedOut = (await throwsAsync(() => silent.join(), HavenRequestError)) as HavenRequestError;
    assert.is(timedOut.code, 'TIMEOUT');
    assert.match(timedOut.message, /within 200 ms/, 'the request timeout, not the default');
    assert.is(silent.connectionState, 'connected');
    await silent.leave();
    assert.equal(tokens, ['locked', 'limited', 'garbage', 'fault', 'silent']);
  } finally {
    await server.close();
  }
});

test('a connection lost before join goes back to disconnected; a server disconnect closes the client', async () => {
  let connected: Socket | undefined;
  const server = await fakeServer((io) => {
    io.on('connection', (socket) => {
      connected = socket;
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
      const last = inState(client, expected[2]);
      // A network drop (the transport closes) or the server closing this connection on purpose.
      if (token === 'drop') connected?.conn.close();
      else connected?.disconnect(true);
      await last;
      assert.equal(states, [...expected], token);
      assert.is(closedWith, reason, token);
      await client.leave();
    }
  } finally {
    await server.close();
  }
});

/* ---- facilitation: the join's stages and moderation, scripted by a bare socket.io server ---- */

type AckFn = (response: unknown) => void;
const ok = (data: unknown) => ({ ok: true, data });
const refuse = (code: string, message: string) => ({ ok: false, error: { code, message } });

/** Router capabilities enough for mediasoup-client's Device to load. */
const routerRtpCapabilities = {
  codecs: [
    {
      kind: 'audio',
      mimeType: 'audio/opus',
      clockRate: 48_000,
      channels: 2,
      preferredPayloadType: 100,
      parameters: {},
      rtcpFeedback: [],
    },
    {
      kind: 'video',
      mimeType: 'video/VP8',
      clockRate: 90_000,
      preferredPayloadType: 101,
      parameters: {},
      rtcpFeedback: [],
    },
  ],
  headerExtensions: [],
};

function sessionState(overrides: Partial<SessionState> = {}): SessionState {
  return sessionStateFixture(routerRtpCapabilities, overrides);
}

/**
 * A fake server whose every connection runs `script`; `requests` records what clients sent,
 * `sockets` every connection, so that the test sends notifications when it is ready for them.
 */
async function stageServer(script: (socket: Socket, requests: [string, unknown][]) => void) {
  const requests: [string, unknown][] = [];
  const sockets: Socket[] = [];
  const server = await fakeServer((io) =>
    io.on('connection', (socket) => {
      sockets.push(socket);
      script(socket, requests);
      // leave() waits for this answer (best effort, up to requestTimeoutMs).
      if (socket.listeners('leave').length === 0) socket.on('leave', (_payload: unknown, ack: AckFn) => ack(ok({})));
    }),
  );
  return { ...server, requests, sockets, last: () => sockets[sockets.length - 1] as Socket };
}

/** Answers `name` with `answer(payload)` (an Ack) and records it. */
function answer(socket: Socket, requests: [string, unknown][], name: string, reply: (payload: unknown) => unknown) {
  socket.on(name, (payload: unknown, ack: AckFn) => {
    requests.push([name, payload]);
    ack(reply(payload));
  });
}

test('acceptConsent() of a version no longer in force: the refusal brings the text in force, accepted next', async () => {
  const inForce = { version: 4, hash: 'cd', text: 'Private, version four.' };
  const server = await stageServer((socket, requests) => {
    answer(socket, requests, 'join', () =>
      ok({ stage: 'consent', consent: { version: 3, hash: 'ab', text: 'Private.' } }),
    );
    answer(socket, requests, 'acceptConsent', (payload) =>
      (payload as { version: number }).version === 4
        ? ok({ stage: 'waiting', waiting: { facilitatorPresent: false } })
        : {
            ok: false,
            error: { code: 'INVALID_REQUEST', message: 'consent version 4 is in force, not 3', consent: inForce },
          },
    );
  });
  const { client } = createNodeSessionClient(server.url, 'p-1');
  try {
    client.on('error', () => {});
    await client.connect();
    const gate = nextEvent(client, 'consentRequired');
    void client.join().catch(() => {});
    await gate;
    const again = nextEvent(client, 'consentRequired');
    const stale = (await throwsAsync(() => client.acceptConsent(), HavenRequestError)) as HavenRequestError;
    assert.is(stale.code, 'INVALID_REQUEST');
    assert.equal(stale.consent, inForce);
    assert.equal(await again, [inForce]);
    assert.is(client.connectionState, 'consent');
    assert.equal(client.consent, inForce);
    await client.acceptConsent();
    assert.is(client.connectionState, 'waiting');
    assert.equal(
      server.requests.filter(([name]) => name === 'acceptConsent').map(([, p]) => p),
      [{ version: 3 }, { version: 4 }],
    );
  } finally {
    await client.leave();
    await server.close();
  }
});

test('join() passes the consent gate and the waiting room, and resolves once admitted', async () => {
  let acceptances = 0;
  const server = await stageServer((socket, requests) => {
    answer(socket, requests, 'join', () =>
      ok({ stage: 'consent', consent: { version: 3, hash: 'ab', text: 'Private.' } }),
    );
    answer(socket, requests, 'acceptConsent', (payload) => {
      acceptances++;
      if (acceptances === 1) return refuse('INVALID_REQUEST', 'the consent text changed: join again');
      assert.equal(payload, { version: 3 });
      return ok({ stage: 'waiting', waiting: { facilitatorPresent: false } });
    });
  });
  const session = createNodeSessionClient(server.url, 'p-1');
  const { client } = session;
  try {
    const states: ConnectionState[] = [];
    const events: string[] = [];
    const errors: Error[] = [];
    client.on('connectionStateChanged', (state) => states.push(state));
    client.on('consentRequired', (consent) => {
      events.push(`consent ${consent.version}`);
      assert.is(client.consent?.text, 'Private.');
    });
    client.on('waiting', (info) => events.push(`waiting ${info.facilitatorPresent} ${info.message ?? ''}`.trim()));
    client.on('admitted', () => events.push('admitted'));
    client.on('participantJoined', (participant) => events.push(`joined ${participant.name}`));
    client.on('error', (error) => errors.push(error));
    await client.connect();
    let admitted = false;
    const gate = nextEvent(client, 'consentRequired');
    const joining = client.join().then(() => {
      admitted = true;
    });
    await gate;
    assert.is(client.connectionState, 'consent');
    assert.not.ok(admitted);
    await throwsAsync(() => client.publishMicrophone(fakeAudioTrack), InvalidStateError);
    const stale = (await throwsAsync(() => client.acceptConsent(), HavenRequestError)) as HavenRequestError;
    assert.is(stale.code, 'INVALID_REQUEST');
    assert.is(client.connectionState, 'consent', 'a refused acceptance stays at the gate');
    assert.is(errors.length, 1, 'the refusal is also an error event');
    await client.acceptConsent();
    assert.is(client.connectionState, 'waiting');
    assert.equal(client.waitingInfo, { facilitatorPresent: false });
    const update = nextEvent(client, 'waiting');
    server.last().emit('waiting', { facilitatorPresent: true, message: 'We start in 5 minutes' });
    await update;
    assert.not.ok(admitted);
    server.last().emit('admitted', sessionState({ audioMode: 'controlled', locked: true }));
    await joining;
    assert.equal(events, [
      'consent 3',
      'waiting false',
      'waiting true We start in 5 minutes',
      'joined Dr. Lee',
      'admitted',
    ]);
    assert.equal(states, [
      'connecting',
      'connected',
      'joining',
      'consent',
      'joining',
      'consent',
      'joining',
      'waiting',
      'joining',
      'joined',
    ]);
    assert.is(client.localParticipant?.id, 'p-1');
    assert.is(client.audioMode, 'controlled');
    assert.is(client.locked, true);
    assert.is(client.consent, undefined);
    await throwsAsync(() => client.acceptConsent(), InvalidStateError);
  } finally {
    await session.close();
    await server.close();
  }
});

test('denied: join() rejects with DENIED, the client closes with reason denied', async () => {
  const server = await stageServer((socket, requests) => {
    answer(socket, requests, 'join', () => ok({ stage: 'waiting', waiting: { facilitatorPresent: true } }));
  });
  const session = createNodeSessionClient(server.url, 'p-1');
  const { client } = session;
  try {
    const denied: (string | undefined)[] = [];
    const closed: string[] = [];
    client.on('denied', (reason) => denied.push(reason));
    client.on('closed', (reason) => closed.push(reason));
    await client.connect();
    const joining = client.join();
    await inState(client, 'waiting');
    server.last().emit('denied', { reason: 'This group is full today' });
    server.last().disconnect(true);
    const error = (await throwsAsync(() => joining, HavenRequestError)) as HavenRequestError;
    assert.is(error.code, 'DENIED');
    assert.is(error.message, 'This group is full today');
    assert.equal(denied, ['This group is full today']);
    assert.equal(closed, ['denied']);
    assert.is(client.connectionState, 'closed');
  } finally {
    await session.close();
    await server.close();
  }
});

test('leave() in the waiting room rejects the pending join() and closes', async () => {
  const server = await stageServer((socket, requests) => {
    answer(socket, requests, 'join', () => ok({ stage: 'waiting', waiting: { facilitatorPresent: false } }));
    answer(socket, requests, 'leave', () => ok({}));
  });
  const session = createNodeSessionClient(server.url, 'p-1');
  const { client } = session;
  try {
    await client.connect();
    const joinFailed = throwsAsync(() => client.join(), InvalidStateError, /left/);
    await inState(client, 'waiting');
    await client.leave();
    await joinFailed;
    assert.is(client.connectionState, 'closed');
  } finally {
    await session.close();
    await server.close();
  }
});

test('moderation: arguments checked, needs joined, a FORBIDDEN answer surfaces as code FORBIDDEN', async () => {
  const server = await stageServer((socket, requests) => {
    answer(socket, requests, 'join', () => ok({ stage: 'admitted', session: sessionState() }));
    for (const name of ['mute', 'admitAll', 'lockRoom', 'remove']) {
      answer(socket, requests, name, () => refuse('FORBIDDEN', 'facilitators only'));
    }
  });
  const session = createNodeSessionClient(server.url, 'p-1');
  const { client } = session;
  try {
    await throwsAsync(() => client.moderation.mute('f-1'), InvalidStateError, /joined/);
    await client.connect();
    await client.join();
    await throwsAsync(() => client.moderation.mute(''), TypeError);
    await throwsAsync(() => client.moderation.setAudioMode('loud' as never), TypeError);
    await throwsAsync(() => client.moderation.lockRoom('yes' as never), TypeError);
    await throwsAsync(() => client.moderation.remove('f-1', { ban: 1 as never }), TypeError);
    await throwsAsync(() => client.moderation.messageWaitingRoom('  '), TypeError);
    for (const call of [
      () => client.moderation.mute('f-1'),
      () => client.moderation.admitAll(),
      () => client.moderation.lockRoom(),
      () => client.moderation.remove('f-1', { ban: true }),
    ]) {
      const error = (await throwsAsync(call, HavenRequestError)) as HavenRequestError;
      assert.is(error.code, 'FORBIDDEN');
    }
    assert.equal(server.requests.slice(1), [
      ['mute', { participantId: 'f-1' }],
      ['admitAll', {}],
      ['lockRoom', { locked: true }],
      ['remove', { participantId: 'f-1', ban: true }],
    ]);
  } finally {
    await session.close();
    await server.close();
  }
});

test('facilitators: moderation.waiting follows the join answer and waitingRoomChanged; admit sends the request', async () => {
  const first: WaitingEntry = { participantId: 'p-2', name: 'Sam', waitingSince: 1 };
  const second: WaitingEntry = { participantId: 'p-3', name: 'Alex', waitingSince: 2 };
  const server = await stageServer((socket, requests) => {
    answer(socket, requests, 'join', () =>
      ok({
        stage: 'admitted',
        session: sessionState({
          self: { id: 'f-1', name: 'Dr. Lee', role: 'facilitator', tracks: [] },
          participants: [],
          waiting: [first],
        }),
      }),
    );
    answer(socket, requests, 'admit', () => ok({}));
    answer(socket, requests, 'admitAll', () => ok({ admitted: 1, admittedIds: ['p-2'], leftWaiting: [] }));
  });
  const session = createNodeSessionClient(server.url, 'f-1');
  const { client } = session;
  try {
    const changes: number[] = [];
    client.on('waitingRoomChanged', (waiting) => changes.push(waiting.length));
    await client.connect();
    await client.join();
    assert.equal(client.moderation.waiting, [first]);
    let changed = nextEvent(client, 'waitingRoomChanged');
    server.last().emit('waitingRoomChanged', { waiting: [first, second] });
    await changed;
    assert.equal(client.moderation.waiting, [first, second]);
    await client.moderation.admit('p-3');
    changed = nextEvent(client, 'waitingRoomChanged');
    server.last().emit('waitingRoomChanged', { waiting: [first] });
    await changed;
    assert.equal(client.moderation.waiting, [first]);
    assert.equal(changes, [2, 1]);
    assert.equal(await client.moderation.admitAll(), { admitted: 1, admittedIds: ['p-2'], leftWaiting: [] });
    assert.equal(server.requests[1], ['admit', { participantId: 'p-3' }]);
  } finally {
    await session.close();
    await server.close();
  }
});

test('a facilitator with a live attendance view asks for it again after a reconnection', async () => {
  const facilitatorSession = sessionState({
    self: { id: 'f-1', name: 'Dr. Lee', role: 'facilitator', tracks: [] },
    participants: [],
  });
  let connections = 0;
  const server = await stageServer((socket, requests) => {
    connections++;
    const attempt = connections;
    answer(socket, requests, 'join', () =>
      ok({ stage: 'admitted', session: { ...facilitatorSession, resumed: attempt > 1 } }),
    );
    answer(socket, requests, 'liveAttendance', () =>
      ok({
        asOf: 1_000 * attempt,
        participants: [
          { participantId: 'f-1', present: true, presentSince: 0, secondsPresent: attempt, role: 'facilitator' },
        ],
      }),
    );
  });
  const session = createNodeSessionClient(server.url, 'f-1', { reconnect: { baseDelayMs: 10, maxDelayMs: 20 } });
  const { client } = session;
  try {
    await client.connect();
    await client.join();
    const first = await client.moderation.liveAttendance();
    assert.is(first.get('f-1')?.secondsPresent, 1);
    const refreshed = nextEvent(client, 'attendanceUpdated');
    server.last().conn.close();
    const [view] = await refreshed;
    assert.is(connections, 2);
    assert.is(view.get('f-1')?.secondsPresent, 2, 'the answer asked for on the new connection');
    assert.equal(
      server.requests.map(([name]) => name),
      ['join', 'liveAttendance', 'join', 'liveAttendance'],
    );
  } finally {
    await session.close();
    await server.close();
  }
});

test('moderation.endSession(): resolves whether sessionEnded comes before or after the answer; a plain drop rejects', async () => {
  const server = await stageServer((socket, requests) => {
    answer(socket, requests, 'join', () =>
      ok({
        stage: 'admitted',
        session: sessionState({ self: { id: 'f-1', name: 'Dr. Lee', role: 'facilitator', tracks: [] } }),
      }),
    );
    socket.on('endSession', (_payload: unknown, ack: AckFn) => {
      const order = socket.handshake.auth.token;
      if (order === 'drop') return socket.conn.close();
      if (order === 'notice first') socket.emit('sessionEnded', { reason: 'ended by the facilitator' });
      ack(ok({}));
      if (order === 'answer first') socket.emit('sessionEnded', { reason: 'ended by the facilitator' });
    });
  });
  try {
    for (const order of ['notice first', 'answer first']) {
      const session = createNodeSessionClient(server.url, order);
      const { client } = session;
      const closing = nextEvent(client, 'closed');
      await client.connect();
      await client.join();
      await client.moderation.endSession();
      assert.equal((await closing)[0], 'sessionEnded', order);
      await session.close();
    }
    const session = createNodeSessionClient(server.url, 'drop', { reconnect: false });
    await session.client.connect();
    await session.client.join();
    const error = (await throwsAsync(
      () => session.client.moderation.endSession(),
      HavenRequestError,
    )) as HavenRequestError;
    assert.is(error.code, 'DISCONNECTED', 'no sessionEnded: the session may not have ended');
    await session.close();
  } finally {
    await server.close();
  }
});

test('moved to the waiting room and readmitted: everyone leaves the view, admitted again', async () => {
  const server = await stageServer((socket, requests) => {
    answer(socket, requests, 'join', () => ok({ stage: 'admitted', session: sessionState() }));
  });
  const session = createNodeSessionClient(server.url, 'p-1');
  const { client } = session;
  try {
    const events: string[] = [];
    client.on('admitted', () => events.push('admitted'));
    client.on('movedToWaitingRoom', () => events.push('moved'));
    client.on('waiting', (info) => events.push(`waiting ${info.reason}`));
    client.on('participantLeft', (participant, reason) => events.push(`left ${participant.id} ${reason}`));
    await client.connect();
    await client.join();
    assert.is(client.participants.size, 1);
    const moved = nextEvent(client, 'waiting');
    server.last().emit('waiting', { facilitatorPresent: true, reason: 'movedByFacilitator' });
    await moved;
    assert.is(client.connectionState, 'waiting');
    assert.is(client.participants.size, 0);
    const readmitted = nextEvent(client, 'admitted');
    server.last().emit('admitted', sessionState({ participants: [] }));
    await readmitted;
    assert.is(client.connectionState, 'joined');
    assert.equal(events, [
      'admitted',
      'left f-1 movedToWaitingRoom',
      'moved',
      'waiting movedByFacilitator',
      'admitted',
    ]);
  } finally {
    await session.close();
    await server.close();
  }
});

test('hands, chat, names, lock, audio mode, spotlight: requests sent, notifications applied', async () => {
  const server = await stageServer((socket, requests) => {
    answer(socket, requests, 'join', () =>
      ok({ stage: 'admitted', session: sessionState({ hands: [{ participantId: 'p-1', raisedAt: 5 }] }) }),
    );
    answer(socket, requests, 'lowerHand', () => {
      socket.emit('handLowered', { participantId: 'p-1' });
      return ok({});
    });
    answer(socket, requests, 'raiseHand', () => {
      socket.emit('handRaised', { participantId: 'p-1', raisedAt: 9 });
      return ok({});
    });
    answer(socket, requests, 'sendChat', (payload) => {
      const { text, to } = payload as { text: string; to: string };
      socket.emit('chatMessage', { id: 'm-1', from: 'p-1', to, text, sentAt: 10 });
      socket.emit('chatMessageDeleted', { messageId: 'm-1' });
      socket.emit('displayNameChanged', { participantId: 'f-1', name: 'Lee' });
      socket.emit('displayNameChanged', { participantId: 'p-1', name: 'P.' });
      socket.emit('roomLocked', { locked: true });
      socket.emit('audioModeChanged', { mode: 'controlled' });
      socket.emit('spotlightChanged', { participantId: 'f-1' });
      socket.emit('unmuteRequested', { by: 'f-1' });
      return ok({ messageId: 'm-1' });
    });
  });
  const session = createNodeSessionClient(server.url, 'p-1');
  const { client } = session;
  try {
    const events: string[] = [];
    client.on('handRaised', (hand) => events.push(`hand ${hand.participantId}`));
    client.on('handLowered', (id) => events.push(`lowered ${id}`));
    client.on('chatMessage', (message) => events.push(`chat ${message.text} ${message.to}`));
    client.on('chatMessageDeleted', (id) => events.push(`deleted ${id}`));
    client.on('displayNameChanged', (id, name) => events.push(`name ${id} ${name}`));
    client.on('roomLocked', (locked) => events.push(`locked ${locked}`));
    client.on('audioModeChanged', (mode) => events.push(`mode ${mode}`));
    client.on('spotlightChanged', (id) => events.push(`spotlight ${id}`));
    client.on('unmuteRequested', (by) => events.push(`unmute? ${by}`));
    await client.connect();
    await client.join();
    assert.equal(client.hands, [{ participantId: 'p-1', raisedAt: 5 }]);
    // The fake server notifies before it answers: each call's effects are in by the time it resolves.
    await client.lowerHand();
    assert.equal(client.hands, []);
    await client.raiseHand();
    assert.equal(client.hands, [{ participantId: 'p-1', raisedAt: 9 }]);
    await throwsAsync(() => client.sendChat(''), TypeError);
    await throwsAsync(() => client.sendChat('x'.repeat(2001)), TypeError);
    await throwsAsync(() => client.sendChat('hi', ''), TypeError);
    assert.is(await client.sendChat('hello', 'facilitators'), 'm-1');
    assert.equal(events, [
      'lowered p-1',
      'hand p-1',
      'chat hello facilitators',
      'deleted m-1',
      'name f-1 Lee',
      'name p-1 P.',
      'locked true',
      'mode controlled',
      'spotlight f-1',
      'unmute? f-1',
    ]);
    assert.is(client.participants.get('f-1')?.name, 'Lee');
    assert.is(client.localParticipant?.name, 'P.');
    assert.is(client.locked, true);
    assert.is(client.audioMode, 'controlled');
    assert.is(client.spotlight, 'f-1');
    assert.equal(
      server.requests.slice(1).map(([name]) => name),
      ['lowerHand', 'raiseHand', 'sendChat'],
    );
  } finally {
    await session.close();
    await server.close();
  }
});

test('an E2EE room refusing this client (E2EE_UNSUPPORTED): join() rejects with it and the client closes', async () => {
  const server = await stageServer((socket, requests) => {
    answer(socket, requests, 'join', () => refuse('E2EE_UNSUPPORTED', 'this room is end-to-end encrypted'));
  });
  const session = createNodeSessionClient(server.url, 'p-1');
  const { client } = session;
  try {
    const closed = nextEvent(client, 'closed');
    await client.connect();
    const error = (await throwsAsync(() => client.join(), HavenRequestError)) as HavenRequestError;
    assert.is(error.code, 'E2EE_UNSUPPORTED');
    const [reason, cause] = await closed;
    assert.is(reason, 'failed');
    assert.is(cause, error);
    assert.is(client.connectionState, 'closed');
    assert.equal(server.requests, [['join', { protocolVersion: 1 }]], 'Node cannot encrypt: no public key sent');
  } finally {
    await session.close();
    await server.close();
  }
});

test('in an E2EE room without a key: nothing is published or received, chat waits for a key', async () => {
  const roster = {
    leader: 'f-1',
    members: [{ participantId: 'f-1', publicKey: `B${'A'.repeat(86)}=` }],
    revision: 1,
    epoch: 0,
    rotationIntervalMs: 900_000,
    breakoutId: null,
  };
  const track = { participantId: 'f-1', producerId: 'pr-1', kind: 'audio', source: 'microphone', paused: false };
  const server = await stageServer((socket, requests) => {
    answer(socket, requests, 'join', () =>
      ok({
        stage: 'admitted',
        session: sessionState({
          room: { id: 'grp-1', kind: 'group', title: 'Encrypted group', e2ee: true, shareConnectionQuality: false },
          participants: [{ id: 'f-1', name: 'Dr. Lee', role: 'facilitator', tracks: [track as never] }],
          e2ee: roster,
        }),
      }),
    );
    answer(socket, requests, 'raiseHand', () => ok({}));
  });
  const session = createNodeSessionClient(server.url, 'p-1');
  const { client } = session;
  try {
    const states: string[] = [];
    client.e2ee.on('stateChanged', (state) => states.push(state));
    assert.is(client.e2ee.state, 'off');
    await client.connect();
    await client.join();
    assert.ok(client.e2ee.enabled);
    assert.is(client.e2ee.state, 'waiting');
    assert.equal(states, ['waiting']);
    assert.is(client.e2ee.epoch, null);
    assert.is(client.e2ee.memberCount, 1);
    assert.not.ok(client.e2ee.isLeader);
    assert.equal(await client.e2ee.getStats(), {
      framesEncrypted: 0,
      framesDecrypted: 0,
      framesFailed: 0,
      encryptMs: 0,
      decryptMs: 0,
    });
    const refused = (await throwsAsync(
      () => client.publishMicrophone(fakeAudioTrack),
      HavenRequestError,
    )) as HavenRequestError;
    assert.is(refused.code, 'E2EE_UNSUPPORTED', 'this client cannot encrypt: it sends nothing');
    await throwsAsync(() => client.sendChat('hello'), InvalidStateError, /not active/);
    // Requests keep their order: had the client consumed the track, the server would have seen it first.
    await client.raiseHand();
    assert.equal(
      server.requests.map(([name]) => name),
      ['join', 'raiseHand'],
    );
    await client.leave();
    assert.is(client.e2ee.state, 'off');
  } finally {
    await session.close();
    await server.close();
  }
});

test('removed: the client closes with reason removed and does not reconnect', async () => {
  let connections = 0;
  const server = await stageServer((socket, requests) => {
    connections++;
    answer(socket, requests, 'join', () => ok({ stage: 'admitted', session: sessionState() }));
  });
  const session = createNodeSessionClient(server.url, 'p-1', { reconnect: { baseDelayMs: 10 } });
  const { client } = session;
  try {
    const removed: boolean[] = [];
    const closed: string[] = [];
    client.on('removed', (banned) => removed.push(banned));
    client.on('closed', (reason) => closed.push(reason));
    await client.connect();
    await client.join();
    const closing = nextEvent(client, 'closed');
    server.last().emit('removed', { banned: true });
    server.last().disconnect(true);
    await closing;
    assert.equal(removed, [true]);
    assert.equal(closed, ['removed']);
    // Closed for good: the disconnect that followed started no reconnection.
    assert.is(client.connectionState, 'closed');
    assert.is(connections, 1);
  } finally {
    await session.close();
    await server.close();
  }
});

test('a connection dropped in the waiting room reconnects and waits again; admission then resolves join()', async () => {
  let connections = 0;
  const server = await stageServer((socket, requests) => {
    connections++;
    const attempt = connections;
    answer(socket, requests, 'join', () => ok({ stage: 'waiting', waiting: { facilitatorPresent: attempt > 1 } }));
  });
  const session = createNodeSessionClient(server.url, 'p-1', { reconnect: { baseDelayMs: 10, maxDelayMs: 20 } });
  const { client } = session;
  try {
    const states: ConnectionState[] = [];
    client.on('connectionStateChanged', (state) => states.push(state));
    await client.connect();
    const joining = client.join();
    await inState(client, 'waiting');
    const back = nextEvent(client, 'waiting');
    server.last().conn.close();
    const [info] = await back;
    assert.is(info.facilitatorPresent, true, 'waiting again, on the second connection');
    server.last().emit('admitted', sessionState());
    await joining;
    assert.is(connections, 2);
    assert.equal(states, [
      'connecting',
      'connected',
      'joining',
      'waiting',
      'reconnecting',
      'waiting',
      'joining',
      'joined',
    ]);
  } finally {
    await session.close();
    await server.close();
  }
});

test('a drop in the waiting room: the SDK tries for the grace the waiting answer announced, then GRACE_EXPIRED', async () => {
  let refusing = false;
  let refused = 0;
  const sockets: Socket[] = [];
  const server = await fakeServer((io) => {
    io.use((_socket, next) => {
      if (!refusing) return next();
      refused++;
      next(new Error('node down'));
    });
    io.on('connection', (socket) => {
      sockets.push(socket);
      socket.on('join', (_payload: unknown, ack: AckFn) =>
        ack(ok({ stage: 'waiting', waiting: { facilitatorPresent: false }, reconnectGraceMs: 300 })),
      );
    });
  });
  const session = createNodeSessionClient(server.url, 'p-1', { reconnect: { baseDelayMs: 10, maxDelayMs: 50 } });
  const { client } = session;
  try {
    await client.connect();
    // Expected to fail: its handler is attached now, before it can reject (the grace's timer may
    // reject it before 'closed' is emitted).
    const joinFailed = throwsAsync(() => client.join(), HavenRequestError, /grace/);
    await inState(client, 'waiting');
    const closing = nextEvent(client, 'closed');
    refusing = true;
    // The drop as early as it can be: the client cannot see it before the server closes.
    const droppedAt = Date.now();
    for (const socket of sockets) socket.conn.close();
    const [reason, error] = await closing;
    const afterDrop = Date.now() - droppedAt;
    assert.is(reason, 'reconnectFailed');
    assert.is((error as HavenRequestError).code, 'GRACE_EXPIRED');
    assert.match((error as Error).message, /300 ms grace/, 'the grace of the waiting answer, not a default');
    assert.ok(afterDrop >= 300, `closed ${afterDrop} ms after the drop`);
    assert.ok(refused >= 2, `${refused} attempts`);
    await joinFailed;
  } finally {
    await session.close();
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

test('an app’s own ReconnectPolicy paces reconnection after each drop; answering null closes the client', async () => {
  let connections = 0;
  const server = await stageServer((socket, requests) => {
    connections++;
    answer(socket, requests, 'join', () =>
      ok({ stage: 'admitted', session: sessionState({ reconnectGraceMs: 4_000 }) }),
    );
  });
  const asked: { attempt: number; graceMs: number }[] = [];
  const reconnect: ReconnectPolicy = {
    // The first drop: try again at once. The second: give up.
    nextRetryDelayMs: ({ attempt, graceMs }) => {
      asked.push({ attempt, graceMs });
      return asked.length === 1 ? 0 : null;
    },
  };
  const session = createNodeSessionClient(server.url, 'p-1', { reconnect });
  const { client } = session;
  try {
    await client.connect();
    await client.join();
    const resumed = inState(client, 'reconnecting').then(() => inState(client, 'joined'));
    server.last().conn.close();
    await resumed;
    assert.is(connections, 2);
    const closed = nextEvent(client, 'closed');
    server.last().conn.close();
    const [reason, error] = await closed;
    assert.is(reason, 'reconnectFailed');
    assert.is((error as HavenRequestError).code, 'DISCONNECTED', 'given up before any attempt: the drop is the error');
    assert.equal(asked, [
      { attempt: 0, graceMs: 4_000 },
      { attempt: 0, graceMs: 4_000 },
    ]);
    assert.is(connections, 2, 'no attempt after the policy gave up');
  } finally {
    await session.close();
    await server.close();
  }
});

test.run();
