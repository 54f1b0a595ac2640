/**
 * The bench's report: a one-line progress figure while it runs, and at the end `result.json`, a
 * self-contained `report.html` (inline SVG drawn here, no script, nothing fetched: it opens from a
 * mail attachment or an air-gapped machine) and `capacity.png` of the first plot for the README.
 */

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromiumPath } from './chromium.ts';
import { e2eeTable } from './e2ee.ts';
import type { BenchResult, Percentiles, ProcessLoad, StepMeasures } from './result.ts';

// ---------------------------------------------------------------------------------------------
// Formatting

const htmlEscapes: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Escapes text for HTML/SVG content and attribute values. */
export function escapeHtml(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (c) => htmlEscapes[c] as string);
}
const esc = escapeHtml;

/** 950 → "950", 58_100 → "58.1k", 1_234_000 → "1.23M". */
export function formatCount(n: number): string {
  const abs = Math.abs(n);
  if (abs >= 1e6) return `${(n / 1e6).toFixed(abs >= 1e7 ? 1 : 2)}M`;
  if (abs >= 1e3) return `${(n / 1e3).toFixed(abs >= 1e4 ? 1 : 2)}k`;
  return String(Math.round(n));
}

/** A share of one core as a percentage: 0.712 → "71 %". */
function cpuPct(share: number): string {
  return `${Math.round(share * 100)} %`;
}

/** A loss ratio as a percentage: 0.0002 → "0.02 %" (more digits for tiny non-zero losses). */
function lossPct(loss: number): string {
  if (loss === 0) return '0 %';
  const pct = loss * 100;
  return `${pct.toFixed(pct < 0.01 ? 3 : 2)} %`;
}

function mib(bytes: number): string {
  return `${Math.round(bytes / 2 ** 20)} MiB`;
}

function msText(value: number | null): string {
  if (value === null) return '–';
  return value >= 100 ? String(Math.round(value)) : value >= 10 ? value.toFixed(1) : value.toFixed(2);
}

function ratioText(ratio: number): string {
  return Number.isFinite(ratio) ? `${ratio.toFixed(2)}×` : '–';
}

// ---------------------------------------------------------------------------------------------
// Live progress

/** What the bench knows mid-step, for the progress line. CPU figures are shares of one core. */
export interface ProgressSnapshot {
  target?: 'haven' | 'baseline';
  rooms: number;
  /** The step's target number of rooms, while they are still joining. */
  roomsTarget?: number;
  producers: number;
  consumers: number;
  forwardedPacketsPerSecond: number;
  loss: number;
  workersCpu: number[];
  nodeCpu?: number;
  loadGeneratorCpu?: number;
  errors?: number;
}

/** `rooms 12/20 · 96 pub · 672 cons · 58.1k pkt/s fwd · loss 0.02 % · workers 71 %+65 % · …` */
export function formatProgress(s: ProgressSnapshot): string {
  const parts = [
    s.roomsTarget === undefined ? `rooms ${s.rooms}` : `rooms ${s.rooms}/${s.roomsTarget}`,
    `${s.producers} pub`,
    `${s.consumers} cons`,
    `${formatCount(s.forwardedPacketsPerSecond)} pkt/s fwd`,
    `loss ${lossPct(s.loss)}`,
  ];
  if (s.workersCpu.length) parts.push(`workers ${s.workersCpu.map(cpuPct).join('+')}`);
  if (s.nodeCpu !== undefined) parts.push(`node ${cpuPct(s.nodeCpu)}`);
  if (s.loadGeneratorCpu !== undefined) parts.push(`loadgen ${cpuPct(s.loadGeneratorCpu)}`);
  if (s.errors) parts.push(`${s.errors} errors`);
  if (s.target === 'baseline') parts.unshift('baseline');
  return parts.join(' · ');
}

// ---------------------------------------------------------------------------------------------
// Haven ÷ baseline

export interface ComparisonRow {
  rooms: number;
  havenCpuPerKiloPacket?: number;
  baselineCpuPerKiloPacket?: number;
  cpuPerPacketRatio: number;
  lossHaven: number;
  lossBaseline: number;
}

/** The result's comparison, with each side's CPU per packet; derived from the steps if absent. */
export function comparisonRows(result: BenchResult): ComparisonRow[] {
  const step = (target: StepMeasures['target'], rooms: number) =>
    result.steps.find((s) => s.target === target && !s.e2ee && s.rooms === rooms);
  if (result.comparison) {
    return result.comparison.map((c) => ({
      ...c,
      havenCpuPerKiloPacket: step('haven', c.rooms)?.workerCpuPerKiloPacket,
      baselineCpuPerKiloPacket: step('baseline', c.rooms)?.workerCpuPerKiloPacket,
    }));
  }
  return result.steps.flatMap((haven) => {
    const baseline = haven.target === 'haven' ? step('baseline', haven.rooms) : undefined;
    if (!baseline) return [];
    return [
      {
        rooms: haven.rooms,
        havenCpuPerKiloPacket: haven.workerCpuPerKiloPacket,
        baselineCpuPerKiloPacket: baseline.workerCpuPerKiloPacket,
        cpuPerPacketRatio: haven.workerCpuPerKiloPacket / baseline.workerCpuPerKiloPacket,
        lossHaven: haven.loss,
        lossBaseline: baseline.loss,
      },
    ];
  });
}

// ---------------------------------------------------------------------------------------------
// SVG helpers

/** About `count` round tick values covering [0, max]; the last one is the axis's top. */
function niceTicks(max: number, count = 5): number[] {
  const safeMax = max > 0 ? max : 1;
  const rough = safeMax / count;
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = ([1, 2, 2.5, 5, 10].find((m) => m * power >= rough) ?? 10) * power;
  const ticks: number[] = [];
  for (let v = 0; v < safeMax + step - 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

const n1 = (v: number) => (Math.round(v * 10) / 10).toString();

function text(x: number, y: number, content: string, attrs = ''): string {
  return `<text x="${n1(x)}" y="${n1(y)}"${attrs ? ` ${attrs}` : ''}>${esc(content)}</text>`;
}

function line(x1: number, y1: number, x2: number, y2: number, attrs: string): string {
  return `<line x1="${n1(x1)}" y1="${n1(y1)}" x2="${n1(x2)}" y2="${n1(y2)}" ${attrs}/>`;
}

function svgOpen(width: number, height: number, label: string, standalone: boolean): string {
  // xmlns only for a standalone file: inline SVG in HTML needs none, and the report names no URL.
  const ns = standalone ? ' xmlns="http://www.w3.org/2000/svg"' : '';
  return (
    `<svg${ns} width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" ` +
    `aria-label="${esc(label)}" font-family="DejaVu Sans, Liberation Sans, Arial, sans-serif" font-size="12">` +
    `<rect width="${width}" height="${height}" fill="#fff"/>`
  );
}

// ---------------------------------------------------------------------------------------------
// Plot 1: CPU and loss against load

const colors = {
  workersTotal: '#1f5fa8',
  worker: '#7fb2e5',
  node: '#2a9d3f',
  loadGenerator: '#e07b12',
  loss: '#c9302c',
};
const targetStyle = {
  haven: { dash: '', label: 'Haven' },
  baseline: { dash: ' stroke-dasharray="7 4"', label: 'bare mediasoup' },
};

interface Series {
  name: string;
  color: string;
  width: number;
  axis: 'cpu' | 'loss';
  target: StepMeasures['target'];
  points: { x: number; y: number; note: string }[];
}

/** Whether plot 1's x axis is consumers (the usual case) or rooms (when consumers do not vary). */
function loadAxis(steps: StepMeasures[]): { key: 'consumers' | 'rooms'; label: string } {
  const consumers = new Set(steps.map((s) => s.consumers));
  return consumers.size > 1 || steps.length === 1
    ? { key: 'consumers', label: 'consumers (forwarded streams)' }
    : { key: 'rooms', label: 'rooms' };
}

function capacitySeries(result: BenchResult, xKey: 'consumers' | 'rooms'): Series[] {
  const series: Series[] = [];
  for (const target of ['haven', 'baseline'] as const) {
    const steps = result.steps.filter((s) => s.target === target).sort((a, b) => a[xKey] - b[xKey]);
    if (!steps.length) continue;
    const who = targetStyle[target].label;
    const cpuPoints = (pick: (s: StepMeasures) => ProcessLoad | undefined, what: string) =>
      steps.flatMap((s) => {
        const load = pick(s);
        return load
          ? [{ x: s[xKey], y: load.cpu * 100, note: `${who}, ${what}: ${cpuPct(load.cpu)} at ${s.rooms} rooms` }]
          : [];
      });
    const workerCount = Math.max(...steps.map((s) => s.workers.length));
    for (let i = 0; i < workerCount; i++) {
      series.push({
        name: 'each worker',
        color: colors.worker,
        width: 1.3,
        axis: 'cpu',
        target,
        points: cpuPoints((s) => s.workers[i], `worker ${i + 1}`),
      });
    }
    const add = (name: string, color: string, width: number, points: Series['points'], axis: Series['axis'] = 'cpu') =>
      series.push({ name, color, width, axis, target, points });
    add(
      'workers, total',
      colors.workersTotal,
      2.6,
      cpuPoints((s) => s.workersTotal, 'workers total'),
    );
    add(
      'node process',
      colors.node,
      2,
      cpuPoints((s) => s.node, 'node'),
    );
    add(
      'load generator',
      colors.loadGenerator,
      2,
      cpuPoints((s) => s.loadGenerator, 'load generator'),
    );
    add(
      'loss (right axis)',
      colors.loss,
      2,
      steps.map((s) => ({ x: s[xKey], y: s.loss * 100, note: `${who}, loss: ${lossPct(s.loss)} at ${s.rooms} rooms` })),
      'loss',
    );
  }
  return series.filter((s) => s.points.length > 0);
}

/** Plot 1 as SVG: CPU (left axis, % of one core) and loss (right axis, %) against the load. */
export function capacitySvg(result: BenchResult, options: { standalone?: boolean } = {}): string {
  const width = 960;
  const height = 500;
  const m = { left: 70, right: 70, top: 52, bottom: 110 };
  const plotW = width - m.left - m.right;
  const plotH = height - m.top - m.bottom;
  // E2EE steps repeat a plain step's load (`--e2ee`): their own table says how they compare.
  const plotted = { ...result, steps: result.steps.filter((s) => !s.e2ee) };
  const axis = loadAxis(plotted.steps);
  const series = capacitySeries(plotted, axis.key);
  const title = `CPU and loss against load — ${result.scenario}`;
  const out = [svgOpen(width, height, title, options.standalone ?? false)];
  out.push(text(m.left, 26, title, 'font-size="16" font-weight="bold"'));
  out.push(text(m.left, 43, 'CPU in % of one core (left) · loss in % (right)', 'fill="#555"'));

  const all = (a: Series['axis']) => series.filter((s) => s.axis === a).flatMap((s) => s.points.map((p) => p.y));
  const xTicks = niceTicks(Math.max(0, ...plotted.steps.map((s) => s[axis.key])), 8);
  const cpuTicks = niceTicks(Math.max(100, ...all('cpu')), 5);
  const lossTicks = niceTicks(Math.max(1, ...all('loss')), 5);
  const xMax = xTicks.at(-1) as number;
  const cpuMax = cpuTicks.at(-1) as number;
  const lossMax = lossTicks.at(-1) as number;
  const px = (x: number) => m.left + (x / xMax) * plotW;
  const py = (y: number, a: Series['axis']) => m.top + plotH - (y / (a === 'cpu' ? cpuMax : lossMax)) * plotH;

  // Grid and axes.
  for (const t of cpuTicks) {
    out.push(line(m.left, py(t, 'cpu'), m.left + plotW, py(t, 'cpu'), 'stroke="#e4e4e4"'));
    out.push(text(m.left - 8, py(t, 'cpu') + 4, `${t} %`, 'text-anchor="end"'));
  }
  for (const t of lossTicks) {
    out.push(text(m.left + plotW + 8, py(t, 'loss') + 4, `${t} %`, `fill="${colors.loss}"`));
  }
  for (const t of xTicks) {
    out.push(line(px(t), m.top + plotH, px(t), m.top + plotH + 5, 'stroke="#333"'));
    out.push(text(px(t), m.top + plotH + 19, formatCount(t), 'text-anchor="middle"'));
  }
  out.push(`<rect x="${m.left}" y="${m.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#333"/>`);
  out.push(text(m.left + plotW / 2, m.top + plotH + 38, axis.label, 'text-anchor="middle"'));
  const yMid = m.top + plotH / 2;
  out.push(text(18, yMid, 'CPU, % of one core', `text-anchor="middle" transform="rotate(-90 18 ${n1(yMid)})"`));
  const xr = width - 16;
  out.push(
    text(xr, yMid, 'loss, %', `text-anchor="middle" fill="${colors.loss}" transform="rotate(90 ${xr} ${n1(yMid)})"`),
  );

  // The limits capacity is judged against: a worker at 90 % of a core; and the capacity found.
  const limitY = py(90, 'cpu');
  out.push(line(m.left, limitY, m.left + plotW, limitY, 'stroke="#999" stroke-dasharray="2 3"'));
  // Lines rise to the right: the label sits at the left end, out of their way.
  out.push(text(m.left + 6, limitY - 5, '90 % of a core: a worker’s limit', 'fill="#777"'));
  if (result.capacity) {
    const cx = px(result.capacity[axis.key]);
    out.push(line(cx, m.top, cx, m.top + plotH, 'stroke="#555" stroke-dasharray="5 3"'));
    out.push(text(cx + 5, m.top + 14, `capacity: ${result.capacity.rooms} rooms`, 'fill="#333"'));
  }

  // Series: lines, then markers (circles for Haven, squares for the baseline) with tooltips.
  for (const s of series) {
    const d = s.points.map((p, i) => `${i ? 'L' : 'M'}${n1(px(p.x))} ${n1(py(p.y, s.axis))}`).join(' ');
    out.push(
      `<path d="${d}" fill="none" stroke="${s.color}" stroke-width="${s.width}"${targetStyle[s.target].dash} stroke-linejoin="round"/>`,
    );
    for (const p of s.points) {
      const [x, y] = [px(p.x), py(p.y, s.axis)];
      const tip = `<title>${esc(p.note)}</title>`;
      out.push(
        s.target === 'haven'
          ? `<circle cx="${n1(x)}" cy="${n1(y)}" r="3.5" fill="${s.color}">${tip}</circle>`
          : `<rect x="${n1(x - 3.5)}" y="${n1(y - 3.5)}" width="7" height="7" fill="#fff" stroke="${s.color}" stroke-width="1.5">${tip}</rect>`,
      );
    }
  }
  if (!series.length) out.push(text(m.left + plotW / 2, yMid, 'no steps measured', 'text-anchor="middle" fill="#777"'));

  // Legend: what each colour is, then how Haven and the baseline differ.
  const legendY = height - 40;
  let lx = m.left;
  const names = [...new Map(series.map((s) => [s.name, s])).values()];
  for (const s of names) {
    out.push(line(lx, legendY, lx + 24, legendY, `stroke="${s.color}" stroke-width="${s.width}"`));
    out.push(text(lx + 30, legendY + 4, s.name));
    lx += 40 + s.name.length * 6.8;
  }
  lx = m.left;
  const targets = (['haven', 'baseline'] as const).filter((t) => series.some((s) => s.target === t));
  for (const t of targets) {
    const y = legendY + 20;
    out.push(line(lx, y, lx + 24, y, `stroke="#333" stroke-width="1.6"${targetStyle[t].dash}`));
    out.push(
      t === 'haven'
        ? `<circle cx="${lx + 12}" cy="${y}" r="3.5" fill="#333"/>`
        : `<rect x="${lx + 8.5}" y="${y - 3.5}" width="7" height="7" fill="#fff" stroke="#333" stroke-width="1.5"/>`,
    );
    out.push(text(lx + 30, y + 4, targetStyle[t].label));
    lx += 150;
  }
  out.push('</svg>');
  return out.join('');
}

// ---------------------------------------------------------------------------------------------
// Plot 2: latency percentiles

interface LatencyRow {
  name: string;
  value: Percentiles;
}

/** The step latencies are shown for: the capacity's step if any, else the largest Haven step. */
function latencyStep(result: BenchResult): StepMeasures | undefined {
  const haven = result.steps.filter((s) => s.target === 'haven');
  const pool = haven.length ? haven : result.steps;
  return (
    pool.find((s) => s.rooms === result.capacity?.rooms) ??
    pool.reduce<StepMeasures | undefined>((a, s) => (!a || s.rooms >= a.rooms ? s : a), undefined)
  );
}

function latencyRows(result: BenchResult, step: StepMeasures): LatencyRow[] {
  const rows: LatencyRow[] = [];
  if (step.join) {
    rows.push({ name: 'join: admitted', value: step.join.admitted });
    rows.push({ name: 'join: first packet', value: step.join.firstPacket });
  }
  for (const [action, value] of Object.entries(step.moderation ?? {}))
    rows.push({ name: `moderation: ${action}`, value });
  rows.push({ name: `one-way delay (${targetStyle[step.target].label})`, value: step.oneWayDelayMs });
  const baseline =
    step.target === 'haven' ? result.steps.find((s) => s.target === 'baseline' && s.rooms === step.rooms) : undefined;
  if (baseline) rows.push({ name: 'one-way delay (bare mediasoup)', value: baseline.oneWayDelayMs });
  return rows;
}

const percentileColors = { p50: '#9ecae1', p95: '#4292c6', p99: '#08519c' } as const;

/** Plot 2 as SVG: p50/p95/p99 bars per latency (join, moderation, one-way delay), log scale in ms. */
export function latencySvg(result: BenchResult, options: { standalone?: boolean } = {}): string {
  const step = latencyStep(result);
  const rows = step ? latencyRows(result, step) : [];
  const width = 960;
  const m = { left: 210, right: 90, top: 60, bottom: 56 };
  const barH = 12;
  const rowH = barH * 3 + 16;
  const plotW = width - m.left - m.right;
  const plotH = Math.max(rowH, rows.length * rowH);
  const height = m.top + plotH + m.bottom;
  const title = step ? `Latency percentiles at ${step.rooms} rooms — ${result.scenario}` : 'Latency percentiles';
  const out = [svgOpen(width, height, title, options.standalone ?? false)];
  out.push(text(m.left - 200, 26, title, 'font-size="16" font-weight="bold"'));
  out.push(text(m.left - 200, 43, 'milliseconds, logarithmic scale', 'fill="#555"'));

  const keys = ['p50', 'p95', 'p99'] as const;
  const values = rows.flatMap((r) => keys.map((k) => r.value[k]).filter((v): v is number => v !== null && v > 0));
  const lo = 10 ** Math.floor(Math.log10(values.length ? Math.min(...values) : 1));
  const hi = 10 ** Math.ceil(Math.log10(values.length ? Math.max(...values) : 1000));
  const decades = Math.max(1, Math.log10(hi / lo));
  const px = (v: number) => m.left + (Math.log10(Math.max(v, lo) / lo) / decades) * plotW;

  for (let d = 0; d <= decades; d++) {
    const v = lo * 10 ** d;
    out.push(line(px(v), m.top, px(v), m.top + plotH, 'stroke="#e4e4e4"'));
    out.push(text(px(v), m.top + plotH + 18, v >= 1 ? String(v) : v.toPrecision(1), 'text-anchor="middle"'));
  }
  out.push(line(m.left, m.top, m.left, m.top + plotH, 'stroke="#333"'));
  out.push(text(m.left + plotW / 2, m.top + plotH + 38, 'ms', 'text-anchor="middle"'));

  rows.forEach((row, i) => {
    const y0 = m.top + i * rowH + 8;
    out.push(text(m.left - 10, y0 + barH * 1.5 + 4, row.name, 'text-anchor="end"'));
    if (row.value.count === 0 || row.value.p50 === null) {
      out.push(text(m.left + 8, y0 + barH * 1.5 + 4, 'no samples', 'fill="#777"'));
      return;
    }
    keys.forEach((k, j) => {
      const v = row.value[k];
      if (v === null) return;
      const y = y0 + j * barH;
      const w = Math.max(1, px(v) - m.left);
      const tip = `${row.name} ${k}: ${msText(v)} ms (${row.value.count} samples, max ${msText(row.value.max)} ms)`;
      out.push(
        `<rect x="${m.left}" y="${n1(y)}" width="${n1(w)}" height="${barH - 2}" fill="${percentileColors[k]}"><title>${esc(tip)}</title></rect>`,
      );
      out.push(text(m.left + w + 5, y + barH - 3, `${k} ${msText(v)}`, 'font-size="10" fill="#333"'));
    });
  });
  if (!rows.length) out.push(text(m.left + 8, m.top + 30, 'no steps measured', 'fill="#777"'));

  let lx = m.left;
  for (const k of keys) {
    out.push(`<rect x="${lx}" y="${height - 20}" width="14" height="10" fill="${percentileColors[k]}"/>`);
    out.push(text(lx + 20, height - 11, k));
    lx += 70;
  }
  out.push('</svg>');
  return out.join('');
}

// ---------------------------------------------------------------------------------------------
// HTML

function table(head: string[], rows: string[][], className = ''): string {
  const th = head.map((h) => `<th>${esc(h)}</th>`).join('');
  // Cells are escaped by the caller (some hold markup of their own).
  const body = rows.map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join('')}</tr>`).join('\n');
  return `<table${className ? ` class="${className}"` : ''}><thead><tr>${th}</tr></thead><tbody>\n${body}\n</tbody></table>`;
}

function percentileCell(p: Percentiles | undefined): string {
  if (!p || p.count === 0) return '–';
  return esc(`${msText(p.p50)} / ${msText(p.p95)} / ${msText(p.p99)}`);
}

function summaryRows(result: BenchResult): [string, string][] {
  const { machine } = result;
  const rows: [string, string][] = [
    ['Scenario', esc(result.scenario)],
    ['Started', esc(result.startedAt)],
    ['Machine', esc(`${machine.cpus} × ${machine.cpuModel}, ${(machine.memoryBytes / 2 ** 30).toFixed(1)} GiB memory`)],
    ['Software', esc(`Node.js ${machine.node}, mediasoup ${machine.mediasoup}`)],
    [
      'Options',
      Object.entries(result.options)
        .map(([k, v]) => `<code>${esc(k)}</code> = <code>${esc(v)}</code>`)
        .join('<br>') || '–',
    ],
  ];
  const c = result.capacity;
  rows.push([
    'Capacity',
    c
      ? esc(
          `${c.rooms} rooms, ${c.consumers} consumers on ${c.workers} worker${c.workers === 1 ? '' : 's'} ` +
            `(${n1(c.roomsPerWorker)} rooms, ${Math.round(c.consumersPerWorker)} consumers per worker); ` +
            `stopped because: ${c.stoppedBecause}`,
        )
      : '– (run with --find-capacity)',
  ]);
  const comparison = comparisonRows(result);
  if (comparison.length) {
    const ratios = comparison.map((r) => r.cpuPerPacketRatio).filter(Number.isFinite);
    const range =
      ratios.length > 1
        ? `${ratioText(Math.min(...ratios))} to ${ratioText(Math.max(...ratios))}`
        : ratioText(ratios[0] ?? Number.NaN);
    rows.push(['Haven ÷ bare mediasoup', esc(`worker CPU per forwarded packet: ${range}`)]);
  }
  for (const c of result.e2ee ?? [])
    rows.push(['E2EE ÷ plain rooms', esc(`server CPU per forwarded packet: ${ratioText(c.cpuPerPacketRatio)}`)]);
  return rows;
}

function comparisonTable(rows: ComparisonRow[]): string {
  const per = (v: number | undefined) => (v === undefined ? '–' : `${(v * 100).toFixed(3)} %`);
  return table(
    [
      'rooms',
      'Haven: worker CPU per 1k pkt/s',
      'bare mediasoup: worker CPU per 1k pkt/s',
      'Haven ÷ bare mediasoup',
      'loss, Haven',
      'loss, bare mediasoup',
    ],
    rows.map((r) =>
      [
        String(r.rooms),
        per(r.havenCpuPerKiloPacket),
        per(r.baselineCpuPerKiloPacket),
        ratioText(r.cpuPerPacketRatio),
        lossPct(r.lossHaven),
        lossPct(r.lossBaseline),
      ].map(esc),
    ),
    'num',
  );
}

function stepsTable(steps: StepMeasures[]): string {
  const hasJoin = steps.some((s) => s.join);
  const hasModeration = steps.some((s) => s.moderation && Object.keys(s.moderation).length);
  const head = [
    'target',
    'rooms',
    'per room',
    'producers',
    'consumers',
    'window, s',
    'forwarded pkt/s',
    'forwarded Mbit/s',
    'sent pkt/s',
    'loss',
    'worst consumer loss',
    'each worker CPU',
    'workers CPU',
    'workers RSS',
    'node CPU',
    'node RSS',
    'load generator CPU',
    'worker CPU per 1k pkt/s',
    'one-way delay p50/p95/p99, ms',
    ...(hasJoin ? ['admitted p50/p95/p99, ms', 'first packet p50/p95/p99, ms'] : []),
    ...(hasModeration ? ['moderation p50/p95/p99, ms'] : []),
    'errors',
  ];
  const rows = steps.map((s) => [
    esc(`${targetStyle[s.target].label}${s.e2ee ? ', E2EE' : ''}`),
    esc(s.rooms),
    esc(s.participantsPerRoom),
    esc(s.producers),
    esc(s.consumers),
    esc(n1(s.seconds)),
    esc(formatCount(s.forwardedPacketsPerSecond)),
    esc((s.forwardedBitsPerSecond / 1e6).toFixed(1)),
    esc(formatCount(s.sentPacketsPerSecond)),
    esc(lossPct(s.loss)),
    esc(lossPct(s.maxConsumerLoss)),
    esc(s.workers.map((w) => cpuPct(w.cpu)).join(' + ') || '–'),
    esc(cpuPct(s.workersTotal.cpu)),
    esc(mib(s.workersTotal.rssBytes)),
    s.node ? esc(cpuPct(s.node.cpu)) : '–',
    s.node ? esc(mib(s.node.rssBytes)) : '–',
    esc(cpuPct(s.loadGenerator.cpu)),
    esc(`${(s.workerCpuPerKiloPacket * 100).toFixed(3)} %`),
    percentileCell(s.oneWayDelayMs),
    ...(hasJoin ? [percentileCell(s.join?.admitted), percentileCell(s.join?.firstPacket)] : []),
    ...(hasModeration
      ? [
          Object.entries(s.moderation ?? {})
            .map(([action, p]) => `${esc(action)}: ${percentileCell(p)}`)
            .join('<br>') || '–',
        ]
      : []),
    esc(s.errors),
  ]);
  return table(head, rows, 'num steps');
}

const css = `
body { font: 14px/1.45 'DejaVu Sans', 'Liberation Sans', Arial, sans-serif; color: #222; margin: 24px auto; max-width: 1000px; padding: 0 16px; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 32px; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { border: 1px solid #ddd; padding: 4px 8px; vertical-align: top; }
th { background: #f4f6f8; text-align: left; font-weight: 600; }
table.num td { text-align: right; white-space: nowrap; } table.num td:first-child { text-align: left; }
.scroll { overflow-x: auto; max-width: 100%; }
.steps { font-size: 12px; }
.failure { background: #fdecea; border: 1px solid #c9302c; padding: 8px 12px; }
svg { max-width: 100%; height: auto; }
code { font-size: 13px; }
footer { color: #777; font-size: 12px; margin-top: 32px; }
`;

/** The whole report as one HTML page with nothing to fetch (a CSP forbids it outright). */
export function renderHtml(result: BenchResult): string {
  const title = `Haven bench — ${result.scenario}, ${result.startedAt}`;
  const comparison = comparisonRows(result);
  const e2ee = e2eeTable(result.e2ee ?? []);
  const summary = summaryRows(result).map(([k, v]) => `<tr><th>${esc(k)}</th><td>${v}</td></tr>`);
  return [
    '<!doctype html>',
    '<html lang="en"><head><meta charset="utf-8">',
    `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">`,
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${esc(title)}</title><style>${css}</style></head><body>`,
    `<h1>${esc(title)}</h1>`,
    result.failure ? `<p class="failure"><strong>The run failed:</strong> ${esc(result.failure)}</p>` : '',
    '<h2>Summary</h2>',
    `<table class="summary"><tbody>${summary.join('\n')}</tbody></table>`,
    comparison.length ? `<h2>Haven ÷ bare mediasoup, same load</h2>${comparisonTable(comparison)}` : '',
    e2ee
      ? `<h2>E2EE ÷ plain rooms, same load</h2>${table(
          e2ee.head,
          e2ee.rows.map((r) => r.map(esc)),
          'num',
        )}`
      : '',
    '<h2>CPU and loss against load</h2>',
    '<p>Each point is one step’s measuring window. CPU is a share of one core (100 % = a whole core); ',
    'the load generator shares the machine, so its CPU is shown beside the SFU’s.</p>',
    capacitySvg(result),
    '<h2>Latency</h2>',
    latencySvg(result),
    '<h2>Every step</h2>',
    `<div class="scroll">${stepsTable(result.steps)}</div>`,
    `<footer>${esc(`${result.steps.length} steps · generated ${new Date().toISOString()}`)}</footer>`,
    '</body></html>',
    '',
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------
// PNG (through Debian's Chromium) and the files

/**
 * Renders an SVG to a PNG file with headless Chromium: an element screenshot of the SVG, at its own
 * size × `scale`. playwright-core is loaded only here, so progress and HTML do not need it.
 */
export async function renderPng(svg: string, path: string, options: { scale?: number } = {}): Promise<void> {
  const { chromium } = await import('playwright-core');
  const userDataDir = mkdtempSync(join(tmpdir(), 'haven-report-'));
  try {
    const context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: chromiumPath,
      headless: true,
      deviceScaleFactor: options.scale ?? 1,
      viewport: { width: 1280, height: 1024 },
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    try {
      const page = context.pages()[0] ?? (await context.newPage());
      await page.setContent(`<!doctype html><html><body style="margin:0;background:#fff">${svg}</body></html>`);
      await page.locator('svg').first().screenshot({ path, animations: 'disabled' });
    } finally {
      await context.close().catch(() => {});
    }
  } finally {
    rmSync(userDataDir, { recursive: true, force: true });
  }
}

export interface ReportFiles {
  json: string;
  html: string;
  /** Null when not asked for (`png: false`). */
  png: string | null;
}

/**
 * Writes `result.json`, `report.html` and `capacity.png` (plot 1) into `dir`, creating it. The JSON
 * and HTML are written first: if Chromium fails, they are there and the error is thrown.
 */
export async function writeReport(
  result: BenchResult,
  dir: string,
  options: { png?: boolean } = {},
): Promise<ReportFiles> {
  mkdirSync(dir, { recursive: true });
  const files: ReportFiles = { json: join(dir, 'result.json'), html: join(dir, 'report.html'), png: null };
  writeFileSync(files.json, `${JSON.stringify(result, null, 2)}\n`);
  writeFileSync(files.html, renderHtml(result));
  if (options.png ?? true) {
    const png = join(dir, 'capacity.png');
    await renderPng(capacitySvg(result, { standalone: true }), png);
    files.png = png;
  }
  return files;
}
