/**
 * A Haven node in the test's own process (no in-process BullMQ processors), for tests that act
 * on it at an exact moment: one media worker, any free ports, a temporary data folder.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../config/load.ts';
import { createLogger } from '../../server/logger.ts';
import { HavenNode } from '../../server/node.ts';

/** Starts the node with `env` on top of the defaults above; `stop()` stops it and removes its folder. */
export async function startInProcessNode(name: string, env: Record<string, string> = {}) {
  const dataDir = mkdtempSync(join(tmpdir(), `haven-${name}-`));
  const config = loadConfig({
    HAVEN_HTTP_PORT: '0',
    HAVEN_DATA_DIR: dataDir,
    HAVEN_MEDIA_WORKERS: '1',
    HAVEN_MEDIA_WEBRTC_PORT: '0',
    HAVEN_LOG_LEVEL: 'warn',
    ...env,
  });
  try {
    const node = await HavenNode.start(config, createLogger(config));
    return { node, dataDir };
  } catch (err) {
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
}
