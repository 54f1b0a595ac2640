/**
 * The demo's poor-network controls in Chromium, as a facilitator and a participant use them: the
 * quality badge on one's own header and on each tile, the audio-only switch (the tiles say the
 * video is off by choice, and their video stops), and a facilitator's "Suggest audio only", which
 * the participant takes with one click.
 */
import type { Page } from 'playwright-core';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { waitFor } from '../../bench/processes.ts';
import { browserFor } from '../helpers/browser.ts';
import { participantIdOf } from '../helpers/e2ee-pages.ts';
import { inboundTracks, receivingFrom } from '../helpers/page-media.ts';
import { sessionNode } from '../helpers/session-node.ts';

const browser = browserFor(test);
const haven = sessionNode(test, { roomPrefix: 'net-demo' });
const { node } = haven;
let facilitator: Page;
let participant: Page;

async function open(room: string, name: string, role: string): Promise<Page> {
  const page = await browser.context.newPage();
  page.on('pageerror', (err) => console.log(`    [${name}] page error: ${err.message}`));
  await page.goto(`${node.url}/demo?room=${room}&name=${name}&role=${role}&auto=1`);
  await page.waitForFunction(
    () => (window as unknown as { havenDemo: { timings: { joinedMs?: number } } }).havenDemo.timings.joinedMs,
    undefined,
    { timeout: 20_000 },
  );
  return page;
}

/** Video frames the page has decoded so far, over all its remote videos. */
async function framesDecoded(page: Page): Promise<number> {
  return (await inboundTracks(page)).filter((t) => t.kind === 'video').reduce((n, t) => n + t.frames, 0);
}

test.before(async () => {
  const room = await haven.newRoom({ title: 'Demo network', waitingRoom: false });
  facilitator = await open(room, 'Dr-Lee', 'facilitator');
  participant = await open(room, 'Pat', 'participant');
  await receivingFrom(participant, 1, 'Pat to receive Dr. Lee');
  await receivingFrom(facilitator, 1, 'Dr. Lee to receive Pat');
});

test('each page shows its own quality and a badge on each tile', async () => {
  await participant.waitForSelector('#quality[data-quality="excellent"]:not([hidden])', { timeout: 10_000 });
  const patId = await participantIdOf(participant);
  // The facilitator sees the participant's quality on their tile.
  await facilitator.waitForSelector(`[data-tile="${patId}"][data-quality]`, { timeout: 15_000 });
});

test('the audio-only switch: every tile says the video is off by choice, and no more video arrives; off, it comes back', async () => {
  const leeId = await participantIdOf(facilitator);
  await participant.check('#audio-only');
  await participant.waitForSelector(`[data-tile="${leeId}"][data-paused="audioOnly"]`, { timeout: 10_000 });
  assert.match((await participant.textContent(`[data-tile="${leeId}"] .paused`)) ?? '', /audio only/);
  // Frames in flight have arrived: from now on, none.
  await waitFor(
    async () => {
      const before = await framesDecoded(participant);
      await new Promise((r) => setTimeout(r, 1_000));
      return (await framesDecoded(participant)) === before;
    },
    10_000,
    'Pat’s video to stop',
  );
  await participant.uncheck('#audio-only');
  await participant.waitForSelector(`[data-tile="${leeId}"][data-paused=""]`, { timeout: 10_000 });
  const before = await framesDecoded(participant);
  await waitFor(async () => (await framesDecoded(participant)) > before + 10, 15_000, 'Pat’s video to come back');
});

test('a facilitator suggests audio only: the participant is asked, and one click turns it on', async () => {
  const patId = await participantIdOf(participant);
  await facilitator.click(`[data-tile="${patId}"] button:has-text("Suggest audio only")`);
  await participant.click('#notice button:has-text("Switch to audio only")', { timeout: 10_000 });
  await participant.waitForFunction(
    () => (document.getElementById('audio-only') as HTMLInputElement).checked,
    undefined,
    {
      timeout: 10_000,
    },
  );
  assert.is(await participant.isChecked('#audio-only'), true);
  assert.is(await facilitator.isChecked('#audio-only'), false, 'only the participant’s changed');
});

test.run();
