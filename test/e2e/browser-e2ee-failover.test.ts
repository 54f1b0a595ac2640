/**
 * An E2EE room survives the death of its node: two node processes share one Redis; two Chromium
 * pages join through the node that does not serve the room (as through a load balancer) and are
 * redirected to the one that does; it is killed (`kill -9`). Public keys are never stored, so the
 * node that takes the room over knows none until the pages rejoin: they come back, the key leader
 * starts an epoch above every earlier one, and both pages decode each other again. (Whoever
 * rejoins first leads for a moment and may draw an epoch the server then refuses or that the
 * facilitator's replaces: both pages must end on the same secret.)
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { NodeProcess } from '../../bench/node-process.ts';
import { waitFor } from '../../bench/processes.ts';
import { browserFor } from '../helpers/browser.ts';
import { agreedEpoch, e2eeStats, openE2eePage } from '../helpers/e2ee-pages.ts';
import { receivingFrom } from '../helpers/page-media.ts';
import { sessionNode } from '../helpers/session-node.ts';
import { connect, token } from '../helpers/signaling-client.ts';

const browser = browserFor(test);
const haven = sessionNode(test, { redis: true, start: false, env: { HAVEN_CLUSTER_NODE_TIMEOUT_S: '5' } });
const nodes: NodeProcess[] = [];

test.before(async () => {
  for (const id of ['e1', 'e2']) nodes.push(await haven.startNode({ HAVEN_NODE_ID: id }));
});

const open = (url: string, room: string, name: string, role: string) =>
  openE2eePage(browser.context, url, room, name, role);

/** The node that serves `room` once someone connects (the first connection places it). */
async function ownerOf(room: string): Promise<NodeProcess> {
  const first = nodes[0] as NodeProcess;
  const url = await connect(first.url, token(room, 'placer', 'observer')).then(
    (socket) => {
      socket.close();
      return first.url;
    },
    (err: { data?: { code?: string; url?: string } }) => {
      if (err.data?.code !== 'REDIRECT' || !err.data.url) throw err;
      return err.data.url;
    },
  );
  const owner = nodes.find((n) => n.url === url);
  if (!owner) throw new Error(`no node at ${url}`);
  return owner;
}

test('kill -9 of the node serving an E2EE room: the pages rejoin, a new epoch, decoding again', async () => {
  const room = await haven.newRoom({ title: 'E2EE failover', waitingRoom: false, e2ee: true }, nodes[0]?.url);
  const owner = await ownerOf(room);
  const entry = nodes.find((n) => n !== owner) as NodeProcess;
  const pages = [await open(entry.url, room, 'Ana', 'facilitator'), await open(entry.url, room, 'Ben', 'participant')];
  const before = await agreedEpoch(pages, 2, 'Ana and Ben in one epoch');
  for (const page of pages) await receivingFrom(page, 1, 'each to decode the other');

  owner.kill();
  const after = await agreedEpoch(pages, 2, 'one epoch on the node that took the room over', before.epoch);
  assert.ok(after.epoch > before.epoch, `the epoch goes on rising (${before.epoch} → ${after.epoch})`);
  assert.is(after.securityCode, before.securityCode, 'the same members with the same keys: the same code');
  // Frames keep being decrypted (on the new node's transports: the old ones went with the node).
  const decrypted = await Promise.all(pages.map(e2eeStats));
  await waitFor(
    async () =>
      (await Promise.all(pages.map(e2eeStats))).every(
        (s, i) => s.framesDecrypted > (decrypted[i]?.framesDecrypted ?? 0) + 100,
      ),
    20_000,
    'both pages to go on decrypting',
  );
  for (const page of pages) await receivingFrom(page, 1, 'each to decode the other after the failover');
});

test.run();
