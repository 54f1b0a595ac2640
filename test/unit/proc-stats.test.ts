import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import * as mediasoup from 'mediasoup';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  CpuSampler,
  clockTicksPerSecond,
  descendants,
  mediasoupWorkerPids,
  readProcess,
  SelfCpuSampler,
  sumLoads,
} from '../../bench/proc-stats.ts';

const children: ChildProcess[] = [];
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

/** A Node.js child that prints "ready" once started (its start-up CPU falls before the window). */
async function nodeChild(body: string): Promise<ChildProcess & { pid: number }> {
  const child = spawn(process.execPath, ['-e', `process.stdout.write('ready\\n'); ${body}`], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  await once(child.stdout as NodeJS.ReadableStream, 'data');
  return child as ChildProcess & { pid: number };
}

test('clock ticks per second read from getconf', () => {
  assert.is(clockTicksPerSecond(), 100);
});

test('a spinning process uses about a core, an idle one about nothing; both have RSS', async () => {
  const busy = await nodeChild('const end = Date.now() + 3000; while (Date.now() < end);');
  const idle = await nodeChild('setTimeout(() => {}, 3000);');
  const sampler = new CpuSampler([busy.pid, idle.pid]);
  await sleep(1000);
  const [busyLoad, idleLoad] = sampler.stop();
  assert.ok(busyLoad && busyLoad.cpu > 0.5 && busyLoad.cpu < 1.2, `busy: ${busyLoad?.cpu}`);
  assert.ok(idleLoad && idleLoad.cpu < 0.1, `idle: ${idleLoad?.cpu}`);
  assert.ok((busyLoad?.rssBytes ?? 0) > 10e6, `busy RSS ${busyLoad?.rssBytes}`);
  assert.ok((idleLoad?.rssBytes ?? 0) > 10e6, `idle RSS ${idleLoad?.rssBytes}`);
  assert.equal(sampler.exited, []);
  // Stopped: the figures no longer change.
  assert.equal(sampler.stop(), [busyLoad, idleLoad]);
  const total = sumLoads([busyLoad, idleLoad]);
  assert.is(total.rssBytes, busyLoad.rssBytes + idleLoad.rssBytes);
  busy.kill('SIGKILL');
  idle.kill('SIGKILL');
});

test('the current process through process.cpuUsage()', async () => {
  const sampler = new SelfCpuSampler();
  const end = Date.now() + 300;
  while (Date.now() < end);
  const [load] = sampler.stop();
  assert.ok(load && load.cpu > 0.5, `self: ${load?.cpu}`);
  assert.ok(load && load.rssBytes > 10e6);
});

test('a process that exits during the window keeps what was last read; a missing pid reads as zero', async () => {
  const child = await nodeChild('const end = Date.now() + 400; while (Date.now() < end);');
  const sampler = new CpuSampler([child.pid, 2 ** 30]);
  await sleep(250);
  const [midway] = sampler.sample();
  assert.ok(midway && midway.cpu > 0.3 && midway.rssBytes > 0, `midway: ${JSON.stringify(midway)}`);
  await once(child, 'exit');
  await sleep(100);
  assert.is(readProcess(child.pid), undefined);
  const [exited, missing] = sampler.stop();
  assert.ok(exited && exited.cpu > 0 && exited.rssBytes > 0, `exited: ${JSON.stringify(exited)}`);
  assert.equal(missing, { cpu: 0, rssBytes: 0 });
  assert.equal(sampler.exited.sort(), [child.pid, 2 ** 30].sort());
});

test('descendants include grandchildren; mediasoup workers are found under their Node.js process', async () => {
  // `; :` keeps the shell from exec-ing sleep in its own place, so sleep is a grandchild.
  const shell = spawn('sh', ['-c', 'sleep 5; :'], { stdio: 'ignore' });
  children.push(shell);
  const worker = await mediasoup.createWorker({ logLevel: 'none' });
  let grandchildren: number[] = [];
  try {
    await sleep(100);
    const found = descendants(process.pid);
    assert.ok(shell.pid !== undefined && found.includes(shell.pid));
    grandchildren = descendants(shell.pid as number);
    assert.is(grandchildren.length, 1);
    assert.ok(found.includes(grandchildren[0] as number));
    assert.equal(mediasoupWorkerPids(process.pid), [worker.pid]);
  } finally {
    worker.close();
    for (const pid of [shell.pid as number, ...grandchildren]) process.kill(pid, 'SIGKILL');
  }
});

test.run();
