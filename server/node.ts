/**
 * A Haven node: configuration → Redis (given or embedded) → media worker pool → HTTP server with
 * socket.io attached. `start()` brings it up in that order; `stop()` takes it down in reverse
 * and leaves no child process behind.
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import type { Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { Server as SocketServer } from 'socket.io';
import { type Config, isDemoEnabled, isRoomAutoCreateEnabled } from '../config/schema.ts';
import {
  AttendanceQueue,
  attendanceResultKey,
  participantSessions,
  startAttendanceWorker,
} from '../workers/attendance.ts';
import { RetentionQueue, startRetentionWorker } from '../workers/retention.ts';
import {
  checkpointEvent,
  endpointSummaries,
  listDeliveries,
  startWebhookWorker,
  type WebhookEventInput,
  type WebhookEventType,
  WebhookQueue,
} from '../workers/webhooks.ts';
import { liveAttendanceReader } from './attendance/live.ts';
import { type AttendanceEventType, AttendanceRecorder } from './attendance/recorder.ts';
import { AuditLog } from './audit/audit-log.ts';
import { auditKeysOf } from './audit/keys.ts';
import { RevocationStore, TokenVerifier } from './auth/tokens.ts';
import { Cluster } from './cluster/cluster.ts';
import { DataDirLock } from './data-dir-lock.ts';
import { answerClientError, createHttpApp, type Readiness } from './http/app.ts';
import { createDemoHandler } from './http/demo.ts';
import type { Logger } from './logger.ts';
import { WorkerPool } from './media/worker-pool.ts';
import { type RedisConnection, redisConnectionOf, redisOptions } from './redis/connection.ts';
import { EmbeddedRedis } from './redis/embedded-redis.ts';
import { ChatArchive } from './rooms/chat-archive.ts';
import { RoomManager } from './rooms/room-manager.ts';
import { type Fence, RoomStateStore } from './rooms/room-state.ts';
import { RoomStore } from './rooms/room-store.ts';
import { maxFrameBytes } from './signaling/guard.ts';
import { attachSignaling, type HavenSocketServer, type SignalingHandle } from './signaling/signaling.ts';

const redisPingTimeoutMs = 1_000;
const backgroundCloseTimeoutMs = 2_000;
/** A lease taken for a connection whose room never opened here is given up after this. */
const unusedLeaseMs = 30_000;

export class HavenNode {
  readonly config: Config;
  readonly logger: Logger;
  readonly redis: Redis;
  readonly pool: WorkerPool;
  readonly http: HttpServer;
  readonly io: HavenSocketServer;
  readonly rooms: RoomManager;
  readonly revocations: RevocationStore;
  /** The HS256 secret tokens are verified with (random per start in development when unset). */
  readonly authSecret: string | undefined;
  readonly attendance: AttendanceRecorder;
  /** This node among the nodes sharing the Redis: heartbeats, room leases, placement. */
  readonly cluster: Cluster;
  #signaling: SignalingHandle | undefined;
  #leaseSweep: NodeJS.Timeout | undefined;
  /** BullMQ workers and queues, closed before Redis. */
  readonly #background: { close(): Promise<void> }[];
  readonly #embeddedRedis: EmbeddedRedis | undefined;
  /** Held while the node runs: two nodes on one data folder would share its Redis and spill file. */
  readonly #dataDirLock: DataDirLock;
  #stopping: Promise<void> | undefined;

  private constructor(parts: {
    config: Config;
    logger: Logger;
    redis: Redis;
    embeddedRedis: EmbeddedRedis | undefined;
    dataDirLock: DataDirLock;
    pool: WorkerPool;
    http: HttpServer;
    io: HavenSocketServer;
    rooms: RoomManager;
    revocations: RevocationStore;
    authSecret: string | undefined;
    attendance: AttendanceRecorder;
    cluster: Cluster;
    background: { close(): Promise<void> }[];
  }) {
    this.config = parts.config;
    this.logger = parts.logger;
    this.redis = parts.redis;
    this.#embeddedRedis = parts.embeddedRedis;
    this.#dataDirLock = parts.dataDirLock;
    this.pool = parts.pool;
    this.http = parts.http;
    this.io = parts.io;
    this.rooms = parts.rooms;
    this.revocations = parts.revocations;
    this.authSecret = parts.authSecret;
    this.attendance = parts.attendance;
    this.cluster = parts.cluster;
    this.#background = parts.background;
  }

  static async start(config: Config, logger: Logger): Promise<HavenNode> {
    const dataDir = resolve(config.dataDir);
    const dataDirLock = DataDirLock.acquire(dataDir, 'haven.lock', 'two Haven nodes');
    let embeddedRedis: EmbeddedRedis | undefined;
    let redis: Redis | undefined;
    let pool: WorkerPool | undefined;
    let attendance: AttendanceRecorder | undefined;
    let attendanceQueue: AttendanceQueue | undefined;
    let attendanceWorker: Worker | undefined;
    let webhookQueue: WebhookQueue | undefined;
    let webhookWorker: Worker | undefined;
    let retentionQueue: RetentionQueue | undefined;
    let retentionWorker: Worker | undefined;
    try {
      let redisConnection = redisConnectionOf(config.redis);
      if (!redisConnection) {
        embeddedRedis = await EmbeddedRedis.start({
          dataDir: join(dataDir, 'redis'),
          serverBin: config.redis.serverBin,
          logger,
        });
        redisConnection = { url: embeddedRedis.url };
      }
      redis = await connectRedis(redisConnection, logger);
      pool = await WorkerPool.create({
        size: config.media.workers,
        logLevel: config.media.logLevel,
        rtcMinPort: config.media.rtcMinPort,
        rtcMaxPort: config.media.rtcMaxPort,
        webRtc: {
          listenIp: config.media.listenIp,
          announcedIp: config.media.announcedIp,
          port: config.media.webRtcPort,
        },
        logger,
      });
      const authSecret = config.auth.secret ?? (config.auth.publicKeyFile ? undefined : developmentSecret(logger));
      const auditKeys = auditKeysOf(config, logger);
      const revocations = new RevocationStore(redis);
      const verifier = TokenVerifier.create(
        {
          issuer: config.auth.issuer,
          audience: config.auth.audience,
          secret: authSecret,
          publicKeyPem: config.auth.publicKeyFile ? readFileSync(config.auth.publicKeyFile, 'utf8') : undefined,
          maxTokenLifetimeS: config.auth.maxTokenLifetimeS,
          clockSkewS: config.auth.clockSkewS,
        },
        revocations,
        logger,
      );
      const store = new RoomStore(redis);
      const reconnectGraceMs = config.rooms.reconnectGraceS * 1000;
      attendanceQueue = new AttendanceQueue(redisConnection, config.attendance.intervalS * 1000);
      await attendanceQueue.scheduleWeeklyCheck();
      webhookQueue = new WebhookQueue(redisConnection, redis, config.webhooks);
      const hooks = webhookQueue;
      const emit = (type: WebhookEventType, input: WebhookEventInput) =>
        hooks.emit(type, input).catch((err: Error) => {
          logger.error({ room: input.room, type, err: { message: err.message } }, 'webhook not queued');
        });
      const workerSettings = { stalledMs: config.workers.stalledS * 1000 };
      retentionQueue = new RetentionQueue(redisConnection, config.retention);
      await retentionQueue.schedule();
      if (config.workers.inProcess) {
        attendanceWorker = startAttendanceWorker(
          redisConnection,
          {
            redis,
            store,
            reconnectGraceMs,
            emit: (type, input) => hooks.emit(type, input),
            program: config.attendance,
          },
          workerSettings,
          logger,
        );
        webhookWorker = startWebhookWorker(redisConnection, redis, config.webhooks, workerSettings, logger);
        retentionWorker = startRetentionWorker(
          redisConnection,
          { redis, settings: config.retention, auditKeys },
          workerSettings,
          logger,
        );
      }
      const webhookOf: Partial<Record<AttendanceEventType, WebhookEventType>> = {
        sessionStarted: 'session.started',
        sessionEnded: 'session.ended',
        removed: 'participant.removed',
      };
      // Checkpoints leave Redis: in the audit log stream and as a webhook to the clinic.
      const audit = new AuditLog(redis, logger, {
        keys: auditKeys,
        checkpoints: {
          intervalMs: config.audit.checkpointIntervalS * 1000,
          emit: (checkpoint) => void emit('audit.checkpoint', checkpointEvent(checkpoint)),
        },
      });
      attendance = new AttendanceRecorder(redis, logger, { spillFile: join(dataDir, 'attendance-spill.jsonl') });
      const recorder = attendance;
      const rooms = new RoomManager(
        store,
        {
          pool,
          logger,
          reconnectGraceMs,
          emptyTimeoutMs: config.rooms.emptyTimeoutS * 1000,
          maxConsumersPerRouter: config.media.maxConsumersPerRouter,
          plainTransports: config.media.plainTransports
            ? { listenIp: config.media.listenIp, announcedIp: config.media.announcedIp }
            : undefined,
          turn: config.turn,
          audit: (record) => audit.recordInBackground(record),
          attendance: (event) => {
            // A node that lost the room (frozen past its lease, cut off) no longer speaks for it.
            if (!cluster.serves(event.room)) {
              logger.warn({ room: event.room, type: event.type }, 'attendance event dropped: room not served here');
              return;
            }
            recorder.record(event);
            const hook = webhookOf[event.type];
            if (hook) void emit(hook, { room: event.room, participant: event.participant });
          },
          chatArchive: new ChatArchive(redis, logger),
          liveAttendance: liveAttendanceReader({ redis, recorder, reconnectGraceMs, logger }),
          revoke: async (identity) => {
            if (identity.jti) await revocations.revoke(identity.jti, identity.expiresAtMs);
          },
          // A node that lost a room's lease (frozen, cut off) must not write its state over the new node's.
          roomState: {
            store: new RoomStateStore(redis, logger),
            fence: (room): Fence | null => cluster.leases.fence(room),
          },
        },
        isRoomAutoCreateEnabled(config),
      );
      const workerPool = pool;
      const cluster: Cluster = new Cluster({
        redis,
        logger,
        nodeId: config.cluster.nodeId ?? `node-${randomBytes(4).toString('hex')}`,
        nodeTimeoutMs: config.cluster.nodeTimeoutS * 1000,
        load: () => ({ rooms: rooms.rooms.length, consumers: workerPool.workers.reduce((n, w) => n + w.load, 0) }),
        serving: (room) => rooms.get(room) !== undefined,
      });
      const node: HavenNode = new HavenNode({
        config,
        logger,
        redis,
        embeddedRedis,
        dataDirLock,
        pool,
        http: createServer(
          createHttpApp({
            readiness: () => node.readiness(),
            admin: {
              apiKey: config.admin.apiKey,
              store,
              rooms,
              logger,
              audit,
              sessionsOf: (participant, fromMs, toMs) => participantSessions(redis as Redis, participant, fromMs, toMs),
              program: {
                timeZone: config.attendance.timeZone,
                weeklyThresholdHours: config.attendance.weeklyThresholdHours,
              },
              deliveries: (options) => listDeliveries(redis as Redis, options),
              endpoints: () => endpointSummaries(redis as Redis, config.webhooks.urls),
              remoteOwnerUrl: (room) => cluster.remoteOwnerUrl(room),
              attendanceOf: async (room) => {
                const json = await (redis as Redis).get(attendanceResultKey(room));
                return json ? JSON.parse(json) : undefined;
              },
            },
            demo:
              isDemoEnabled(config) && authSecret
                ? createDemoHandler({
                    secret: authSecret,
                    issuer: config.auth.issuer,
                    audience: config.auth.audience,
                    logger,
                  })
                : undefined,
          }),
        ),
        io: new SocketServer({ serveClient: false, maxHttpBufferSize: maxFrameBytes }),
        rooms,
        revocations,
        authSecret,
        attendance,
        cluster,
        // Jobs are idempotent: a worker closing does not wait for the one it runs.
        background: [
          { close: async () => audit.close() },
          { close: () => attendanceWorker?.close(true) ?? Promise.resolve() },
          { close: () => webhookWorker?.close(true) ?? Promise.resolve() },
          { close: () => retentionWorker?.close(true) ?? Promise.resolve() },
          attendanceQueue,
          webhookQueue,
          retentionQueue,
        ],
      });
      const queue = attendanceQueue;
      rooms.on('roomOpened', (room) => {
        const scheduled = (work: Promise<void>) =>
          work.catch((err: Error) =>
            logger.error({ room: room.id, err: { message: err.message } }, 'attendance job not queued'),
          );
        scheduled(queue.roomOpened(room.id));
        room.once('closed', () => scheduled(queue.roomClosed(room.id)));
      });
      node.#signaling = attachSignaling(node.io, {
        verifier,
        rooms,
        logger,
        rateLimit: config.signaling.rateLimit,
        rateBurst: config.signaling.rateBurst,
        cluster,
      });
      node.http.on('clientError', answerClientError);
      node.io.attach(node.http);
      node.http.listen(config.http.port, config.http.host);
      await once(node.http, 'listening');
      await node.#joinCluster();
      logger.info({ url: node.url, workers: pool.workers.length, embeddedRedis: !!embeddedRedis }, 'haven node ready');
      return node;
    } catch (err) {
      attendance?.close();
      await attendanceWorker?.close();
      await attendanceQueue?.close();
      await webhookWorker?.close(true);
      await webhookQueue?.close();
      await retentionWorker?.close(true);
      await retentionQueue?.close();
      await pool?.close();
      redis?.disconnect();
      await embeddedRedis?.stop();
      dataDirLock.release();
      throw err;
    }
  }

  /**
   * Joins the cluster at this node's URL. A room whose lease is lost (another node took it over
   * while this one was unreachable or frozen) is closed here at once and its clients are moved.
   */
  async #joinCluster(): Promise<void> {
    const { cluster, rooms } = this;
    cluster.on('lost', (roomId) => this.#moveRoom(roomId, 'failover'));
    rooms.on('roomOpened', (room) => {
      room.once('closed', () => void cluster.leases.release(room.id).catch(() => {}));
    });
    await cluster.start(this.config.cluster.publicUrl ?? this.url);
    this.#leaseSweep = setInterval(() => {
      cluster.releaseUnused((id) => rooms.get(id) !== undefined, unusedLeaseMs).catch(() => {});
    }, 10_000);
    this.#leaseSweep.unref();
  }

  /**
   * Closes a room here without ending its session (its state stays in Redis) and tells its
   * clients to reconnect: they land on the node that serves it now.
   */
  #moveRoom(roomId: string, reason: 'draining' | 'failover'): void {
    this.rooms.get(roomId)?.close();
    this.#signaling?.moveRoom(roomId, reason);
  }

  /** The base URL clients reach this node at. */
  get url(): string {
    const { address, port } = this.http.address() as AddressInfo;
    const host = address.includes(':') ? `[${address}]` : address;
    return `http://${host}:${port}`;
  }

  /** Ready when Redis answers a PING within a second and at least one media worker is alive. */
  async readiness(): Promise<Readiness> {
    const workers = this.pool.workers.length;
    const redis = await Promise.race([
      this.redis.ping().then(
        (pong) => pong === 'PONG',
        () => false,
      ),
      new Promise<boolean>((r) => setTimeout(r, redisPingTimeoutMs, false).unref()),
    ]);
    return { ready: redis && workers > 0, redis, workers };
  }

  /** Graceful shutdown: stop taking connections, disconnect clients, close media, Redis last. */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      this.logger.info('haven node stopping');
      // Drain: no new rooms here; each room's lease is given up and its clients move to another node.
      clearInterval(this.#leaseSweep);
      const served = this.rooms.rooms.map((room) => room.id);
      await this.cluster.drain(served).catch(() => {});
      for (const roomId of served) this.#moveRoom(roomId, 'draining');
      await this.cluster.stop().catch(() => {});
      this.rooms.closeAll();
      this.io.disconnectSockets(true);
      await new Promise<void>((r) => this.io.close(() => r()));
      this.http.closeAllConnections();
      await this.pool.close();
      // Attendance events still waiting for Redis: a last chance, then the spill file.
      await this.attendance.flush(2_000).catch(() => {});
      this.attendance.close();
      // A BullMQ connection caught reconnecting can hold close() up: bounded, so shutdown stays prompt.
      await Promise.all(
        this.#background.map((c) =>
          Promise.race([
            c.close().catch(() => {}),
            new Promise((r) => setTimeout(r, backgroundCloseTimeoutMs).unref()),
          ]),
        ),
      );
      await this.redis.quit().catch(() => this.redis.disconnect());
      await this.#embeddedRedis?.stop();
      this.#dataDirLock.release();
      this.logger.info('haven node stopped');
    })();
    return this.#stopping;
  }
}

/** Development without a configured secret: a random one, so tokens minted by the demo verify. */
function developmentSecret(logger: Logger): string {
  logger.warn('no auth.secret configured: using a random development secret (tokens die with this process)');
  return randomBytes(32).toString('hex');
}

/** Connects to Redis and waits until it answers; passwords (in the URL or not) are never logged. */
async function connectRedis(connection: RedisConnection, logger: Logger): Promise<Redis> {
  const redis = new Redis(redisOptions(connection, { lazyConnect: true }));
  redis.on('error', (err: Error) => logger.warn({ component: 'redis', err: { message: err.message } }, 'redis error'));
  await redis.connect();
  return redis;
}
