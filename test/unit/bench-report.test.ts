import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  capacitySvg,
  comparisonRows,
  escapeHtml,
  formatProgress,
  renderHtml,
  writeReport,
} from '../../bench/report.ts';
import type { BenchResult, Percentiles, StepMeasures } from '../../bench/result.ts';

const pct = (p50: number, p95: number, p99: number, count = 100): Percentiles => ({
  count,
  p50,
  p95,
  p99,
  max: p99 * 1.2,
});

/** One step: 8 per room, each publishing audio + video; figures scale with the rooms. */
function step(target: StepMeasures['target'], rooms: number, workerCpu: number, loss: number): StepMeasures {
  const producers = rooms * 16;
  const consumers = rooms * 8 * 7 * 2;
  const packets = consumers * 100 + (target === 'haven' ? 7 : 3);
  const workers = [
    { cpu: workerCpu * 0.52, rssBytes: 60e6 },
    { cpu: workerCpu * 0.48, rssBytes: 58e6 },
  ];
  return {
    target,
    rooms,
    participantsPerRoom: 8,
    producers,
    consumers,
    seconds: 20,
    forwardedPacketsPerSecond: packets,
    forwardedBitsPerSecond: packets * 8 * 1000,
    sentPacketsPerSecond: producers * 100,
    loss,
    maxConsumerLoss: loss * 3,
    oneWayDelayMs: pct(0.4 + rooms / 100, 1.1 + rooms / 50, 2.5 + rooms / 20),
    workers,
    workersTotal: { cpu: workerCpu, rssBytes: 118e6 },
    ...(target === 'haven' ? { node: { cpu: 0.05 + rooms / 400, rssBytes: 150e6 } } : {}),
    loadGenerator: { cpu: 0.3 + rooms / 40, rssBytes: 90e6 },
    workerCpuPerKiloPacket: workerCpu / (packets / 1000),
    ...(target === 'haven'
      ? { join: { admitted: pct(40, 95, 180), firstPacket: pct(220, 480, 900) }, moderation: { mute: pct(12, 30, 45) } }
      : {}),
    errors: target === 'haven' ? rooms - 4 : 0,
  };
}

const steps = [
  step('haven', 4, 0.4, 0),
  step('baseline', 4, 0.36, 0),
  step('haven', 8, 0.82, 0.0002),
  step('baseline', 8, 0.71, 0.0001),
  step('haven', 12, 1.3, 0.004),
  step('baseline', 12, 1.1, 0.002),
];
const ratio = (rooms: number) => {
  const [h, b] = ['haven', 'baseline'].map((t) => steps.find((s) => s.target === t && s.rooms === rooms));
  return (h?.workerCpuPerKiloPacket ?? 0) / (b?.workerCpuPerKiloPacket ?? 1);
};

const result: BenchResult = {
  scenario: 'groups',
  startedAt: '2026-11-26T12:00:00.000Z',
  machine: { cpus: 2, cpuModel: 'Test CPU @ 2.0GHz', memoryBytes: 8 * 2 ** 30, node: 'v20.19.0', mediasoup: '3.12.16' },
  options: { rooms: '4,8,12', baseline: true, seconds: 20, label: 'run <b>one</b>' },
  steps,
  comparison: [4, 8, 12].map((rooms) => ({
    rooms,
    cpuPerPacketRatio: ratio(rooms),
    lossHaven: steps.find((s) => s.target === 'haven' && s.rooms === rooms)?.loss ?? 0,
    lossBaseline: steps.find((s) => s.target === 'baseline' && s.rooms === rooms)?.loss ?? 0,
  })),
  capacity: {
    rooms: 8,
    consumers: 896,
    workers: 2,
    roomsPerWorker: 4,
    consumersPerWorker: 448,
    stoppedBecause: 'loss 0.4 % > 1 %? no: worker 2 at 93 % of a core',
  },
};

test('escapeHtml escapes the five characters', () => {
  assert.is(escapeHtml(`<a href="x">'&'</a>`), '&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
});

test('the progress line has the figures', () => {
  const line = formatProgress({
    rooms: 12,
    roomsTarget: 20,
    producers: 96,
    consumers: 672,
    forwardedPacketsPerSecond: 58_123,
    loss: 0.0002,
    workersCpu: [0.712, 0.65],
    nodeCpu: 0.12,
    loadGeneratorCpu: 0.88,
  });
  assert.is(
    line,
    'rooms 12/20 · 96 pub · 672 cons · 58.1k pkt/s fwd · loss 0.02 % · workers 71 %+65 % · node 12 % · loadgen 88 %',
  );
  const baseline = formatProgress({
    target: 'baseline',
    rooms: 3,
    producers: 48,
    consumers: 336,
    forwardedPacketsPerSecond: 950,
    loss: 0,
    workersCpu: [0.2],
    errors: 2,
  });
  assert.is(baseline, 'baseline · rooms 3 · 48 pub · 336 cons · 950 pkt/s fwd · loss 0 % · workers 20 % · 2 errors');
});

test('comparison rows come from the result, with each side’s CPU per packet', () => {
  const rows = comparisonRows(result);
  assert.equal(
    rows.map((r) => r.rooms),
    [4, 8, 12],
  );
  assert.is(rows[1]?.havenCpuPerKiloPacket, steps[2]?.workerCpuPerKiloPacket);
  // Derived from the steps when the result has no comparison: the same ratios.
  const derived = comparisonRows({ ...result, comparison: undefined });
  assert.equal(
    derived.map((r) => r.cpuPerPacketRatio),
    rows.map((r) => r.cpuPerPacketRatio),
  );
});

test('the HTML has the summary, the ratios, both plots and every step, and nothing external', () => {
  const html = renderHtml(result);
  for (const rooms of [4, 8, 12]) assert.ok(html.includes(`${ratio(rooms).toFixed(2)}×`), `ratio at ${rooms} rooms`);
  assert.ok(html.includes('Test CPU @ 2.0GHz'));
  assert.ok(html.includes('8 rooms, 896 consumers on 2 workers'));
  assert.ok(html.includes('CPU and loss against load'));
  assert.is(html.match(/<svg /g)?.length, 2);
  // Every step is a row of the steps table, with its own forwarded packet rate.
  const table = html.slice(html.indexOf('<table class="num steps">'));
  assert.is(table.match(/<tr><td>/g)?.length, steps.length);
  for (const s of steps) {
    const fwd = `${(s.forwardedPacketsPerSecond / 1000).toFixed(s.forwardedPacketsPerSecond >= 1e4 ? 1 : 2)}k`;
    assert.ok(table.includes(`<td>${fwd}</td>`), `step ${s.target} ${s.rooms}: ${fwd}`);
  }
  assert.ok(table.includes('mute: 12.0 / 30.0 / 45.0'));
  // Self-contained: no script, no stylesheet link, no URL at all.
  assert.not.match(html, /<script/i);
  assert.not.match(html, /<link/i);
  assert.not.match(html, /\b(src|href)=/i);
  assert.not.match(html, /https?:|url\(|@import/i);
  // An option's value is text, not markup.
  assert.ok(html.includes('run &lt;b&gt;one&lt;/b&gt;'));
  assert.not.ok(html.includes('<b>'));
});

test('plot 1 distinguishes Haven (circles, solid) from the baseline (squares, dashed)', () => {
  const svg = capacitySvg(result);
  assert.ok(svg.includes('stroke-dasharray="7 4"'));
  // Per target: 2 workers + total + load generator + loss per step; node for Haven only.
  assert.is(svg.match(/<circle [^>]*><title>/g)?.length, 3 * 6);
  assert.is(svg.match(/<rect [^>]*><title>/g)?.length, 3 * 5);
  assert.ok(svg.includes('capacity: 8 rooms'));
});

test('writeReport writes the JSON, the HTML and a PNG of plot 1', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'haven-report-test-'));
  try {
    const files = await writeReport(result, join(dir, 'out'));
    assert.equal(JSON.parse(readFileSync(files.json, 'utf8')), result);
    assert.ok(readFileSync(files.html, 'utf8').startsWith('<!doctype html>'));
    const png = readFileSync(files.png as string);
    assert.equal([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    assert.is(png.subarray(12, 16).toString('latin1'), 'IHDR');
    assert.is(png.readUInt32BE(16), 960);
    assert.is(png.readUInt32BE(20), 500);
    assert.ok(png.length > 10_000, `PNG of ${png.length} bytes`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
