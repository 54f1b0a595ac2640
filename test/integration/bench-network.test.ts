/**
 * A short `network` bench, so that it keeps working: four people (the patient in a network
 * namespace), turns of 2 s, every case once. What a run must produce is asserted (every case and
 * recovery with its figures, sane numbers), not the bounds or any timing: the e2e test
 * `browser-network.test.ts` asserts those.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { NetworkResult } from '../../bench/network.ts';
import { benchRun } from '../helpers/bench-run.ts';

const { dir, run: bench, assertNothingLeft } = benchRun(test, 'network', 400_000);

const ratio = (x: number, what: string) => assert.ok(Number.isFinite(x) && x >= 0 && x <= 1, `${what}: ${x}`);
const msOrNull = (x: number | null | undefined, what: string) =>
  assert.ok(x === null || (typeof x === 'number' && x >= 0 && x < 120_000), `${what}: ${x}`);

test('four people: the baseline, each limit and its recovery, 5 % loss, each with its figures', () => {
  const out = join(dir, 'out');
  const run = bench(['--people', '4', '--turn-seconds', '2', '--out', out]);
  const output = `${run.stdout}${run.stderr}`;
  const result = JSON.parse(readFileSync(join(out, 'result.json'), 'utf8')) as NetworkResult;
  // A case may fail a step on a busy machine (it says so, exit 1); the run itself must finish.
  assert.ok(run.status === 0 || (run.status === 1 && result.failure?.includes('failed')), output);
  assert.match(result.machine.chromium, /^\d+\./);
  assert.equal(
    result.cases.map((c) => c.case),
    ['baseline', 'down300', 'up150', 'loss5'],
  );
  assert.equal(
    result.recoveries.map((r) => r.after),
    ['down300', 'up150'],
  );
  const people = ['Fay', 'Ben', 'Cai', 'Pat'];
  for (const c of result.cases) {
    const speakers = c.case === 'down300' ? ['Fay', 'Ben', 'Cai'] : c.case === 'up150' ? ['Pat'] : people;
    // Every listener of every speaker, once.
    assert.is(c.heard.length, speakers.length * 3, `${c.case}: ${JSON.stringify(c.heard)}`);
    for (const h of c.heard) {
      assert.ok(speakers.includes(h.speaker) && people.includes(h.listener) && h.listener !== h.speaker);
      ratio(h.concealedRatio, `${c.case}: ${h.listener} hearing ${h.speaker}`);
      ratio(h.silentConcealedRatio, `${c.case}: silent part`);
      assert.ok(h.silentConcealedRatio <= h.concealedRatio + 1e-9, 'the silent part is part of it');
    }
  }
  const [baseline, down, up, loss] = result.cases;
  // On a clean link the patient decodes every camera and so does everyone else.
  assert.equal(baseline?.patientReceives?.map((cam) => cam.participant).sort(), ['Ben', 'Cai', 'Fay']);
  for (const cam of [...(baseline?.patientReceives ?? []), ...Object.values(baseline?.othersReceive ?? {}).flat()]) {
    assert.ok(cam.width > 0 && cam.width <= 640 && cam.fps > 0 && cam.fps <= 30, JSON.stringify(cam));
  }
  assert.is(Object.keys(down?.othersReceive ?? {}).length, 3);
  assert.equal(Object.keys(down?.speakerTilePaused ?? {}), ['Fay', 'Ben', 'Cai']);
  assert.ok(Array.isArray(down?.told));
  assert.ok((up?.patientSends?.clean.length ?? 0) >= 2, 'the patient’s camera layers');
  msOrNull(up?.poorMs, 'poor after the limit');
  for (const way of ['up', 'down'] as const) {
    const r = loss?.relay?.[way];
    assert.ok(r && r.total > 100 && r.dropped > 0 && r.dropped / r.total < 0.06, `relay ${way}: ${JSON.stringify(r)}`);
  }
  for (const r of result.recoveries) {
    msOrNull(r.videoBackMs, 'video back');
    msOrNull(r.qualityBackMs, 'quality back');
  }
  assert.ok(result.durationSeconds > 0);
  assert.match(output, /baseline \(no limit\): Pat hears Fay concealed \d+\.\d\d %/);
  assert.match(output, /recovery after up150: Pat decodes every camera again/);
  // Nothing left behind: no Chromium or node of this run, no profile, no data folder, no namespace.
  assertNothingLeft();
  const namespaces = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout;
  assert.not.match(namespaces, new RegExp(`haven-t-${run.pid}-`), 'the namespace removed');
});

test('a bad option is refused with the usage, exit 2', () => {
  const run = bench(['--people', '2']);
  assert.is(run.status, 2);
  assert.match(run.stderr, /--people: a whole number from 3 to 8/);
});

test.run();
