import type { RtpCodecCapability } from 'mediasoup/node/lib/types.js';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { commandOf, isAlive, waitFor } from '../../bench/processes.ts';
import { WorkerPool } from '../../server/media/worker-pool.ts';
import { rejects } from '../helpers/assert.ts';

const mediaCodecs: RtpCodecCapability[] = [{ kind: 'audio', mimeType: 'audio/opus', clockRate: 48000, channels: 2 }];
const pools: WorkerPool[] = [];

async function createPool(size: number): Promise<WorkerPool> {
  const pool = await WorkerPool.create({ size, logLevel: 'error' });
  pools.push(pool);
  return pool;
}

test.after(() => {
  for (const pool of pools) pool.close();
});

test('starts the requested number of mediasoup worker processes', async () => {
  const pool = await createPool(2);
  const pids = pool.workers.map((w) => w.worker.pid);
  assert.is(pids.length, 2);
  assert.is(new Set(pids).size, 2);
  for (const pid of pids) {
    assert.ok(isAlive(pid));
    assert.match(commandOf(pid), /mediasoup-worker/);
  }
  pool.close();
});

test('refuses a size that is not a positive integer', async () => {
  await rejects(() => WorkerPool.create({ size: 0 }), /positive integer/);
});

test('places routers on the least-loaded worker, load being producers and consumers', async () => {
  const pool = await createPool(2);
  const [a, b] = pool.workers;
  assert.ok(a && b);
  // Put one producer on worker a: its load rises, so the next router goes to b.
  const routerA = await a.worker.createRouter({ mediaCodecs });
  const transport = await routerA.createPlainTransport({ listenIp: '127.0.0.1', comedia: true });
  const producer = await transport.produce({
    kind: 'audio',
    rtpParameters: {
      codecs: [{ mimeType: 'audio/opus', payloadType: 100, clockRate: 48000, channels: 2 }],
      encodings: [{ ssrc: 1111 }],
    },
  });
  assert.is(a.load, 1);
  assert.is(a.routers, 1);
  assert.is(pool.leastLoaded(), b);
  const placed = await pool.createRouter({ mediaCodecs });
  assert.is(placed.worker, b);
  assert.is(b.routers, 1);
  // A room spreading over workers can ask for one it does not use yet, whatever the load.
  assert.is(pool.leastLoaded(new Set([b])), a);
  // Closing the producer frees a's load: ties go to the worker with fewer routers, then the first.
  producer.close();
  assert.is(a.load, 0);
  routerA.close();
  assert.is(a.routers, 0);
  assert.is(pool.leastLoaded(), a);
  pool.close();
});

test('a worker killed with SIGKILL is replaced in its slot', async () => {
  const pool = await createPool(2);
  const [victim, survivor] = pool.workers;
  assert.ok(victim && survivor);
  const died: number[] = [];
  pool.on('workerDied', (_index, pid) => died.push(pid));
  const replaced = new Promise<[number, number]>((resolve) =>
    pool.once('workerReplaced', (index, pid) => resolve([index, pid])),
  );
  process.kill(victim.worker.pid, 'SIGKILL');
  const [index, pid] = await replaced;
  assert.equal(died, [victim.worker.pid]);
  assert.is(index, victim.index);
  assert.is.not(pid, victim.worker.pid);
  assert.ok(isAlive(pid));
  assert.is(pool.workers.length, 2);
  assert.ok(pool.workers.includes(survivor), 'the other worker is untouched');
  // The replacement takes routers like any worker.
  const { router } = await pool.createRouter({ mediaCodecs });
  assert.ok(router.id);
  pool.close();
});

test('close ends every worker process and is idempotent', async () => {
  const pool = await createPool(2);
  const pids = pool.workers.map((w) => w.worker.pid);
  pool.close();
  pool.close();
  assert.ok(pool.closed);
  assert.is(pool.workers.length, 0);
  await waitFor(() => pids.every((pid) => !isAlive(pid)), 5_000, 'worker processes to exit');
  assert.throws(() => pool.leastLoaded(), /no live media worker/);
});

test.run();
