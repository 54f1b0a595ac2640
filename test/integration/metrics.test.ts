/**
 * The node's metrics as an operator gets them: a real Prometheus (Debian's) scrapes a node every
 * second with the metrics token during a session, and the series are read back through its HTTP
 * API. No label carries a room or participant id. The alert rules pass `promtool check rules`,
 * a scrape passes `promtool check metrics`.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { commandOf, descendants, isAlive, waitFor } from '../../bench/processes.ts';
import { lateBound } from '../helpers/hooks.ts';
import { freePort } from '../helpers/ports.ts';
import { type Prometheus, startPrometheus } from '../helpers/prometheus.ts';
import { sessionNode } from '../helpers/session-node.ts';
import {
  codeOf,
  connect,
  connectOutcome,
  joinAs,
  next,
  ok,
  type TestSocket,
  token,
} from '../helpers/signaling-client.ts';
import { createNodeSessionClient, type NodeSession, receiveFrom } from '../helpers/wrtc-session.ts';

const alertRules = join(import.meta.dirname, '..', '..', 'docs', 'alerts.yml');
const metricsToken = 'metrics-token-for-haven-tests-0123';
const haven = sessionNode(test, {
  env: { HAVEN_METRICS_TOKEN: metricsToken, HAVEN_MEDIA_WORKERS: '1' },
  roomPrefix: 'metrics',
  room: { title: 'Metrics group', waitingRoom: true },
});
const { node, newRoom, client } = haven;
/** Two more nodes sharing a Redis, for what only a cluster shows (failovers, lost leases). */
const pair = sessionNode(test, {
  redis: true,
  start: false,
  env: { HAVEN_METRICS_TOKEN: metricsToken, HAVEN_MEDIA_WORKERS: '1', HAVEN_CLUSTER_NODE_TIMEOUT_S: '2' },
  room: { title: 'Failover group', waitingRoom: false },
});
const sessions: NodeSession[] = [];
haven.atEnd(() => Promise.all(sessions.map((s) => s.close())));
const prometheus = lateBound<Prometheus>('Prometheus');
const idsUsed: string[] = [];

test.before(async () => {
  prometheus.set(
    await startPrometheus({ targets: [new URL(node.url).host], token: metricsToken, ruleFiles: [alertRules] }),
  );
});

test.after(() => prometheus.get()?.stop());

const scraped: Prometheus['scraped'] = (query, holds) => prometheus.handle.scraped(query, holds);

test('GET /metrics answers 401 without the metrics token, the exposition with it', async () => {
  assert.is((await fetch(`${node.url}/metrics`)).status, 401);
  const wrong = await fetch(`${node.url}/metrics`, {
    headers: { authorization: 'Bearer not-the-token-at-all-000000' },
  });
  assert.is(wrong.status, 401);
  const res = await fetch(`${node.url}/metrics`, { headers: { authorization: `Bearer ${metricsToken}` } });
  assert.is(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
  assert.match(await res.text(), /^haven_rooms_open 0$/m);
});

test('a session, as Prometheus scraped it: rooms, stages, join latency, requests, workers, queues', async () => {
  const room = await newRoom();
  idsUsed.push(room, 'metrics-facilitator', 'metrics-patient');
  const facilitator = await client(room, 'metrics-facilitator', 'facilitator');
  await joinAs(facilitator);
  const patient = await client(room, 'metrics-patient');
  assert.is((await joinAs(patient)).stage, 'waiting');
  await scraped('haven_participants{job="haven",stage="waiting"}', (v) => v === 1);
  await scraped('haven_rooms_open{job="haven"}', (v) => v === 1);
  const admitted = next(patient, 'admitted');
  await ok(facilitator, 'admit', { participantId: 'metrics-patient' });
  await admitted;
  assert.is(await codeOf(patient, 'noSuchRequest', {}), 'UNKNOWN_EVENT');
  await ok(patient, 'createTransport', { direction: 'send' });
  await scraped('haven_participants{job="haven",stage="admitted"}', (v) => v === 2);
  await scraped('haven_join_admitted_seconds_count{job="haven"}', (v) => v === 2);
  await scraped('haven_signaling_requests_total{job="haven",event="join",code="ok"}', (v) => v === 2);
  await scraped('haven_signaling_requests_total{job="haven",event="connect",code="ok"}', (v) => v >= 2);
  // A refused handshake: counted under `connect` with its code.
  const refused = await connectOutcome(node.url, { token: 'not-a-token' });
  assert.is(refused.outcome === 'refused' && refused.error?.code, 'UNAUTHORIZED');
  await scraped('haven_signaling_requests_total{job="haven",event="connect",code="UNAUTHORIZED"}', (v) => v === 1);
  await scraped('haven_signaling_requests_total{job="haven",event="unknown",code="UNKNOWN_EVENT"}', (v) => v === 1);
  await scraped('haven_signaling_requests_total{job="haven",event="createTransport",code="ok"}', (v) => v === 1);
  await scraped('haven_worker_producers{job="haven",worker="0"}', (v) => v === 0);
  await scraped('haven_worker_cpu_seconds{job="haven",worker="0"}', (v) => v > 0);
  await scraped('haven_worker_max_rss_bytes{job="haven",worker="0"}', (v) => v > 1_000_000);
  await scraped('haven_worker_deaths_total{job="haven",worker="0"}', (v) => v === 0);
  await scraped('haven_redis_up{job="haven"}', (v) => v === 1);
  await scraped('haven_ready{job="haven"}', (v) => v === 1);
  await scraped('haven_redis_command_duration_seconds_count{job="haven"}', (v) => v > 0);
  await scraped('haven_queue_jobs{job="haven",queue="haven-attendance",state="delayed"}', (v) => v >= 0);
  await scraped('haven_queue_stalled_jobs_total{job="haven",queue="haven-webhooks"}', (v) => v === 0);
  await scraped('haven_webhook_deliveries{job="haven",status="dead"}', (v) => v === 0);
  await scraped('haven_attendance_events_pending{job="haven"}', (v) => v >= 0);
  await scraped('haven_attendance_events_spilled{job="haven"}', (v) => v === 0);
  await scraped('haven_lease_renewals_total{job="haven"}', (v) => v > 0);
  await scraped('haven_lease_losses_total{job="haven"}', (v) => v === 0);
  await scraped('haven_room_failovers_total{job="haven"}', (v) => v === 0);
});

test('media: producers and consumers on the worker, and the time from admission to the first transport connected', async () => {
  const room = await newRoom({ waitingRoom: false });
  idsUsed.push(room, 'metrics-speaker', 'metrics-listener');
  const joined = async (sub: string, role: 'facilitator' | 'participant') => {
    const session = createNodeSessionClient(node.url, token(room, sub, role));
    sessions.push(session);
    await session.client.connect();
    await session.client.join();
    return session;
  };
  const speaker = await joined('metrics-speaker', 'facilitator');
  const listener = await joined('metrics-listener', 'participant');
  const rx = receiveFrom(listener, 'metrics-speaker');
  await speaker.client.publishMicrophone(speaker.audioTrack());
  await waitFor(() => rx.audible() > 4_800, 15_000, 'audio from the speaker');
  await scraped('haven_worker_producers{job="haven",worker="0"}', (v) => v >= 1);
  await scraped('haven_worker_consumers{job="haven",worker="0"}', (v) => v >= 1);
  await scraped('haven_join_first_media_seconds_count{job="haven"}', (v) => v >= 2);
  await scraped('haven_join_first_media_seconds_sum{job="haven"}', (v) => v > 0);
});

test('no label value Prometheus holds is a room or participant id of the session', async () => {
  assert.ok(idsUsed.length > 0);
  const res = await fetch(`${prometheus.handle.url}/api/v1/series?match[]=${encodeURIComponent('{job="haven"}')}`);
  const series = ((await res.json()) as { data: Record<string, string>[] }).data;
  assert.ok(series.length > 50, `${series.length} series`);
  for (const labels of series) {
    for (const value of Object.values(labels)) {
      assert.not.ok(
        idsUsed.some((id) => value.includes(id)),
        `label value ${value} carries an id`,
      );
    }
  }
});

test('off unless configured (404); with metrics.port, served there in plain and not on the HTTP port', async () => {
  const off = await haven.startNode({ HAVEN_METRICS_TOKEN: undefined });
  assert.is((await fetch(`${off.url}/metrics`)).status, 404);
  const port = await freePort();
  const apart = await haven.startNode({ HAVEN_METRICS_TOKEN: undefined, HAVEN_METRICS_PORT: String(port) });
  assert.is((await fetch(`${apart.url}/metrics`)).status, 404);
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  assert.is(res.status, 200);
  assert.match(await res.text(), /^# TYPE haven_signaling_requests_total counter$/m);
  assert.is((await fetch(`http://127.0.0.1:${port}/v1/rooms`)).status, 404, 'nothing else on the metrics port');
});

test('Prometheus loads the alert rules and evaluates them against the node, none failing', async () => {
  const rules = await waitFor(
    async () => {
      const res = await fetch(`${prometheus.handle.url}/api/v1/rules`);
      const body = (await res.json()) as { data: { groups: { rules: { name: string; health: string }[] }[] } };
      const all = body.data.groups.flatMap((g) => g.rules);
      return all.length > 0 && all.every((r) => r.health === 'ok') ? all : undefined;
    },
    30_000,
    'the alert rules evaluated',
  );
  assert.ok(rules.some((r) => r.name === 'HavenMediaWorkerDied'));
  assert.ok(rules.some((r) => r.name === 'HavenRoomLeaseLost'));
});

test('promtool accepts the alert rules (docs/alerts.yml) and lints a scrape', async () => {
  assert.match(execFileSync('promtool', ['check', 'rules', alertRules], { encoding: 'utf8' }), /SUCCESS/);
  const res = await fetch(`${node.url}/metrics`, { headers: { authorization: `Bearer ${metricsToken}` } });
  execFileSync('promtool', ['check', 'metrics'], { input: await res.text(), encoding: 'utf8' });
});

test('a media worker killed: its death counted, in its slot', async () => {
  const workers = descendants(node.child.pid as number).filter(
    (pid) => isAlive(pid) && /mediasoup-worker/.test(commandOf(pid)),
  );
  assert.is(workers.length, 1);
  process.kill(workers[0] as number, 'SIGKILL');
  await scraped('haven_worker_deaths_total{job="haven",worker="0"}', (v) => v === 1);
  await scraped('haven_ready{job="haven"}', (v) => v === 1);
});

/** A series' value in a node's own exposition (no Prometheus needed for this one). */
async function valueAt(url: string, name: string): Promise<number> {
  const res = await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${metricsToken}` } });
  const line = (await res.text()).split('\n').find((l) => l.startsWith(`${name} `));
  return Number(line?.split(' ')[1]);
}

/** Connects to `url`, following a REDIRECT (to another node) once. */
async function connectFollowing(url: string, accessToken: string): Promise<{ socket: TestSocket; landed: string }> {
  try {
    const socket = await connect(url, accessToken);
    pair.sockets.push(socket);
    return { socket, landed: url };
  } catch (err) {
    const data = (err as { data?: { code?: string; url?: string } }).data;
    if (data?.code !== 'REDIRECT' || !data.url) throw err;
    const socket = await connect(data.url, accessToken);
    pair.sockets.push(socket);
    return { socket, landed: data.url };
  }
}

test('a node frozen past its lease: the lease loss counted there, the failover on the node that took the room', async () => {
  const [a, b] = [await pair.startNode(), await pair.startNode()];
  if (!a || !b) throw new Error('nodes not started');
  const room = await pair.newRoom({}, a.url);
  const { socket: facilitator, landed } = await connectFollowing(a.url, token(room, 'fac-lease', 'facilitator'));
  await joinAs(facilitator);
  const [frozen, live] = landed === a.url ? [a, b] : [b, a];
  process.kill(frozen.child.pid as number, 'SIGSTOP');
  try {
    // Until the lease runs out the live node sends newcomers to the frozen one, or says the room moves.
    const newcomer = await waitFor(
      () => connect(live.url, token(room, 'pt-lease')).catch(() => undefined),
      15_000,
      'the room placed on the live node',
    );
    pair.sockets.push(newcomer);
    await joinAs(newcomer);
  } finally {
    process.kill(frozen.child.pid as number, 'SIGCONT');
  }
  assert.is(await valueAt(live.url, 'haven_room_failovers_total'), 1);
  await waitFor(async () => (await valueAt(frozen.url, 'haven_lease_losses_total')) === 1, 10_000, 'the loss counted');
  assert.is(await valueAt(live.url, 'haven_lease_losses_total'), 0);
});

test.run();
