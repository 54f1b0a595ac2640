import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { BrowserE2eeResult } from '../../bench/browser-e2ee.ts';
import { benchRun } from '../helpers/bench-run.ts';

const { dir, run: bench, assertNothingLeft } = benchRun(test, 'browser-e2ee', 150_000);

const finitePositive = (x: number | undefined, what: string) =>
  assert.ok(x !== undefined && Number.isFinite(x) && x > 0, `${what}: ${x}`);

test('two pages, plain then E2EE: Chromium CPU of each, the frame worker’s rates and µs per frame, the ratio', () => {
  const out = join(dir, 'out');
  const run = bench(['--pages', '2', '--seconds', '2', '--ramp', '0', '--out', out]);
  const output = `${run.stdout}${run.stderr}`;
  assert.is(run.status, 0, output);
  const result = JSON.parse(readFileSync(join(out, 'result.json'), 'utf8')) as BrowserE2eeResult;
  assert.is(result.failure, undefined);
  assert.match(result.machine.chromium, /^\d+\./);
  assert.equal(
    result.phases.map((p) => p.e2ee),
    [false, true],
  );
  for (const phase of result.phases) {
    finitePositive(phase.browserCpu, 'Chromium CPU');
    assert.ok(phase.browserProcesses > 1, 'the browser and its renderers');
    assert.ok(phase.machineBusy > 0 && phase.machineBusy <= 1, `machine busy ${phase.machineBusy}`);
    finitePositive(phase.media.videoFramesDecodedPerSecond, 'frames decoded');
    finitePositive(phase.media.videoFramesEncodedPerSecond, 'frames encoded');
  }
  assert.is(result.phases[0]?.crypto, undefined, 'no frame worker in a plain room');
  const crypto = result.phases[1]?.crypto;
  finitePositive(crypto?.framesEncryptedPerSecond, 'frames encrypted');
  finitePositive(crypto?.framesDecryptedPerSecond, 'frames decrypted');
  finitePositive(crypto?.encryptUsPerFrame, 'µs per encrypted frame');
  finitePositive(crypto?.decryptUsPerFrame, 'µs per decrypted frame');
  assert.is(crypto?.framesFailed, 0);
  finitePositive(result.comparison?.browserCpuRatio, 'E2EE ÷ plain');
  assert.match(output, /E2EE ÷ plain, Chromium CPU: \d+\.\d\d×/);
  // Nothing left behind: no Chromium of this run, no profile, no node data folder.
  assertNothingLeft();
});

test('a bad option is refused with the usage, exit 2', () => {
  const run = bench(['--pages', '1']);
  assert.is(run.status, 2);
  assert.match(run.stderr, /--pages: a whole number from 2 to 8/);
});

test.run();
