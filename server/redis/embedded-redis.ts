/**
 * The embedded Redis: a `redis-server` child process the node starts when no `REDIS_URL` is
 * configured. It listens on a free loopback port, requires a password generated at each start,
 * keeps an append-only file in its data folder (so data survives a restart), and is restarted on
 * the same port and data if it dies while the node runs.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import type { Logger } from '../logger.ts';
import { isProcessAlive } from '../processes.ts';

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

  private constructor(options: EmbeddedRedisOptions) {
    this.dataDir = resolve(options.dataDir);
    this.#serverBin = options.serverBin ?? 'redis-server';
    this.#logger = options.logger?.child({ component: 'embedded-redis' });
  }

  /** Starts `redis-server` and resolves once it accepts connections. */
  static async start(options: EmbeddedRedisOptions): Promise<EmbeddedRedis> {
    const redis = new EmbeddedRedis(options);
    mkdirSync(redis.dataDir, { recursive: true, mode: 0o700 });
    await redis.#stopLeftover();
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

  /** A redis-server left by a node that was killed outright would hold the AOF: end it. */
  async #stopLeftover(): Promise<void> {
    let pid: number;
    try {
      pid = Number(readFileSync(this.#pidFile, 'utf8').trim());
    } catch {
      return;
    }
    let cmdline = '';
    try {
      cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    } catch {}
    if (pid > 0 && cmdline.includes('redis-server') && isProcessAlive(pid)) {
      this.#logger?.warn({ pid }, 'stopping a redis-server left running on this data folder');
      process.kill(pid, 'SIGTERM');
      const deadline = Date.now() + stopTimeoutMs;
      while (isProcessAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      if (isProcessAlive(pid)) process.kill(pid, 'SIGKILL');
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
    const child = spawn(this.#serverBin, [this.#writeConf()], { stdio: ['ignore', 'pipe', 'pipe'] });
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
      this.#spawn().catch((err: Error) => {
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
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), stopTimeoutMs);
    await exited;
    clearTimeout(timer);
    this.#logger?.info('embedded redis stopped');
  }
}
