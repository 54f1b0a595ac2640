/**
 * Whoever stops being a member of an E2EE room cannot read what follows: removed, moved to the
 * waiting room, leaving, or dropped past the reconnection grace. For each, a page (Chromium, the
 * demo app, the SDK's test-only hook keeping its epoch secrets) is taken out while it keeps its
 * old key material; the key leader starts a new epoch; the facilitator's microphone, tapped at the
 * SFU, is read with the old secrets: frames of the old epochs open, frames of the new one do not.
 * The pages that stay never fail to decrypt a frame across the rotation (no gap), and keep
 * decoding. A page reloaded comes back with a new key pair; media set up again after a media
 * worker died goes on with the same keys.
 */
import type { Page } from 'playwright-core';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mediasoupWorkerPids } from '../../bench/proc-stats.ts';
import { waitFor } from '../../bench/processes.ts';
import { e2eeClearBytes } from '../../client-sdk/src/protocol/index.ts';
import { browserFor } from '../helpers/browser.ts';
import {
  agreedEpoch,
  e2eeOf,
  e2eeStats,
  frameEpoch,
  openE2eePage,
  openedWith,
  participantIdOf,
  secretsOf,
} from '../helpers/e2ee-pages.ts';
import { type MediaTap, openMediaTap } from '../helpers/media-tap.ts';
import { receivingFrom } from '../helpers/page-media.ts';
import { sessionNode } from '../helpers/session-node.ts';

const browser = browserFor(test);
const haven = sessionNode(test, {
  env: {
    HAVEN_MEDIA_PLAIN_TRANSPORTS: 'true',
    HAVEN_ROOMS_RECONNECT_GRACE_S: '3',
    HAVEN_E2EE_KEY_ACK_TIMEOUT_MS: '10000',
  },
});
const { node } = haven;
let room = '';
let tap: MediaTap | undefined;
let anaMicrophone = '';
const pages: Record<string, Page> = {};

type Moderation = { remove(id: string): Promise<void>; moveToWaitingRoom(id: string): Promise<void> };
type DemoWindow = { havenDemo: { client: { moderation: Moderation; leave(): Promise<void> } } };

async function open(name: string, role: string): Promise<Page> {
  const page = await openE2eePage(browser.context, node.url, room, name, role);
  pages[name] = page;
  return page;
}

const staying = () => [pages.Ana as Page, pages.Ben as Page];

test.before(async () => {
  room = await haven.newRoom({ title: 'E2EE rotation', waitingRoom: false, e2ee: true });
});
test.after(() => tap?.close());

test('the facilitator and a participant share an epoch; the tap receives the microphone, unreadable', async () => {
  await open('Ana', 'facilitator');
  await open('Ben', 'participant');
  tap = await openMediaTap(node.url, room);
  const anaId = await participantIdOf(pages.Ana as Page);
  anaMicrophone =
    tap.session.participants.find((p) => p.id === anaId)?.tracks.find((t) => t.source === 'microphone')?.producerId ??
    '';
  assert.ok(anaMicrophone, "Ana's microphone is published");
  await tap.consume(anaMicrophone);
  await agreedEpoch(staying(), 3, 'Ana, Ben and the tap in one epoch');
  for (const name of ['Ana', 'Ben']) await receivingFrom(pages[name] as Page, 1, `${name} decodes the other`);
  const packets = await waitFor(
    () => {
      const list = tap?.packets(anaMicrophone) ?? [];
      return list.length >= 20 ? list : undefined;
    },
    10_000,
    'packets at the tap',
  );
  assert.ok(
    packets.every((p) => frameEpoch(p.payload) !== undefined),
    'every tapped frame carries its epoch',
  );
});

/**
 * Takes `name` (a participant page that joined and shares the epoch) out of the room with `act`,
 * and checks that nothing sent after the rotation opens with the secrets it kept.
 */
async function rotatedOut(name: string, act: (page: Page, id: string) => Promise<void>): Promise<void> {
  const earlier = (await e2eeOf(pages.Ana as Page))?.epoch ?? 0;
  const page = await open(name, 'participant');
  const id = await participantIdOf(page);
  const joined = await agreedEpoch([...staying(), page], 4, `${name} in the epoch`);
  await waitFor(async () => (await secretsOf(page))[joined.epoch], 10_000, `${name}'s hook to hold the secret`);
  // A newcomer gets a new epoch: what was said before they came stays unreadable to them.
  const given = Object.keys(await secretsOf(page)).map(Number);
  assert.ok(
    given.length > 0 && given.every((epoch) => epoch > earlier),
    `${name} got only epochs after ${earlier}: ${given}`,
  );
  await receivingFrom(pages.Ana as Page, 2, `Ana decodes Ben and ${name}`);
  const before = await Promise.all(staying().map(e2eeStats));
  const kept = await secretsOf(page);
  const keptEpochs = Object.keys(kept).map(Number);

  await act(page, id);
  const rotated = await agreedEpoch(staying(), 3, `a new epoch without ${name}`, Math.max(...keptEpochs));
  const fresh = await waitFor(
    () => {
      const list = (tap?.packets(anaMicrophone) ?? []).filter((p) => (frameEpoch(p.payload) ?? 0) >= rotated.epoch);
      return list.length >= 25 ? list : undefined;
    },
    10_000,
    'frames of the new epoch at the tap',
  );
  for (const packet of fresh) {
    for (const secret of Object.values(kept)) {
      const opened = await openedWith(new Uint8Array(packet.payload), e2eeClearBytes.audio, secret);
      assert.is(opened, null, `a frame of epoch ${rotated.epoch} opened with a key ${name} kept`);
    }
  }
  // The check can fail: what was sent while the page was a member opens with its secret.
  const old = (tap?.packets(anaMicrophone) ?? []).filter((p) => frameEpoch(p.payload) === joined.epoch);
  assert.ok(old.length > 0, `frames of epoch ${joined.epoch} were tapped`);
  const secret = kept[joined.epoch] as string;
  assert.ok(
    await openedWith(new Uint8Array(old[0]?.payload ?? []), e2eeClearBytes.audio, secret),
    'the old epoch opens',
  );

  // Those who stay decoded every frame across the rotation, and go on decoding.
  await waitFor(
    async () => {
      const after = await Promise.all(staying().map(e2eeStats));
      return after.every((s, i) => s.framesDecrypted > (before[i]?.framesDecrypted ?? 0) + 100);
    },
    10_000,
    'the others to go on decrypting',
  );
  const after = await Promise.all(staying().map(e2eeStats));
  assert.equal(
    after.map((s) => s.framesFailed),
    before.map((s) => s.framesFailed),
    'no frame failed to decrypt at the pages that stayed',
  );
}

test('removed: nothing said after the removal opens with the removed page’s keys', () =>
  rotatedOut('Cai', async (_page, id) => {
    await (pages.Ana as Page).evaluate(
      (target) => (window as unknown as DemoWindow).havenDemo.client.moderation.remove(target),
      id,
    );
  }));

test('moved to the waiting room: no key while waiting, and nothing after opens with the old ones', async () => {
  let moved: Page | undefined;
  await rotatedOut('Dan', async (page, id) => {
    moved = page;
    await (pages.Ana as Page).evaluate(
      (target) => (window as unknown as DemoWindow).havenDemo.client.moderation.moveToWaitingRoom(target),
      id,
    );
  });
  assert.ok(moved);
  const view = await e2eeOf(moved);
  assert.is.not(view?.state, 'active', 'not active in the waiting room');
  const epochs = Object.keys(await secretsOf(moved)).map(Number);
  const now = (await e2eeOf(pages.Ana as Page))?.epoch ?? 0;
  assert.ok(
    epochs.every((e) => e < now),
    `no secret of the current epoch in the waiting room (${epochs} < ${now})`,
  );
  await moved.close();
});

test('left: nothing after the departure opens with the keys the page kept', () =>
  rotatedOut('Eli', async (page) => {
    await page.evaluate(() => (window as unknown as DemoWindow).havenDemo.client.leave());
  }));

test('dropped past the reconnection grace: nothing after opens with the keys it kept', () =>
  rotatedOut('Fay', async (page) => {
    // The page goes away without leaving: the server keeps the place for the grace (3 s), then it goes.
    await page.close();
  }));

test('a page reloaded within the grace comes back with a new key pair, and decodes again', async () => {
  const ben = pages.Ben as Page;
  const before = await agreedEpoch(staying(), 3, 'Ana and Ben in one epoch');
  await ben.reload();
  await ben.waitForFunction(
    () => (window as unknown as { havenDemo: { timings: { joinedMs?: number } } }).havenDemo.timings.joinedMs,
    undefined,
    { timeout: 20_000 },
  );
  const after = await agreedEpoch(staying(), 3, 'a new epoch for the reloaded page', before.epoch);
  assert.is.not(after.securityCode, before.securityCode, 'a new key pair: a new security code');
  await receivingFrom(ben, 1, 'Ben, reloaded, to decode Ana again');
});

test('a media worker killed: the pages set their media up again and decrypt on, with the same keys', async () => {
  const before = await agreedEpoch(staying(), 3, 'Ana and Ben in one epoch');
  const decrypted = await Promise.all(staying().map(e2eeStats));
  const workers = mediasoupWorkerPids(node.child.pid as number);
  assert.ok(workers.length > 0, 'the media workers');
  for (const pid of workers) process.kill(pid, 'SIGKILL');
  // The room's media moves to a new worker (mediaReset): new transports, the same keys.
  await waitFor(
    async () =>
      (await Promise.all(staying().map(e2eeStats))).every(
        (s, i) => s.framesDecrypted > (decrypted[i]?.framesDecrypted ?? 0) + 200,
      ),
    30_000,
    'both pages to decrypt again on the new worker',
  );
  for (const page of staying()) await receivingFrom(page, 1, 'each to decode the other again');
  const after = await Promise.all(staying().map(e2eeStats));
  assert.equal(
    after.map((s) => s.framesFailed),
    decrypted.map((s) => s.framesFailed),
    'no frame failed to decrypt',
  );
  const views = await Promise.all(staying().map(e2eeOf));
  assert.ok(
    views.every((v) => v?.state === 'active' && (v.epoch ?? 0) >= before.epoch),
    JSON.stringify(views),
  );
});

test.run();
