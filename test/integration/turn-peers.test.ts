/**
 * What the relay refuses, with coturn started from deploy/coturn/turnserver.conf and credentials
 * from the node's own code (server/media/turn.ts): a TURN client (coturn's `turnutils_uclient`)
 * reaches Haven's media address through it and nothing else. Loopback, private, carrier-grade NAT
 * and link-local peers (a cloud's metadata address among them) are refused with 403, TCP relays
 * with 442, allocations past a participant's quota with 486; expired credentials or those of another
 * secret get no allocation at all. The refused peers are never sent a packet: coturn checks the
 * peer before it relays.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { waitFor } from '../../bench/processes.ts';
import type { IceServer } from '../../client-sdk/src/protocol/index.ts';
import { turnIceServers } from '../../server/media/turn.ts';
import { type Coturn, startCoturn } from '../helpers/coturn.ts';
import { freePort } from '../helpers/ports.ts';

const secret = `turn-peers-secret-${process.pid}-0123456789`;
/** Where the test's stand-in for Haven's media listens: the config's one `allowed-peer-ip`. */
const mediaAddress = '127.0.0.1';
let turn: Coturn | undefined;
let echo: ChildProcess | undefined;
let echoPort = 0;

test.before(async () => {
  turn = await startCoturn({ listenAddress: '127.0.0.1', secret, allowedPeer: mediaAddress });
  echoPort = await freePort();
  // coturn's own test peer: echoes what the relay sends it, as Haven's media port answers.
  echo = spawn('turnutils_peer', ['-L', mediaAddress, '-p', String(echoPort)], { stdio: 'ignore' });
  await waitFor(() => echoes(mediaAddress, echoPort), 10_000, 'the echo peer to answer');
});

/** Whether a UDP datagram sent to `address:port` comes back within a second. */
function echoes(address: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createSocket('udp4');
    const done = (answered: boolean) => {
      clearTimeout(timer);
      socket.close();
      resolve(answered);
    };
    const timer = setTimeout(() => done(false), 1_000);
    socket.once('message', () => done(true));
    socket.send('ping', port, address);
  });
}

test.after(async () => {
  if (echo && echo.exitCode === null) {
    const exited = once(echo, 'exit');
    echo.kill();
    await exited;
  }
  await turn?.stop();
});

let participants = 0;
/**
 * Credentials as the node issues them, each time for another participant: a refused relay leaves
 * its allocation behind until it times out, and coturn counts allocations per participant.
 */
const credentials = (options: { secret?: string; issuedMsAgo?: number } = {}): IceServer =>
  turnIceServers(
    { urls: turn?.urls ?? [], secret: options.secret ?? secret, ttlS: 600 },
    `p-turn-peers-${++participants}`,
    Date.now() - (options.issuedMsAgo ?? 0),
  )[0] as IceServer;

/** Runs TURN clients through coturn to `peer` (5 UDP messages each, no RTCP); resolves once they are done. */
function relayTo(peer: string, server: IceServer, flags: string[] = []): Promise<{ ok: boolean; output: string }> {
  const args = [
    '-u',
    String(server.username),
    '-w',
    String(server.credential),
    '-p',
    String(turn?.port),
    ...flags,
    '-e',
    peer,
    '-r',
    String(echoPort),
    '-n',
    '5',
    '-c',
    '127.0.0.1',
  ];
  return new Promise((resolve) => {
    execFile('turnutils_uclient', args, { timeout: 30_000 }, (error, stdout, stderr) =>
      resolve({ ok: !error, output: `${stdout}${stderr}` }),
    );
  });
}

test('the relay reaches Haven’s media address, and every message comes back', async () => {
  const { ok, output } = await relayTo(mediaAddress, credentials());
  assert.ok(ok, output);
  assert.match(output, /Total lost packets 0 \(0\.0+%\)/);
});

test('loopback, private, carrier-grade NAT and link-local peers are refused (403 Forbidden IP)', async () => {
  for (const peer of ['127.0.0.2', '10.1.2.3', '100.64.0.1', '169.254.169.254', '172.16.0.1', '192.168.1.1']) {
    const { ok, output } = await relayTo(peer, credentials());
    assert.not.ok(ok, `${peer} relayed`);
    assert.match(output, /error 403 \(Forbidden IP\)/, peer);
  }
});

test('one participant’s allocations are capped (user-quota, 486); another participant is unaffected', async () => {
  const crowded = await relayTo(mediaAddress, credentials(), ['-m', '7']);
  assert.not.ok(crowded.ok);
  assert.match(crowded.output, /error 486 \(Allocation Quota Reached\)/);
  const other = await relayTo(mediaAddress, credentials());
  assert.ok(other.ok, other.output);
});

test('a TCP relay is refused (442)', async () => {
  const { ok, output } = await relayTo(mediaAddress, credentials(), ['-T']);
  assert.not.ok(ok);
  assert.match(output, /error 442/);
});

test('expired credentials, and those of another secret, get no allocation', async () => {
  for (const [what, server] of [
    ['expired an hour ago', credentials({ issuedMsAgo: 3_600_000 + 600_000 })],
    ['another secret', credentials({ secret: 'another-secret-0123456789abcdef' })],
  ] as const) {
    const { ok, output } = await relayTo(mediaAddress, server);
    assert.not.ok(ok, what);
    assert.match(output, /Cannot complete Allocation/, what);
  }
});

test.run();
