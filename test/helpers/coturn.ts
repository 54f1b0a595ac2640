/**
 * coturn (Debian's /usr/bin/turnserver) started from the configuration Haven ships,
 * deploy/coturn/turnserver.conf, with its addresses, ports, secret and certificate replaced for
 * the test, plus the overrides a test needs: logs on stdout, and Haven's media on loopback allowed
 * as a peer. `stop()` ends it and removes its folder.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { waitFor } from '../../bench/processes.ts';
import { freePort } from './ports.ts';

export const shippedTurnConfig = join(import.meta.dirname, '..', '..', 'deploy', 'coturn', 'turnserver.conf');

export interface CoturnOptions {
  /** Address coturn listens on (UDP and TCP, and TLS with `tls`). */
  listenAddress: string;
  /** `static-auth-secret`: the node's HAVEN_TURN_SECRET. */
  secret: string;
  /** Address relayed media leaves from. Default `listenAddress`. */
  relayAddress?: string;
  /** The one peer address allowed through the relay (Haven's media address). Default `127.0.0.1`. */
  allowedPeer?: string;
  /** TURN over TLS on a port of its own, with this certificate and key. Default: no TLS listener. */
  tls?: { certFile: string; keyFile: string };
  /** More directives, appended after the test-only overrides (e.g. `verbose`, shorter lifetimes). */
  extraConfig?: string[];
}

export interface Coturn {
  /** `turn:` URLs over UDP and TCP, and a `turns:` one with `tls`: what HAVEN_TURN_URLS lists. */
  urls: string[];
  /** The UDP/TCP listening port. */
  port: number;
  /** The TLS listening port (with `tls`). */
  tlsPort?: number;
  /** coturn's log so far. */
  output(): string;
  /** Ends coturn and removes its folder. Idempotent. */
  stop(): Promise<void>;
}

/** A directive line's new value: a string (`key=value`), `true` (a bare flag) or `null` (removed). */
type Override = string | true | null;

/**
 * `text` with each key of `replace` set to its value (every line of that key replaced; a key the
 * file lacks is an error, so that the file tested stays the file shipped), then `add` appended.
 */
export function renderTurnConfig(text: string, replace: Record<string, Override>, add: string[] = []): string {
  const lines = text.split('\n');
  const keyOf = (line: string) => /^([a-z0-9_-]+)(=|\s*$)/.exec(line.trim())?.[1];
  const out: string[] = [];
  const seen = new Set<string>();
  for (const line of lines) {
    const key = keyOf(line);
    if (key === undefined || !(key in replace)) {
      out.push(line);
      continue;
    }
    const value = replace[key];
    if (!seen.has(key) && value !== null) out.push(value === true ? key : `${key}=${value}`);
    seen.add(key);
  }
  const missing = Object.keys(replace).filter((key) => !seen.has(key));
  if (missing.length > 0) throw new Error(`turnserver.conf has no ${missing.join(', ')} line`);
  return `${out.join('\n')}\n# Test-only overrides\n${add.join('\n')}\n`;
}

/** A STUN Binding request (RFC 5389): the cheapest question a TURN server answers. */
function stunBindingAnswered(address: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createSocket(address.includes(':') ? 'udp6' : 'udp4');
    const request = Buffer.alloc(20);
    request.writeUInt16BE(0x0001, 0);
    request.writeUInt32BE(0x2112a442, 4);
    randomBytes(12).copy(request, 8);
    const done = (answered: boolean) => {
      clearTimeout(timer);
      socket.close();
      resolve(answered);
    };
    const timer = setTimeout(() => done(false), 250);
    socket.on('message', (msg) => done(msg.length >= 20 && msg.readUInt16BE(0) === 0x0101));
    socket.on('error', () => done(false));
    socket.send(request, port, address);
  });
}

/** coturn's log file (`simple-log`: one file, no date in its name) after what it printed. */
function readLog(dir: string, printed: string): string {
  try {
    return printed + readFileSync(join(dir, 'turn.log'), 'utf8');
  } catch {
    return printed;
  }
}

/** Whether a TCP (or TLS) connection to `address:port` is accepted. */
function accepts(address: string, port: number, tls: boolean): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tls
      ? tlsConnect({ host: address, port, rejectUnauthorized: false })
      : connect({ host: address, port });
    socket.once(tls ? 'secureConnect' : 'connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Starts coturn and resolves once it answers STUN over UDP and accepts TCP (and TLS) connections. */
export async function startCoturn(options: CoturnOptions): Promise<Coturn> {
  const {
    listenAddress,
    secret,
    relayAddress = listenAddress,
    allowedPeer = '127.0.0.1',
    tls,
    extraConfig = [],
  } = options;
  const dir = mkdtempSync(join(tmpdir(), 'haven-coturn-'));
  const port = await freePort();
  const tlsPort = tls ? await freePort() : undefined;
  const config = renderTurnConfig(
    readFileSync(shippedTurnConfig, 'utf8'),
    {
      'listening-ip': listenAddress,
      'relay-ip': relayAddress,
      'listening-port': String(port),
      'tls-listening-port': tlsPort === undefined ? null : String(tlsPort),
      cert: tls ? tls.certFile : null,
      pkey: tls ? tls.keyFile : null,
      'static-auth-secret': secret,
      'allowed-peer-ip': allowedPeer,
      syslog: null,
    },
    [
      // Without a certificate, no TLS listener (coturn would otherwise open one on 5349).
      ...(tls ? [] : ['no-tls']),
      // Haven's media listens on 127.0.0.1 in tests; allowed-peer-ip alone does not lift coturn's
      // separate loopback ban.
      'allow-loopback-peers',
      // A file rather than stdout: coturn's stdout is block-buffered when it is a pipe.
      `log-file=${join(dir, 'turn.log')}`,
      'simple-log',
      'no-stdout-log',
      `pidfile=${join(dir, 'turnserver.pid')}`,
      `userdb=${join(dir, 'turndb')}`,
      ...extraConfig,
    ],
  );
  const configFile = join(dir, 'turnserver.conf');
  writeFileSync(configFile, config, { mode: 0o600 });
  let output = '';
  const child: ChildProcess = spawn('/usr/bin/turnserver', ['-c', configFile], {
    cwd: dir,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  const exited = once(child, 'exit');
  let stopping: Promise<void> | undefined;
  // A test process that ends without `stop()` (a failure, `timeout`) takes coturn down with it.
  const killNow = () => {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', killNow);
  const stop = () => {
    stopping ??= (async () => {
      process.off('exit', killNow);
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true });
    })();
    return stopping;
  };
  try {
    await waitFor(
      async () => {
        if (child.exitCode !== null) throw new Error(`turnserver exited ${child.exitCode}: ${output}`);
        return (
          (await stunBindingAnswered(listenAddress, port)) &&
          (await accepts(listenAddress, port, false)) &&
          (tlsPort === undefined || (await accepts(listenAddress, tlsPort, true)))
        );
      },
      15_000,
      'coturn to listen',
    );
  } catch (err) {
    const log = readLog(dir, output);
    await stop();
    throw new Error(`${(err as Error).message}\n${log}`);
  }
  const host = listenAddress.includes(':') ? `[${listenAddress}]` : listenAddress;
  return {
    urls: [
      `turn:${host}:${port}?transport=udp`,
      `turn:${host}:${port}?transport=tcp`,
      ...(tlsPort === undefined ? [] : [`turns:${host}:${tlsPort}?transport=tcp`]),
    ],
    port,
    ...(tlsPort === undefined ? {} : { tlsPort }),
    output: () => readLog(dir, output),
    stop,
  };
}
