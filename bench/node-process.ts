/**
 * Runs a Haven node as its own process (`app/main.ts`), as ops would, on a free port with a
 * temporary data folder and JSON logs, and reads its log lines.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { descendants, isAlive, waitFor } from './processes.ts';

const root = join(import.meta.dirname, '..');

/**
 * A client of the embedded Redis of the node whose data folder is `dataDir`, from the
 * configuration the node wrote there (readable by its owner only). Call again after a node restart:
 * the port and password change.
 */
export function embeddedRedisClient(dataDir: string): Redis {
  const conf = readFileSync(join(dataDir, 'redis', 'redis.conf'), 'utf8');
  const port = Number(/^port (\d+)$/m.exec(conf)?.[1]);
  const password = /^requirepass (\S+)$/m.exec(conf)?.[1];
  const client = new Redis({ host: '127.0.0.1', port, password, maxRetriesPerRequest: 2 });
  client.on('error', () => {}); // reconnects on its own while a test restarts redis-server
  return client;
}

export interface NodeProcess {
  child: ChildProcess;
  url: string;
  dataDir: string;
  /** Parsed JSON log lines so far. */
  logs: Record<string, unknown>[];
  /** Raw stdout and stderr so far. */
  output(): string;
  /** SIGKILL the node and its descendants, remove the data folder (unless the caller gave it). Idempotent. */
  kill(): void;
  /**
   * SIGKILL the node process alone, as `kill -9 <pid>` would: its children are left to fend for
   * themselves (`kill()` still ends any that remain). Resolves once the node is gone.
   */
  killNodeOnly(): Promise<void>;
}

/**
 * The V8 flags `npm start` runs a node with (package.json), so that tests and the bench measure
 * the node as deployed: a young generation of 64 MB semi-spaces, so that the short-lived garbage
 * of thousands of connections is collected in fewer, cheaper scavenges (README: Running a node).
 */
export const nodeFlags = ['--max-semi-space-size=64'];

/** Starts a node; `env.HAVEN_DATA_DIR`, when given, is the caller's (reused, never removed here). */
export async function startNodeProcess(env: Record<string, string> = {}): Promise<NodeProcess> {
  const ownDataDir = env.HAVEN_DATA_DIR === undefined;
  const dataDir = env.HAVEN_DATA_DIR ?? mkdtempSync(join(tmpdir(), 'haven-node-'));
  const child = spawn(process.execPath, [...nodeFlags, '--import', 'tsx', join(root, 'app/main.ts')], {
    cwd: root,
    env: {
      ...process.env,
      HAVEN_HTTP_PORT: '0',
      HAVEN_DATA_DIR: dataDir,
      HAVEN_LOG_FORMAT: 'json',
      HAVEN_MEDIA_WORKERS: '1',
      // Every simulated client connects from 127.0.0.1: the per-address cap would refuse the load.
      HAVEN_SIGNALING_MAX_CONNECTIONS_PER_ADDRESS: '100000',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Record<string, unknown>[] = [];
  let raw = '';
  let pending = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    raw += chunk.toString();
    pending += chunk.toString();
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) {
      if (line.startsWith('{')) logs.push(JSON.parse(line));
    }
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    raw += chunk.toString();
  });
  /** Children of a node killed alone: no longer its descendants once orphaned. */
  const orphans: number[] = [];
  const kill = () => {
    const pids = child.pid ? [...descendants(child.pid), ...orphans] : orphans;
    for (const pid of pids) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    if (ownDataDir) rmSync(dataDir, { recursive: true, force: true });
  };
  const killNodeOnly = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    if (child.pid) orphans.push(...descendants(child.pid));
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  };
  process.once('exit', kill);
  // Interrupted by hand (Ctrl-C, `timeout`): take the node down too.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      kill();
      process.exit(130);
    });
  }
  try {
    const ready = await waitFor(
      () => {
        if (child.exitCode !== null) throw new Error(`node exited ${child.exitCode}: ${raw}`);
        return logs.find((l) => l.msg === 'haven node ready');
      },
      30_000,
      'the node to be ready',
    );
    return { child, url: String(ready?.url), dataDir, logs, output: () => raw, kill, killNodeOnly };
  } catch (err) {
    kill();
    throw err;
  }
}
