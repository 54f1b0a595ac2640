/**
 * A clinic's portal as its developers would build it from the README: the two packages packed
 * (`npm pack`) and installed from their tarballs into a scratch folder outside the repository, the
 * app's files taken from the code blocks of README "## Embedding a session in a portal" (each
 * preceded by `<!-- portal-example: <file> -->`), started with plain `node`.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const root = join(import.meta.dirname, '..', '..');
const run = promisify(execFile);

export interface HavenTarballs {
  client: string;
  server: string;
}

let packed: Promise<HavenTarballs> | undefined;

/**
 * Packs `@haven/client` and `@haven/server-sdk` (as the set-up built them) into a temporary folder,
 * once per process (the folder is removed when the process exits); resolves with the tarballs' paths.
 */
export function packHavenPackages(): Promise<HavenTarballs> {
  packed ??= (async () => {
    for (const built of ['client-sdk/dist/haven-sdk.js', 'server-sdk/dist/index.js']) {
      if (!existsSync(join(root, built))) throw new Error(`${built} is missing: run the set-up (npm run setup)`);
    }
    const dir = mkdtempSync(join(tmpdir(), 'haven-packages-'));
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    const pack = async (pkg: string) => {
      const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', dir], { cwd: join(root, pkg) });
      return join(dir, (JSON.parse(stdout) as { filename: string }[])[0]?.filename as string);
    };
    const [client, server] = await Promise.all([pack('client-sdk'), pack('server-sdk')]);
    return { client, server };
  })();
  return packed;
}

/** The files of the README's portal example: each marked code block, appended to its file in order. */
export function portalExampleFiles(readme = readFileSync(join(root, 'README.md'), 'utf8')): Record<string, string> {
  const files: Record<string, string> = {};
  for (const [, name, code] of readme.matchAll(/<!-- portal-example: (\S+) -->\n```\w*\n([\s\S]*?)\n```/g)) {
    files[name as string] = files[name as string] ? `${files[name as string]}\n${code}\n` : `${code}\n`;
  }
  if (!files['server.mjs'] || !files['index.html'])
    throw new Error('README: no portal example (server.mjs, index.html)');
  return files;
}

/**
 * A new folder outside the repository with its own package.json and the two tarballs installed
 * (`npm install`, from npm's cache where it can: jsonwebtoken and zod are the only downloads).
 */
export async function installHavenPackages(tarballs: HavenTarballs, prefix = 'haven-portal-'): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  try {
    writeFileSync(join(dir, 'package.json'), `${JSON.stringify({ name: 'portal', private: true, type: 'module' })}\n`);
    await run(
      'npm',
      ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', tarballs.client, tarballs.server],
      { cwd: dir },
    );
    return dir;
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

export interface PortalAppOptions {
  tarballs: HavenTarballs;
  /** Where browsers reach Haven (`HAVEN_URL`). */
  havenUrl: string;
  /** Where the portal's backend reaches Haven's admin API (`HAVEN_ADMIN_URL`). Default: `havenUrl`. */
  adminUrl?: string;
  /** The app's environment: `HAVEN_AUTH_SECRET`, `HAVEN_ADMIN_API_KEY`, `HAVEN_WEBHOOK_SECRET`, `PORT` (default 0: any). */
  env: Record<string, string>;
  /** Listen address. Default 127.0.0.1. */
  host?: string;
}

export interface PortalApp {
  /** The app's base URL, e.g. `http://127.0.0.1:41234`. */
  url: string;
  /** The scratch folder it runs in. */
  dir: string;
  /** What the app printed (stdout and stderr), line by line: accepted webhooks are JSON lines `{ webhook, id, room }`. */
  output: string[];
  /** Resolves with the first line (printed so far or later) that `match` matches; rejects after `timeoutMs` or if the app exits. */
  waitForOutput(match: RegExp, what: string, timeoutMs?: number): Promise<string>;
  /** Kills the app and removes its folder. */
  stop(): Promise<void>;
}

/** Installs the portal example and starts it with `node server.mjs`; resolves once it listens. */
export async function startPortalApp(options: PortalAppOptions): Promise<PortalApp> {
  const dir = await installHavenPackages(options.tarballs);
  let child: ChildProcess | undefined;
  const stop = async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (const [name, code] of Object.entries(portalExampleFiles())) writeFileSync(join(dir, name), code);
    const env = {
      PORT: '0',
      ...options.env,
      HAVEN_URL: options.havenUrl,
      HAVEN_ADMIN_URL: options.adminUrl ?? options.havenUrl,
      HOST: options.host ?? '127.0.0.1',
    };
    // Plain node, none of this process's loaders or options: what a portal runs.
    child = spawn(process.execPath, ['server.mjs'], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const app = watch(child, dir, stop);
    const listening = await app.waitForOutput(/^portal listening on (\S+)$/, 'the portal to listen', 20_000);
    app.url = listening.replace('portal listening on ', '');
    return app;
  } catch (err) {
    await stop();
    throw err;
  }
}

function watch(child: ChildProcess, dir: string, stop: () => Promise<void>): PortalApp {
  const output: string[] = [];
  const waiters = new Set<() => void>();
  const onText = (stream: NodeJS.ReadableStream | null) => {
    let partial = '';
    stream?.setEncoding('utf8');
    stream?.on('data', (text: string) => {
      const lines = (partial + text).split('\n');
      partial = lines.pop() ?? '';
      output.push(...lines);
      for (const wake of waiters) wake();
    });
  };
  onText(child.stdout);
  onText(child.stderr);
  child.on('exit', () => {
    for (const wake of waiters) wake();
  });
  return {
    url: '',
    dir,
    output,
    stop,
    waitForOutput(match, what, timeoutMs = 15_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const line = output.find((l) => match.test(l));
          if (line !== undefined || child.exitCode !== null || child.signalCode !== null) {
            waiters.delete(check);
            clearTimeout(timer);
            if (line !== undefined) resolve(line);
            else reject(new Error(`the portal exited before ${what}:\n${output.join('\n')}`));
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`timed out waiting for ${what}; the portal printed:\n${output.join('\n')}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
  };
}
