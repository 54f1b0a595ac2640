/**
 * The HTTP layer's cost per request: Haven's HTTP app (routing, the admin key check, validation,
 * JSON answers) in front of in-memory stand-ins for the store and the rooms, measured two ways:
 * - `loopback`: the app in a server process of its own, loaded from this process over loopback
 *   with keep-alive connections (what a client sees, sockets and HTTP parsing included);
 * - `dispatch`: the app's request listener called in this process with stand-in request and
 *   response objects, one request at a time (the app's own CPU time, without the kernel's share
 *   and the neighbours' noise that dominate the loopback figures).
 * Every route is warmed up first, then measured `--rounds` times in turn (so that a neighbour's
 * load falls on all routes alike); each figure is the median of the rounds.
 *
 * Usage: node --import tsx bench/http-routing.ts [--requests 20000] [--concurrency 8] [--rounds 3] [--json]
 */
import { fork } from 'node:child_process';
import { once } from 'node:events';
import {
  Agent,
  createServer,
  type IncomingMessage,
  type RequestListener,
  request,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import type { AdminDeps } from '../server/http/admin.ts';
import { createHttpApp } from '../server/http/app.ts';

const adminKey = 'bench-admin-key-0123456789abcdef';

interface Probe {
  name: string;
  path: string;
  admin: boolean;
  status: number;
}

const probes: Probe[] = [
  { name: 'GET /healthz', path: '/healthz', admin: false, status: 200 },
  { name: 'GET /v1/rooms (admin)', path: '/v1/rooms?limit=20', admin: true, status: 200 },
  { name: 'GET /v1/rooms/{id} (admin)', path: '/v1/rooms/bench-room', admin: true, status: 200 },
  { name: 'GET /nope (404)', path: '/nope', admin: false, status: 404 },
];

const headersOf = (probe: Probe) => (probe.admin ? { authorization: `Bearer ${adminKey}` } : {});

/** The HTTP app over stand-ins that answer at once. */
function app(): RequestListener {
  const room = { id: 'bench-room', kind: 'group', title: 'Group', createdAt: '2026-01-01T00:00:00.000Z' };
  const admin = {
    apiKey: adminKey,
    logger: pino({ level: 'silent' }),
    store: {
      list: async () => ({ rooms: [room], nextCursor: null }),
      get: async (id: string) => (id === room.id ? room : undefined),
    },
    rooms: { get: () => undefined },
    audit: { recordInBackground: () => {} },
    remoteOwnerUrl: async () => undefined,
  } as unknown as AdminDeps;
  return createHttpApp({ readiness: async () => ({ ready: true, redis: true, workers: 1, draining: false }), admin });
}

/** The server process: the app on a loopback port, until this process is gone. */
async function serve(): Promise<void> {
  const http = createServer(app());
  http.listen(0, '127.0.0.1');
  await once(http, 'listening');
  process.send?.({ port: (http.address() as AddressInfo).port });
  process.on('disconnect', () => process.exit(0));
}

interface Figures {
  route: string;
  requests: number;
  reqPerS: number;
  p50Us: number;
  p99Us: number;
}

function figuresOf(probe: Probe, latenciesUs: number[], seconds: number): Figures {
  latenciesUs.sort((a, b) => a - b);
  const at = (q: number) => latenciesUs[Math.min(latenciesUs.length - 1, Math.floor(q * latenciesUs.length))] ?? 0;
  const us = (q: number) => Math.round(at(q) * 10) / 10;
  const requests = latenciesUs.length;
  return { route: probe.name, requests, reqPerS: Math.round(requests / seconds), p50Us: us(0.5), p99Us: us(0.99) };
}

const elapsedUs = (since: bigint) => Number(process.hrtime.bigint() - since) / 1000;

function get(agent: Agent, port: number, probe: Probe): Promise<number> {
  const started = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: probe.path, agent, headers: headersOf(probe) }, (res) => {
      if (res.statusCode !== probe.status) reject(new Error(`${probe.name}: ${res.statusCode}`));
      res.resume();
      res.once('end', () => resolve(elapsedUs(started)));
    });
    req.once('error', reject);
    req.end();
  });
}

/** `requests` calls to one route over loopback, `concurrency` at a time. */
async function overLoopback(port: number, probe: Probe, requests: number, concurrency: number): Promise<Figures> {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const latencies: number[] = [];
  let next = 0;
  const started = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next++ < requests) latencies.push(await get(agent, port, probe));
    }),
  );
  const seconds = elapsedUs(started) / 1e6;
  agent.destroy();
  return figuresOf(probe, latencies, seconds);
}

/** One request through the listener, with stand-ins for the request and the response: its status. */
function dispatchOne(listener: RequestListener, probe: Probe): Promise<number> {
  return new Promise((resolve) => {
    const res = {
      headersSent: false,
      statusCode: 0,
      writeHead(status: number) {
        this.statusCode = status;
        this.headersSent = true;
        return this;
      },
      end() {
        resolve(this.statusCode);
      },
      destroy() {
        resolve(0);
      },
    };
    const req = { method: 'GET', url: probe.path, headers: headersOf(probe) };
    listener(req as IncomingMessage, res as unknown as ServerResponse);
  });
}

/** `requests` calls to one route through the listener, one after another. */
async function dispatched(listener: RequestListener, probe: Probe, requests: number): Promise<Figures> {
  const latencies: number[] = [];
  const started = process.hrtime.bigint();
  for (let i = 0; i < requests; i++) {
    const sent = process.hrtime.bigint();
    const status = await dispatchOne(listener, probe);
    latencies.push(elapsedUs(sent));
    if (status !== probe.status) throw new Error(`${probe.name}: ${status}`);
  }
  return figuresOf(probe, latencies, elapsedUs(started) / 1e6);
}

function medianOf(runs: Figures[]): Figures {
  const median = (pick: (f: Figures) => number) => runs.map(pick).sort((a, b) => a - b)[runs.length >> 1] as number;
  const [first] = runs as [Figures];
  return { ...first, reqPerS: median((f) => f.reqPerS), p50Us: median((f) => f.p50Us), p99Us: median((f) => f.p99Us) };
}

/** Warms every route up, then measures each `rounds` times in turn; the medians. */
async function measure(
  rounds: number,
  warmUp: number,
  requests: number,
  run: (probe: Probe, n: number) => Promise<Figures>,
) {
  for (const probe of probes) await run(probe, warmUp);
  const runs: Figures[][] = probes.map(() => []);
  for (let round = 0; round < rounds; round++) {
    for (const [i, probe] of probes.entries()) runs[i]?.push(await run(probe, requests));
  }
  return runs.map(medianOf);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      requests: { type: 'string', default: '20000' },
      concurrency: { type: 'string', default: '8' },
      rounds: { type: 'string', default: '3' },
      json: { type: 'boolean', default: false },
    },
  });
  const requests = Number(values.requests);
  const concurrency = Number(values.concurrency);
  const rounds = Number(values.rounds);
  const warmUp = Math.min(5_000, requests);
  const listener = app();
  const dispatch = await measure(rounds, warmUp, requests, (probe, n) => dispatched(listener, probe, n));
  const server = fork(import.meta.filename, ['--serve'], { execArgv: ['--import', 'tsx'] });
  try {
    const [{ port }] = (await once(server, 'message')) as [{ port: number }];
    const loopback = await measure(rounds, warmUp, requests, (probe, n) => overLoopback(port, probe, n, concurrency));
    if (values.json) console.log(JSON.stringify({ dispatch, loopback }));
    else {
      console.log('dispatch (the listener in this process, one request at a time)');
      console.table(dispatch);
      console.log(`loopback (a server process, ${concurrency} keep-alive connections)`);
      console.table(loopback);
    }
  } finally {
    server.kill();
  }
}

if (process.argv.includes('--serve')) await serve();
else await main();
