/**
 * Haven's test command (after set-up): type check, lint, then every `*.test.ts` under test/, each
 * in its own process group (so nothing a test starts outlives it), one after another (the
 * reference machine has two cores and the integration tests use them). Ends with the line
 * `N passed, N failed, N skipped`.
 *
 * Usage: node --import tsx test/run.ts [filter]   (filter: a substring of the test file paths)
 */
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = join(import.meta.dirname, '..');
const fileTimeoutMs = 5 * 60_000;
const filter = process.argv[2];

interface Outcome {
  passed: number;
  failed: number;
  skipped: number;
}

function findTests(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .flatMap((entry) => {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) return findTests(path);
      return entry.name.endsWith('.test.ts') ? [path] : [];
    })
    .sort();
}

/** Runs a command in its own process group, echoing its output; kills the group when it ends. */
function run(command: string, args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(command, args, {
      cwd: root,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      // Plain output: uvu's summary is parsed below.
      env: { ...process.env, NO_COLOR: '1' },
    });
    let output = '';
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      process.stdout.write(chunk);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    const killGroup = (signal: NodeJS.Signals) => {
      try {
        if (child.pid) process.kill(-child.pid, signal);
      } catch {}
    };
    const timer = setTimeout(() => {
      output += `\n[run] timed out after ${fileTimeoutMs / 1000} s\n`;
      process.stdout.write(`\n[run] ${args.join(' ')}: timed out after ${fileTimeoutMs / 1000} s\n`);
      killGroup('SIGKILL');
    }, fileTimeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      killGroup('SIGKILL');
      resolve({ code, output });
    });
  });
}

/** Reads uvu's summary; a process that failed without one counts as one failed test. */
function uvuOutcome(code: number | null, output: string): Outcome {
  const total = Number(/Total:\s+(\d+)/.exec(output)?.[1] ?? Number.NaN);
  const passed = Number(/Passed:\s+(\d+)/.exec(output)?.[1] ?? Number.NaN);
  const skipped = Number(/Skipped:\s+(\d+)/.exec(output)?.[1] ?? 0);
  if (Number.isNaN(total) || Number.isNaN(passed)) return { passed: 0, failed: 1, skipped: 0 };
  const failed = total - passed - skipped;
  return { passed, failed: failed === 0 && code !== 0 ? 1 : failed, skipped };
}

const totals: Outcome = { passed: 0, failed: 0, skipped: 0 };
const failures: string[] = [];
function record(name: string, outcome: Outcome): void {
  totals.passed += outcome.passed;
  totals.failed += outcome.failed;
  totals.skipped += outcome.skipped;
  if (outcome.failed > 0) failures.push(name);
}

const started = Date.now();
if (!filter) {
  for (const [name, command, args] of [
    ['typecheck', 'npx', ['tsc', '--noEmit']],
    ['lint', 'npx', ['biome', 'check', '.']],
  ] as const) {
    process.stdout.write(`\n# ${name}\n`);
    const { code } = await run(command, [...args]);
    record(name, code === 0 ? { passed: 1, failed: 0, skipped: 0 } : { passed: 0, failed: 1, skipped: 0 });
  }
}
for (const file of findTests(join(root, 'test'))) {
  const name = relative(root, file);
  if (filter && !name.includes(filter)) continue;
  process.stdout.write(`\n# ${name}\n`);
  const { code, output } = await run(process.execPath, ['--import', 'tsx', file]);
  record(name, uvuOutcome(code, output));
}

process.stdout.write(`\n${failures.length ? `failed: ${failures.join(', ')}\n` : ''}`);
process.stdout.write(`took ${Math.round((Date.now() - started) / 1000)} s\n`);
process.stdout.write(`${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped\n`);
process.exit(totals.failed > 0 ? 1 : 0);
