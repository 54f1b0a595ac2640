/**
 * `npm run bench -- signaling`: signaling without media. N participants in rooms of `--room-size`
 * go through consent, the waiting room and admission, then send one request a second (hands,
 * chat, a facilitator's moderation) while the rooms' broadcasts flow; the same pattern then runs
 * against bare socket.io 4 in its own process. Per level: request RTT p50/p95/p99 on both and
 * their ratio, the server's CPU and RSS per connection, the generators' CPU, errors by code.
 * `--knee` steps N up and reports where Haven's p99 passes twice bare socket.io's.
 */

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createBenchRoom } from './bench-room.ts';
import { ChildChannel } from './child-channel.ts';
import { optionsOrUsage, UsageError, wholeNumber } from './cli.ts';
import { startNodeProcess } from './node-process.ts';
import {
  CpuSampler,
  commOf,
  descendants,
  machineBusySince,
  machineTicks,
  readProcess,
  sumLoads,
} from './proc-stats.ts';
import { type Percentiles, percentiles } from './result.ts';
import type { GenCommand, GenReply, SignalingRoom, SignalingTarget } from './signaling-gen.ts';

const usage = `usage: npm run bench -- signaling [options]
  --participants N   participants per node, facilitators included (default 500)
  --room-size N      people per room, 8–16 (default 8)
  --knee             step N through --levels and report where p99 passes 2× bare socket.io's
  --levels LIST      N of each step with --knee (default 500,1000,2000,3000,4000)
  --generators N     load generator processes (default 2)
  --seconds N        measuring window of each step (default 20)
  --ramp N           seconds of load before a window starts (default 5)
  --out DIR          where result.json goes (default bench/results/<time>)`;

export interface SignalingMeasure {
  target: 'haven' | 'bare';
  participants: number;
  rooms: number;
  /** Emit to ack, ms, every request in the window. */
  rtt: Percentiles;
  /** The same by request (Haven's names; bare's `hand`, `chat`, `moderate`). */
  rttByRequest: Record<string, Percentiles>;
  requestsPerSecond: number;
  /** Refused or unanswered requests in the window (and failed joins), by code. */
  errors: Record<string, number>;
  errorCount: number;
  /** The server process (Haven's node; the bare socket.io process), share of a core. */
  serverCpu: number;
  /** Haven's embedded Redis, share of a core (0 for bare). */
  redisCpu: number;
  serverRssBytes: number;
  /** (RSS with everyone connected − RSS before) ÷ participants. */
  rssPerConnectionBytes: number;
  /** All generator processes together, share of a core. */
  generatorsCpu: number;
  /** The worst generator's event-loop delay p99, ms (its own lateness, in every RTT it measures). */
  generatorLoopDelayP99Ms: number;
  /** The whole machine's CPU in use during the window (all processes, 1 = every core busy): others' load shows here. */
  machineBusy: number;
  loadAverage: number;
}

export interface SignalingResult {
  scenario: 'signaling';
  startedAt: string;
  machine: { cpus: number; cpuModel: string; node: string };
  options: Record<string, string | number | boolean>;
  steps: SignalingMeasure[];
  /** Haven ÷ bare at each level. */
  comparison: { participants: number; p50Ratio: number; p95Ratio: number; p99Ratio: number }[];
  /** With --knee: the first level whose p99 ratio passed 2 or where Haven had errors (null: none). */
  knee?: number | null;
  failure?: string;
}

function options(argv: string[]) {
  const { values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      participants: { type: 'string', default: '500' },
      'room-size': { type: 'string', default: '8' },
      knee: { type: 'boolean', default: false },
      levels: { type: 'string', default: '500,1000,2000,3000,4000' },
      generators: { type: 'string', default: '2' },
      seconds: { type: 'string', default: '20' },
      ramp: { type: 'string', default: '5' },
      out: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) throw new UsageError(usage);
  const int = (name: string, value: string, min: number, max: number) => wholeNumber(name, value, min, max, usage);
  const roomSize = int('room-size', values['room-size'], 2, 16);
  const levels = values.knee
    ? values.levels.split(',').map((l) => int('levels', l.trim(), roomSize, 20_000))
    : [int('participants', values.participants, roomSize, 20_000)];
  return {
    levels,
    roomSize,
    knee: values.knee,
    generators: int('generators', values.generators, 1, 16),
    seconds: int('seconds', values.seconds, 1, 3_600),
    ramp: int('ramp', values.ramp, 0, 600),
    out: values.out ?? join('bench', 'results', new Date().toISOString().replace(/[:.]/g, '-')),
  };
}
type Options = ReturnType<typeof options>;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One generator process (`signaling-gen.ts`) and a request/answer channel to it. */
class Generator extends ChildChannel<GenCommand, GenReply> {
  constructor() {
    super(join(import.meta.dirname, 'signaling-gen.ts'), 'generator');
  }
}

interface Server {
  pid: number;
  redisPid?: number;
  target: SignalingTarget;
  createRooms(rooms: SignalingRoom[]): Promise<void>;
  stop(): void;
}

async function startHaven(): Promise<Server> {
  const secret = randomBytes(24).toString('hex');
  const adminKey = randomBytes(24).toString('hex');
  const node = await startNodeProcess({
    HAVEN_AUTH_SECRET: secret,
    HAVEN_ADMIN_API_KEY: adminKey,
    HAVEN_MEDIA_WEBRTC_PORT: '0',
  });
  const pid = node.child.pid as number;
  return {
    pid,
    redisPid: descendants(pid).find((p) => commOf(p) === 'redis-server'),
    target: { kind: 'haven', url: node.url, secret },
    async createRooms(rooms) {
      for (const room of rooms) {
        await createBenchRoom(node.url, adminKey, { id: room.id, kind: 'group', capacity: room.size + 4 });
      }
    },
    stop: () => node.kill(),
  };
}

async function startBare(): Promise<Server> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'signaling-bare-server.ts')], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const stop = () => {
    if (child.exitCode === null) child.kill('SIGKILL');
  };
  process.once('exit', stop);
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const m = /listening (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`bare socket.io server exited (${code})`)));
  });
  return {
    pid: child.pid as number,
    target: { kind: 'bare', url: `http://127.0.0.1:${port}` },
    createRooms: async () => {},
    stop,
  };
}

/** One level on one target: start the server and the generators, join everyone, measure a window. */
async function measure(o: Options, target: 'haven' | 'bare', participants: number): Promise<SignalingMeasure> {
  const server = target === 'haven' ? await startHaven() : await startBare();
  const generators = Array.from({ length: o.generators }, () => new Generator());
  try {
    const roomCount = Math.ceil(participants / o.roomSize);
    const rooms = Array.from({ length: roomCount }, (_, i) => ({
      id: `sig-${i}`,
      size: Math.min(o.roomSize, participants - i * o.roomSize),
    })).filter((r) => r.size >= 2);
    await server.createRooms(rooms);
    const rssBefore = await medianRss(server.pid);
    // A room's members all in one generator: its facilitator admits them there.
    const share = (g: number) => rooms.filter((_, i) => i % o.generators === g);
    const joined = await Promise.all(
      generators.map((gen, g) => gen.ask({ type: 'join', target: server.target, rooms: share(g) }, 'joined')),
    );
    const failed = joined.reduce((n, j) => n + j.failed, 0);
    if (failed > 0)
      throw new Error(`${failed} joins failed on ${target} (first: ${joined.find((j) => j.firstError)?.firstError})`);
    await sleep(o.ramp * 1000);
    const pids = [server.pid, ...(server.redisPid ? [server.redisPid] : [])];
    const serverCpu = new CpuSampler(pids);
    const generatorCpu = new CpuSampler(generators.map((g) => g.child.pid as number));
    const machine = machineTicks();
    await Promise.all(generators.map((g) => g.ask({ type: 'window-start' }, 'ok')));
    // RSS moves with garbage collection: the median of one reading a second.
    const rssReadings: number[] = [];
    for (let s = 0; s < o.seconds; s++) {
      await sleep(1_000);
      rssReadings.push(readProcess(server.pid)?.rssBytes ?? 0);
    }
    const machineBusy = machineBusySince(machine);
    const windows = await Promise.all(generators.map((g) => g.ask({ type: 'window-end' }, 'window')));
    const [serverLoad, redisLoad] = serverCpu.stop();
    const rtts = windows.flatMap((w) => w.rtts);
    const errors: Record<string, number> = {};
    for (const w of windows) for (const [code, n] of Object.entries(w.errors)) errors[code] = (errors[code] ?? 0) + n;
    const serverRss = median(rssReadings);
    const step: SignalingMeasure = {
      target,
      participants,
      rooms: rooms.length,
      rtt: percentiles(rtts),
      rttByRequest: Object.fromEntries(
        [...new Set(windows.flatMap((w) => Object.keys(w.byRequest)))].map((name) => [
          name,
          percentiles(windows.flatMap((w) => w.byRequest[name] ?? [])),
        ]),
      ),
      requestsPerSecond: Math.round(rtts.length / o.seconds),
      errors,
      errorCount: Object.values(errors).reduce((a, b) => a + b, 0),
      serverCpu: serverLoad?.cpu ?? 0,
      redisCpu: redisLoad?.cpu ?? 0,
      serverRssBytes: serverRss,
      rssPerConnectionBytes: Math.round((serverRss - rssBefore) / participants),
      generatorsCpu: sumLoads(generatorCpu.stop()).cpu,
      generatorLoopDelayP99Ms: Math.max(...windows.map((w) => w.loopDelayP99Ms)),
      machineBusy,
      loadAverage: loadavg()[0] ?? 0,
    };
    console.log(describe(step));
    const tails = Object.entries(step.rttByRequest).map(([n, p]) => `${n} ${p.p99?.toFixed(2)}`);
    console.log(`        p99 by request (ms): ${tails.join(' · ')}`);
    return step;
  } finally {
    await Promise.all(generators.map((g) => g.ask({ type: 'close' }, 'ok').catch(() => {})));
    for (const g of generators) g.stop();
    server.stop();
  }
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;

async function medianRss(pid: number): Promise<number> {
  const readings: number[] = [];
  for (let i = 0; i < 3; i++) {
    readings.push(readProcess(pid)?.rssBytes ?? 0);
    await sleep(500);
  }
  return median(readings);
}

function describe(s: SignalingMeasure): string {
  const ms = (x: number | null) => (x === null ? '–' : `${x.toFixed(2)} ms`);
  const pct = (x: number) => `${(x * 100).toFixed(1)} %`;
  return `${s.target.padEnd(5)} · ${s.participants} participants · ${s.requestsPerSecond} req/s · RTT p50 ${ms(s.rtt.p50)} p95 ${ms(s.rtt.p95)} p99 ${ms(s.rtt.p99)} · server ${pct(s.serverCpu)}${s.redisCpu ? ` + redis ${pct(s.redisCpu)}` : ''} · ${(s.rssPerConnectionBytes / 1024).toFixed(1)} KiB/connection · generators ${pct(s.generatorsCpu)} (loop delay p99 ${s.generatorLoopDelayP99Ms.toFixed(1)} ms) · machine ${pct(s.machineBusy)} busy, load ${s.loadAverage.toFixed(1)} · errors ${s.errorCount}`;
}

const ratio = (a: number | null, b: number | null) => (a !== null && b !== null && b > 0 ? a / b : 0);

export async function runSignaling(argv: string[]): Promise<number> {
  const o = optionsOrUsage(() => options(argv));
  if (!o) return 2;
  const result: SignalingResult = {
    scenario: 'signaling',
    startedAt: new Date().toISOString(),
    machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown', node: process.version },
    options: { ...o, levels: o.levels.join(',') },
    steps: [],
    comparison: [],
  };
  try {
    for (const participants of o.levels) {
      const haven = await measure(o, 'haven', participants);
      const bare = await measure(o, 'bare', participants);
      result.steps.push(haven, bare);
      const c = {
        participants,
        p50Ratio: ratio(haven.rtt.p50, bare.rtt.p50),
        p95Ratio: ratio(haven.rtt.p95, bare.rtt.p95),
        p99Ratio: ratio(haven.rtt.p99, bare.rtt.p99),
      };
      result.comparison.push(c);
      console.log(
        `${participants} participants: Haven ÷ bare socket.io, RTT p50 ${c.p50Ratio.toFixed(2)}× p95 ${c.p95Ratio.toFixed(2)}× p99 ${c.p99Ratio.toFixed(2)}×`,
      );
      if (haven.errorCount > 0) {
        result.failure = `${haven.errorCount} errors on Haven at ${participants}: ${JSON.stringify(haven.errors)}`;
        break;
      }
    }
    if (o.knee) {
      // The first level that failed the target: p99 past 2× bare, or any error on Haven.
      const failing = (c: SignalingResult['comparison'][number]) =>
        c.p99Ratio > 2 ||
        result.steps.some((s) => s.target === 'haven' && s.participants === c.participants && s.errorCount > 0);
      result.knee = result.comparison.find(failing)?.participants ?? null;
      console.log(
        result.knee === null
          ? `knee: p99 within 2× bare socket.io at every level up to ${o.levels.at(-1)}`
          : `knee: at ${result.knee} participants Haven's p99 passes 2× bare socket.io's (or it had errors)`,
      );
    }
  } catch (err) {
    result.failure = (err as Error).message;
    console.error(`bench failed: ${result.failure}`);
  }
  mkdirSync(o.out, { recursive: true });
  const file = join(o.out, 'result.json');
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  console.log(`result: ${file}`);
  return result.failure ? 1 : 0;
}
