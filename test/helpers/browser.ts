/**
 * Headless Chromium (Debian's package) driven by playwright-core, with a fake camera and
 * microphone, for end-to-end tests of what a browser does.
 */

import type { Test } from 'uvu';
import { chromiumPath, recordPeerConnections } from '../../bench/chromium.ts';
import { type ChromiumOptions, type LaunchedChromium, launchChromium } from '../../bench/chromium-launch.ts';
import { lateBound } from './hooks.ts';

export { chromiumPath, recordPeerConnections };

export type TestBrowser = LaunchedChromium;
export type BrowserOptions = ChromiumOptions;

/** A fresh profile (its own user data folder) with camera and microphone allowed. */
export const launchBrowser = (options: BrowserOptions = {}): Promise<TestBrowser> => launchChromium(options);

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
