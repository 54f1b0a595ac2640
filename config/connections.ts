/**
 * How clients reach the node: its HTTP listener (directly, or behind a TLS proxy such as nginx)
 * and the limits signaling puts on each connection and on each client address.
 */
import { z } from 'zod';
import { parseProxyRange } from '../server/http/client-address.ts';
import { list, port, positiveInt } from './primitives.ts';

export const httpSection = z
  .strictObject({
    /** Address the HTTP API and signaling listen on. Default `127.0.0.1`. */
    host: z
      .string()
      .min(1)
      .default('127.0.0.1')
      .describe('Address the HTTP API and signaling listen on (`0.0.0.0` for every interface).'),
    /** TCP port of the HTTP API and signaling; 0 picks a free one. Default 7880. */
    port: port.default(7880).describe('TCP port of the HTTP API and signaling; `0` picks a free port.'),
    /** Proxies (addresses or CIDR ranges) whose `X-Forwarded-For` names the client. Default: none. */
    trustedProxies: list(
      z
        .string()
        .refine((entry) => parseProxyRange(entry) !== undefined, 'expected an IP address or a CIDR range (10.0.0.0/8)'),
    )
      .default([])
      .describe(
        'Proxies in front of the node (IPv4/IPv6 addresses or CIDR ranges, comma-separated in the environment) whose `X-Forwarded-For` names the client; from any other peer the header is ignored.',
      ),
  })
  .prefault({});

export const signalingSection = z
  .strictObject({
    /** Requests per second each connection may make (token bucket). Default 20. */
    rateLimit: positiveInt.default(20).describe('Signaling requests per second allowed to one connection.'),
    /**
     * Requests a connection may make in a burst above the rate. Default 200: joining a room of
     * 16 asks for 30 consumers and resumes them at once, about 70 requests (measured by the bench).
     */
    rateBurst: positiveInt
      .default(200)
      .describe('Signaling requests one connection may make in a burst (joining a big room makes many at once).'),
    /**
     * Signaling connections open at once from one client address (an IPv6 /64). Default 50: a
     * clinic's whole group behind one NAT fits; one client flooding the node does not.
     */
    maxConnectionsPerAddress: positiveInt
      .default(50)
      .describe(
        'Signaling connections open at once from one client address (IPv6: one /64; behind a proxy, see `http.trustedProxies`); more are refused `TOO_MANY_CONNECTIONS`.',
      ),
  })
  .prefault({});
