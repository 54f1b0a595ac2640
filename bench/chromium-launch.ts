/**
 * Launches Debian's Chromium (playwright-core) with a fresh profile, camera and microphone
 * allowed, optionally inside a network namespace: for the network bench, whose patient's browser
 * must see only the namespace's network, and for the tests (test/helpers/browser.ts).
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BrowserContext, chromium } from 'playwright-core';
import { chromiumPath, webrtcChromiumArgs } from './chromium.ts';

export interface LaunchedChromium {
  context: BrowserContext;
  /** Closes the browser and removes its profile. */
  close(): Promise<void>;
}

export interface ChromiumOptions {
  /** Run Chromium inside this network namespace (`ip netns exec`). */
  netns?: string;
  /** Accept self-signed certificates: pages' (playwright), and those of `turns:` servers (Chromium's flag). */
  ignoreHTTPSErrors?: boolean;
  /** Origins served over plain HTTP that pages may use the camera and microphone on, as on `https://`. */
  secureOrigins?: string[];
}

export async function launchChromium(options: ChromiumOptions = {}): Promise<LaunchedChromium> {
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
