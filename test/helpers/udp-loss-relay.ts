/**
 * A UDP relay that loses packets on purpose, for tests of media on a lossy link (this kernel has
 * no `netem`). It listens on one address and port and forwards every datagram to a target (the
 * node's WebRTC port), through one upstream socket per client address and port, and the answers
 * back; for the clients `lossy` picks, it drops a set fraction of the packets in each direction.
 *
 * The drops are exact, not a coin tossed per packet: in every block of 100 packets of one client
 * in one direction, exactly `loss × 100` are dropped, at places a seeded generator picks. A run
 * thus loses what it says (5 % is 5 of every 100), at places no test can line up with, and the
 * same seed loses the same packets again.
 *
 * For WebRTC: the node listens on 127.0.0.1:P and announces the address the relay listens on,
 * with the same port; the server sees each page at the relay's upstream socket (a peer-reflexive
 * candidate, which ICE-lite answers as any other).
 */

import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { once } from 'node:events';

export interface UdpAddress {
  address: string;
  port: number;
}

export interface UdpLossRelayOptions {
  listen: UdpAddress;
  target: UdpAddress;
  /** Fraction of packets to drop, 0–1 in steps of 0.01 (default 0). */
  loss?: number;
  /** The clients whose packets are dropped (both directions). Default: every client. */
  lossy?: (client: UdpAddress) => boolean;
  /** Seed of the drop places (default 1). */
  seed?: number;
}

export interface DirectionCounts {
  forwarded: number;
  dropped: number;
}

export interface RelayClient extends UdpAddress {
  lossy: boolean;
  /** From the client to the target. */
  up: DirectionCounts;
  /** From the target to the client. */
  down: DirectionCounts;
}

export interface UdpLossRelay {
  /** Where the relay listens (the port is the one bound, when 0 was asked). */
  address: UdpAddress;
  /** Every client seen so far, with what was forwarded and dropped each way. */
  clients(): RelayClient[];
  /** Changes the fraction dropped for lossy clients, from each one's next block of packets on. */
  setLoss(loss: number): void;
  /** Closes the listening socket and every upstream one. Idempotent. */
  stop(): Promise<void>;
}

const blockSize = 100;

/** mulberry32: a small seeded generator with a full 2³² period, enough to place drops. */
function generator(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

function checkedLoss(loss: number): number {
  if (!(Number.isFinite(loss) && loss >= 0 && loss <= 1)) {
    throw new RangeError(`udp-loss-relay: loss must be a fraction from 0 to 1, not ${loss}`);
  }
  return Math.round(loss * blockSize);
}

/** Which packets of one direction of one client to drop: exactly `drops()` per block, placed at random. */
class DropPattern {
  private readonly random: () => number;
  private block: boolean[] = [];
  private index = blockSize;

  constructor(
    seed: number,
    private readonly drops: () => number,
  ) {
    this.random = generator(seed);
  }

  /** Whether the next packet is dropped. */
  next(): boolean {
    if (this.index === blockSize) {
      this.block = Array.from({ length: blockSize }, (_, i) => i < this.drops());
      // Fisher–Yates: the block's drops at random places.
      for (let i = blockSize - 1; i > 0; i--) {
        const j = Math.floor(this.random() * (i + 1));
        [this.block[i], this.block[j]] = [this.block[j] as boolean, this.block[i] as boolean];
      }
      this.index = 0;
    }
    return this.block[this.index++] as boolean;
  }
}

interface Session {
  client: RelayClient;
  upstream: Socket;
  upDrops: DropPattern;
  downDrops: DropPattern;
}

/** Starts a relay; resolves once it listens. */
export async function startUdpLossRelay(options: UdpLossRelayOptions): Promise<UdpLossRelay> {
  let dropsPerBlock = checkedLoss(options.loss ?? 0);
  const lossy = options.lossy ?? (() => true);
  const seed = options.seed ?? 1;
  const sessions = new Map<string, Session>();
  let stopped = false;

  const listener = createSocket('udp4');
  listener.bind(options.listen.port, options.listen.address);
  await once(listener, 'listening');
  const bound = listener.address();

  const open = (from: RemoteInfo): Session => {
    const client: RelayClient = {
      address: from.address,
      port: from.port,
      lossy: lossy({ address: from.address, port: from.port }),
      up: { forwarded: 0, dropped: 0 },
      down: { forwarded: 0, dropped: 0 },
    };
    const drops = () => (client.lossy ? dropsPerBlock : 0);
    // Each client's directions have their own places (seeded from the relay's seed and its order).
    const n = sessions.size;
    const session: Session = {
      client,
      upstream: createSocket('udp4'),
      upDrops: new DropPattern(seed * 7919 + 2 * n, drops),
      downDrops: new DropPattern(seed * 7919 + 2 * n + 1, drops),
    };
    session.upstream.on('message', (message) => {
      if (stopped) return;
      if (session.downDrops.next()) {
        client.down.dropped++;
        return;
      }
      client.down.forwarded++;
      listener.send(message, client.port, client.address);
    });
    // An ICMP "unreachable" from either side surfaces as an error: a lossy link ignores it.
    session.upstream.on('error', () => {});
    sessions.set(`${from.address}:${from.port}`, session);
    return session;
  };

  listener.on('message', (message, from) => {
    if (stopped) return;
    const session = sessions.get(`${from.address}:${from.port}`) ?? open(from);
    if (session.upDrops.next()) {
      session.client.up.dropped++;
      return;
    }
    session.client.up.forwarded++;
    // The first send binds the upstream socket to a free port.
    session.upstream.send(message, options.target.port, options.target.address);
  });
  listener.on('error', () => {});

  return {
    address: { address: bound.address, port: bound.port },
    clients: () => [...sessions.values()].map((s) => structuredClone(s.client)),
    setLoss(loss: number) {
      dropsPerBlock = checkedLoss(loss);
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      const sockets = [listener, ...[...sessions.values()].map((s) => s.upstream)];
      await Promise.all(sockets.map((socket) => new Promise<void>((resolve) => socket.close(() => resolve()))));
    },
  };
}
