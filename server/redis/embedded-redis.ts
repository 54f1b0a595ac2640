/**
 * The embedded Redis: a `redis-server` child process the node starts when no `REDIS_URL` is
 * configured. It listens on a free loopback port, requires a password generated at each start,
 * keeps an append-only file in its data folder (so data survives a restart), and is restarted on
 * the same port and data if it dies while the node runs.
 *
 * Never two Redis servers on one data folder (two writers would corrupt the AOF):
 * - the folder is locked (data-dir-lock.ts) for as long as this object runs Redis on it;
 * - redis-server gets SIGTERM when its node dies, however it dies (Linux's parent-death signal,
 *   set by util-linux's `setpriv --pdeathsig`): it flushes its AOF and exits;
 * - before each start, any redis-server still working in the folder (one whose node died before
 *   the signal was armed, or an AOF-rewrite child) is found by its working directory and stopped.
 * What Redis acknowledged survives a SIGKILL of the node or of Redis: it writes the AOF before it
 * answers (`appendfsync everysec` then syncs it to disk within a second).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { DataDirLock } from '../data-dir-lock.ts';
import type { Logger } from '../logger.ts';
import { findExecutable, processesWorkingIn, stopProcess } from '../processes.ts';

export interface EmbeddedRedisOptions {
  /** Folder for the AOF, the pid file and the generated redis.conf; created if missing. */
  dataDir: string;
  /** The `redis-server` binary. Default `redis-server`. */
  serverBin?: string;
  logger?: Logger;
}

const readyTimeoutMs = 10_000;
const stopTimeoutMs = 5_000;
const restartDelayMs = 500;

/** Asks the kernel for a free loopback TCP port. */
async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  server.close();
  if (address === null || typeof address === 'string') throw new Error('no TCP address');
  return address.port;
}

export class EmbeddedRedis {
  readonly dataDir: string;
  readonly #serverBin: string;
  readonly #logger: Logger | undefined;
  readonly #password = randomBytes(24).toString('hex');
  #port = 0;
  #child: ChildProcess | undefined;
  #closed = false;
  #lock: DataDirLock | undefined;
  /** `[command, ...args before the conf file]`: through setpriv when it is installed. */
  #command: string[] = [];

  private constructor(options: EmbeddedRedisOptions) {
    this.dataDir = resolve(options.dataDir);
    this.#serverBin = options.serverBin ?? 'redis-server';
    this.#logger = options.logger?.child({ component: 'embedded-redis' });
  }

  /** Starts `redis-server` and resolves once it accepts connections. */
  static async start(options: EmbeddedRedisOptions): Promise<EmbeddedRedis> {
    const redis = new EmbeddedRedis(options);
    mkdirSync(redis.dataDir, { recursive: true, mode: 0o700 });
    redis.#lock = DataDirLock.acquire(redis.dataDir, 'redis.lock', 'two Redis servers');
    try {
      redis.#command = redis.#resolveCommand();
      await redis.#stopLeftovers();
      for (let attempt = 1; ; attempt++) {
        redis.#port = await freePort();
        try {
          await redis.#spawn();
          return redis;
        } catch (err) {
          // Another process may take the port between freePort() and redis binding it.
          if (attempt >= 3 || !/Address already in use/.test(String(err))) throw err;
        }
      }
    } catch (err) {
      redis.#closed = true;
      redis.#lock.release();
      throw err;
    }
  }

  /** `redis://` URL with the password: give it to Redis clients, never to a log. */
  get url(): string {
    return `redis://:${this.#password}@127.0.0.1:${this.#port}`;
  }

  get port(): number {
    return this.#port;
  }

  /** The running redis-server's pid (undefined while it restarts or after stop). */
  get pid(): number | undefined {
    return this.#child?.pid;
  }

  get closed(): boolean {
    return this.#closed;
  }

  get #pidFile(): string {
    return join(this.dataDir, 'redis.pid');
  }

  /** redis-server, through `setpriv --pdeathsig TERM` when util-linux has it. */
  #resolveCommand(): string[] {
    const server = findExecutable(this.#serverBin);
    if (!server) throw new Error(`cannot start ${this.#serverBin}: not found or not executable`);
    const setpriv = findExecutable('setpriv');
    if (setpriv) return [setpriv, '--pdeathsig', 'TERM', '--', server];
    this.#logger?.warn('setpriv not found: redis-server may outlive a node killed outright (until its next start)');
    return [server];
  }

  /** A redis-server still working in this folder holds the AOF: end it (SIGTERM lets it flush). */
  async #stopLeftovers(): Promise<void> {
    for (const pid of processesWorkingIn(this.dataDir, /^redis-/)) {
      this.#logger?.warn({ pid }, 'stopping a redis-server left running on this data folder');
      await stopProcess(pid, stopTimeoutMs);
    }
    rmSync(this.#pidFile, { force: true });
  }

  #writeConf(): string {
    const conf = join(this.dataDir, 'redis.conf');
    const lines = [
      'bind 127.0.0.1',
      `port ${this.#port}`,
      'protected-mode yes',
      `requirepass ${this.#password}`,
      `dir ${this.dataDir}`,
      `pidfile ${this.#pidFile}`,
      'daemonize no',
      'appendonly yes',
      'appendfsync everysec',
      'save ""',
      'loglevel notice',
      'logfile ""',
    ];
    writeFileSync(conf, `${lines.join('\n')}\n`, { mode: 0o600 });
    return conf;
  }

  async #spawn(): Promise<void> {
    const [command, ...args] = this.#command as [string, ...string[]];
    const child = spawn(command, [...args, this.#writeConf()], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.#child = child;
    let output = '';
    await new Promise<void>((resolveReady, reject) => {
      const timer = setTimeout(
        () => fail(new Error(`redis-server not ready after ${readyTimeoutMs} ms`)),
        readyTimeoutMs,
      );
      const onData = (chunk: Buffer) => {
        output = (output + chunk.toString()).slice(-4000);
        if (output.includes('Ready to accept connections')) {
          clearTimeout(timer);
          child.stdout?.off('data', onData);
          child.off('exit', onEarlyExit);
          resolveReady();
        }
      };
      const onEarlyExit = (code: number | null) =>
        fail(
          new Error(
            `redis-server exited (${code}) before it was ready: ${output.trim().split('\n').slice(-3).join(' | ')}`,
          ),
        );
      const fail = (err: Error) => {
        clearTimeout(timer);
        child.kill('SIGKILL');
        reject(err);
      };
      child.once('error', (err) => fail(new Error(`cannot start ${this.#serverBin}: ${err.message}`)));
      child.stdout?.on('data', onData);
      child.stderr?.on('data', onData);
      child.once('exit', onEarlyExit);
    });
    // After start-up its output is only read to keep the pipe from filling.
    child.stdout?.resume();
    child.stderr?.resume();
    child.once('exit', (code, signal) => this.#onExit(child, code, signal));
    this.#logger?.info({ pid: child.pid, port: this.#port, dataDir: this.dataDir }, 'embedded redis ready');
  }

  #onExit(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.#closed || child !== this.#child) return;
    this.#child = undefined;
    this.#logger?.error({ code, signal }, 'embedded redis exited; restarting it on the same data');
    this.#restartLater();
  }

  #restartLater(): void {
    setTimeout(() => {
      if (this.#closed) return;
      // A fork of the dead server (an AOF rewrite) may still be writing in the folder.
      this.#stopLeftovers()
        .then(() => (this.#closed ? undefined : this.#spawn()))
        .catch((err: Error) => {
          this.#logger?.error({ err }, 'embedded redis restart failed; trying again');
          this.#restartLater();
        });
    }, restartDelayMs).unref();
  }

  /** Stops redis-server (it flushes its AOF on SIGTERM). Idempotent. */
  async stop(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const child = this.#child;
    this.#child = undefined;
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), stopTimeoutMs);
      await exited;
      clearTimeout(timer);
      this.#logger?.info('embedded redis stopped');
    }
    // Only once Redis is gone may another start on the folder.
    this.#lock?.release();
  }
}
