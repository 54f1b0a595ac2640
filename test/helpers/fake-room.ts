/**
 * A `Room` over a fake media layer, for unit tests of the room's parts: a worker pool whose
 * routers, transports, producers and consumers are plain objects with mediasoup's shape (ids,
 * `observer` close events, pause and resume), no worker process, no sockets. What the room tells
 * people, evicts and audits is collected in order.
 */
import { EventEmitter } from 'node:events';
import pino from 'pino';
import type { Capabilities, Role } from '../../client-sdk/src/protocol/index.ts';
import { defaultCapabilities, type VerifiedIdentity } from '../../server/auth/tokens.ts';
import type { WorkerPool } from '../../server/media/worker-pool.ts';
import type { Member } from '../../server/rooms/member.ts';
import { type AuditRecord, type Notification, Room, type RoomSettings } from '../../server/rooms/room.ts';
import type { RoomStateSnapshot } from '../../server/rooms/room-state.ts';
import type { RoomDefinition } from '../../server/rooms/room-store.ts';

let nextId = 0;
const id = (kind: string) => `${kind}-${++nextId}`;

function closable<T extends object>(fields: T, onClose: () => void = () => {}) {
  const observer = new EventEmitter();
  const object = Object.assign(new EventEmitter(), fields, {
    id: id('object'),
    closed: false,
    observer,
    close() {
      if (object.closed) return;
      object.closed = true;
      onClose();
      observer.emit('close');
    },
  });
  return object;
}

function fakeProducer(options: { kind: string; paused?: boolean; appData: unknown }) {
  const producer = closable({
    kind: options.kind,
    paused: options.paused ?? false,
    appData: options.appData,
    rtpParameters: { encodings: [{}] },
    async pause() {
      producer.paused = true;
    },
    async resume() {
      producer.paused = false;
    },
  });
  return producer;
}

function fakeTransport(appData: Record<string, unknown>) {
  const children: { close(): void }[] = [];
  const transport = closable(
    {
      appData,
      iceParameters: {},
      iceCandidates: [],
      dtlsParameters: {},
      async connect() {},
      async enableTraceEvent() {},
      async setMaxOutgoingBitrate() {},
      async produce(options: { kind: string; paused?: boolean; appData: unknown }) {
        const producer = fakeProducer(options);
        children.push(producer);
        return producer;
      },
      async consume(options: { producerId: string; paused?: boolean }) {
        const consumer = closable({
          producerId: options.producerId,
          kind: 'audio',
          type: 'simple',
          rtpParameters: {},
          paused: options.paused ?? false,
          producerPaused: false,
          async pause() {
            consumer.paused = true;
          },
          async resume() {
            consumer.paused = false;
          },
          async setPriority() {},
        });
        children.push(consumer);
        return consumer;
      },
    },
    () => {
      for (const child of children) child.close();
    },
  );
  return transport;
}

function fakeRouter() {
  const transports: { close(): void }[] = [];
  return closable(
    {
      rtpCapabilities: { codecs: [] },
      async createActiveSpeakerObserver() {
        return Object.assign(new EventEmitter(), { async addProducer() {} });
      },
      async createWebRtcTransport(options: { appData: Record<string, unknown> }) {
        const transport = fakeTransport(options.appData);
        transports.push(transport);
        return transport;
      },
      canConsume: () => true,
      async pipeToRouter() {},
    },
    () => {
      for (const transport of transports) transport.close();
    },
  );
}

/** A pool of one fake worker. */
export function fakePool(): WorkerPool {
  const worker = { index: 0, worker: {}, webRtcServer: {}, load: 0, routers: 0 };
  return {
    workers: [worker],
    whenAlive: async () => {},
    createRouter: async () => ({ router: fakeRouter(), worker }),
  } as unknown as WorkerPool;
}

export function identity(participantId: string, role: Role, capabilities?: Partial<Capabilities>): VerifiedIdentity {
  return {
    participantId,
    name: `Name of ${participantId}`,
    roomId: 'room-1',
    role,
    capabilities: { ...defaultCapabilities(role), ...capabilities },
    expiresAtMs: Date.now() + 3_600_000,
    tokenHash: 'hash',
    jti: `jti-${participantId}`,
  };
}

export function definition(overrides: Partial<RoomDefinition> = {}): RoomDefinition {
  return {
    id: 'room-1',
    kind: 'group',
    title: 'Group',
    capacity: 16,
    roster: [],
    waitingRoom: false,
    observersVisible: false,
    privateChat: false,
    keepChat: false,
    origin: 'admin',
    createdAt: new Date(0).toISOString(),
    ...overrides,
  };
}

const opened: Room[] = [];

/** Closes every room `fakeRoom` opened (their grace and empty-room timers with them). */
export function closeFakeRooms(): void {
  for (const room of opened.splice(0)) room.close();
}

export interface FakeRoom {
  room: Room;
  /** Every notification, in order, with whom it was for. */
  told: { to: string; name: Notification['name']; args: Notification['args'] }[];
  evicted: string[];
  audited: AuditRecord[];
  revoked: string[];
  /** Names told to `participantId`, in order. */
  namesFor(participantId: string): string[];
  /** Joins `participantId` with `role` through a connection of its own; returns the member. */
  join(participantId: string, role: Role, capabilities?: Partial<Capabilities>): Promise<Member>;
}

/** A room over the fake media layer; with `saved`, the session taken back from a stored state. */
export async function fakeRoom(
  overrides: Partial<RoomDefinition> = {},
  settings: Partial<RoomSettings> = {},
  saved?: RoomStateSnapshot,
) {
  const audited: AuditRecord[] = [];
  const revoked: string[] = [];
  const room = await Room.open(
    definition(overrides),
    {
      pool: fakePool(),
      logger: pino({ level: 'silent' }),
      reconnectGraceMs: 60_000,
      emptyTimeoutMs: 60_000,
      maxConsumersPerRouter: 500,
      audioOnlyBelowBps: 120_000,
      turn: { urls: [], ttlS: 3_600 },
      audit: (record) => audited.push(record),
      revoke: async (who) => {
        revoked.push(who.participantId);
      },
      chatArchive: { keep() {}, forget() {} },
      attendance: () => {},
      liveAttendance: async () => ({ asOf: 0, participants: [] }),
      ...settings,
    } as RoomSettings,
    saved,
  );
  opened.push(room);
  const told: FakeRoom['told'] = [];
  const evicted: string[] = [];
  room.on('notify', (to, { name, args }) => told.push({ to, name, args }));
  room.on('evict', (participantId) => evicted.push(participantId));
  const fake: FakeRoom = {
    room,
    told,
    evicted,
    audited,
    revoked,
    namesFor: (participantId) => told.filter((t) => t.to === participantId).map((t) => t.name),
    async join(participantId, role, capabilities) {
      await room.join(identity(participantId, role, capabilities), `conn-${participantId}`);
      return room.caller(participantId, `conn-${participantId}`, 'joined');
    },
  };
  return fake;
}

/** Publishes `source` for `member` (a send transport first), as signaling would. */
export async function publish(member: Member, source: 'microphone' | 'camera' | 'screen'): Promise<string> {
  const transport = await member.media.createTransport('send');
  const kind = source === 'microphone' ? 'audio' : 'video';
  const { producerId } = await member.media.produce({ transportId: transport.id, kind, source, rtpParameters: {} });
  return producerId;
}
