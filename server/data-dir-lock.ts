/**
 * An exclusive lock on a data folder, so that two processes never work on one folder at once
 * (two nodes, two Redis servers on one AOF). A kernel `flock` on `<dir>/<name>`, taken through
 * util-linux's `flock` command on a descriptor this process keeps open: the kernel releases it
 * when this process ends, however it ends (SIGKILL included), so a crash never leaves a stale
 * lock behind, and it is not inherited by child processes (Node opens files close-on-exec).
 */
import { spawnSync } from 'node:child_process';
import { closeSync, ftruncateSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';

const conflictExit = 75;

export class DataDirLock {
  readonly path: string;
  #fd: number | undefined;

  private constructor(path: string, fd: number) {
    this.path = path;
    this.#fd = fd;
  }

  /** Takes the lock at once or throws, naming the pid that holds it. `what` says who uses the folder. */
  static acquire(dir: string, name: string, what: string): DataDirLock {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const path = join(dir, name);
    const fd = openSync(path, 'a+', 0o600);
    const result = spawnSync('flock', ['--nonblock', '--conflict-exit-code', String(conflictExit), '3'], {
      stdio: ['ignore', 'ignore', 'pipe', fd],
    });
    if (result.status === 0) {
      ftruncateSync(fd, 0);
      writeSync(fd, `${process.pid}\n`);
      return new DataDirLock(path, fd);
    }
    closeSync(fd);
    if (result.status === conflictExit) {
      const holder = readFileSync(path, 'utf8').trim() || 'unknown';
      throw new Error(`${dir} is in use by another process (pid ${holder}): ${what} cannot share a data folder`);
    }
    const why = result.error?.message ?? (result.stderr.toString().trim() || `flock exited ${result.status}`);
    throw new Error(`cannot lock ${path}: ${why}`);
  }

  /** Gives the lock up. Idempotent. */
  release(): void {
    if (this.#fd === undefined) return;
    closeSync(this.#fd);
    this.#fd = undefined;
  }
}
