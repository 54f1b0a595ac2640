/**
 * What the SDK's unit tests build their fake servers from: a bare socket.io server standing in
 * for Haven, an admission's session state, and a mediasoup-client producer that only records what
 * the SDK asks of it.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { getSupportedRtpCapabilities } from 'mediasoup';
import { Server, type Socket } from 'socket.io';
import type { SessionState, TrackInfo } from '../../client-sdk/src/protocol/index.ts';

/** A request as the fake server got it: on which connection (1, 2, …), its name and payload. */
export interface Received {
  connection: number;
  name: string;
  payload: unknown;
}

/**
 * Answers a request (the data of an `ok` answer), and may notify first on `socket`; throwing
 * `{ code, message }` answers a refusal.
 */
export type Reply = (payload: never, socket: Socket, connection: number) => unknown;

/**
 * A socket.io server that answers every request with `replies[name]` (or an empty `ok`) and
 * records them; `request(name, connection)` resolves once that request came on that connection.
 */
export async function fakeHaven(replies: Record<string, Reply>) {
  const http = createServer();
  const io = new Server(http);
  const sockets: Socket[] = [];
  const received: Received[] = [];
  const waiters: { name: string; connection: number; resolve: (payload: unknown) => void }[] = [];
  io.on('connection', (socket) => {
    sockets.push(socket);
    const connection = sockets.length;
    socket.onAny((name: string, payload: unknown, ack: (answer: unknown) => void) => {
      received.push({ connection, name, payload });
      try {
        ack({ ok: true, data: replies[name]?.(payload as never, socket, connection) ?? {} });
      } catch (error) {
        const { code, message } = error as { code: string; message: string };
        ack({ ok: false, error: { code, message } });
      }
      for (const waiter of waiters.filter((w) => w.name === name && w.connection === connection)) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(payload);
      }
    });
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(http.address() as AddressInfo).port}`,
    received,
    /** The latest connection's socket. */
    socket: () => sockets[sockets.length - 1] as Socket,
    /** What came on `connection`, by name. */
    names: (connection: number) => received.filter((r) => r.connection === connection).map((r) => r.name),
    request(name: string, connection: number): Promise<unknown> {
      const done = received.find((r) => r.name === name && r.connection === connection);
      if (done) return Promise.resolve(done.payload);
      return new Promise((resolve) => waiters.push({ name, connection, resolve }));
    },
    close: () =>
      new Promise<void>((resolve) => {
        io.close();
        http.close(() => resolve());
      }),
  };
}

/** Router capabilities a Device loads: mediasoup's codecs, with payload types as a router gives them. */
export const routerRtpCapabilities = {
  codecs: getSupportedRtpCapabilities().codecs?.map((codec, index) => ({
    ...codec,
    preferredPayloadType: 100 + index,
  })),
  headerExtensions: [],
};

/** An admission of Pat (`p-1`) into a group with a facilitator, Dr. Lee (`f-1`). */
export function sessionStateFixture(
  routerRtpCapabilities: unknown,
  overrides: Partial<SessionState> = {},
): SessionState {
  return {
    room: { id: 'grp-1', kind: 'group', title: 'Tuesday group', e2ee: false, shareConnectionQuality: false },
    self: { id: 'p-1', name: 'Pat', role: 'participant', tracks: [] },
    capabilities: { publishAudio: true, publishVideo: true, publishScreen: false, chat: true },
    participants: [{ id: 'f-1', name: 'Dr. Lee', role: 'facilitator', tracks: [] }],
    routerRtpCapabilities,
    iceServers: [],
    resumed: false,
    reconnectGraceMs: 30_000,
    audioMode: 'open',
    locked: false,
    spotlight: null,
    hands: [],
    waiting: [],
    connectionQuality: [],
    audioOnly: { enabled: false, reason: null },
    breakout: { running: false, group: null, endsAt: null },
    breakouts: null,
    ...overrides,
  };
}

/** A producer with mediasoup-client's shape (pause, resume, close), with `extra` fields of the test's. */
export function fakeProducerFixture<T extends object>(id: string, extra: T = {} as T) {
  return {
    id,
    closed: false,
    paused: false,
    pause() {
      this.paused = true;
    },
    resume() {
      this.paused = false;
    },
    close() {
      this.closed = true;
    },
    on() {},
    ...extra,
  };
}

/** What the server says of `participantId`'s camera, producer `cam-<participantId>`. */
export const cameraTrackFixture = (participantId: string, paused = false): TrackInfo => ({
  producerId: `cam-${participantId}`,
  participantId,
  kind: 'video',
  source: 'camera',
  paused,
});

/** A consumer of `producerId` with mediasoup-client's shape (id `cons-<producerId>`), which records its close. */
export function fakeConsumerFixture(producerId: string) {
  return {
    id: `cons-${producerId}`,
    closed: false,
    track: {},
    close() {
      this.closed = true;
    },
  };
}
