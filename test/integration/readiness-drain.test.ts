/**
 * A node that starts to drain (SIGTERM, or `stop()`) is no longer ready: a load balancer polling
 * `/readyz` stops sending clients to it while its rooms move to other nodes. The node runs in
 * this process so that the test reads its readiness at the moment the drain begins.
 */
import { rmSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { HavenNode } from '../../server/node.ts';
import { startInProcessNode } from '../helpers/in-process-node.ts';

let node: HavenNode | undefined;
let dataDir: string | undefined;

test.after(async () => {
  await node?.stop();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

test('ready while serving; from the moment it drains, not ready and saying so', async () => {
  ({ node, dataDir } = await startInProcessNode('readiness-drain'));
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
