/**
 * Headless Chromium (Debian's package) driven by playwright-core, with a fake camera and
 * microphone, for end-to-end tests of what a browser does.
 */

import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BrowserContext, chromium } from 'playwright-core';
import type { Test } from 'uvu';
import { chromiumPath, recordPeerConnections, webrtcChromiumArgs } from '../../bench/chromium.ts';
import { lateBound } from './hooks.ts';

export { chromiumPath, recordPeerConnections };

export interface TestBrowser {
  context: BrowserContext;
  close(): Promise<void>;
}

export interface BrowserOptions {
  /** Run Chromium inside this network namespace (`ip netns exec`): it sees only that namespace's network. */
  netns?: string;
  /** Accept the test's self-signed certificates: pages' (playwright), and those of `turns:` servers (Chromium's flag). */
  ignoreHTTPSErrors?: boolean;
  /** Origins served over plain HTTP that pages may use the camera and microphone on, as on `https://`. */
  secureOrigins?: string[];
}

/** A fresh profile (its own user data folder) with camera and microphone allowed. */
export async function launchBrowser(options: BrowserOptions = {}): Promise<TestBrowser> {
  const userDataDir = mkdtempSync(join(tmpdir(), 'haven-chromium-'));
  let executablePath = chromiumPath;
  if (options.netns) {
    // playwright drives Chromium over a pipe, which crosses the namespace; the network does not.
    executablePath = join(userDataDir, 'chromium-in-netns');
    writeFileSync(executablePath, `#!/bin/sh\nexec ip netns exec ${options.netns} ${chromiumPath} "$@"\n`);
    chmodSync(executablePath, 0o755);
  }
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    ignoreHTTPSErrors: options.ignoreHTTPSErrors ?? false,
    permissions: ['camera', 'microphone'],
    args: [
      ...webrtcChromiumArgs,
      ...(options.ignoreHTTPSErrors ? ['--ignore-certificate-errors'] : []),
      ...(options.secureOrigins?.length
        ? [`--unsafely-treat-insecure-origin-as-secure=${options.secureOrigins.join(',')}`]
        : []),
    ],
  });
  return {
    context,
    async close() {
      await context.close().catch(() => {});
      rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}

/**
 * The browser of a test file: launched by uvu's `before` (recording its pages' peer connections)
 * and closed by its `after`.
 */
export function browserFor(test: Test): TestBrowser {
  const browser = lateBound<TestBrowser>('the browser');
  test.before(async () => {
    browser.set(await launchBrowser());
    await browser.handle.context.addInitScript(recordPeerConnections);
  });
  test.after(() => browser.get()?.close());
  return browser.handle;
}
