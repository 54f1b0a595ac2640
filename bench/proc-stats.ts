/**
 * CPU and memory of processes, read from /proc (Linux), for the bench: the mediasoup workers, the
 * Haven node and the load generator are separate processes, and each one's share of a core is
 * what tells a saturated SFU from a saturated load generator.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { basename } from 'node:path';
import type { ProcessLoad } from './result.ts';

let ticksPerSecond: number | undefined;
let bytesPerPage: number | undefined;

function getconf(name: string, fallback: number): number {
  try {
    const value = Number(execFileSync('getconf', [name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }));
    return Number.isFinite(value) && value > 0 ? value : fallback;
  } catch {
    return fallback;
  }
}

/** Clock ticks per second, the unit of utime/stime in /proc/<pid>/stat (read once; 100 on Linux). */
export function clockTicksPerSecond(): number {
  ticksPerSecond ??= getconf('CLK_TCK', 100);
  return ticksPerSecond;
}

/** Bytes per memory page, the unit of /proc/<pid>/statm (read once; 4096 on x86-64). */
export function pageSize(): number {
  bytesPerPage ??= getconf('PAGESIZE', 4096);
  return bytesPerPage;
}

/** One reading of a process. */
export interface ProcSnapshot {
  pid: number;
  ppid: number;
  /** Kernel state letter: R, S, D, Z (zombie), … */
  state: string;
  /** user + system time, clock ticks. */
  cpuTicks: number;
  /** Start time since boot, clock ticks: tells a reused pid from the process first seen. */
  startTicks: number;
  rssBytes: number;
}

/** Fields of /proc/<pid>/stat after the command name (which is in parentheses and may hold spaces). */
function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** Reads a process's CPU time and RSS; undefined when it is gone (or was never there). */
export function readProcess(pid: number): ProcSnapshot | undefined {
  const fields = statFields(pid);
  if (!fields) return undefined;
  // Indices count from field 3 (state): utime is field 14, stime 15, starttime 22.
  let rssBytes = 0;
  try {
    const pages = Number(readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ')[1]);
    rssBytes = Number.isFinite(pages) ? pages * pageSize() : 0;
  } catch {}
  return {
    pid,
    ppid: Number(fields[1]),
    state: fields[0] ?? '?',
    cpuTicks: Number(fields[11]) + Number(fields[12]),
    startTicks: Number(fields[19]),
    rssBytes,
  };
}

/** The kernel's short name of a process's executable (15 characters at most), or '' if gone. */
export function commOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

/** The process's arguments, or [] if gone. */
export function cmdlineOf(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  } catch {
    return [];
  }
}

/** Every live descendant of `pid` (children, grandchildren, …), parents before children. */
export function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const fields = statFields(Number(entry));
    if (!fields || fields[0] === 'Z') continue;
    const ppid = Number(fields[1]);
    children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
  }
  const found: number[] = [];
  const queue = [pid];
  for (let parent = queue.shift(); parent !== undefined; parent = queue.shift()) {
    for (const child of children.get(parent) ?? []) {
      found.push(child);
      queue.push(child);
    }
  }
  return found;
}

const workerBinary = 'mediasoup-worker';

/** Whether a process runs the mediasoup worker binary (comm is cut to 15 characters). */
export function isMediasoupWorker(pid: number): boolean {
  if (commOf(pid) === workerBinary.slice(0, 15)) return true;
  const argv0 = cmdlineOf(pid)[0];
  return argv0 !== undefined && basename(argv0) === workerBinary;
}

/** The mediasoup worker processes under a Node.js process (its descendants running the binary). */
export function mediasoupWorkerPids(nodePid: number): number[] {
  return descendants(nodePid).filter(isMediasoupWorker);
}

/** Measures CPU over a window for a set of processes: `start()` reads them, `stop()` reads again. */
export interface LoadSampler {
  /** Loads from the start until now, in the order the processes were given. */
  sample(): ProcessLoad[];
  /** The final `sample()`; later calls return the same figures. */
  stop(): ProcessLoad[];
}

interface Tracked {
  first?: ProcSnapshot;
  last?: ProcSnapshot;
  exited: boolean;
}

/**
 * Takes a snapshot of each pid when made; each `sample()` reads them again and gives each one's
 * CPU as a share of one core since the start ((user + system) ÷ wall time) and its RSS. A process
 * that exits during the window (or whose pid is reused) keeps what was last read, over the whole
 * window, so calling `sample()` now and then keeps the figures of a process that may die recent.
 */
export class CpuSampler implements LoadSampler {
  readonly pids: readonly number[];
  readonly #tracked = new Map<number, Tracked>();
  readonly #startedAt = performance.now();
  #stoppedAt?: number;
  #final?: ProcessLoad[];

  constructor(pids: readonly number[]) {
    this.pids = [...pids];
    for (const pid of this.pids) {
      const first = readProcess(pid);
      this.#tracked.set(pid, { first, last: first, exited: first === undefined });
    }
  }

  /** Pids that were gone at some reading (or never there). */
  get exited(): number[] {
    return this.pids.filter((pid) => this.#tracked.get(pid)?.exited);
  }

  /** Seconds since the start snapshot (until `stop()`, once stopped). */
  elapsedSeconds(): number {
    return ((this.#stoppedAt ?? performance.now()) - this.#startedAt) / 1000;
  }

  sample(): ProcessLoad[] {
    if (this.#final) return this.#final;
    const seconds = this.elapsedSeconds();
    return this.pids.map((pid) => {
      const tracked = this.#tracked.get(pid) as Tracked;
      if (!tracked.exited) {
        const now = readProcess(pid);
        // A zombie's times are final but its memory is gone: keep the last RSS read while alive.
        if (!now || now.startTicks !== tracked.first?.startTicks) tracked.exited = true;
        else if (now.state === 'Z') {
          tracked.exited = true;
          tracked.last = { ...now, rssBytes: tracked.last?.rssBytes ?? 0 };
        } else tracked.last = now;
      }
      const { first, last } = tracked;
      if (!first || !last || seconds <= 0) return { cpu: 0, rssBytes: last?.rssBytes ?? 0 };
      return { cpu: (last.cpuTicks - first.cpuTicks) / clockTicksPerSecond() / seconds, rssBytes: last.rssBytes };
    });
  }

  stop(): ProcessLoad[] {
    if (!this.#final) {
      this.#stoppedAt = performance.now();
      this.#final = this.sample();
    }
    return this.#final;
  }
}

/**
 * The current process's own load through `process.cpuUsage()` (microseconds, finer than clock
 * ticks) and `process.memoryUsage.rss()`: the alternative to `/proc` for the bench itself.
 */
export class SelfCpuSampler implements LoadSampler {
  readonly #start = process.cpuUsage();
  readonly #startedAt = performance.now();
  #final?: ProcessLoad[];

  sample(): ProcessLoad[] {
    if (this.#final) return this.#final;
    const used = process.cpuUsage(this.#start);
    const seconds = (performance.now() - this.#startedAt) / 1000;
    const cpu = seconds > 0 ? (used.user + used.system) / 1e6 / seconds : 0;
    return [{ cpu, rssBytes: process.memoryUsage.rss() }];
  }

  stop(): ProcessLoad[] {
    this.#final ??= this.sample();
    return this.#final;
  }
}

/** Sum of loads (the workers' total): CPU shares and RSS add up. */
export function sumLoads(loads: readonly ProcessLoad[]): ProcessLoad {
  return loads.reduce((sum, load) => ({ cpu: sum.cpu + load.cpu, rssBytes: sum.rssBytes + load.rssBytes }), {
    cpu: 0,
    rssBytes: 0,
  });
}

/** All cores' busy and total ticks from /proc/stat. */
export function machineTicks(): { busy: number; total: number } {
  const fields = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/).slice(1).map(Number);
  const total = fields.reduce((a, b) => a + b, 0);
  const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
  return { busy: total - idle, total };
}

/** The whole machine's busy share since `start` (1 = every core busy): others' load shows here. */
export function machineBusySince(start: { busy: number; total: number }): number {
  const end = machineTicks();
  return (end.busy - start.busy) / Math.max(1, end.total - start.total);
}
