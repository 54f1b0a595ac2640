import { once } from 'node:events';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { type NodeProcess, startNodeProcess } from '../../bench/node-process.ts';
import { commandOf, descendants, isAlive, waitFor } from '../../bench/processes.ts';

let node: NodeProcess;

test.before(async () => {
  node = await startNodeProcess({ HAVEN_MEDIA_WORKERS: '1' });
});

test.after(() => node?.kill());

async function get(path: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${node.url}${path}`);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** Live descendants of the node whose command line matches. */
function childrenMatching(pattern: RegExp): number[] {
  return descendants(node.child.pid as number).filter((pid) => isAlive(pid) && pattern.test(commandOf(pid)));
}

function logged(msg: string): Promise<unknown> {
  return waitFor(() => node.logs.some((l) => l.msg === msg), 5_000, `the log line "${msg}"`);
}

test('GET /healthz answers 200 while the process is up', async () => {
  const { status, body } = await get('/healthz');
  assert.is(status, 200);
  assert.equal(body, { status: 'ok' });
});

test('GET /readyz answers 200 when Redis answers and a worker is alive', async () => {
  const { status, body } = await get('/readyz');
  assert.is(status, 200);
  assert.equal(body, { status: 'ready', ready: true, redis: true, workers: 1, draining: false });
});

test('an unknown path answers a coded 404', async () => {
  const { status, body } = await get('/nope');
  assert.is(status, 404);
  assert.is((body.error as { code: string }).code, 'NOT_FOUND');
  assert.is(body.ok, false);
});

test('socket.io answers on /socket.io/', async () => {
  const res = await fetch(`${node.url}/socket.io/?EIO=4&transport=polling`);
  assert.is(res.status, 200);
  assert.match(await res.text(), /"sid":/);
});

test('the only media worker killed with SIGKILL is replaced: /readyz is 200 again within 2 s', async () => {
  const [worker] = childrenMatching(/mediasoup-worker/);
  assert.ok(worker, 'a mediasoup-worker child process');
  const killedAt = Date.now();
  process.kill(worker, 'SIGKILL');
  const replacement = await waitFor(
    async () => {
      const [pid] = childrenMatching(/mediasoup-worker/);
      return pid !== undefined && pid !== worker && (await get('/readyz')).status === 200 ? pid : undefined;
    },
    2_000,
    'a replacement worker and /readyz 200',
  );
  console.log(`    ready again ${Date.now() - killedAt} ms after the worker was killed`);
  assert.not.ok(isAlive(worker));
  assert.ok(isAlive(replacement));
  await logged('media worker died; replacing it');
  await logged('media worker replaced');
});

test('embedded Redis killed with SIGKILL: /readyz reports it, then recovers', async () => {
  const [redis] = childrenMatching(/redis-server/);
  assert.ok(redis, 'a redis-server child process');
  process.kill(redis, 'SIGKILL');
  const down = await get('/readyz');
  // The restart can be quicker than this request; when it is not, readiness says why.
  if (down.status === 503) assert.is(down.body.redis, false);
  await waitFor(async () => (await get('/readyz')).status === 200, 10_000, 'Redis to be back');
  await logged('embedded redis exited; restarting it on the same data');
});

test('logs carry no Redis password', () => {
  const password = /redis:\/\/:([0-9a-f]{48})@/.exec(node.output());
  assert.is(password, null);
  assert.ok(node.logs.length > 3);
});

test('SIGTERM: graceful exit 0 within 10 s, no child process left', async () => {
  const pid = node.child.pid as number;
  const children = descendants(pid);
  assert.ok(children.length >= 2, `children: ${children.map(commandOf).join(', ')}`);
  const exited = once(node.child, 'exit');
  const started = Date.now();
  node.child.kill('SIGTERM');
  const [code] = await exited;
  const tookMs = Date.now() - started;
  assert.is(code, 0);
  assert.ok(tookMs < 10_000, `took ${tookMs} ms`);
  assert.equal(children.filter(isAlive), [], 'no child outlives the node');
  await logged('haven node stopped');
  console.log(`    graceful shutdown took ${tookMs} ms`);
});

test.run();
