/**
 * Breakout rooms end to end in Chromium: a facilitator and five participants in the demo app (the
 * built SDK) over a real node (real mediasoup, its embedded Redis). Two groups by hand, of 2 and
 * 3, started through `client.moderation.breakouts`: each page decodes its own group's members and
 * no inbound track comes from anyone else; the facilitator visits group B and is heard there
 * only; a broadcast reaches every page; a page reloaded inside its group comes back to it; the
 * recall brings everyone back, each page decoding all the others; after the end, the attendance
 * record has one entry each, present from admission to the end (±1 s), with every move.
 */
import type { Page } from 'playwright-core';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { waitFor } from '../../bench/processes.ts';
import { browserFor } from '../helpers/browser.ts';
import { type InboundTrack, inboundTracks, smallCamera } from '../helpers/page-media.ts';
import { sessionNode } from '../helpers/session-node.ts';
import { admin } from '../helpers/signaling-client.ts';

// Closed before the node stops, so that no page is left reconnecting.
const browser = browserFor(test);
// The demo signs its own tokens (a random secret per start, as in development).
// Six pages on two cores answer late and lose packets on loopback: the server would then give a
// page audio only, which is not what this test is about (browser-network tests it).
const haven = sessionNode(test, {
  env: { HAVEN_AUTH_SECRET: undefined, HAVEN_ROOMS_RECONNECT_GRACE_S: '20', HAVEN_MEDIA_AUDIO_ONLY_BELOW_KBPS: '1' },
});
const { node } = haven;
let room = '';

const facilitator = 'Fay';
const groupA = ['Ana', 'Ben'];
const groupB = ['Cai', 'Dee', 'Eli'];
const everyone = [facilitator, ...groupA, ...groupB];
const pages: Record<string, Page> = {};
/** Each person's participant id, and when their page was admitted (its own clock, ms since the epoch). */
const ids: Record<string, string> = {};
const admittedOnPage: Record<string, number> = {};
const groupIds = { A: '', B: '' };
/** Per page, of the videos it should decode, how many were decoding in the last window (for the log). */
const videoNow: Record<string, string> = {};
const decodingNow = () =>
  Object.entries(videoNow)
    .map(([name, share]) => `${name} ${share}`)
    .join(', ');

type DemoWindow = {
  peerConnections: RTCPeerConnection[];
  broadcasts: { from: string; text: string; sentAt: number; receivedAt: number }[];
  havenDemo: {
    timings: { startedAt: number; joinedMs?: number };
    client: {
      localParticipant: { id: string };
      breakout: { running: boolean; group: { id: string; name: string } | null };
      participants: Map<string, { id: string; tracks: Map<string, { track: MediaStreamTrack }> }>;
      on(event: string, listener: (arg: never) => void): void;
      moderation: {
        endSession(): Promise<void>;
        breakouts: {
          create(plan: object): Promise<unknown>;
          start(): Promise<{ groups: { id: string; name: string }[] }>;
          visit(id: string | null): Promise<void>;
          broadcast(text: string): Promise<number>;
          recall(): Promise<void>;
        };
      };
    };
  };
};

/** Resolves once the page has joined; its admission is then `timings.startedAt + joinedMs` on its clock. */
async function joined(page: Page): Promise<number> {
  await page.waitForFunction(
    () => (window as unknown as DemoWindow).havenDemo.timings.joinedMs !== undefined,
    undefined,
    { timeout: 30_000 },
  );
  return page.evaluate(() => {
    const { startedAt, joinedMs = 0 } = (window as unknown as DemoWindow).havenDemo.timings;
    return Math.round(performance.timeOrigin + startedAt + joinedMs);
  });
}

async function open(name: string, role: string): Promise<void> {
  const page = await browser.context.newPage();
  page.on('pageerror', (err) => console.log(`    [${name}] page error: ${err.message}`));
  await page.goto(`${node.url}/demo?room=${room}&name=${name}&role=${role}&auto=1`);
  admittedOnPage[name] = await joined(page);
  ids[name] = await page.evaluate(() => (window as unknown as DemoWindow).havenDemo.client.localParticipant.id);
  pages[name] = page;
}

const page = (name: string) => pages[name] as Page;

/** What a page sees: whom (remote participants), where it is, its inbound RTP and whose track each one is. */
interface PageView {
  remote: string[];
  group: string | null;
  owners: Record<string, string>;
  tracks: InboundTrack[];
}

async function viewOf(name: string): Promise<PageView> {
  const [tracks, seen] = await Promise.all([
    inboundTracks(page(name)),
    page(name).evaluate(() => {
      const { client } = (window as unknown as DemoWindow).havenDemo;
      const owners: Record<string, string> = {};
      for (const p of client.participants.values()) for (const t of p.tracks.values()) owners[t.track.id] = p.id;
      return { remote: [...client.participants.keys()].sort(), group: client.breakout.group?.id ?? null, owners };
    }),
  ]);
  return { ...seen, tracks };
}

/**
 * What flowed in between two views: whose audio played out, whose video tracks have decoded frames
 * (mediasoup forwards no video to a receiver whose bandwidth estimate collapses, as a starved CPU
 * makes it: a frame decoded on a track created since the last move is the proof), whose video is
 * decoding right now, and bytes on tracks of nobody in view.
 */
function flowBetween(before: PageView, after: PageView) {
  const grew = (t: InboundTrack, field: 'bytes' | 'frames' | 'samples') => {
    const earlier = before.tracks.find((b) => b.ssrc === t.ssrc && b.trackId === t.trackId);
    return t[field] > (earlier?.[field] ?? 0);
  };
  const heard = new Set<string>();
  const seen = new Set<string>();
  const moving = new Set<string>();
  const strangers: string[] = [];
  for (const t of after.tracks) {
    const owner = after.owners[t.trackId];
    if (owner && t.kind === 'video' && t.frames > 0) seen.add(owner);
    if (!grew(t, 'bytes')) continue;
    if (!owner) strangers.push(`${t.kind} ${t.trackId}`);
    else if (t.kind === 'audio' && grew(t, 'samples')) heard.add(owner);
    else if (t.kind === 'video' && grew(t, 'frames')) moving.add(owner);
  }
  return { heard, seen, moving, strangers };
}

/**
 * Whether `name` sees exactly `members` and receives from nobody else, and (`decoding`) hears and
 * sees each of them; else why not.
 */
async function onlyFrom(name: string, members: string[], decoding = true): Promise<string | null> {
  const expected = members.map((m) => ids[m] as string).sort();
  const before = await viewOf(name);
  await new Promise((r) => setTimeout(r, 1_000)); // a window to count media in, not a wait for the code
  const after = await viewOf(name);
  const { heard, seen, moving, strangers } = flowBetween(before, after);
  const owned = Object.values(after.owners);
  const outsiders = [...heard, ...moving, ...owned].filter((id) => !expected.includes(id));
  if (after.remote.join() !== expected.join()) return `sees ${after.remote.join() || 'nobody'}`;
  if (outsiders.length) return `receives from ${[...new Set(outsiders)].join()}`;
  if (strangers.length) return `receives tracks of nobody in view: ${strangers.join()}`;
  const silent = expected.filter((id) => !heard.has(id) || !seen.has(id));
  if (!silent.length || !decoding) {
    videoNow[name] = `${expected.filter((id) => moving.has(id)).length}/${expected.length}`;
    return null;
  }
  const held = await page(name).evaluate(
    (silentIds) =>
      silentIds.map((id) => {
        const video = (window as unknown as DemoWindow).havenDemo.client.participants.get(id)?.tracks.get('camera');
        return [id, (video as { pausedReason?: string } | undefined)?.pausedReason ?? 'not held'];
      }),
    silent,
  );
  const figures = held.map(([id, reason]) => {
    const [b, a] = [before, after].map((v) => v.tracks.find((t) => t.kind === 'video' && v.owners[t.trackId] === id));
    return `${id}: video ${reason}, ${b?.bytes}→${a?.bytes} B, ${b?.frames}→${a?.frames} frames`;
  });
  return `does not decode ${figures.join('; ')} (heard ${[...heard]}, seen ${[...seen]})`;
}

/**
 * Waits until every page of `layout` (name → whom it should decode) decodes exactly them, then
 * checks over a fresh window that nothing comes from anyone else (a loaded machine may stall a
 * decoder for a moment: decoding is what the wait is for); resolves with when it got there.
 */
async function decodeOnly(layout: Record<string, string[]>, what: string, timeoutMs = 45_000): Promise<number> {
  const last: Record<string, string | null> = {};
  const check = async () => {
    await Promise.all(
      Object.entries(layout).map(async ([name, members]) => {
        if (last[name] !== null) last[name] = await onlyFrom(name, members);
      }),
    );
    return Object.values(last).every((v) => v === null);
  };
  const reached = await waitFor(check, timeoutMs, what).catch((err: Error) => {
    throw new Error(`${err.message}: ${JSON.stringify(last)}`);
  });
  const reachedAt = Date.now();
  assert.ok(reached);
  for (const [name, members] of Object.entries(layout)) {
    assert.is(await onlyFrom(name, members, false), null, `${what}: ${name} still receives from its own only`);
  }
  return reachedAt;
}

/** The others of `name`'s own group (`group` with `extra` in it). */
const othersIn = (group: string[], name: string, extra: string[] = []) =>
  [...group, ...extra].filter((m) => m !== name);

const layoutOf = (groups: string[][], main: string[]): Record<string, string[]> =>
  Object.fromEntries(
    [...groups, main].flatMap((group) => group.map((name) => [name, othersIn(group, name)] as [string, string[]])),
  );

const placeOf = (name: string) =>
  page(name).evaluate(() => (window as unknown as DemoWindow).havenDemo.client.breakout.group?.id ?? null);

test.before(async () => {
  await browser.context.addInitScript(smallCamera, { width: 320, height: 180, frameRate: 15 });
  // Media is what this test is about: no waiting room (the facilitation tests cover it).
  room = await haven.newRoom({ title: 'Skills practice', waitingRoom: false });
});

test('two breakouts by hand (2 and 3): each page decodes its own group only', async () => {
  await open(facilitator, 'facilitator');
  for (const name of [...groupA, ...groupB]) await open(name, 'participant');
  const lastJoin = Date.now();
  const together = await decodeOnly(layoutOf([], everyone), 'every page to decode the five others');
  console.log(
    `    main room: every page decoded the five others ${together - lastJoin} ms after the last join (videos decoding in the last second: ${decodingNow()})`,
  );

  const started = Date.now();
  const groups = await page(facilitator).evaluate(
    async (plan) => {
      const { breakouts } = (window as unknown as DemoWindow).havenDemo.client.moderation;
      await breakouts.create(plan);
      return (await breakouts.start()).groups;
    },
    {
      groups: [
        { name: 'Pairs', members: groupA.map((n) => ids[n]) },
        { name: 'Threes', members: groupB.map((n) => ids[n]) },
      ],
    },
  );
  assert.equal(
    groups.map((g) => g.name),
    ['Pairs', 'Threes'],
  );
  groupIds.A = groups[0]?.id as string;
  groupIds.B = groups[1]?.id as string;
  for (const name of groupA) assert.is(await placeOf(name), groupIds.A, `${name} in Pairs`);
  for (const name of groupB) assert.is(await placeOf(name), groupIds.B, `${name} in Threes`);
  assert.is(await placeOf(facilitator), null, 'the facilitator stays in the main room');
  const split = await decodeOnly(layoutOf([groupA, groupB], [facilitator]), 'each page to decode its group only');
  console.log(
    `    breakouts: every page decoded its own group only ${split - started} ms after start() was called (videos decoding in the last second: ${decodingNow()})`,
  );
});

test('the facilitator visits group B and is heard there only; a broadcast reaches every page', async () => {
  const visited = Date.now();
  await page(facilitator).evaluate(
    (id) => (window as unknown as DemoWindow).havenDemo.client.moderation.breakouts.visit(id),
    groupIds.B,
  );
  assert.is(await placeOf(facilitator), groupIds.B);
  const heard = await decodeOnly(
    layoutOf([groupA, [...groupB, facilitator]], []),
    'group B (and only B) to decode the facilitator',
  );
  console.log(
    `    visit: group B decoded the facilitator (group A did not) ${heard - visited} ms after visit() was called (videos decoding in the last second: ${decodingNow()})`,
  );

  for (const name of everyone) {
    await page(name).evaluate(() => {
      const w = window as unknown as DemoWindow;
      w.broadcasts = [];
      w.havenDemo.client.on('broadcastReceived', (b: Omit<DemoWindow['broadcasts'][number], 'receivedAt'>) =>
        w.broadcasts.push({ ...b, receivedAt: Date.now() }),
      );
    });
  }
  const text = 'Two minutes left: finish your round.';
  const sentAt = await page(facilitator).evaluate(
    (t) => (window as unknown as DemoWindow).havenDemo.client.moderation.breakouts.broadcast(t),
    text,
  );
  let slowestMs = 0;
  for (const name of everyone) {
    const got = await waitFor(
      () => page(name).evaluate(() => (window as unknown as DemoWindow).broadcasts[0]),
      10_000,
      `${name} to receive the broadcast`,
    );
    assert.is(got.text, text, `${name}: the broadcast's text`);
    assert.is(got.from, ids[facilitator], `${name}: from the facilitator`);
    assert.is(got.sentAt, sentAt);
    slowestMs = Math.max(slowestMs, got.receivedAt - sentAt);
  }
  console.log(`    broadcast: on all six pages within ${slowestMs} ms of the server sending it`);
});

test('a page reloaded inside its breakout comes back to its group', async () => {
  const ben = page('Ben');
  const reloaded = Date.now();
  await ben.reload();
  await joined(ben);
  assert.is(
    await ben.evaluate(() => (window as unknown as DemoWindow).havenDemo.client.localParticipant.id),
    ids.Ben,
    'the same participant',
  );
  assert.is(await placeOf('Ben'), groupIds.A, 'back in Pairs');
  const back = await decodeOnly(
    layoutOf([groupA, [...groupB, facilitator]], []),
    'Ben, reloaded, to decode Ana only (and nobody else to decode Ben)',
  );
  console.log(
    `    reload: Ben back in his group and decoding it only ${back - reloaded} ms after the reload began (videos decoding in the last second: ${decodingNow()})`,
  );
});

test('recall: everyone back in the main room, every page decodes all the others again', async () => {
  const recalled = Date.now();
  await page(facilitator).evaluate(() =>
    (window as unknown as DemoWindow).havenDemo.client.moderation.breakouts.recall(),
  );
  for (const name of everyone) assert.is(await placeOf(name), null, `${name} in the main room`);
  const together = await decodeOnly(layoutOf([], everyone), 'every page to decode the five others again');
  console.log(
    `    recall: every page decoded the five others ${together - recalled} ms after recall() was called (videos decoding in the last second: ${decodingNow()})`,
  );
});

test('after the session: one record each, present from admission to the end (±1 s), the moves listed', async () => {
  const endedOnPage = await page(facilitator).evaluate(async () => {
    await (window as unknown as DemoWindow).havenDemo.client.moderation.endSession();
    return Date.now();
  });
  const record = await waitFor(
    async () => {
      const res = await admin(node.url, 'GET', `/v1/rooms/${room}/attendance`);
      return res.status === 200 && res.body.data?.sessionEndedAt ? res.body.data : undefined;
    },
    20_000,
    'the attendance record',
  );
  type Entry = {
    participant: string;
    admittedAt: number;
    presentSeconds: number;
    disconnections: number;
    intervals: unknown[];
    moves: { at: number; breakout: string | null }[];
  };
  const entries: Entry[] = record.participants;
  assert.equal(entries.map((e) => e.participant).sort(), Object.values(ids).sort(), 'one record per person');
  const endedAt: number = record.sessionEndedAt;
  // The page hears of the end after the server ends it, as it hears of its admission after it (a loaded machine: seconds).
  assert.ok(Math.abs(endedAt - endedOnPage) < 5_000, 'the record ends when the facilitator ended the session');
  const rows: string[] = [];
  for (const name of everyone) {
    const entry = entries.find((e) => e.participant === ids[name]) as Entry;
    const onPage = admittedOnPage[name] as number;
    assert.ok(Math.abs(entry.admittedAt - onPage) < 5_000, `${name}: admitted when the page joined`);
    const wallS = (endedAt - entry.admittedAt) / 1_000;
    const pageS = (endedOnPage - onPage) / 1_000;
    rows.push(`${name} ${entry.presentSeconds} s (server clock ${wallS.toFixed(3)} s, pages ${pageS.toFixed(3)} s)`);
    assert.ok(Math.abs(entry.presentSeconds - wallS) <= 1, `${name}: present ${wallS} s, ${JSON.stringify(entry)}`);
    assert.is(entry.intervals.length, 1, `${name}: present throughout (${JSON.stringify(entry)})`);
    assert.is(entry.disconnections, name === 'Ben' ? 1 : 0, `${name}: disconnections`);
    const group = groupA.includes(name) ? groupIds.A : groupIds.B;
    assert.equal(
      entry.moves.map((m) => m.breakout),
      [group, null],
      `${name}: to the group and back`,
    );
    const times = entry.moves.map((m) => m.at);
    assert.equal(
      times,
      [...times].sort((a, b) => a - b),
      `${name}: moves in order`,
    );
    assert.ok(
      times.every((t) => t >= entry.admittedAt && t <= endedAt),
      `${name}: moves during the presence`,
    );
  }
  console.log(`    attendance: ${rows.join('; ')}`);
});

test.run();
