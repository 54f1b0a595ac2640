/**
 * The SDK's reconnection without a server: the default policy, an app's own policy bounded by the
 * grace window, the loop (fatal refusals stop at once, a token function gets another try, the
 * window's end closes with GRACE_EXPIRED) and the node URL provider following redirects.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { followRedirects, maxRedirects } from '../../client-sdk/src/connection/node-url-provider.ts';
import { ReconnectDeadline } from '../../client-sdk/src/connection/reconnect-deadline.ts';
import { Reconnection, type ReconnectionHost } from '../../client-sdk/src/connection/reconnection.ts';
import {
  BackoffReconnectPolicy,
  HavenRequestError,
  type ReconnectContext,
  type ReconnectPolicy,
} from '../../client-sdk/src/index.ts';
import type { Signaling } from '../../client-sdk/src/signaling.ts';

const context = (attempt: number, lastError?: Error): ReconnectContext => ({
  attempt,
  elapsedMs: 0,
  graceMs: 30_000,
  lastError,
});

test('BackoffReconnectPolicy: full jitter under the cap, retryAfterMs exactly, null after maxAttempts', () => {
  const policy = new BackoffReconnectPolicy({ maxAttempts: 3, baseDelayMs: 100, maxDelayMs: 1_000 });
  for (let attempt = 0; attempt < 3; attempt++) {
    const delay = policy.nextRetryDelayMs(context(attempt, new Error('refused')));
    assert.ok(
      delay !== null && delay >= 0 && delay < Math.min(1_000, 100 * 2 ** attempt),
      `attempt ${attempt}: ${delay}`,
    );
  }
  const unavailable = new HavenRequestError('UNAVAILABLE', 'moving', 'connect', { retryAfterMs: 1_234 });
  assert.is(policy.nextRetryDelayMs(context(1, unavailable)), 1_234);
  assert.is(policy.nextRetryDelayMs(context(3)), null);
  assert.ok(
    new BackoffReconnectPolicy().nextRetryDelayMs(context(1_000)) !== null,
    'the default never gives up by itself',
  );
  assert.ok(
    new BackoffReconnectPolicy({ maxAttempts: undefined }).nextRetryDelayMs(context(1_000)) !== null,
    'a missing option is the default',
  );
  assert.throws(() => new BackoffReconnectPolicy({ maxAttempts: -1 }), /maxAttempts/);
  assert.throws(() => new BackoffReconnectPolicy({ baseDelayMs: 0 }), /baseDelayMs/);
  assert.throws(() => new BackoffReconnectPolicy({ baseDelayMs: 1_000, maxDelayMs: 500 }), /maxDelayMs/);
});

test('ReconnectDeadline with an app’s policy: what it is told, null ends, waits cut to the window', () => {
  let now = 10_000;
  const asked: ReconnectContext[] = [];
  const answers: (number | null)[] = [60_000, -5, Number.NaN, null];
  const policy: ReconnectPolicy = {
    nextRetryDelayMs(told) {
      asked.push(told);
      return answers.shift() ?? null;
    },
  };
  const deadline = new ReconnectDeadline(
    policy,
    5_000,
    () => {},
    () => now,
  );
  assert.is(deadline.nextDelay(undefined), 5_000, 'never past the window');
  now += 1_500;
  const refused = new Error('refused');
  assert.is(deadline.nextDelay(refused), 0, 'a negative wait is none');
  assert.is(deadline.nextDelay(refused), 0, 'so is NaN');
  assert.is(deadline.nextDelay(refused), undefined, 'null gives up');
  assert.equal(
    asked.map(({ attempt, elapsedMs, graceMs, lastError }) => [attempt, elapsedMs, graceMs, lastError?.message]),
    [
      [0, 0, 5_000, undefined],
      [1, 1_500, 5_000, 'refused'],
      [2, 1_500, 5_000, 'refused'],
      [3, 1_500, 5_000, 'refused'],
    ],
  );
  deadline.stop();
});

/** A reconnection whose attempts fail with `errors` in turn; resolves with the error it gave up with. */
function reconnectWith(
  errors: Error[],
  options: { graceMs?: number; tokenRefreshes?: boolean; policy?: ReconnectPolicy } = {},
) {
  let reconnecting = true;
  let attempts = 0;
  let failed!: (error: Error) => void;
  const gaveUp = new Promise<Error>((resolve) => {
    failed = resolve;
  });
  const signaling = { close() {} } as unknown as Signaling;
  const host: ReconnectionHost = {
    reconnecting: () => reconnecting,
    tokenRefreshes: options.tokenRefreshes ?? false,
    open: async () => {
      attempts++;
      const error = errors.shift();
      if (error) throw error;
      return signaling;
    },
    attach: () => {},
    // A rejoin that never gets an answer: the window ends it.
    rejoin: () => new Promise(() => {}),
    forget: () => {},
    fail: (error) => {
      reconnecting = false;
      failed(error);
    },
  };
  const policy = options.policy ?? new BackoffReconnectPolicy({ maxAttempts: Infinity, baseDelayMs: 1, maxDelayMs: 2 });
  const reconnection = new Reconnection(policy, options.graceMs ?? 60_000, host);
  const running = reconnection.run();
  /** The client closed: it no longer reconnects, and the reconnection is stopped. */
  const close = () => {
    reconnecting = false;
    reconnection.stop();
  };
  return { gaveUp, attempts: () => attempts, running, close };
}

test('Reconnection: a refusal retrying cannot fix stops at once, with that refusal', async () => {
  const forbidden = new HavenRequestError('FORBIDDEN', 'banned', 'join');
  const { gaveUp, attempts } = reconnectWith([new HavenRequestError('DISCONNECTED', 'down', 'connect'), forbidden]);
  assert.is(await gaveUp, forbidden);
  assert.is(attempts(), 2);
});

test('Reconnection: UNAUTHORIZED is tried again when the token is a function, not when it is a string', async () => {
  const unauthorized = () => new HavenRequestError('UNAUTHORIZED', 'expired', 'connect');
  const fixed = reconnectWith([unauthorized()]);
  assert.is(((await fixed.gaveUp) as HavenRequestError).code, 'UNAUTHORIZED');
  assert.is(fixed.attempts(), 1);
  const forbidden = new HavenRequestError('FORBIDDEN', 'banned', 'join');
  const refreshing = reconnectWith([unauthorized(), unauthorized(), forbidden], { tokenRefreshes: true });
  assert.is(await refreshing.gaveUp, forbidden);
  assert.is(refreshing.attempts(), 3);
});

test('Reconnection: the policy giving up closes with the last error; the window closes with GRACE_EXPIRED', async () => {
  const down = new HavenRequestError('DISCONNECTED', 'down', 'connect');
  const once: ReconnectPolicy = { nextRetryDelayMs: ({ attempt }) => (attempt < 1 ? 0 : null) };
  const gaveUp = reconnectWith([down], { policy: once });
  assert.is(await gaveUp.gaveUp, down);
  // The rejoin never answers: the grace window passes with the attempt in flight.
  const expired = reconnectWith([], { graceMs: 20 });
  const error = (await expired.gaveUp) as HavenRequestError;
  assert.is(error.code, 'GRACE_EXPIRED');
  assert.match(error.message, /20 ms grace window/);
  // Closing the client during a wait ends the loop at once, without a failure of its own.
  const slow: ReconnectPolicy = { nextRetryDelayMs: () => 60_000 };
  const closed = reconnectWith([], { graceMs: 0, policy: slow });
  closed.close();
  await closed.running;
  assert.is(closed.attempts(), 0);
});

test('followRedirects: follows REDIRECT up to maxRedirects hops; other refusals and one hop too many reject', async () => {
  const redirect = (to: string) => new HavenRequestError('REDIRECT', 'elsewhere', 'connect', { url: to });
  const visited: string[] = [];
  const opened = await followRedirects('https://entry', async (url) => {
    visited.push(url);
    if (url === 'https://entry') throw redirect('https://node-a');
    if (url === 'https://node-a') throw redirect('https://node-b');
    return `connected to ${url}`;
  });
  assert.is(opened, 'connected to https://node-b');
  assert.equal(visited, ['https://entry', 'https://node-a', 'https://node-b']);
  let hops = 0;
  const looping = await followRedirects('https://entry', async () => {
    hops++;
    throw redirect(`https://node-${hops}`);
  }).catch((error: HavenRequestError) => error);
  assert.is((looping as HavenRequestError).code, 'REDIRECT');
  assert.is(hops, maxRedirects + 1);
  const locked = new HavenRequestError('ROOM_LOCKED', 'locked', 'connect');
  assert.is(
    await followRedirects('https://entry', async () => {
      throw locked;
    }).catch((error) => error),
    locked,
  );
});

test.run();
