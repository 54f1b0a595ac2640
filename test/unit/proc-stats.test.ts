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
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  children.push(child);
  await once(child.stdout as NodeJS.ReadableStream, 'data');
  return child as ChildProcess & { pid: number };
}

/**
 * Code that spins until it has used `cpuMs` of CPU time (not of wall time: on a busy machine a
 * spin of so many seconds gets less than a core), printing `said` once past `sayAtMs`.
 */
const spin = (cpuMs: number, sayAtMs = cpuMs, said = 'done') => `
  const t0 = process.cpuUsage();
  const used = () => { const u = process.cpuUsage(t0); return (u.user + u.system) / 1000; };
  let told = false;
  while (used() < ${cpuMs}) if (!told && used() >= ${sayAtMs}) { told = true; process.stdout.write('${said}\\n'); }
  if (!told) process.stdout.write('${said}\\n');`;

/** A child that starts spinning when the test says so (the sampler's first reading is taken by then). */
const onGo = (body: string) => `process.stdin.once('data', () => { process.stdin.destroy(); ${body} });`;

const line = (child: ChildProcess) => once(child.stdout as NodeJS.ReadableStream, 'data');

test('clock ticks per second read from getconf', () => {
  assert.is(clockTicksPerSecond(), 100);
});

test('a spinning process is read with the CPU time it used, an idle one with about none; both have RSS', async () => {
  const busy = await nodeChild(onGo(`${spin(600)} setTimeout(() => {}, 10000);`));
  const idle = await nodeChild('setTimeout(() => {}, 10000);');
  const sampler = new CpuSampler([busy.pid, idle.pid]);
  const done = line(busy);
  busy.stdin?.write('go\n');
  await done;
  const [busyLoad, idleLoad] = sampler.stop();
  // In core-seconds over the window: what the spin used, plus a little for the child's own work.
  const busySeconds = (busyLoad?.cpu ?? 0) * sampler.elapsedSeconds();
  const idleSeconds = (idleLoad?.cpu ?? 0) * sampler.elapsedSeconds();
  assert.ok(busySeconds >= 0.59 && busySeconds < 0.8, `busy: ${busySeconds} s of CPU`);
  assert.ok(idleSeconds < 0.05, `idle: ${idleSeconds} s of CPU`);
  assert.ok((busyLoad?.rssBytes ?? 0) > 10e6, `busy RSS ${busyLoad?.rssBytes}`);
  assert.ok((idleLoad?.rssBytes ?? 0) > 10e6, `idle RSS ${idleLoad?.rssBytes}`);
  assert.equal(sampler.exited, []);
  // Stopped: the figures no longer change.
  assert.equal(sampler.stop(), [busyLoad, idleLoad]);
  const total = sumLoads([busyLoad as never, idleLoad as never]);
  assert.is(total.rssBytes, (busyLoad?.rssBytes ?? 0) + (idleLoad?.rssBytes ?? 0));
  busy.kill('SIGKILL');
  idle.kill('SIGKILL');
});

test('the current process through process.cpuUsage()', async () => {
  const startedAt = performance.now();
  const sampler = new SelfCpuSampler();
  const t0 = process.cpuUsage();
  const used = () => {
    const u = process.cpuUsage(t0);
    return (u.user + u.system) / 1000;
  };
  while (used() < 300);
  const [load] = sampler.stop();
  const seconds = (load?.cpu ?? 0) * ((performance.now() - startedAt) / 1000);
  assert.ok(seconds >= 0.29 && seconds < 0.5, `self: ${seconds} s of CPU`);
  assert.ok(load && load.rssBytes > 10e6);
});

test('a process that exits during the window keeps what was last read; a missing pid reads as zero', async () => {
  const child = await nodeChild(onGo(spin(200, 100, 'half')));
  const sampler = new CpuSampler([child.pid, 2 ** 30]);
  const half = line(child);
  child.stdin?.write('go\n');
  await half;
  const [midway] = sampler.sample();
  const midwaySeconds = (midway?.cpu ?? 0) * sampler.elapsedSeconds();
  assert.ok(
    midwaySeconds >= 0.09 && (midway?.rssBytes ?? 0) > 0,
    `midway: ${midwaySeconds} s, ${JSON.stringify(midway)}`,
  );
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
