/**
 * Facilitation end to end in a real browser, through the demo app: consent → waiting room →
 * admitted → media flows; a facilitator's mute stops the participant's audio at the others; a
 * removed page cannot come back with its token; ending the session reaches every page. The test
 * takes a screenshot of each view (to a temporary folder, or to docs/screenshots/ with
 * HAVEN_UPDATE_SCREENSHOTS=1, for the README).
 */
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { waitFor } from '../../bench/processes.ts';
import { browserFor } from '../helpers/browser.ts';
import { sessionNode } from '../helpers/session-node.ts';

const screenshots = process.env.HAVEN_UPDATE_SCREENSHOTS
  ? join(import.meta.dirname, '..', '..', 'docs', 'screenshots')
  : mkdtempSync(join(tmpdir(), 'haven-screenshots-'));
mkdirSync(screenshots, { recursive: true });

// Closed before the node stops, so that no page is left reconnecting.
const browser = browserFor(test);
// The demo signs its own tokens (a random secret per start, as in development).
const haven = sessionNode(test, { env: { HAVEN_AUTH_SECRET: undefined } });
const { node } = haven;
const room = `e2e-fac-${process.pid}`;
const pages: Record<string, Page> = {};
const ids: Record<string, string> = {};

type DemoWindow = {
  havenDemo: {
    client: {
      localParticipant?: { id: string };
      participants: Map<string, { getTrack(source: string): { track: MediaStreamTrack } | undefined }>;
      connectionState: string;
    };
  };
};

async function open(name: string, role: string): Promise<Page> {
  const page = await browser.context.newPage();
  await page.setViewportSize({ width: 1100, height: 680 });
  page.on('pageerror', (err) => console.log(`    [${name}] page error: ${err.message}`));
  await page.goto(`${node.url}/demo?room=${room}&name=${name}&role=${role}&auto=1`);
  pages[name] = page;
  return page;
}

const state = (page: Page) => page.evaluate(() => (window as unknown as DemoWindow).havenDemo.client?.connectionState);
const shot = (page: Page, file: string) => page.screenshot({ path: join(screenshots, file) });

/** Bytes received so far on `page` from `fromId`'s microphone (through the SDK's track). */
function audioBytesFrom(page: Page, fromId: string): Promise<number> {
  return page.evaluate(async (from) => {
    const w = window as unknown as DemoWindow & { peerConnections: RTCPeerConnection[] };
    const track = w.havenDemo.client.participants.get(from)?.getTrack('microphone')?.track;
    if (!track) return -1;
    for (const pc of w.peerConnections) {
      const receiver = pc.getReceivers().find((r) => r.track === track);
      if (!receiver) continue;
      let bytes = 0;
      (await receiver.getStats()).forEach((s) => {
        if (s.type === 'inbound-rtp') bytes = s.bytesReceived;
      });
      return bytes;
    }
    return -1;
  }, fromId);
}

test.before(async () => {
  await haven.newRoom({
    id: room,
    title: 'Thursday IOP group',
    consentText: 'What is said in group stays in group.\nThis session is not recorded.',
  });
});

test('consent → waiting room → admitted by the facilitator → media flows', async () => {
  const ana = await open('Ana', 'facilitator');
  await waitFor(async () => (await state(ana)) === 'joined', 20_000, 'Ana (facilitator) in the session');
  for (const name of ['Ben', 'Cai']) {
    const page = await open(name, 'participant');
    await page.waitForSelector('#consent:not([hidden])', { timeout: 20_000 });
    if (name === 'Ben') await shot(page, 'participant-consent.png');
    await page.click('#consent-accept');
    await page.waitForSelector('#waiting:not([hidden])', { timeout: 10_000 });
    assert.match((await page.textContent('#waiting-status')) ?? '', /facilitator will let you in/);
    if (name === 'Ben') await shot(page, 'participant-waiting.png');
  }
  await ana.waitForFunction(() => document.querySelectorAll('#waiting-list li').length === 2, undefined, {
    timeout: 10_000,
  });
  await shot(ana, 'facilitator-waiting-room.png');
  await ana.click('#admit-all');
  for (const name of ['Ben', 'Cai']) {
    const page = pages[name] as Page;
    await waitFor(async () => (await state(page)) === 'joined', 20_000, `${name} admitted`);
    ids[name] = await page.evaluate(
      () => (window as unknown as DemoWindow).havenDemo.client.localParticipant?.id ?? '',
    );
  }
  const cai = pages.Cai as Page;
  const first = await waitFor(
    async () => Math.max(0, await audioBytesFrom(cai, ids.Ben as string)),
    20_000,
    'Cai to hear Ben',
  );
  await waitFor(
    async () => (await audioBytesFrom(cai, ids.Ben as string)) > first,
    5_000,
    'Ben’s audio to keep coming',
  );
  await ana.waitForFunction(() => document.querySelectorAll('.tile video').length >= 3, undefined, { timeout: 10_000 });
  await new Promise((r) => setTimeout(r, 1_500));
  await shot(ana, 'facilitator-session.png');
  await shot(pages.Ben as Page, 'participant-session.png');
});

test('the facilitator mutes Ben: the others stop receiving his audio, and he is told', async () => {
  const ana = pages.Ana as Page;
  const ben = pages.Ben as Page;
  const cai = pages.Cai as Page;
  await ana.click(`[data-tile="${ids.Ben}"] .actions button:text("Mute")`);
  await ben.waitForFunction(
    () => /turned off your microphone/.test(document.getElementById('notice')?.textContent ?? ''),
    undefined,
    {
      timeout: 5_000,
    },
  );
  // Packets already on their way still arrive: wait until Cai's count of Ben's audio stands still
  // (it never does if the mute did not stop it), then check it stays so.
  const settled = await waitFor(
    async () => {
      const first = await audioBytesFrom(cai, ids.Ben as string);
      await new Promise((r) => setTimeout(r, 500));
      return (await audioBytesFrom(cai, ids.Ben as string)) === first ? { bytes: first } : undefined;
    },
    15_000,
    'Ben’s audio to stop reaching Cai',
  );
  await new Promise((r) => setTimeout(r, 1_500));
  assert.is(await audioBytesFrom(cai, ids.Ben as string), settled.bytes, 'no audio from Ben after the mute');
});

test('a removed page cannot come back with its token', async () => {
  const ana = pages.Ana as Page;
  const cai = pages.Cai as Page;
  const token = await cai.evaluate(
    () => JSON.parse(sessionStorage.getItem('haven-demo-session') ?? '{}').token as string,
  );
  assert.ok(token);
  await ana.click(`[data-tile="${ids.Cai}"] .actions button:text("Remove")`);
  await cai.waitForSelector('#ended:not([hidden])', { timeout: 5_000 });
  assert.match((await cai.textContent('#ended')) ?? '', /removed you/);
  await ana.waitForFunction((id) => !document.querySelector(`[data-tile="${id}"]`), ids.Cai, { timeout: 5_000 });
  // Coming back with the same token, as a reload or a modified client would, is refused.
  const outcome = await cai.evaluate(async (spent) => {
    const sdk = '/demo/haven-sdk.js';
    const { SessionClient } = await import(sdk);
    const client = new SessionClient({ url: location.origin, token: spent, reconnect: false });
    try {
      await client.connect();
      return 'connected';
    } catch (err) {
      return (err as { code?: string }).code ?? String(err);
    }
  }, token);
  assert.is(outcome, 'UNAUTHORIZED');
});

test('ending the session tells every page', async () => {
  const ana = pages.Ana as Page;
  const ben = pages.Ben as Page;
  await ana.click('#end');
  await ben.waitForSelector('#ended:not([hidden])', { timeout: 5_000 });
  assert.match((await ben.textContent('#ended')) ?? '', /session has ended/);
  await shot(ben, 'participant-ended.png');
});

test.run();
