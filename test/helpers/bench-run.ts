/**
 * A bench subcommand run from a test as an operator runs it (`bench/main.ts <subcommand>`), with
 * its temporary files (Chromium profiles, the node's data folder) in a folder of the test's own,
 * and the check that a run leaves nothing behind.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'uvu';
import * as assert from 'uvu/assert';
import { cmdlineOf } from '../../bench/proc-stats.ts';

const root = join(import.meta.dirname, '..', '..');

export function benchRun(test: Test, subcommand: string, timeoutMs: number) {
  const dir = mkdtempSync(join(tmpdir(), `haven-bench-${subcommand}-`));
  test.after(() => rmSync(dir, { recursive: true, force: true }));
  return {
    /** The test's folder: the run's temporary files go here (and `out/` for its results, if asked). */
    dir,
    run: (args: string[]) =>
      spawnSync(process.execPath, ['--import', 'tsx', 'bench/main.ts', subcommand, ...args], {
        cwd: root,
        encoding: 'utf8',
        timeout: timeoutMs,
        env: { ...process.env, TMPDIR: dir },
      }),
    /** No process of the run is left (its command line names the folder), no profile, no data folder. */
    assertNothingLeft(): void {
      const left = readdirSync('/proc').filter(
        (pid) => /^\d+$/.test(pid) && cmdlineOf(Number(pid)).join(' ').includes(dir),
      );
      assert.equal(left, [], 'no process of the run is left');
      assert.equal(
        readdirSync(dir).filter((name) => name.startsWith('haven-')),
        [],
        'profiles and data folders removed',
      );
    },
  };
}
