/**
 * A node that starts to drain (SIGTERM, or `stop()`) is no longer ready: a load balancer polling
 * `/readyz` stops sending clients to it while its rooms move to other nodes. The node runs in
 * this process so that the test reads its readiness at the moment the drain begins.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadConfig } from '../../config/load.ts';
import { createLogger } from '../../server/logger.ts';
import { HavenNode } from '../../server/node.ts';

const dataDir = mkdtempSync(join(tmpdir(), 'haven-readiness-drain-'));
let node: HavenNode | undefined;

test.after(async () => {
  await node?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

test('ready while serving; from the moment it drains, not ready and saying so', async () => {
  const config = loadConfig({
    HAVEN_HTTP_PORT: '0',
    HAVEN_DATA_DIR: dataDir,
    HAVEN_MEDIA_WORKERS: '1',
    HAVEN_MEDIA_WEBRTC_PORT: '0',
    HAVEN_LOG_LEVEL: 'warn',
  });
  node = await HavenNode.start(config, createLogger(config));
  const res = await fetch(`${node.url}/readyz`);
  assert.is(res.status, 200);
  assert.equal(await res.json(), { status: 'ready', ready: true, redis: true, workers: 1, draining: false });

  const stopped = node.stop();
  const draining = await node.readiness();
  assert.is(draining.draining, true);
  assert.is(draining.ready, false, 'a draining node is not ready, whatever else holds');
  await stopped;
});

test.run();
