/**
 * `npm run bench -- <scenario> [options]`: loads a Haven node with synthetic participants from a
 * separate load-generator process and measures what it carries. See bench/README.md.
 *
 * A run is a list of steps (load levels). For each, the generator joins the rooms, media flows
 * for a ramp-up, then a window is measured: forwarded packets and bits, loss, one-way delay, and
 * the CPU and memory of the mediasoup workers, the node and the generator, read from /proc.
 * `--baseline` measures the same levels again on bare mediasoup; `--find-capacity` adds rooms
 * until loss passes 1 % or a worker passes 90 % of a core.
 */

import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { version as mediasoupVersion } from 'mediasoup';
import { EmbeddedRedis } from '../server/redis/embedded-redis.ts';
import { BaselineTopology } from './baseline.ts';
import { createBenchRoom } from './bench-room.ts';
import { ChildChannel } from './child-channel.ts';
import { optionsOrUsage, UsageError, wholeNumber } from './cli.ts';
import { describeE2ee, e2eeComparison } from './e2ee.ts';
import type { HavenTarget } from './haven-client.ts';
import type { Command, Reply, RoomPlan } from './loadgen-protocol.ts';
import { type NodeProcess, startNodeProcess } from './node-process.ts';
import { CpuSampler, machineBusySince, machineTicks, mediasoupWorkerPids, sumLoads } from './proc-stats.ts';
import { formatProgress, writeReport } from './report.ts';
import { type BenchResult, type ProcessLoad, percentiles, type StepMeasures, serverCpuPerPacket } from './result.ts';
import { describeSoak, parseDuration, soak } from './soak.ts';
import { describeMissing } from './track-check.ts';

const scenarios = ['groups', 'education', 'joinstorm', 'moderation'] as const;
type Scenario = (typeof scenarios)[number];

const usage = `usage: npm run bench -- <${scenarios.join('|')}|signaling|browser-e2ee|network> [options]   (signaling, browser-e2ee, network --help: their own)
  --rooms N          rooms (groups, moderation: 4 and 2; joinstorm: 1)
  --size N           people per room, a facilitator included (groups 8, moderation 16)
  --publishers N     education: facilitators publishing audio and video (1–2, default 1)
  --receivers N      education: participants receiving them (default 60)
  --joiners N        joinstorm: participants joining at once (default 50)
  --rounds N         moderation: rounds of mute all, admit all and remove per room (default 5)
  --workers N        mediasoup workers of each node under test (default 1)
  --nodes N          Haven nodes sharing one Redis (default 1); rooms spread over them
  --pin              pin node i (and its workers) to core i, with taskset
  --seconds N        measuring window of each step (default 15)
  --ramp N           seconds of media before a window starts (default 4)
  --video-bitrate N  bits/s of each synthetic camera (default 800000)
  --baseline         measure the same steps on bare mediasoup too
  --e2ee             groups: the same load in plain rooms, then in end-to-end encrypted rooms
  --find-capacity    add --step rooms at a time until loss > 1 % or a worker > 90 % of a core
  --step N           rooms added per capacity step (default 2)
  --max-rooms N      stop the capacity search here (default 60)
  --out DIR          where result.json, report.html and capacity.png go (default bench/results/<time>)
  --soak DURATION    hold the load (e.g. 30m) sampling memory and open descriptors; fail on growth
  --no-png           skip the PNG (no Chromium needed)`;

function options() {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      rooms: { type: 'string' },
      size: { type: 'string' },
      publishers: { type: 'string', default: '1' },
      receivers: { type: 'string', default: '60' },
      joiners: { type: 'string', default: '50' },
      rounds: { type: 'string', default: '5' },
      workers: { type: 'string', default: '1' },
      nodes: { type: 'string', default: '1' },
      pin: { type: 'boolean', default: false },
      seconds: { type: 'string', default: '15' },
      ramp: { type: 'string', default: '4' },
      'video-bitrate': { type: 'string', default: '800000' },
      baseline: { type: 'boolean', default: false },
      e2ee: { type: 'boolean', default: false },
      'find-capacity': { type: 'boolean', default: false },
      step: { type: 'string', default: '2' },
      'max-rooms': { type: 'string', default: '60' },
      out: { type: 'string' },
      'no-png': { type: 'boolean', default: false },
      soak: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  const scenario = positionals[0] as Scenario;
  if (values.help || !scenarios.includes(scenario)) throw new UsageError(usage);
  const int = wholeNumber;
  if (values.e2ee && (scenario !== 'groups' || values['find-capacity'] || values.soak))
    throw new UsageError('--e2ee: groups only, at one load (no --find-capacity, no --soak)');
  const defaults = { groups: [4, 8], education: [1, 0], joinstorm: [1, 0], moderation: [2, 16] }[scenario];
  return {
    scenario,
    rooms: int('rooms', values.rooms ?? String(defaults[0]), 1, 500),
    size: int('size', values.size ?? String(defaults[1] || 8), 2, 200),
    publishers: int('publishers', values.publishers, 1, 2),
    receivers: int('receivers', values.receivers, 1, 2_000),
    joiners: int('joiners', values.joiners, 1, 2_000),
    rounds: int('rounds', values.rounds, 1, 100),
    workers: int('workers', values.workers, 1, 64),
    nodes: int('nodes', values.nodes, 1, 16),
    pin: values.pin,
    seconds: int('seconds', values.seconds, 1, 3_600),
    ramp: int('ramp', values.ramp, 0, 600),
    videoBitrate: int('video-bitrate', values['video-bitrate'], 50_000, 10_000_000),
    baseline: values.baseline,
    e2ee: values.e2ee,
    findCapacity: values['find-capacity'],
    step: int('step', values.step, 1, 100),
    maxRooms: int('max-rooms', values['max-rooms'], 1, 1_000),
    out: values.out ?? join('bench', 'results', new Date().toISOString().replace(/[:.]/g, '-')),
    png: !values['no-png'],
    soakSeconds: soakSeconds(values.soak),
  };
}
type Options = ReturnType<typeof options>;

function soakSeconds(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const seconds = parseDuration(value);
  if (seconds === undefined) throw new UsageError('--soak: a duration such as 90s, 30m or 1h');
  return seconds;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The load generator process (`loadgen.ts`), with the latest progress it reported. */
class LoadGenerator extends ChildChannel<Command, Reply> {
  latest: Extract<Reply, { type: 'progress' }> | undefined;

  constructor() {
    super(join(import.meta.dirname, 'loadgen.ts'), 'load generator', (message) => {
      if (message.type === 'progress') this.latest = message as Extract<Reply, { type: 'progress' }>;
    });
  }
}

/** What one step puts in place, per scenario. */
function roomPlans(o: Options, prefix: string, from: number, count: number): RoomPlan[] {
  return Array.from({ length: count }, (_, i) => {
    const id = `${prefix}-${from + i}`;
    switch (o.scenario) {
      case 'education':
        return {
          id,
          size: o.publishers + o.receivers,
          facilitators: o.publishers,
          publishing: 'none',
          facilitatorPublishing: 'av',
        };
      case 'joinstorm':
        // Joiners publish nothing: the storm measures signaling, admission and the first packet.
        return {
          id,
          size: 1 + Math.ceil(o.joiners / o.rooms),
          facilitators: 1,
          publishing: 'none',
          facilitatorPublishing: 'av',
        };
      default:
        return { id, size: o.size, facilitators: 1, publishing: 'av', facilitatorPublishing: 'av' };
    }
  });
}

interface Measured {
  target: StepMeasures['target'];
  rooms: number;
  participantsPerRoom: number;
  workerPids: number[];
  /** The Haven nodes' pids; absent for the baseline (mediasoup's Node side idles in the bench process). */
  nodePids?: number[];
  e2ee?: boolean;
  join?: StepMeasures['join'];
  moderation?: StepMeasures['moderation'];
}

/** Ramp-up, then one measuring window with a live progress line. */
async function measure(o: Options, gen: LoadGenerator, m: Measured): Promise<StepMeasures> {
  await sleep(o.ramp * 1000);
  const workers = new CpuSampler(m.workerPids);
  const node = m.nodePids ? new CpuSampler(m.nodePids) : undefined;
  const loadgen = new CpuSampler([gen.child.pid as number]);
  const machine = machineTicks();
  await gen.ask({ type: 'window-start' }, 'ok');
  let last = gen.latest;
  for (let s = 0; s < o.seconds; s++) {
    await sleep(1_000);
    const now = gen.latest;
    if (process.stdout.isTTY && now && last) {
      process.stdout.write(
        `\r${formatProgress({
          target: m.target,
          rooms: m.rooms,
          producers: now.producers,
          consumers: now.consumers,
          forwardedPacketsPerSecond: now.received - last.received,
          loss: now.expected > 0 ? 1 - now.received / now.expected : 0,
          workersCpu: workers.sample().map((l) => l.cpu),
          nodeCpu: node ? sumLoads(node.sample()).cpu : undefined,
          loadGeneratorCpu: loadgen.sample()[0]?.cpu,
          errors: now.errors,
        })}   `,
      );
    }
    last = now;
  }
  const workerLoads = workers.stop();
  const nodeLoad = node ? sumLoads(node.stop()) : undefined;
  const loadgenLoad = loadgen.stop()[0] as ProcessLoad;
  const machineBusy = machineBusySince(machine);
  const window = await gen.ask({ type: 'window-end' }, 'window');
  const forwarded = window.totals.received / window.seconds;
  const workersTotal = sumLoads(workerLoads);
  const step: StepMeasures = {
    target: m.target,
    ...(m.e2ee ? { e2ee: true } : {}),
    rooms: m.rooms,
    participantsPerRoom: m.participantsPerRoom,
    producers: gen.latest?.producers ?? 0,
    consumers: window.totals.streams,
    seconds: Math.round(window.seconds * 10) / 10,
    forwardedPacketsPerSecond: Math.round(forwarded),
    forwardedBitsPerSecond: Math.round((window.totals.bytes * 8) / window.seconds),
    sentPacketsPerSecond: Math.round(window.sentPackets / window.seconds),
    loss: window.totals.loss,
    maxConsumerLoss: window.totals.maxStreamLoss,
    oneWayDelayMs: window.totals.oneWayDelayMs,
    workers: workerLoads,
    workersTotal,
    ...(nodeLoad ? { node: nodeLoad } : {}),
    loadGenerator: loadgenLoad,
    machineBusy,
    workerCpuPerKiloPacket: forwarded > 0 ? workersTotal.cpu / (forwarded / 1000) : 0,
    ...(m.join ? { join: m.join } : {}),
    ...(m.moderation ? { moderation: m.moderation } : {}),
    errors: window.errors,
    ...(window.missing.length > 0
      ? { missingTracks: window.missing.slice(0, 50), missingTrackCount: window.missing.length }
      : {}),
  };
  if (process.stdout.isTTY) process.stdout.write('\n');
  const pct = (x: number) => `${(x * 100).toFixed(x < 0.01 ? 2 : 1)} %`;
  console.log(
    `${m.target}${m.e2ee ? ' (E2EE)' : ''} · ${m.rooms} rooms · ${step.consumers} consumers · ${step.forwardedPacketsPerSecond} pkt/s · loss ${pct(step.loss)} · workers ${workerLoads.map((l) => pct(l.cpu)).join('+')} ${nodeLoad ? ` · node ${pct(nodeLoad.cpu)}` : ''} · loadgen ${pct(loadgenLoad.cpu)} · machine ${pct(machineBusy)} busy`,
  );
  return step;
}

/** The step held: loss within 1 %, every worker within 90 % of a core, the generator not saturated. */
function verdict(step: StepMeasures): string | undefined {
  if (step.missingTracks?.length) return describeMissing(step.missingTracks, step.missingTrackCount);
  if (step.loss > 0.01) return `loss ${(step.loss * 100).toFixed(2)} % > 1 %`;
  const busiest = Math.max(...step.workers.map((w) => w.cpu));
  if (busiest > 0.9) return `a worker at ${(busiest * 100).toFixed(0)} % of a core > 90 %`;
  if (step.loadGenerator.cpu > 0.95) return 'the load generator saturated (its own CPU at 95 %+): the SFU was not';
  if (step.errors > 0) return `${step.errors} errors`;
  return undefined;
}

async function runHaven(o: Options, gen: LoadGenerator, result: BenchResult, e2ee = false): Promise<number[]> {
  const secret = randomBytes(24).toString('hex');
  const adminKey = randomBytes(24).toString('hex');
  const consumersPerRoom = o.scenario === 'education' ? o.publishers * 2 * o.receivers : o.size * (o.size - 1) * 2;
  const cluster = await startNodes(o, {
    HAVEN_AUTH_SECRET: secret,
    HAVEN_ADMIN_API_KEY: adminKey,
    HAVEN_MEDIA_WORKERS: String(o.workers),
    HAVEN_MEDIA_PLAIN_TRANSPORTS: 'true',
    HAVEN_MEDIA_WEBRTC_PORT: '0',
    // An education room spreads over the workers; a group stays on one.
    HAVEN_MEDIA_MAX_CONSUMERS_PER_ROUTER: String(
      o.scenario === 'education' ? Math.ceil(consumersPerRoom / o.workers) + 1 : Math.max(500, consumersPerRoom),
    ),
  });
  // The first node is the entry: the generator's clients are redirected from it to each room's node.
  const node = cluster.nodes[0] as NodeProcess;
  const target: HavenTarget = { url: node.url, secret };
  const levels: number[] = [];
  try {
    const workerPids = cluster.nodes.flatMap((n) => mediasoupWorkerPids(n.child.pid as number));
    let rooms = 0;
    for (let level = o.rooms; level <= o.maxRooms; level += o.step) {
      const plans = roomPlans(o, 'bench', rooms, level - rooms).map((p) => ({ ...p, e2ee }));
      for (const plan of plans) {
        await createBenchRoom(node.url, adminKey, {
          id: plan.id,
          kind: o.scenario === 'education' ? 'education' : 'group',
          capacity: Math.min(500, plan.size + 4),
          e2ee, // said of plain rooms too: the node's default may be E2EE
        });
      }
      const joined = await gen.ask({ type: 'join-haven', target, rooms: plans }, 'joined');
      if (joined.failed > 0) throw new Error(`${joined.failed} synthetic participants could not join`);
      rooms = level;
      const moderation =
        o.scenario === 'moderation'
          ? await (async () => {
              const m = await gen.ask({ type: 'moderate', target, rounds: o.rounds }, 'moderated');
              return { muteAll: m.muteAll, admitAll: m.admitAll, remove: m.remove };
            })()
          : undefined;
      if (o.soakSeconds) {
        result.soak = await soak({
          seconds: o.soakSeconds,
          nodePids: cluster.nodes.map((n) => n.child.pid as number),
          workerPids,
          errors: () => gen.latest?.errors ?? 0,
        });
        console.log(describeSoak(result.soak));
      }
      const step = await measure(o, gen, {
        target: 'haven',
        rooms,
        participantsPerRoom: plans[0]?.size ?? o.size,
        workerPids,
        nodePids: cluster.nodes.map((n) => n.child.pid as number),
        e2ee,
        join: { admitted: percentiles(joined.admitted), firstPacket: percentiles(joined.firstPacket) },
        moderation,
      });
      step.routers = await routersOf(node.url, adminKey, rooms);
      result.steps.push(step);
      levels.push(rooms);
      // Someone not receiving a track they should is a broken run, not a capacity limit.
      if (step.missingTracks?.length) throw new Error(describeMissing(step.missingTracks, step.missingTrackCount));
      if (result.soak && !result.soak.held)
        throw new Error(`memory or descriptors grew in the soak: ${describeSoak(result.soak)}`);
      const failed = verdict(step);
      if (!o.findCapacity) break;
      if (failed) {
        result.capacity = capacityOf(result, o, failed);
        break;
      }
    }
    if (o.findCapacity && !result.capacity)
      result.capacity = capacityOf(result, o, `reached --max-rooms ${o.maxRooms}`);
  } finally {
    await gen.ask({ type: 'close-all' }, 'ok').catch(() => {});
    // What went wrong on the node's side, if anything did (its log lines at error level and above).
    for (const line of cluster.nodes.flatMap((n) => n.logs.filter((l) => Number(l.level) >= 50)).slice(0, 5)) {
      console.error(`node: ${line.msg} ${JSON.stringify(line.err ?? '')}`);
    }
    await cluster.stop();
  }
  return levels;
}

/** The routers of rooms `bench-0` … `bench-<rooms − 1>`, from the admin API (any node answers for all). */
async function routersOf(url: string, adminKey: string, rooms: number): Promise<number> {
  let routers = 0;
  for (let i = 0; i < rooms; i++) {
    const res = await fetch(`${url}/v1/rooms/bench-${i}`, { headers: { authorization: `Bearer ${adminKey}` } });
    const body = (await res.json()) as { data?: { live?: { routers?: number } | null } };
    routers += body.data?.live?.routers ?? 0;
  }
  return routers;
}

/**
 * The nodes under test: one with its own Redis, or `--nodes` sharing a Redis the bench starts;
 * with `--pin`, node i and its media workers run on core i only.
 */
async function startNodes(o: Options, env: Record<string, string>) {
  const dataDir = mkdtempSync(join(tmpdir(), 'haven-bench-'));
  const redis = o.nodes > 1 ? await EmbeddedRedis.start({ dataDir }) : undefined;
  const nodes: NodeProcess[] = [];
  const stop = async () => {
    for (const n of nodes) n.kill();
    await redis?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < o.nodes; i++) {
      const node = await startNodeProcess({
        ...env,
        ...(redis ? { REDIS_URL: redis.url, HAVEN_NODE_ID: `bench-${i + 1}` } : {}),
      });
      nodes.push(node);
      if (o.pin) {
        const core = String(i % cpus().length);
        for (const pid of [node.child.pid as number, ...mediasoupWorkerPids(node.child.pid as number)]) {
          execFileSync('taskset', ['-a', '-cp', core, String(pid)], { stdio: 'ignore' });
        }
      }
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { nodes, stop };
}

/** The largest Haven step that held. */
function capacityOf(result: BenchResult, o: Options, stoppedBecause: string): BenchResult['capacity'] {
  const held = result.steps.filter((s) => s.target === 'haven' && !verdict(s)).at(-1);
  const rooms = held?.rooms ?? 0;
  const consumers = held?.consumers ?? 0;
  return {
    rooms,
    consumers,
    workers: o.workers * o.nodes,
    roomsPerWorker: rooms / (o.workers * o.nodes),
    consumersPerWorker: consumers / (o.workers * o.nodes),
    stoppedBecause,
  };
}

async function runBaseline(o: Options, gen: LoadGenerator, result: BenchResult, levels: number[]): Promise<void> {
  const topology = await BaselineTopology.create(o.workers);
  try {
    let rooms = 0;
    for (const level of levels) {
      const plans = roomPlans(o, 'base', rooms, level - rooms);
      const { endpoints } = await gen.ask({ type: 'baseline-peers', rooms: plans }, 'baseline-endpoints');
      const wiring = await topology.addRooms(endpoints);
      await gen.ask({ type: 'baseline-wire', wiring }, 'ok');
      rooms = level;
      result.steps.push(
        await measure(o, gen, {
          target: 'baseline',
          rooms,
          participantsPerRoom: plans[0]?.size ?? o.size,
          workerPids: topology.workerPids,
        }),
      );
    }
  } finally {
    await gen.ask({ type: 'close-all' }, 'ok').catch(() => {});
    topology.close();
  }
  result.comparison = levels.flatMap((rooms) => {
    const haven = result.steps.find((s) => s.target === 'haven' && !s.e2ee && s.rooms === rooms);
    const base = result.steps.find((s) => s.target === 'baseline' && s.rooms === rooms);
    if (!haven || !base) return [];
    return [
      {
        rooms,
        cpuPerPacketRatio: serverCpuPerPacket(haven) / serverCpuPerPacket(base),
        lossHaven: haven.loss,
        lossBaseline: base.loss,
      },
    ];
  });
}

async function main(): Promise<number> {
  // Signaling without media has its own module (its own processes, options and result).
  if (process.argv[2] === 'signaling') return (await import('./signaling.ts')).runSignaling(process.argv.slice(3));
  // Real Chromium pages, plain against E2EE rooms: the same, for the browser's cost.
  if (process.argv[2] === 'browser-e2ee')
    return (await import('./browser-e2ee.ts')).runBrowserE2ee(process.argv.slice(3));
  if (process.argv[2] === 'network') return (await import('./network.ts')).runNetwork(process.argv.slice(3));
  const o = optionsOrUsage(options);
  if (!o) return 2;
  const cpu = cpus();
  const result: BenchResult = {
    scenario: o.scenario,
    startedAt: new Date().toISOString(),
    machine: {
      cpus: cpu.length,
      cpuModel: cpu[0]?.model ?? 'unknown',
      memoryBytes: totalmem(),
      node: process.version,
      mediasoup: mediasoupVersion,
    },
    options: Object.fromEntries(Object.entries(o).filter(([k]) => k !== 'out')) as BenchResult['options'],
    steps: [],
  };
  const gen = new LoadGenerator();
  try {
    await gen.ask({ type: 'configure', videoBitrate: o.videoBitrate }, 'ok');
    const levels = await runHaven(o, gen, result);
    if (o.e2ee) {
      await runHaven(o, gen, result, true);
      result.e2ee = e2eeComparison(result.steps);
    }
    if (o.baseline && o.scenario !== 'joinstorm' && o.scenario !== 'moderation')
      await runBaseline(o, gen, result, levels);
  } catch (err) {
    result.failure = (err as Error).message;
    console.error(`bench failed: ${result.failure}`);
  } finally {
    gen.stop();
  }
  const files = await writeReport(result, o.out, { png: o.png });
  console.log(`result: ${files.json}\nreport: ${files.html}${files.png ? `\nplot:   ${files.png}` : ''}`);
  for (const c of result.comparison ?? []) {
    const loss = (x: number) => `${(x * 100).toFixed(2)} %`;
    console.log(
      `${c.rooms} rooms: Haven ÷ bare mediasoup, CPU per forwarded packet ${c.cpuPerPacketRatio.toFixed(2)}×; loss ${loss(c.lossHaven)} on Haven, ${loss(c.lossBaseline)} bare`,
    );
  }
  for (const c of result.e2ee ?? []) console.log(describeE2ee(c));
  if (result.capacity) {
    const c = result.capacity;
    console.log(
      `capacity: ${c.rooms} rooms (${c.consumersPerWorker.toFixed(0)} consumers per worker); stopped because ${c.stoppedBecause}`,
    );
  }
  return result.failure ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
