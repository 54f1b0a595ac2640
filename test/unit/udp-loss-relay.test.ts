/**
 * The tests' lossy UDP relay, on loopback: a target that records what reaches it and answers on
 * request, two clients of which only one is lossy, and exact counts in both directions.
 */

import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { once } from 'node:events';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { waitFor } from '../../bench/processes.ts';
import { startUdpLossRelay, type UdpLossRelay } from '../../bench/udp-loss-relay.ts';

interface Endpoint {
  socket: Socket;
  port: number;
  received: { text: string; from: RemoteInfo }[];
}

const sockets: Socket[] = [];

async function endpoint(): Promise<Endpoint> {
  const socket = createSocket('udp4');
  sockets.push(socket);
  const received: Endpoint['received'] = [];
  socket.on('message', (message, from) => received.push({ text: message.toString(), from }));
  socket.bind(0, '127.0.0.1');
  await once(socket, 'listening');
  return { socket, port: socket.address().port, received };
}

/**
 * Sends `count` numbered datagrams from `from` to `port`, 50 at a time, each batch once `done`
 * says all before it were handled (loopback drops a burst larger than the socket buffer).
 */
async function sendPaced(
  from: Socket,
  port: number,
  count: number,
  tag: string,
  done: () => Promise<number>,
): Promise<void> {
  for (let sent = 0; sent < count; ) {
    const batch = Math.min(50, count - sent);
    for (let i = 0; i < batch; i++) from.send(`${tag}-${sent + i}`, port, '127.0.0.1');
    sent += batch;
    await waitFor(async () => (await done()) >= sent, 5_000, `the relay to handle ${sent} of ${tag}`);
  }
}

const clientOf = async (relay: UdpLossRelay, port: number) => {
  const client = (await relay.clients()).find((c) => c.port === port);
  if (!client) throw new Error(`no relay client on port ${port}`);
  return client;
};

test.after(() => {
  for (const socket of sockets) socket.close();
});

test('drops exactly the fraction asked of a lossy client, in both directions; other clients lose nothing', async () => {
  const target = await endpoint();
  const lossyClient = await endpoint();
  const cleanClient = await endpoint();
  const relay = await startUdpLossRelay({
    listen: { address: '127.0.0.1', port: 0 },
    target: { address: '127.0.0.1', port: target.port },
    loss: 0.05,
    lossy: [{ address: '127.0.0.1', port: lossyClient.port }],
    seed: 7,
  });
  try {
    const up = (port: number) => async () => {
      const c = (await relay.clients()).find((x) => x.port === port);
      return c ? c.up.forwarded + c.up.dropped : 0;
    };
    await sendPaced(lossyClient.socket, relay.address.port, 1000, 'lossy', up(lossyClient.port));
    await sendPaced(cleanClient.socket, relay.address.port, 1000, 'clean', up(cleanClient.port));
    await waitFor(() => target.received.length >= 1950, 5_000, 'what was forwarded to reach the target');
    const fromLossy = target.received.filter((m) => m.text.startsWith('lossy-'));
    const fromClean = target.received.filter((m) => m.text.startsWith('clean-'));
    assert.is(fromLossy.length, 950, '5 % of the lossy client’s packets dropped on the way up');
    assert.is(fromClean.length, 1000, 'nothing of the other client’s');
    assert.equal((await clientOf(relay, lossyClient.port)).up, { forwarded: 950, dropped: 50 });
    // Each client reaches the target from an upstream socket of its own.
    const upstreamOfLossy = fromLossy[0]?.from.port as number;
    const upstreamOfClean = fromClean[0]?.from.port as number;
    assert.is.not(upstreamOfLossy, upstreamOfClean);
    assert.ok(fromLossy.every((m) => m.from.port === upstreamOfLossy));
    // Scattered, not every 20th: the drops are at places the seed picks.
    const numbers = new Set(fromLossy.map((m) => Number(m.text.split('-')[1])));
    const dropped = [...Array(1000).keys()].filter((i) => !numbers.has(i));
    const gaps = new Set(dropped.slice(1).map((n, i) => n - (dropped[i] as number)));
    assert.ok(gaps.size > 3, `drops at irregular places: ${dropped.slice(0, 10).join(', ')}…`);

    const down = (port: number) => async () => {
      const c = (await relay.clients()).find((x) => x.port === port);
      return c ? c.down.forwarded + c.down.dropped : 0;
    };
    await sendPaced(target.socket, upstreamOfLossy, 1000, 'answer', down(lossyClient.port));
    await sendPaced(target.socket, upstreamOfClean, 1000, 'answer', down(cleanClient.port));
    await waitFor(
      () => lossyClient.received.length + cleanClient.received.length >= 1950,
      5_000,
      'the answers to reach the clients',
    );
    assert.is(lossyClient.received.length, 950, '5 % of the answers to the lossy client dropped');
    assert.is(cleanClient.received.length, 1000, 'every answer to the other client arrives');
    assert.ok(
      lossyClient.received.every((m) => m.from.port === relay.address.port),
      'answers come from the relay',
    );
    assert.equal((await clientOf(relay, lossyClient.port)).down, { forwarded: 950, dropped: 50 });
    assert.equal(await clientOf(relay, cleanClient.port), {
      address: '127.0.0.1',
      port: cleanClient.port,
      lossy: false,
      up: { forwarded: 1000, dropped: 0 },
      down: { forwarded: 1000, dropped: 0 },
    });
  } finally {
    await relay.stop();
  }
});

test('the same seed drops the same packets; setLoss changes the fraction from the next block', async () => {
  const runOnce = async (changeAfter: number | undefined) => {
    const target = await endpoint();
    const client = await endpoint();
    const relay = await startUdpLossRelay({
      listen: { address: '127.0.0.1', port: 0 },
      target: { address: '127.0.0.1', port: target.port },
      loss: 0.1,
      seed: 3,
    });
    const handled = async () => {
      const c = (await relay.clients())[0];
      return c ? c.up.forwarded + c.up.dropped : 0;
    };
    try {
      await sendPaced(client.socket, relay.address.port, changeAfter ?? 500, 'p', handled);
      if (changeAfter !== undefined) {
        await relay.setLoss(0);
        await sendPaced(client.socket, relay.address.port, 500, 'q', async () => (await handled()) - changeAfter);
      }
      await waitFor(
        async () => (await relay.clients())[0]?.up.forwarded === target.received.length,
        5_000,
        'the target',
      );
      return { texts: target.received.map((m) => m.text), up: (await relay.clients())[0]?.up };
    } finally {
      await relay.stop();
    }
  };
  const first = await runOnce(undefined);
  const second = await runOnce(undefined);
  assert.equal(first.texts, second.texts, 'the same places');
  assert.equal(first.up, { forwarded: 450, dropped: 50 });
  const changed = await runOnce(300);
  assert.equal(changed.up, { forwarded: 770, dropped: 30 }, '10 % of the first 300, none of the next 500');
});

test('a loss outside 0–1 is refused; stop frees the port and is idempotent', async () => {
  const target = await endpoint();
  const refused = await startUdpLossRelay({
    listen: { address: '127.0.0.1', port: 0 },
    target: { address: '127.0.0.1', port: target.port },
    loss: 1.5,
  }).catch((err: Error) => err);
  assert.instance(refused, RangeError);
  const relay = await startUdpLossRelay({
    listen: { address: '127.0.0.1', port: 0 },
    target: { address: '127.0.0.1', port: target.port },
  });
  for (const loss of [-0.1, Number.NaN]) {
    assert.instance(await relay.setLoss(loss).catch((err: Error) => err), RangeError);
  }
  await relay.stop();
  await relay.stop();
  const again = await startUdpLossRelay({ listen: relay.address, target: { address: '127.0.0.1', port: target.port } });
  await again.stop();
});

test.run();
