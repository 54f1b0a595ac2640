/**
 * What a test reads of the SDK's end-to-end encryption in a demo page: its state, epoch and
 * security code, its frame counters, and (through the SDK's test-only hook) the epoch secrets the
 * page was given; and, in Node, whether a tapped frame opens with a secret.
 */
import type { BrowserContext, Page } from 'playwright-core';
import { waitFor } from '../../bench/processes.ts';
import { decryptFrame, deriveFrameKey, frameEpoch } from '../../client-sdk/src/e2ee/frame-crypto.ts';
import type { E2eeStats } from '../../client-sdk/src/index.ts';

export interface E2eeView {
  state: string;
  epoch: number | null;
  securityCode: string | null;
  memberCount: number;
}

type E2eeWindow = {
  havenDemo: {
    client?: {
      e2ee: E2eeView & { getStats(): Promise<E2eeStats> };
      localParticipant?: { id: string };
    };
  };
  __havenE2eeTest?: { secrets: Record<string, string>; passThroughReceive?: boolean };
};

/**
 * An init script for a page that the SDK's test-only hook records epoch secrets in; with
 * `passThroughReceive`, its receivers get frames as they arrived (a receiver without the key).
 */
export const e2eeTestHook = (passThroughReceive: boolean) => {
  (window as unknown as E2eeWindow).__havenE2eeTest = { secrets: {}, passThroughReceive };
};

/**
 * A demo page that joins `room` on the node at `url` as `name` (the demo mints its token), with the
 * SDK's test-only hook installed (and `init` run before the page's own scripts); resolves once
 * the page has joined.
 */
export async function openE2eePage(
  context: BrowserContext,
  url: string,
  room: string,
  name: string,
  role: string,
  init?: () => void,
): Promise<Page> {
  const page = await context.newPage();
  page.on('pageerror', (err) => console.log(`    [${name}] page error: ${err.message}`));
  await page.addInitScript(e2eeTestHook, false);
  if (init) await page.addInitScript(init);
  await page.goto(`${url}/demo?room=${room}&name=${name}&role=${role}&auto=1`);
  await page.waitForFunction(
    () => (window as unknown as { havenDemo: { timings: { joinedMs?: number } } }).havenDemo.timings.joinedMs,
    undefined,
    { timeout: 20_000 },
  );
  return page;
}

export const e2eeOf = (page: Page): Promise<E2eeView | undefined> =>
  page.evaluate(() => {
    const e2ee = (window as unknown as E2eeWindow).havenDemo.client?.e2ee;
    return (
      e2ee && {
        state: e2ee.state,
        epoch: e2ee.epoch,
        securityCode: e2ee.securityCode,
        memberCount: e2ee.memberCount,
      }
    );
  });

export const e2eeStats = (page: Page): Promise<E2eeStats> =>
  page.evaluate(() => {
    const client = (window as unknown as E2eeWindow).havenDemo.client;
    if (!client) throw new Error('not joined');
    return client.e2ee.getStats();
  });

/** The epoch secrets the page was given (epoch → base64), through the SDK's test-only hook. */
export const secretsOf = (page: Page): Promise<Record<number, string>> =>
  page.evaluate(() => ({ ...(window as unknown as E2eeWindow).__havenE2eeTest?.secrets }));

export const participantIdOf = (page: Page): Promise<string> =>
  page.evaluate(() => {
    const id = (window as unknown as E2eeWindow).havenDemo.client?.localParticipant?.id;
    if (!id) throw new Error('not joined');
    return id;
  });

/**
 * Waits until every page sends and receives with one epoch (above `above`), `members` hold the
 * key and all show one security code; resolves with that epoch and code.
 */
export async function agreedEpoch(
  pages: Page[],
  members: number,
  what: string,
  above = 0,
): Promise<{ epoch: number; securityCode: string }> {
  return waitFor(
    async () => {
      const views = await Promise.all(pages.map(e2eeOf));
      const first = views[0];
      if (!first?.epoch || first.epoch <= above || !first.securityCode) return undefined;
      const agreed = views.every(
        (v) =>
          v?.state === 'active' &&
          v.epoch === first.epoch &&
          v.securityCode === first.securityCode &&
          v.memberCount === members,
      );
      return agreed ? { epoch: first.epoch, securityCode: first.securityCode } : undefined;
    },
    20_000,
    what,
  );
}

/** `frame` (as tapped at the SFU) decrypted with the epoch secret `secretBase64`; null if it does not open. */
export async function openedWith(
  frame: Uint8Array,
  clearBytes: number,
  secretBase64: string,
): Promise<Uint8Array | null> {
  const key = await deriveFrameKey(new Uint8Array(Buffer.from(secretBase64, 'base64')));
  return decryptFrame(key, frame, clearBytes);
}

export { frameEpoch };
