/**
 * The HTTP layer's cost per request: Haven's HTTP app (routing, the admin key check, validation,
 * JSON answers) in a server process of its own, in front of in-memory stand-ins for the store and
 * the rooms, loaded on loopback from this process with keep-alive connections. Prints req/s and
 * the p50/p99 latency of each route.
 *
 * Every route is warmed up first, then loaded `--rounds` times in turn (so that a neighbour's load
 * falls on all routes alike); each figure is the median of the rounds.
 *
 * Usage: node --import tsx bench/http-routing.ts [--requests 20000] [--concurrency 8] [--rounds 3] [--json]
 */
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { Agent, createServer, request } from 'node:http';
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

/** The server side: the HTTP app over stand-ins that answer at once. */
async function serve(): Promise<void> {
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
  const http = createServer(
    createHttpApp({ readiness: async () => ({ ready: true, redis: true, workers: 1 }), admin }),
  );
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

function get(agent: Agent, port: number, probe: Probe): Promise<number> {
  const headers = probe.admin ? { authorization: `Bearer ${adminKey}` } : {};
  const started = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: probe.path, agent, headers }, (res) => {
      if (res.statusCode !== probe.status) reject(new Error(`${probe.name}: ${res.statusCode}`));
      res.resume();
      res.once('end', () => resolve(Number(process.hrtime.bigint() - started) / 1000));
    });
    req.once('error', reject);
    req.end();
  });
}

/** `requests` calls to one route, `concurrency` at a time. */
async function load(port: number, probe: Probe, requests: number, concurrency: number): Promise<Figures> {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const latencies: number[] = [];
  let next = 0;
  const started = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next++ < requests) latencies.push(await get(agent, port, probe));
    }),
  );
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  agent.destroy();
  latencies.sort((a, b) => a - b);
  const at = (q: number) =>
    Math.round(latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0);
  return { route: probe.name, requests, reqPerS: Math.round(requests / seconds), p50Us: at(0.5), p99Us: at(0.99) };
}

function medianOf(runs: Figures[]): Figures {
  const median = (pick: (f: Figures) => number) => runs.map(pick).sort((a, b) => a - b)[runs.length >> 1] as number;
  const [first] = runs as [Figures];
  return { ...first, reqPerS: median((f) => f.reqPerS), p50Us: median((f) => f.p50Us), p99Us: median((f) => f.p99Us) };
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
  const server = fork(import.meta.filename, ['--serve'], { execArgv: ['--import', 'tsx'] });
  try {
    const [{ port }] = (await once(server, 'message')) as [{ port: number }];
    for (const probe of probes) await load(port, probe, Math.min(5_000, requests), concurrency);
    const rounds: Figures[][] = [];
    for (let round = 0; round < Number(values.rounds); round++) {
      const figures: Figures[] = [];
      for (const probe of probes) figures.push(await load(port, probe, requests, concurrency));
      rounds.push(figures);
    }
    const figures = probes.map((_, i) => medianOf(rounds.map((figures) => figures[i] as Figures)));
    if (values.json) console.log(JSON.stringify(figures));
    else console.table(figures);
  } finally {
    server.kill();
  }
}

if (process.argv.includes('--serve')) await serve();
else await main();
