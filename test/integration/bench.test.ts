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
import type { SignalingResult } from '../../bench/signaling.ts';

const root = join(import.meta.dirname, '..', '..');
const dir = mkdtempSync(join(tmpdir(), 'haven-bench-'));

test.after(() => rmSync(dir, { recursive: true, force: true }));

function bench(
  name: string,
  args: string[],
  env: Record<string, string> = {},
): { status: number | null; result: BenchResult; output: string } {
  const out = join(dir, name);
  const png = args[0] === 'signaling' ? [] : ['--no-png'];
  const run = spawnSync(
    process.execPath,
    ['--import', 'tsx', 'bench/main.ts', ...args, '--seconds', '2', '--ramp', '1', ...png, '--out', out],
    { cwd: root, encoding: 'utf8', timeout: 120_000, env: { ...process.env, ...env } },
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

test('groups --e2ee: the same load in plain rooms, then in E2EE rooms; CPU per packet of each and their ratio', () => {
  const { status, result, output } = bench('e2ee', ['groups', '--rooms', '1', '--size', '3', '--e2ee']);
  assert.is(status, 0, output);
  assert.is(result.failure, undefined);
  assert.equal(
    result.steps.map((s) => [s.target, s.e2ee ?? false]),
    [
      ['haven', false],
      ['haven', true],
    ],
  );
  for (const step of result.steps) {
    assert.is(step.producers, 6);
    assert.is(step.consumers, 12, 'each receives the other two, opaque frames too');
    assert.is(step.missingTrackCount, undefined, 'every track received');
    assert.ok(step.forwardedPacketsPerSecond > 0 && step.workersTotal.cpu > 0);
    assert.ok((step.oneWayDelayMs.count ?? 0) > 0, 'delays sampled');
    assert.is(step.errors, 0);
  }
  const [c] = result.e2ee ?? [];
  assert.ok(c, 'the comparison');
  assert.ok(Number.isFinite(c.cpuPerPacketRatio) && c.cpuPerPacketRatio > 0);
  assert.ok(c.plainCpuPerKiloPacket > 0 && c.e2eeCpuPerKiloPacket > 0);
  assert.ok(c.e2eePacketBytes > c.plainPacketBytes, 'encrypted frames carry a tag and a trailer');
  assert.match(output, /1 rooms: E2EE ÷ plain rooms, server CPU per forwarded packet \d+\.\d\d×/);
  assert.match(readFileSync(join(dir, 'e2ee', 'report.html'), 'utf8'), /E2EE ÷ plain rooms, same load/);
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

test('a participant who misses tracks fails the run, named with whose tracks and why', () => {
  const { status, result, output } = bench('missing', ['groups', '--rooms', '1', '--size', '3'], {
    HAVEN_BENCH_CONSUME_NOTHING: 'bench-0-p1',
  });
  assert.is(status, 1, output);
  const step = result.steps[0] as BenchResult['steps'][number];
  assert.is(step.missingTrackCount, 4, 'the audio and video of the two others');
  assert.ok(step.missingTracks?.every((m) => m.participant === 'bench-0-p1' && m.reason === 'not consumed'));
  assert.equal(new Set(step.missingTracks?.map((m) => m.owner)), new Set(['bench-0-f0', 'bench-0-p2']));
  assert.match(result.failure ?? '', /^4 tracks missing: bench-0-p1 lacks bench-0-(f0|p2)'s (audio|video) /);
});

test('signaling: Haven and bare socket.io measured with the same pattern, no errors', () => {
  const { status, result, output } = bench('signaling', [
    'signaling',
    '--participants',
    '24',
    '--room-size',
    '8',
    '--generators',
    '1',
  ]);
  assert.is(status, 0, output);
  const run = result as unknown as SignalingResult;
  assert.equal(
    run.steps.map((s) => s.target),
    ['haven', 'bare'],
  );
  for (const step of run.steps) {
    assert.is(step.participants, 24);
    assert.ok((step.rtt.count ?? 0) > 0, `${step.target}: requests timed`);
    assert.ok(step.rtt.p99 !== null && step.rtt.p50 !== null);
    assert.is(step.errorCount, 0, JSON.stringify(step.errors));
    assert.ok(step.serverCpu > 0);
  }
  assert.ok((run.comparison[0]?.p99Ratio ?? 0) > 0);
});

test('a soak samples memory and descriptors through the load and reports each series', () => {
  const { status, result, output } = bench('soak', ['groups', '--rooms', '1', '--size', '3', '--soak', '20s']);
  assert.is(status, 0, output);
  const soak = result.soak;
  assert.ok(soak && soak.samples.length >= 10, `${soak?.samples.length} samples`);
  assert.ok(soak.samples.every((s) => s.nodeRssBytes > 0 && s.workersRssBytes > 0 && s.nodeFds > 0));
  assert.equal(
    soak.series.map((s) => s.name),
    ['nodeRssBytes', 'workersRssBytes', 'nodeFds', 'workersFds'],
  );
  // Twenty seconds is all warm-up for a heap: whether it held is the real soak's to say, not this one's.
  assert.is(
    soak.held,
    soak.series.every((s) => s.held),
  );
  assert.is(result.steps[0]?.missingTrackCount, undefined, 'still receiving everything after the soak');
});

test('a bad option is refused with the usage, exit 2', () => {
  const run = spawnSync(process.execPath, ['--import', 'tsx', 'bench/main.ts', 'groups', '--rooms', 'many'], {
    cwd: root,
    encoding: 'utf8',
  });
  assert.is(run.status, 2);
  assert.match(run.stderr, /--rooms: a whole number/);
  const e2ee = spawnSync(process.execPath, ['--import', 'tsx', 'bench/main.ts', 'education', '--e2ee'], {
    cwd: root,
    encoding: 'utf8',
  });
  assert.is(e2ee.status, 2);
  assert.match(e2ee.stderr, /--e2ee: groups only/);
});

test.run();
