/** Small helpers about child processes the node owns (media workers, the embedded Redis). */
import { accessSync, constants, readdirSync, readFileSync, readlinkSync, realpathSync } from 'node:fs';
import { delimiter, join } from 'node:path';

/** Whether a process with this pid runs (a zombie, dead but not yet reaped, does not). */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/**
 * Live processes whose working directory is `dir` and whose command name matches `name`: how a
 * process is found by the folder it works in, whatever its pid file says.
 */
export function processesWorkingIn(dir: string, name: RegExp): number[] {
  const target = realpathSync(dir);
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    try {
      if (readlinkSync(`/proc/${entry}/cwd`) !== target) continue;
      if (!name.test(readFileSync(`/proc/${entry}/comm`, 'utf8').trim())) continue;
    } catch {
      continue; // gone meanwhile, or another user's
    }
    if (pid !== process.pid && isProcessAlive(pid)) found.push(pid);
  }
  return found;
}

/** SIGTERM, then SIGKILL after `timeoutMs`; resolves once the process is gone. */
export async function stopProcess(pid: number, timeoutMs: number): Promise<void> {
  const signal = (name: NodeJS.Signals) => {
    try {
      process.kill(pid, name);
    } catch {}
  };
  signal('SIGTERM');
  const deadline = Date.now() + timeoutMs;
  while (isProcessAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  if (!isProcessAlive(pid)) return;
  signal('SIGKILL');
  while (isProcessAlive(pid)) await new Promise((r) => setTimeout(r, 20));
}

/** The executable `command` names (a path, or a name looked up on PATH), or undefined if there is none. */
export function findExecutable(command: string): string | undefined {
  const candidates = command.includes('/')
    ? [command]
    : (process.env.PATH ?? '').split(delimiter).map((dir) => join(dir, command));
  return candidates.find((path) => {
    try {
      accessSync(path, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}
