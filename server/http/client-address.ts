/**
 * A request's client address, as far as the node can trust it. The peer of the TCP connection is
 * the client, unless that peer is one of the configured trusted proxies (`http.trustedProxies`,
 * e.g. the nginx in front): then the client is the right-most `X-Forwarded-For` entry that is not
 * itself a trusted proxy. Entries to the left of it were written by the client and prove nothing,
 * so a spoofed chain never wins; a client connecting directly gains nothing by sending the header,
 * since its peer is not trusted. Addresses are personal data (PHI next to a session): never log them.
 */
import { BlockList, isIP } from 'node:net';

/** Whether an address belongs to a trusted proxy. */
export interface TrustedProxies {
  has(address: string): boolean;
}

/** A trusted proxy entry read: one address (a /32 or /128) or a CIDR range. */
export interface ProxyRange {
  address: string;
  prefix: number;
  family: 'ipv4' | 'ipv6';
}

/**
 * `address` in one canonical form, or `undefined` when it is not an IP address: IPv6 compressed
 * and lower case, without brackets or zone (`%eth0`); an IPv4-mapped IPv6 address (`::ffff:1.2.3.4`,
 * what a dual-stack socket reports for an IPv4 peer) as the IPv4 address it maps.
 */
export function canonicalAddress(address: string): string | undefined {
  let text = address.trim();
  if (text.startsWith('[') && text.endsWith(']')) text = text.slice(1, -1);
  const zone = text.indexOf('%');
  if (zone > 0 && text.includes(':')) text = text.slice(0, zone);
  const family = isIP(text);
  if (family === 4) return text;
  if (family !== 6) return undefined;
  // The WHATWG URL parser writes IPv6 in its canonical (RFC 5952) form.
  const compressed = new URL(`http://[${text}]`).hostname.slice(1, -1);
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(compressed);
  if (!mapped) return compressed;
  const high = Number.parseInt(mapped[1] as string, 16);
  const low = Number.parseInt(mapped[2] as string, 16);
  return [high >> 8, high & 255, low >> 8, low & 255].join('.');
}

/** One `http.trustedProxies` entry (`10.0.0.5`, `10.0.0.0/24`, `fd00::/8`), or `undefined` if malformed. */
export function parseProxyRange(entry: string): ProxyRange | undefined {
  const [text = '', prefixText, ...rest] = entry.trim().split('/');
  if (rest.length > 0 || text.startsWith('[')) return undefined;
  const address = canonicalAddress(text);
  if (address === undefined) return undefined;
  const family = isIP(address) === 4 ? 'ipv4' : 'ipv6';
  const bits = family === 'ipv4' ? 32 : 128;
  if (prefixText === undefined) return { address, prefix: bits, family };
  if (!/^\d{1,3}$/.test(prefixText)) return undefined;
  const prefix = Number(prefixText);
  // `::ffff:10.0.0.0/104` is written as the IPv4 range it maps.
  const mappedPrefix = family === 'ipv4' && isIP(text) === 6 ? prefix - 96 : prefix;
  if (mappedPrefix < 0 || mappedPrefix > bits) return undefined;
  return { address, prefix: mappedPrefix, family };
}

/** The trusted proxies of `entries` (checked by the configuration already; a malformed one throws). */
export function trustedProxies(entries: readonly string[]): TrustedProxies {
  const list = new BlockList();
  for (const entry of entries) {
    const range = parseProxyRange(entry);
    if (!range) throw new TypeError('trusted proxy: expected an IP address or a CIDR range');
    list.addSubnet(range.address, range.prefix, range.family);
  }
  return {
    has(address) {
      const canonical = canonicalAddress(address);
      if (canonical === undefined) return false;
      return list.check(canonical, isIP(canonical) === 4 ? 'ipv4' : 'ipv6');
    },
  };
}

/** No proxy is trusted: every client is its TCP peer (the default). */
export const noTrustedProxies: TrustedProxies = { has: () => false };

/**
 * The client address of a request from `peer` (the socket's remote address) carrying
 * `forwardedFor` (the `X-Forwarded-For` header: one string, or several headers).
 *
 * - An untrusted peer is the client, whatever the header says.
 * - A trusted peer: the header is read from the right (the entry the proxy itself appended first),
 *   skipping trusted proxies; the first entry that is not one is the client.
 * - A malformed entry met on the way (not an IP address: a host name, `unknown`, an address with a
 *   port): the hop that handed it over, the last trusted proxy, is taken as the client. A trusted
 *   proxy never writes one, so this is a misconfiguration; counting such clients together under
 *   the proxy's address keeps made-up strings from becoming addresses of their own.
 * - Every entry a trusted proxy (or no header): the left-most trusted hop.
 *
 * `undefined` only when the peer itself is unknown (the socket already closed).
 */
export function clientAddress(
  peer: string | undefined,
  forwardedFor: string | readonly string[] | undefined,
  trusted: TrustedProxies,
): string | undefined {
  const peerAddress = peer === undefined ? undefined : canonicalAddress(peer);
  if (peerAddress === undefined || !trusted.has(peerAddress)) return peerAddress;
  const header = typeof forwardedFor === 'string' ? forwardedFor : (forwardedFor ?? []).join(',');
  const hops = header
    .split(',')
    .map((hop) => hop.trim())
    .filter(Boolean);
  let client = peerAddress;
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = canonicalAddress(hops[i] as string);
    if (hop === undefined) return client;
    client = hop;
    if (!trusted.has(hop)) return client;
  }
  return client;
}

/**
 * What clients are counted under: an IPv4 address, or an IPv6 address's /64 network (one
 * subscriber's home or phone gets a whole /64, and could otherwise change address at will).
 */
export function addressGroup(address: string): string {
  if (isIP(address) !== 6) return address;
  const [head = '', tail] = address.split('::');
  const left = head ? head.split(':') : [];
  const right = tail === undefined ? [] : tail ? tail.split(':') : [];
  const groups = [...left, ...Array(8 - left.length - right.length).fill('0'), ...right];
  return `${groups.slice(0, 4).join(':')}::/64`;
}
