/**
 * nginx (Debian's) in front of a node, started from deploy/nginx/haven.conf itself: the file a
 * clinic installs, rendered only where a test must differ (listen addresses and free ports, the
 * name, a self-signed certificate made here with openssl, the node's port), inside a minimal
 * nginx.conf whose pid, logs and temporary files are in a folder of its own. Nothing in
 * /etc/nginx or /var/log/nginx is read or written.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeCertificate } from './certificate.ts';
import { freePort } from './ports.ts';

export const nginxPath = '/usr/sbin/nginx';
export const siteConfigPath = join(import.meta.dirname, '..', '..', 'deploy', 'nginx', 'haven.conf');

export interface NginxOptions {
  /** The node's HTTP port on 127.0.0.1 (what haven.conf's upstream names as 7880). */
  upstreamPort: number;
  /** Address nginx listens on (both its ports), and the certificate's IP name. Default 127.0.0.1. */
  listenAddress?: string;
  /** `server_name`, and the certificate's DNS name. Default `localhost`. */
  serverName?: string;
}

export interface RunningNginx {
  /** `https://<listenAddress>:<port>`: TLS, in front of the node. */
  url: string;
  /** `http://<listenAddress>:<port>`: the port that redirects to `url`. */
  httpUrl: string;
  /** The self-signed certificate (PEM), for clients to trust (`ca`). */
  certFile: string;
  /** Stops nginx and removes the certificate, the configuration and every temporary file. */
  stop(): Promise<void>;
}

/** One replacement of the shipped file, which must appear in it (else the file and the test have drifted). */
function replaceIn(text: string, from: string | RegExp, to: string): string {
  const found = typeof from === 'string' ? text.includes(from) : from.test(text);
  if (!found)
    throw new Error(`deploy/nginx/haven.conf no longer contains ${String(from)}: update test/helpers/nginx.ts`);
  return typeof from === 'string' ? text.replaceAll(from, to) : text.replace(from, to);
}

/** haven.conf as the test runs it; only what a test must change is changed. */
export function renderSiteConfig(values: {
  listen: string;
  httpPort: number;
  tlsPort: number;
  serverName: string;
  certFile: string;
  keyFile: string;
  upstreamPort: number;
}): string {
  let text = readFileSync(siteConfigPath, 'utf8');
  text = replaceIn(text, /^\s*listen \[::\]:80;\n/m, '');
  text = replaceIn(text, /^\s*listen \[::\]:443 ssl http2;\n/m, '');
  text = replaceIn(text, 'listen 80;', `listen ${values.listen}:${values.httpPort};`);
  text = replaceIn(text, 'listen 443 ssl http2;', `listen ${values.listen}:${values.tlsPort} ssl http2;`);
  // The test's HTTPS port is not 443: the redirect must name it.
  text = replaceIn(text, 'https://$host$request_uri', `https://$host:${values.tlsPort}$request_uri`);
  text = replaceIn(text, '/etc/letsencrypt/live/haven.example.org/fullchain.pem', values.certFile);
  text = replaceIn(text, '/etc/letsencrypt/live/haven.example.org/privkey.pem', values.keyFile);
  text = replaceIn(text, 'server_name haven.example.org;', `server_name ${values.serverName};`);
  return replaceIn(text, 'server 127.0.0.1:7880;', `server 127.0.0.1:${values.upstreamPort};`);
}

/** Resolves once `host:port` accepts a TCP connection; rejects if nginx exits first or after `timeoutMs`. */
async function listening(child: ChildProcess, host: string, port: number, stderr: () => string): Promise<void> {
  const deadline = Date.now() + 10_000;
  let exited = false;
  child.once('exit', () => {
    exited = true;
  });
  for (;;) {
    if (exited) throw new Error(`nginx exited: ${stderr()}`);
    const accepted = await new Promise<boolean>((resolve) => {
      const socket = connect({ host, port });
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (accepted) return;
    if (Date.now() > deadline) throw new Error(`nginx did not listen on ${host}:${port}: ${stderr()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Starts nginx in front of the node on `upstreamPort`, on free ports of `listenAddress`, and
 * resolves once it accepts connections. `stop()` ends it and removes everything it made.
 */
export async function startNginx(options: NginxOptions): Promise<RunningNginx> {
  const listenAddress = options.listenAddress ?? '127.0.0.1';
  const serverName = options.serverName ?? 'localhost';
  const host = listenAddress.includes(':') ? `[${listenAddress}]` : listenAddress;
  const dir = mkdtempSync(join(tmpdir(), 'haven-nginx-'));
  // nginx's workers run as nobody: they must reach their temporary folders in here.
  chmodSync(dir, 0o755);
  let child: ChildProcess | undefined;
  const stop = async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      const timer = setTimeout(() => child?.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const { certFile, keyFile } = makeCertificate(dir, listenAddress, serverName);
    const [httpPort, tlsPort] = [await freePort(), await freePort()];
    const site = renderSiteConfig({
      listen: host,
      httpPort,
      tlsPort,
      serverName,
      certFile,
      keyFile,
      upstreamPort: options.upstreamPort,
    });
    writeFileSync(join(dir, 'haven.conf'), site);
    const temp = (name: string) => join(dir, name);
    writeFileSync(
      join(dir, 'nginx.conf'),
      [
        'daemon off;',
        'worker_processes 1;',
        `pid ${temp('nginx.pid')};`,
        'error_log stderr warn;',
        'events { worker_connections 1024; }',
        'http {',
        '  access_log off;',
        `  client_body_temp_path ${temp('body')};`,
        `  proxy_temp_path ${temp('proxy')};`,
        `  fastcgi_temp_path ${temp('fastcgi')};`,
        `  uwsgi_temp_path ${temp('uwsgi')};`,
        `  scgi_temp_path ${temp('scgi')};`,
        `  include ${temp('haven.conf')};`,
        '}',
        '',
      ].join('\n'),
    );
    const args = ['-p', dir, '-e', 'stderr', '-c', join(dir, 'nginx.conf')];
    // A configuration nginx refuses fails here, with its message.
    execFileSync(nginxPath, [...args, '-t', '-q'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child = spawn(nginxPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr?.on('data', (chunk) => {
      stderr += String(chunk);
    });
    await listening(child, listenAddress, tlsPort, () => stderr);
    await listening(child, listenAddress, httpPort, () => stderr);
    return { url: `https://${host}:${tlsPort}`, httpUrl: `http://${host}:${httpPort}`, certFile, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
