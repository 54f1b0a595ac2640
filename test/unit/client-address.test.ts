/** The client address of a request: the TCP peer, or what a trusted proxy says it forwarded for. */
import { Writable } from 'node:stream';
import fc from 'fast-check';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fatalRejoinCodes } from '../../client-sdk/src/protocol/index.ts';
import {
  addressGroup,
  canonicalAddress,
  clientAddress,
  noTrustedProxies,
  parseProxyRange,
  trustedProxies,
} from '../../server/http/client-address.ts';
import { createLogger } from '../../server/logger.ts';
import { AddressCap } from '../../server/signaling/address-cap.ts';

const proxy = trustedProxies(['127.0.0.1', '10.0.0.0/8', 'fd00::/8']);

test('an untrusted peer is the client, whatever X-Forwarded-For says', () => {
  assert.is(clientAddress('203.0.113.7', '198.51.100.1', proxy), '203.0.113.7');
  assert.is(clientAddress('203.0.113.7', undefined, proxy), '203.0.113.7');
  assert.is(clientAddress('127.0.0.1', '198.51.100.1', noTrustedProxies), '127.0.0.1');
});

test('a trusted peer: the right-most entry that is not a trusted proxy', () => {
  assert.is(clientAddress('127.0.0.1', '198.51.100.1', proxy), '198.51.100.1');
  // The client wrote the left-most entries itself; the proxy appended the real one.
  assert.is(clientAddress('127.0.0.1', '1.1.1.1, 2.2.2.2, 198.51.100.1', proxy), '198.51.100.1');
  // Two proxies in a row (a load balancer in 10/8, then the local nginx).
  assert.is(clientAddress('127.0.0.1', '1.1.1.1, 198.51.100.1, 10.1.2.3', proxy), '198.51.100.1');
  // Several headers count as one list, in order.
  assert.is(clientAddress('127.0.0.1', ['1.1.1.1', '198.51.100.1, 10.1.2.3'], proxy), '198.51.100.1');
});

test('a trusted peer without the header, or with only proxies in it', () => {
  assert.is(clientAddress('127.0.0.1', undefined, proxy), '127.0.0.1');
  assert.is(clientAddress('127.0.0.1', '', proxy), '127.0.0.1');
  assert.is(clientAddress('127.0.0.1', ' , ', proxy), '127.0.0.1');
  assert.is(clientAddress('127.0.0.1', '10.9.9.9, 10.0.0.1', proxy), '10.9.9.9');
});

test('a malformed entry: the trusted hop that handed it over is the client', () => {
  assert.is(clientAddress('127.0.0.1', 'unknown', proxy), '127.0.0.1');
  assert.is(clientAddress('127.0.0.1', '198.51.100.1, not-an-ip, 10.0.0.1', proxy), '10.0.0.1');
  assert.is(clientAddress('127.0.0.1', '198.51.100.1:4711', proxy), '127.0.0.1');
  assert.is(clientAddress('127.0.0.1', '999.1.1.1', proxy), '127.0.0.1');
  // Left of the client, garbage is never even read.
  assert.is(clientAddress('127.0.0.1', 'garbage, 198.51.100.1', proxy), '198.51.100.1');
});

test('IPv6: canonical forms, brackets, zones, and IPv4-mapped peers', () => {
  const spellings = {
    '2001:DB8:0:0:0:0:0:1': '2001:db8::1',
    '[2001:db8::1]': '2001:db8::1',
    'fe80::1%eth0': 'fe80::1',
    '::ffff:127.0.0.1': '127.0.0.1',
    '::ffff:7f00:2': '127.0.0.2',
    'example.org': undefined,
  };
  for (const [written, canonical] of Object.entries(spellings))
    assert.is(canonicalAddress(written), canonical, written);
  // A dual-stack listener reports an IPv4 peer as IPv4-mapped: it still matches the IPv4 entry.
  assert.is(clientAddress('::ffff:127.0.0.1', '198.51.100.1', proxy), '198.51.100.1');
  assert.is(clientAddress('fd12::5', '2001:db8::7', proxy), '2001:db8::7');
  assert.is(clientAddress('127.0.0.1', '[2001:DB8::7], fd00::1', proxy), '2001:db8::7');
  assert.is(clientAddress('2001:db8::9', '198.51.100.1', proxy), '2001:db8::9');
  assert.is(clientAddress(undefined, '198.51.100.1', proxy), undefined);
});

test('trusted proxy entries: addresses and CIDR ranges of both families; malformed ones refused', () => {
  assert.equal(parseProxyRange('10.0.0.0/8'), { address: '10.0.0.0', prefix: 8, family: 'ipv4' });
  assert.equal(parseProxyRange('192.0.2.1'), { address: '192.0.2.1', prefix: 32, family: 'ipv4' });
  assert.equal(parseProxyRange('FD00::/8'), { address: 'fd00::', prefix: 8, family: 'ipv6' });
  assert.equal(parseProxyRange('::1'), { address: '::1', prefix: 128, family: 'ipv6' });
  assert.equal(parseProxyRange('::ffff:10.0.0.0/104'), { address: '10.0.0.0', prefix: 8, family: 'ipv4' });
  for (const bad of ['10.0.0.0/33', 'fd00::/129', '10.0.0.0/', '10.0.0.0/8/8', 'nginx', '10.0.0.0/x', '[::1]', ''])
    assert.is(parseProxyRange(bad), undefined, bad);
  assert.throws(() => trustedProxies(['nginx']), /IP address or a CIDR/);
  const ranges = trustedProxies(['192.0.2.0/30', '2001:db8:1::/48']);
  assert.ok(ranges.has('192.0.2.3') && !ranges.has('192.0.2.4'));
  assert.ok(ranges.has('2001:db8:1:ffff::1') && !ranges.has('2001:db8:2::1'));
  assert.ok(!ranges.has('not an address'));
});

test('clients are counted per IPv4 address, or per IPv6 /64', () => {
  const groups: [string, string][] = [
    ['198.51.100.1', '198.51.100.1'],
    ['2001:db8:1:2:aaaa::1', '2001:db8:1:2::/64'],
    ['2001:db8:1:2::ffff', '2001:db8:1:2::/64'],
    ['2001:db8::1', '2001:db8:0:0::/64'],
    ['::1', '0:0:0:0::/64'],
  ];
  for (const [address, group] of groups) assert.is(addressGroup(address), group, address);
});

const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((p) => p.join('.'));
const ipv6 = fc
  .array(fc.nat(0xffff), { minLength: 8, maxLength: 8 })
  .map((g) => g.map((n) => n.toString(16)).join(':'));
const anyHop = fc.oneof(ipv4, ipv6, fc.constantFrom('unknown', 'evil.example', '', '1.2.3.4:80', '::ffff:1.2.3.4'));

test('property: whatever a client puts in front, the address the proxy appended wins', () => {
  fc.assert(
    fc.property(fc.array(anyHop, { maxLength: 6 }), ipv4, (spoofed, real) => {
      // 198.18/15 is never trusted here; the client's own entries can be anything, trusted proxies included.
      const client = `198.18.${real.split('.').slice(2).join('.')}`;
      const header = [...spoofed, client].join(', ');
      assert.is(clientAddress('127.0.0.1', header, proxy), client);
    }),
  );
});

test('property: a peer that is not a trusted proxy is the client whatever it sends', () => {
  fc.assert(
    fc.property(fc.oneof(ipv4, ipv6), fc.array(anyHop, { maxLength: 6 }), (peer, hops) => {
      fc.pre(!proxy.has(peer));
      assert.is(clientAddress(peer, hops.join(','), proxy), canonicalAddress(peer));
    }),
  );
});

test('property: IPv6 addresses are grouped by their first four groups whatever their spelling', () => {
  fc.assert(
    fc.property(ipv6, (address) => {
      const canonical = canonicalAddress(address) as string;
      const spelledOut = address.split(':').map((g) => g.padStart(4, '0').toUpperCase());
      assert.is(addressGroup(canonicalAddress(spelledOut.join(':')) as string), addressGroup(canonical));
      const first = canonicalAddress(`${address.split(':').slice(0, 4).join(':')}::`) as string;
      assert.is(addressGroup(canonical), addressGroup(first));
    }),
  );
});

test('TOO_MANY_CONNECTIONS is a refusal the SDK’s reconnection retries', () => {
  assert.not.ok(fatalRejoinCodes.includes('TOO_MANY_CONNECTIONS'));
});

test('the per-address cap: places taken, refused at the cap, given back once; the log names no address', () => {
  let logged = '';
  const sink = new Writable({
    write(chunk, _encoding, done) {
      logged += String(chunk);
      done();
    },
  });
  const log = createLogger({ env: 'production', log: { level: 'info', format: 'json' } }, sink);
  const cap = new AddressCap({ max: 2, trustedProxies: noTrustedProxies }, log);
  const a1 = cap.take('198.51.100.1');
  const a2 = cap.take('198.51.100.1');
  assert.ok(a1 && a2);
  assert.is(cap.take('198.51.100.1'), undefined, 'the third is refused');
  assert.is(cap.take('198.51.100.1'), undefined, 'and the fourth');
  assert.ok(cap.take('198.51.100.2'), 'another address is unaffected');
  assert.ok(logged.includes('per-address cap reached'), logged);
  assert.is(logged.trim().split('\n').length, 1, 'one line for a burst of refusals');
  assert.not.ok(logged.includes('198.51.100'), 'no address in the log');
  const a = '198.51.100.1';
  a1();
  a1();
  assert.is(cap.openFor(a), 1, 'giving a place back twice frees one');
  assert.ok(cap.take(a));
  assert.is(cap.take(a), undefined);
});

test.run();
