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
import { isMainThread, type MessagePort, parentPort, Worker, workerData } from 'node:worker_threads';

export interface UdpAddress {
  address: string;
  port: number;
}

/** Clients the relay drops packets of: those that match every field given of one entry. */
export type ClientMatch = Partial<UdpAddress>;

export interface UdpLossRelayOptions {
  listen: UdpAddress;
  target: UdpAddress;
  /** Fraction of packets to drop, 0–1 in steps of 0.01 (default 0). */
  loss?: number;
  /** The clients whose packets are dropped (both directions). Default: every client. */
  lossy?: ClientMatch[];
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
  clients(): Promise<RelayClient[]>;
  /** Changes the fraction dropped for lossy clients, from each one's next block of packets on. */
  setLoss(loss: number): Promise<void>;
  /** Closes the listening socket and every upstream one, and ends the relay's thread. Idempotent. */
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

type Ask = { type: 'clients' } | { type: 'setLoss'; loss: number } | { type: 'stop' };
type Request = Ask & { id: number };
type Reply =
  | { type: 'listening'; address: UdpAddress }
  | { type: 'failed'; message: string }
  | { type: 'reply'; id: number; clients?: RelayClient[] };

const matches = (client: UdpAddress, lossy: ClientMatch[] | undefined) =>
  lossy === undefined ||
  lossy.some(
    (m) =>
      (m.address === undefined || m.address === client.address) && (m.port === undefined || m.port === client.port),
  );

/** The relay itself, in its thread: answers the requests of `startUdpLossRelay` on `port`. */
async function serve(options: UdpLossRelayOptions, port: MessagePort): Promise<void> {
  let dropsPerBlock = checkedLoss(options.loss ?? 0);
  const seed = options.seed ?? 1;
  const sessions = new Map<string, Session>();
  let stopped = false;

  const listener = createSocket('udp4');
  try {
    listener.bind(options.listen.port, options.listen.address);
    await once(listener, 'listening');
  } catch (err) {
    port.postMessage({ type: 'failed', message: (err as Error).message } satisfies Reply);
    return;
  }
  const bound = listener.address();
  // Only a failed bind matters (above); a send to a gone client is what a lossy link ignores.
  listener.on('error', () => {});

  const open = (from: RemoteInfo): Session => {
    const client: RelayClient = {
      address: from.address,
      port: from.port,
      lossy: matches(from, options.lossy),
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

  port.on('message', async (request: Request) => {
    if (request.type === 'clients') {
      const clients = [...sessions.values()].map((s) => structuredClone(s.client));
      port.postMessage({ type: 'reply', id: request.id, clients } satisfies Reply);
      return;
    }
    if (request.type === 'setLoss') {
      dropsPerBlock = checkedLoss(request.loss);
    } else {
      stopped = true;
      const sockets = [listener, ...[...sessions.values()].map((s) => s.upstream)];
      await Promise.all(sockets.map((socket) => new Promise<void>((resolve) => socket.close(() => resolve()))));
    }
    port.postMessage({ type: 'reply', id: request.id } satisfies Reply);
  });
  port.postMessage({ type: 'listening', address: { address: bound.address, port: bound.port } } satisfies Reply);
}

// In the relay's own thread (started below): serve.
if (!isMainThread && (workerData as { udpLossRelay?: UdpLossRelayOptions } | null)?.udpLossRelay) {
  const data = workerData as { udpLossRelay: UdpLossRelayOptions };
  void serve(data.udpLossRelay, parentPort as MessagePort);
}

/**
 * Starts a relay in a thread of its own (so that a test's busy moments, such as reading stats
 * from several pages, never hold packets back); resolves once it listens.
 */
export async function startUdpLossRelay(options: UdpLossRelayOptions): Promise<UdpLossRelay> {
  checkedLoss(options.loss ?? 0);
  // The thread loads this module through tsx, as the test's own thread does.
  const tsx = import.meta.resolve('tsx/esm/api');
  const self = import.meta.url;
  const worker = new Worker(
    `import(${JSON.stringify(tsx)}).then(({ register }) => { register(); return import(${JSON.stringify(self)}); })`,
    { eval: true, workerData: { udpLossRelay: options } },
  );
  const pending = new Map<number, (reply: Reply & { type: 'reply' }) => void>();
  let nextId = 0;
  let stopped: Promise<void> | undefined;
  const address = await new Promise<UdpAddress>((resolve, reject) => {
    worker.on('error', reject);
    worker.on('message', (reply: Reply) => {
      if (reply.type === 'listening') resolve(reply.address);
      else if (reply.type === 'failed') reject(new Error(`udp-loss-relay: ${reply.message}`));
      else pending.get(reply.id)?.(reply);
    });
  }).catch(async (err) => {
    await worker.terminate();
    throw err;
  });
  const ask = (request: Ask) =>
    new Promise<Reply & { type: 'reply' }>((resolve) => {
      const id = nextId++;
      pending.set(id, (reply) => {
        pending.delete(id);
        resolve(reply);
      });
      worker.postMessage({ ...request, id });
    });
  return {
    address,
    clients: async () => (await ask({ type: 'clients' })).clients ?? [],
    async setLoss(loss: number) {
      checkedLoss(loss);
      await ask({ type: 'setLoss', loss });
    },
    stop() {
      stopped ??= ask({ type: 'stop' }).then(async () => {
        await worker.terminate();
      });
      return stopped;
    },
  };
}
