/**
 * End to end in a real browser: three pages of headless Chromium (fake camera and microphone)
 * join one group room through the demo app and the SDK, over a real node. Each receives the
 * other two's audio and video; a page that leaves disappears from the others; a page reloaded
 * within the grace window comes back without the others seeing a leave.
 */
import type { Page } from 'playwright-core';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { waitFor } from '../../bench/processes.ts';
import { browserFor } from '../helpers/browser.ts';
import { inboundTracks as inbound, receivingFrom } from '../helpers/page-media.ts';
import { sessionNode } from '../helpers/session-node.ts';

// Closed before the node stops, so that no page is left reconnecting.
const browser = browserFor(test);
// The demo signs its own tokens (a random secret per start, as in development).
const haven = sessionNode(test, {
  env: { HAVEN_AUTH_SECRET: undefined, HAVEN_ROOMS_RECONNECT_GRACE_S: '20', HAVEN_LOG_LEVEL: 'info' },
});
const { node } = haven;
const room = `e2e-${process.pid}`;
const pages: Record<string, Page> = {};

async function open(name: string, role: string): Promise<Page> {
  const page = await browser.context.newPage();
  page.on('pageerror', (err) => console.log(`    [${name}] page error: ${err.message}`));
  await page.goto(`${node.url}/demo?room=${room}&name=${name}&role=${role}&auto=1`);
  await page.waitForFunction(
    () =>
      (window as unknown as { havenDemo: { timings: { joinedMs?: number } } }).havenDemo.timings.joinedMs !== undefined,
    undefined,
    { timeout: 20_000 },
  );
  pages[name] = page;
  return page;
}

const participantIds = (page: Page) =>
  page.evaluate(() => [
    ...(
      window as unknown as { havenDemo: { client: { participants: Map<string, unknown> } } }
    ).havenDemo.client.participants.keys(),
  ]);

// This test is about media: no waiting room (the facilitation tests cover it).
test.before(async () => {
  await haven.newRoom({ id: room, title: 'E2E group', waitingRoom: false });
});

test('three pages in one group room each receive the other two’s audio and video', async () => {
  await open('Ana', 'facilitator');
  await open('Ben', 'participant');
  await open('Cai', 'participant');
  for (const name of ['Ana', 'Ben', 'Cai']) {
    const before = await receivingFrom(pages[name] as Page, 2, `${name} to receive two peers`);
    // Every track seen keeps flowing: each grows past what it had (however slow a loaded machine is).
    await waitFor(
      async () => {
        const after = await inbound(pages[name] as Page);
        const grew = (track: (typeof before)[number], frames: boolean) => {
          const later = after.find((t) => t.ssrc === track.ssrc);
          return !!later && later.bytes > track.bytes && (!frames || later.frames > track.frames);
        };
        return (
          before.filter((t) => t.kind === 'video' && t.frames > 0).every((t) => grew(t, true)) &&
          before.filter((t) => t.kind === 'audio').every((t) => grew(t, false))
        );
      },
      15_000,
      `${name}: audio and video to keep flowing`,
    );
  }
  const timings: Record<string, number>[] = [];
  for (const name of ['Ben', 'Cai']) {
    const page = pages[name] as Page;
    // A tab in the background renders nothing, so its first-frame callback waits for the front.
    await page.bringToFront();
    const measured = await page.waitForFunction(
      () =>
        (window as unknown as { havenDemo: { timings: Record<string, number> } }).havenDemo.timings
          .firstRemoteFrameMs !== undefined,
      undefined,
      { timeout: 10_000 },
    );
    await measured.dispose();
    timings.push(
      await page.evaluate(
        () => (window as unknown as { havenDemo: { timings: Record<string, number> } }).havenDemo.timings,
      ),
    );
  }
  for (const [i, t] of timings.entries()) {
    assert.ok(t.firstRemoteFrameMs !== undefined, 'first remote frame measured');
    console.log(
      `    ${i ? 'Cai' : 'Ben'}: joined in ${t.joinedMs} ms, first remote video frame ${t.firstRemoteFrameMs} ms after starting to join`,
    );
  }
});

test('a page that leaves disappears from the others', async () => {
  const cai = pages.Cai as Page;
  const caiId = await cai.evaluate(
    () =>
      (window as unknown as { havenDemo: { client: { localParticipant: { id: string } } } }).havenDemo.client
        .localParticipant.id,
  );
  await cai.click('#leave');
  for (const name of ['Ana', 'Ben']) {
    await waitFor(
      async () => !(await participantIds(pages[name] as Page)).includes(caiId),
      5_000,
      `${name} to see Cai leave`,
    );
    assert.is(await (pages[name] as Page).locator(`[data-tile="${caiId}"]`).count(), 0, `${name}: Cai's tile is gone`);
  }
  await cai.close();
});

test('a page reloaded within the grace window comes back; the others see no leave', async () => {
  const ana = pages.Ana as Page;
  const ben = pages.Ben as Page;
  const benId = await ben.evaluate(
    () =>
      (window as unknown as { havenDemo: { client: { localParticipant: { id: string } } } }).havenDemo.client
        .localParticipant.id,
  );
  await ana.evaluate(() => {
    const w = window as unknown as {
      leaves: string[];
      havenDemo: { client: { on(e: string, f: (p: { id: string }) => void): void } };
    };
    w.leaves = [];
    w.havenDemo.client.on('participantLeft', (p) => w.leaves.push(p.id));
  });
  await ben.reload();
  await ben.waitForFunction(
    () =>
      (window as unknown as { havenDemo: { timings: { joinedMs?: number } } }).havenDemo.timings.joinedMs !== undefined,
    undefined,
    { timeout: 20_000 },
  );
  await receivingFrom(ben, 1, 'Ben, reloaded, to receive Ana again');
  await receivingFrom(ana, 1, 'Ana to receive Ben again');
  await new Promise((r) => setTimeout(r, 500));
  const leaves = await ana.evaluate(() => (window as unknown as { leaves: string[] }).leaves);
  assert.equal(leaves, [], 'Ana saw no leave');
  assert.ok((await participantIds(ana)).includes(benId), 'Ben is still in Ana’s list, with the same id');
  const resumedLogged = node.logs.filter((l) => l.msg === 'participant joined' && l.participant === benId).length;
  assert.is(resumedLogged, 1, 'the server counted one join for Ben');
});

test.run();
