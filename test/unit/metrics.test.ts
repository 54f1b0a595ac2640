import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { TypedEmitter } from '../../client-sdk/src/protocol/typed-emitter.ts';
import { createMetricsServer } from '../../server/http/metrics-route.ts';
import { createLogger } from '../../server/logger.ts';
import { observeSessions } from '../../server/metrics/observe-sessions.ts';
import { createSeries } from '../../server/metrics/series.ts';

const logger = createLogger({ env: 'development', log: { level: 'silent' } });

/** A room as the session metrics see it: its events, its members' stages and media. */
type FakeMedia = TypedEmitter<{ connected: [string] }> & { downlink: { held(reason: string): number } };

/** A member's media: `held` videos held back for each reason. */
function fakeMedia(held: Record<string, number> = {}): FakeMedia {
  return Object.assign(new TypedEmitter<{ connected: [string] }>(), {
    downlink: { held: (reason: string) => held[reason] ?? 0 },
  });
}

function fakeRoom(id: string, qualities: Record<string, string> = {}) {
  const room = Object.assign(new TypedEmitter<Record<string, unknown[]>>(), {
    id,
    members: new Map<string, { stage: string; media: FakeMedia }>(),
    quality: { qualityOf: (participant: string) => qualities[participant] ?? 'excellent' },
  });
  return room;
}

async function value(series: ReturnType<typeof createSeries>, name: string, labels = ''): Promise<number | undefined> {
  const text = await series.registry.metrics();
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `));
  return line === undefined ? undefined : Number(line.split(' ')[1]);
}

test('joins are timed from the connection to the admission, then to the first transport connected', async () => {
  const series = createSeries();
  const rooms = new TypedEmitter<{ roomOpened: [unknown, boolean] }>();
  let now = 1_000;
  const sessions = observeSessions(series, Object.assign(rooms, { rooms: [] }) as never, () => now);
  const room = fakeRoom('r1');
  rooms.safeEmit('roomOpened', room, true);
  const media = fakeMedia();
  room.members.set('p1', { stage: 'waiting', media });
  sessions.signaling.connected({ roomId: 'r1', participantId: 'p1' } as never);
  now += 2_500;
  room.members.set('p1', { stage: 'admitted', media });
  room.safeEmit('presence', { type: 'admitted', room: 'r1', participant: 'p1' });
  now += 500;
  media.safeEmit('connected', 'send');
  media.safeEmit('connected', 'recv');
  assert.is(await value(series, 'haven_join_admitted_seconds_sum'), 2.5);
  assert.is(await value(series, 'haven_join_first_media_seconds_sum'), 0.5);
  assert.is(await value(series, 'haven_join_first_media_seconds_count'), 1, 'the first transport only');
  assert.is(await value(series, 'haven_room_failovers_total'), 1, 'a room opened from saved state');
});

test('participants are counted by stage and quality, held-back videos by reason; requests by name and code', async () => {
  const series = createSeries();
  const room = fakeRoom('r2', { a: 'poor', b: 'lost' });
  const media = fakeMedia();
  room.members.set('a', { stage: 'admitted', media: fakeMedia({ bandwidth: 5 }) });
  room.members.set('d', { stage: 'admitted', media: fakeMedia({ audioOnly: 7 }) });
  room.members.set('b', { stage: 'waiting', media });
  room.members.set('c', { stage: 'waiting', media });
  const rooms = Object.assign(new TypedEmitter(), { rooms: [room] });
  const sessions = observeSessions(series, rooms as never);
  sessions.refresh();
  sessions.signaling.answered('unknown', 'UNKNOWN_EVENT');
  sessions.signaling.answered('sendChat', 'RATE_LIMITED');
  sessions.signaling.answered('sendChat', 'ok');
  assert.is(await value(series, 'haven_rooms_open'), 1);
  assert.is(await value(series, 'haven_participants', '{stage="waiting"}'), 2);
  assert.is(await value(series, 'haven_participants', '{stage="consent"}'), 0);
  assert.is(await value(series, 'haven_connection_quality', '{quality="poor"}'), 1);
  assert.is(await value(series, 'haven_connection_quality', '{quality="excellent"}'), 1);
  assert.is(await value(series, 'haven_connection_quality', '{quality="lost"}'), 0, 'only those admitted');
  assert.is(await value(series, 'haven_videos_held', '{reason="bandwidth"}'), 5);
  assert.is(await value(series, 'haven_videos_held', '{reason="audioOnly"}'), 7);
  assert.is(await value(series, 'haven_signaling_requests_total', '{event="unknown",code="UNKNOWN_EVENT"}'), 1);
  assert.is(await value(series, 'haven_signaling_rate_limited_total', '{event="sendChat"}'), 1);
});

test('each node has a registry of its own', async () => {
  const a = createSeries();
  const b = createSeries();
  a.roomsOpen.set(3);
  assert.is(await value(a, 'haven_rooms_open'), 3);
  assert.is(await value(b, 'haven_rooms_open'), 0);
});

test('/metrics: 401 with a challenge without the token; a scrape that fails answers 500, the next one works', async () => {
  let fail = true;
  const metrics = {
    contentType: 'text/plain; version=0.0.4; charset=utf-8',
    scrape: async () => {
      if (fail) throw new Error('broken part');
      return 'haven_rooms_open 0\n';
    },
  };
  const server = createMetricsServer({ metrics, token: 'the-metrics-token-0123456789', logger }).listen(0, '127.0.0.1');
  await once(server, 'listening');
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`;
  const auth = { authorization: 'Bearer the-metrics-token-0123456789' };
  try {
    const refused = await fetch(url);
    assert.is(refused.status, 401);
    assert.is(refused.headers.get('www-authenticate'), 'Bearer realm="metrics"');
    const failed = await fetch(url, { headers: auth });
    assert.is(failed.status, 500);
    assert.is(((await failed.json()) as { error: { code: string } }).error.code, 'INTERNAL');
    fail = false;
    const scraped = await fetch(url, { headers: auth });
    assert.is(scraped.status, 200);
    assert.is(await scraped.text(), 'haven_rooms_open 0\n');
  } finally {
    server.close();
  }
});

test('the README lists every series, with its type and labels, and no other', async () => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const section = readme.slice(readme.indexOf('### Metrics'), readme.indexOf('### Several nodes'));
  const rows = [...section.matchAll(/^\| `(haven_\w+)` \| (\w+) \| ([^|]+) \|/gm)].map(([, name, type, labels]) => ({
    name,
    type,
    // Values in parentheses (`stage` (`consent`, …)) are not label names.
    labels: [...(labels ?? '').replace(/\([^)]*\)/g, '').matchAll(/`(\w+)`/g)].map((m) => m[1]),
  }));
  const { registry: _, ...series } = createSeries();
  const metrics = await Promise.all(
    Object.values(series).map(async (metric) => {
      const { name, type } = await metric.get();
      // prom-client keeps the label names on the metric without typing them.
      return { name, type: String(type), labels: [...(metric as unknown as { labelNames: string[] }).labelNames] };
    }),
  );
  const byName = (a: { name: string | undefined }, b: { name: string | undefined }) =>
    String(a.name).localeCompare(String(b.name));
  assert.equal(rows.sort(byName), metrics.sort(byName));
});

test.run();
