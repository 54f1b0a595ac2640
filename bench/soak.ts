/**
 * `--soak <duration>`: the load held for a long time while the node's and the media workers'
 * memory and open file descriptors are sampled from /proc (from outside: no endpoint on the node).
 * After a warm-up, each series' rise is the least-squares slope times the time sampled, which a
 * garbage collector's saw-tooth does not move much and a leak does; the soak fails when a rise
 * passes its bound.
 *
 * Bounds: 20 MB of RSS for the node, 20 MB for the workers together, and 5 file descriptors for
 * each. At the default load (4 rooms of 8, about 30k forwarded packets/s) a leak of one byte per
 * forwarded packet passes 20 MB in about 11 minutes, and of one byte per RTCP report or request
 * within a soak of 30 minutes; V8's heap settling and mediasoup's buffers growing to their working
 * size happen in the warm-up, and a GC saw-tooth of a few MB moves the fitted rise little.
 * Descriptors should not move at all at a constant load: 5 leaves room for a log file reopened or
 * a DNS socket, not for a leak per join.
 */
import { readdirSync } from 'node:fs';
import { readProcess } from './proc-stats.ts';

export interface SoakSample {
  /** Seconds since the soak started. */
  t: number;
  nodeRssBytes: number;
  workersRssBytes: number;
  nodeFds: number;
  workersFds: number;
  /** Errors the load generator had counted by then. */
  errors: number;
}

export interface SoakSeries {
  name: 'nodeRssBytes' | 'workersRssBytes' | 'nodeFds' | 'workersFds';
  /** Least-squares slope after the warm-up, per minute. */
  slopePerMinute: number;
  /** Slope × the time sampled after the warm-up. */
  rise: number;
  maxMinusMin: number;
  bound: number;
  held: boolean;
}

export interface SoakResult {
  seconds: number;
  warmupSeconds: number;
  everySeconds: number;
  samples: SoakSample[];
  series: SoakSeries[];
  held: boolean;
}

export const soakBounds: Record<SoakSeries['name'], number> = {
  nodeRssBytes: 20 * 1024 * 1024,
  workersRssBytes: 20 * 1024 * 1024,
  nodeFds: 5,
  workersFds: 5,
};

/** `30m`, `90s`, `1h`, or seconds; undefined if not a duration. */
export function parseDuration(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(s|m|h)?$/.exec(text.trim());
  if (!m) return undefined;
  const seconds = Number(m[1]) * { s: 1, m: 60, h: 3600 }[(m[2] ?? 's') as 's' | 'm' | 'h'];
  return seconds > 0 ? seconds : undefined;
}

/** Open file descriptors of a process (0 when it is gone). */
export function fdCount(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return 0;
  }
}

export function sample(t: number, nodePids: number[], workerPids: number[], errors: number): SoakSample {
  const rss = (pids: number[]) => pids.reduce((n, pid) => n + (readProcess(pid)?.rssBytes ?? 0), 0);
  const fds = (pids: number[]) => pids.reduce((n, pid) => n + fdCount(pid), 0);
  return {
    t,
    nodeRssBytes: rss(nodePids),
    workersRssBytes: rss(workerPids),
    nodeFds: fds(nodePids),
    workersFds: fds(workerPids),
    errors,
  };
}

/** Least-squares slope of y over x (0 with fewer than two points). */
export function slope(points: readonly { x: number; y: number }[]): number {
  const n = points.length;
  if (n < 2) return 0;
  const mx = points.reduce((s, p) => s + p.x, 0) / n;
  const my = points.reduce((s, p) => s + p.y, 0) / n;
  let num = 0;
  let den = 0;
  for (const p of points) {
    num += (p.x - mx) * (p.y - my);
    den += (p.x - mx) ** 2;
  }
  return den > 0 ? num / den : 0;
}

/** Each series' slope, rise and verdict over the samples after the warm-up. */
export function analyse(
  samples: readonly SoakSample[],
  warmupSeconds: number,
  bounds: Record<SoakSeries['name'], number> = soakBounds,
): SoakSeries[] {
  const after = samples.filter((s) => s.t >= warmupSeconds);
  const span = after.length > 1 ? (after.at(-1) as SoakSample).t - (after[0] as SoakSample).t : 0;
  return (Object.keys(bounds) as SoakSeries['name'][]).map((name) => {
    const perSecond = slope(after.map((s) => ({ x: s.t, y: s[name] })));
    const values = after.map((s) => s[name]);
    const rise = perSecond * span;
    return {
      name,
      slopePerMinute: perSecond * 60,
      rise,
      maxMinusMin: values.length ? Math.max(...values) - Math.min(...values) : 0,
      bound: bounds[name],
      held: rise <= bounds[name],
    };
  });
}

/** Samples every `everySeconds` for `seconds`; `errors()` reads the generator's error count. */
export async function soak(options: {
  seconds: number;
  nodePids: number[];
  workerPids: number[];
  errors: () => number;
  onSample?: (s: SoakSample) => void;
}): Promise<SoakResult> {
  const everySeconds = Math.max(1, Math.min(10, Math.round(options.seconds / 30)));
  // A fifth of the soak (at most 5 minutes) for heaps and buffers to reach their working size.
  const warmupSeconds = Math.min(300, options.seconds / 5);
  const started = performance.now();
  const samples: SoakSample[] = [];
  for (;;) {
    const t = (performance.now() - started) / 1000;
    const s = sample(Math.round(t * 10) / 10, options.nodePids, options.workerPids, options.errors());
    samples.push(s);
    options.onSample?.(s);
    if (t >= options.seconds) break;
    await new Promise((r) => setTimeout(r, Math.min(everySeconds, options.seconds - t + 0.05) * 1000));
  }
  const series = analyse(samples, warmupSeconds);
  return { seconds: options.seconds, warmupSeconds, everySeconds, samples, series, held: series.every((s) => s.held) };
}

/** The console line of a soak. */
export function describeSoak(r: SoakResult): string {
  const mb = (b: number) => `${(b / 1024 / 1024).toFixed(1)} MB`;
  const parts = r.series.map((s) => {
    const bytes = s.name.endsWith('Bytes');
    const f = bytes ? mb : (x: number) => x.toFixed(1);
    return `${s.name} rise ${f(s.rise)} (bound ${f(s.bound)}, max−min ${f(s.maxMinusMin)})${s.held ? '' : ' FAILED'}`;
  });
  return `soak ${r.seconds} s, ${r.samples.length} samples after ${r.warmupSeconds} s of warm-up: ${parts.join(' · ')}`;
}
