/**
 * A tiny bench of each scenario, so that the bench keeps working: real node, real load generator
 * process, real SRTP. Only what a run must produce is asserted, never a timing.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { BenchResult } from '../../bench/result.ts';

const root = join(import.meta.dirname, '..', '..');
const dir = mkdtempSync(join(tmpdir(), 'haven-bench-'));

test.after(() => rmSync(dir, { recursive: true, force: true }));

function bench(name: string, args: string[]): { status: number | null; result: BenchResult; output: string } {
  const out = join(dir, name);
  const run = spawnSync(
    process.execPath,
    ['--import', 'tsx', 'bench/main.ts', ...args, '--seconds', '2', '--ramp', '1', '--no-png', '--out', out],
    { cwd: root, encoding: 'utf8', timeout: 120_000 },
  );
  const output = `${run.stdout}${run.stderr}`;
  return { status: run.status, result: JSON.parse(readFileSync(join(out, 'result.json'), 'utf8')), output };
}

test('groups with --baseline: the same topology measured on Haven and on bare mediasoup', () => {
  const { status, result, output } = bench('groups', ['groups', '--rooms', '1', '--size', '3', '--baseline']);
  assert.is(status, 0, output);
  assert.is(result.failure, undefined);
  assert.equal(
    result.steps.map((s) => s.target),
    ['haven', 'baseline'],
  );
  for (const step of result.steps) {
    assert.is(step.producers, 6, 'three people publish audio and video');
    assert.is(step.consumers, 12, 'each receives the other two');
    assert.ok(step.forwardedPacketsPerSecond > 0);
    assert.ok(step.workersTotal.cpu > 0 && step.loadGenerator.cpu > 0);
    assert.ok((step.oneWayDelayMs.count ?? 0) > 0, 'delays sampled');
    assert.is(step.errors, 0);
  }
  const haven = result.steps[0] as BenchResult['steps'][number];
  assert.is(haven.join?.admitted.count, 2, 'both participants admitted from the waiting room');
  assert.is(haven.routers, 1, 'a group stays on one router');
  assert.is(haven.join?.firstPacket.count, 2);
  assert.is(result.comparison?.length, 1);
  assert.ok((result.comparison?.[0]?.cpuPerPacketRatio ?? 0) > 0);
  assert.match(readFileSync(join(dir, 'groups', 'report.html'), 'utf8'), /<svg/);
});

test('education, joinstorm and moderation run', () => {
  const education = bench('education', ['education', '--receivers', '4', '--publishers', '2', '--workers', '2']);
  assert.is(education.status, 0, education.output);
  // Four receivers of two publishers' audio and video, and each publisher of the other's.
  assert.is(education.result.steps[0]?.consumers, 4 * 4 + 2 * 2);
  assert.is(education.result.steps[0]?.workers.length, 2);
  assert.is(education.result.steps[0]?.routers, 2, 'the room spread to the second worker');
  assert.is(education.result.steps[0]?.errors, 0);

  const storm = bench('joinstorm', ['joinstorm', '--joiners', '6']);
  assert.is(storm.status, 0, storm.output);
  assert.is(storm.result.steps[0]?.join?.admitted.count, 6);
  assert.is(storm.result.steps[0]?.join?.firstPacket.count, 6);
  assert.is(storm.result.steps[0]?.errors, 0);

  const moderation = bench('moderation', ['moderation', '--rooms', '1', '--size', '3', '--rounds', '1']);
  assert.is(moderation.status, 0, moderation.output);
  const actions = moderation.result.steps[0]?.moderation ?? {};
  for (const action of ['muteAll', 'admitAll', 'remove']) assert.is(actions[action]?.count, 1, action);
  assert.is(moderation.result.steps[0]?.errors, 0);
});

test('a bad option is refused with the usage, exit 2', () => {
  const run = spawnSync(process.execPath, ['--import', 'tsx', 'bench/main.ts', 'groups', '--rooms', 'many'], {
    cwd: root,
    encoding: 'utf8',
  });
  assert.is(run.status, 2);
  assert.match(run.stderr, /--rooms: a whole number/);
});

test.run();
