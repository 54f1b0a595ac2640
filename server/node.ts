/**
 * A Haven node: configuration → Redis (given or embedded) → media worker pool → HTTP server with
 * socket.io attached. `start()` brings it up in that order; `stop()` takes it down in reverse
 * and leaves no child process behind. The node enqueues (attendance, webhooks, retention); the
 * processors are started beside it by whoever composes the process (`background`, e.g.
 * app/haven-node.ts), never from here.
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import type { Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import type { Redis } from 'ioredis';
import { Server as SocketServer } from 'socket.io';
import { type Config, isMetricsEnabled, isRoomAutoCreateEnabled } from '../config/schema.ts';
import { liveAttendanceReader } from './attendance/live.ts';
import { AttendanceQueue } from './attendance/queue.ts';
import { AttendanceRecorder } from './attendance/recorder.ts';
import { attendanceSink } from './attendance/sink.ts';
import { AuditLog } from './audit/audit-log.ts';
import { type AuditKeys, auditKeysOf } from './audit/keys.ts';
import { RevocationStore, TokenVerifier } from './auth/tokens.ts';
import { Cluster } from './cluster/cluster.ts';
import { DataDirLock } from './data-dir-lock.ts';
import { answerClientError, type Readiness } from './http/app.ts';
import { trustedProxies } from './http/client-address.ts';
import { createMetricsServer } from './http/metrics-route.ts';
import type { Logger } from './logger.ts';
import { WorkerPool } from './media/worker-pool.ts';
import { NodeMetrics } from './metrics/node-metrics.ts';
import { createNodeHttpServer } from './node-http.ts';
import type { RedisConnection } from './redis/connection.ts';
import type { EmbeddedRedis } from './redis/embedded-redis.ts';
import { openNodeRedis } from './redis/node-redis.ts';
import { RetentionQueue } from './retention/queue.ts';
import { ChatArchive } from './rooms/chat-archive.ts';
import { RoomManager } from './rooms/room-manager.ts';
import { type Fence, RoomStateStore } from './rooms/room-state.ts';
import { RoomStore } from './rooms/room-store.ts';
import { maxFrameBytes } from './signaling/guard.ts';
import { attachSignaling, type HavenSocketServer, type SignalingHandle } from './signaling/signaling.ts';
import { checkpointEvent } from './webhooks/events.ts';
import { WebhookQueue } from './webhooks/queue.ts';

/** What closes when the node stops, before Redis. */
interface Closable {
  close(): Promise<void>;
}

/** What background work started beside the node (its processors) gets from it. */
export interface NodeServices {
  connection: RedisConnection;
  redis: Redis;
  store: RoomStore;
  webhooks: WebhookQueue;
  auditKeys: AuditKeys;
}

export interface NodeOptions {
  /** Started once the queues are, closed with them (before Redis) when the node stops. */
  background?: (services: NodeServices) => Closable;
}

const redisPingTimeoutMs = 1_000;
const backgroundCloseTimeoutMs = 2_000;

export class HavenNode {
  readonly config: Config;
  readonly logger: Logger;
  readonly redis: Redis;
  readonly pool: WorkerPool;
  readonly http: HttpServer;
  /** The separate metrics listener (`metrics.port`), when configured. */
  readonly metricsHttp: HttpServer | undefined;
  readonly io: HavenSocketServer;
  readonly rooms: RoomManager;
  readonly revocations: RevocationStore;
  /** The HS256 secret tokens are verified with (random per start in development when unset). */
  readonly authSecret: string | undefined;
  readonly attendance: AttendanceRecorder;
  /** This node among the nodes sharing the Redis: heartbeats, room leases, placement. */
  readonly cluster: Cluster;
  #signaling: SignalingHandle | undefined;
  /** The audit log's checkpointer, the processors beside the node (if any) and the queues: closed before Redis. */
  readonly #background: Closable[];
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
    metricsHttp: HttpServer | undefined;
    io: HavenSocketServer;
    rooms: RoomManager;
    revocations: RevocationStore;
    authSecret: string | undefined;
    attendance: AttendanceRecorder;
    cluster: Cluster;
    background: Closable[];
  }) {
    this.config = parts.config;
    this.logger = parts.logger;
    this.redis = parts.redis;
    this.#embeddedRedis = parts.embeddedRedis;
    this.#dataDirLock = parts.dataDirLock;
    this.pool = parts.pool;
    this.http = parts.http;
    this.metricsHttp = parts.metricsHttp;
    this.io = parts.io;
    this.rooms = parts.rooms;
    this.revocations = parts.revocations;
    this.authSecret = parts.authSecret;
    this.attendance = parts.attendance;
    this.cluster = parts.cluster;
    this.#background = parts.background;
  }

  static async start(config: Config, logger: Logger, options: NodeOptions = {}): Promise<HavenNode> {
    const dataDir = resolve(config.dataDir);
    const dataDirLock = DataDirLock.acquire(dataDir, 'haven.lock', 'two Haven nodes');
    /** What to undo, newest last, if the node does not come up. */
    const started: (() => unknown)[] = [() => dataDirLock.release()];
    const undo = async () => {
      for (const step of started.reverse()) await step();
    };
    try {
      const { connection, redis, embedded } = await openNodeRedis(config.redis, dataDir, logger);
      started.push(
        () => embedded?.stop(),
        () => redis.disconnect(),
      );
      const pool = await WorkerPool.create({
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
      started.push(() => pool.close());
      const authSecret = config.auth.secret ?? (config.auth.publicKeyFile ? undefined : developmentSecret(logger));
      const auditKeys = auditKeysOf(config, logger);
      const revocations = new RevocationStore(redis);
      const verifier = tokenVerifier(config, authSecret, revocations, logger);
      // New rooms, the admin API's and those a facilitator opens, are E2EE by the node's default.
      const store = new RoomStore(redis, undefined, { e2eeDefault: config.e2ee.default });
      const reconnectGraceMs = config.rooms.reconnectGraceS * 1000;
      const attendanceQueue = new AttendanceQueue(connection, config.attendance.intervalS * 1000);
      started.push(() => attendanceQueue.close());
      await attendanceQueue.scheduleWeeklyCheck();
      const webhooks = new WebhookQueue(connection, redis, config.webhooks);
      started.push(() => webhooks.close());
      const retentionQueue = new RetentionQueue(connection, config.retention);
      started.push(() => retentionQueue.close());
      await retentionQueue.schedule();
      const background = options.background?.({ connection, redis, store, webhooks, auditKeys });
      started.push(() => background?.close());
      // Checkpoints leave Redis: in the audit log stream and as a webhook to the clinic.
      const audit = new AuditLog(redis, logger, {
        keys: auditKeys,
        checkpoints: {
          intervalMs: config.audit.checkpointIntervalS * 1000,
          emit: (checkpoint) => webhooks.emitInBackground('audit.checkpoint', checkpointEvent(checkpoint), logger),
        },
      });
      const attendance = new AttendanceRecorder(redis, logger, { spillFile: join(dataDir, 'attendance-spill.jsonl') });
      started.push(() => attendance.close());
      const rooms = new RoomManager(
        store,
        {
          pool,
          logger,
          reconnectGraceMs,
          emptyTimeoutMs: config.rooms.emptyTimeoutS * 1000,
          maxConsumersPerRouter: config.media.maxConsumersPerRouter,
          audioOnlyBelowBps: config.media.audioOnlyBelowKbps * 1000,
          plainTransports: config.media.plainTransports
            ? { listenIp: config.media.listenIp, announcedIp: config.media.announcedIp }
            : undefined,
          turn: config.turn,
          e2ee: {
            rotationIntervalMs: config.e2ee.rotationIntervalS * 1000,
            keyAckTimeoutMs: config.e2ee.keyAckTimeoutMs,
          },
          audit: (record) => audit.recordInBackground(record),
          attendance: attendanceSink({
            serves: (room) => cluster.serves(room),
            recorder: attendance,
            webhook: (type, input) => webhooks.emitInBackground(type, input, logger),
            logger,
          }),
          chatArchive: new ChatArchive(redis, logger),
          liveAttendance: liveAttendanceReader({ redis, recorder: attendance, reconnectGraceMs, logger }),
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
      const cluster: Cluster = new Cluster({
        redis,
        logger,
        nodeId: config.cluster.nodeId ?? `node-${randomBytes(4).toString('hex')}`,
        nodeTimeoutMs: config.cluster.nodeTimeoutS * 1000,
        load: () => ({ rooms: rooms.rooms.length, consumers: pool.workers.reduce((n, w) => n + w.load, 0) }),
        serving: (room) => rooms.get(room) !== undefined,
      });
      const metrics = isMetricsEnabled(config)
        ? new NodeMetrics({
            redis,
            connection,
            attendance,
            cluster,
            rooms,
            pool,
            logger,
            ready: async () => (await node.readiness()).ready,
          })
        : undefined;
      if (metrics) started.push(() => metrics.close());
      const { token } = config.metrics;
      const metricsHttp =
        metrics && config.metrics.port !== undefined ? createMetricsServer({ metrics, token, logger }) : undefined;
      const node: HavenNode = new HavenNode({
        config,
        logger,
        redis,
        embeddedRedis: embedded,
        dataDirLock,
        pool,
        http: createNodeHttpServer({
          config,
          logger,
          redis,
          store,
          rooms,
          audit,
          cluster,
          authSecret,
          readiness: () => node.readiness(),
          metrics,
        }),
        metricsHttp,
        io: new SocketServer({ serveClient: false, maxHttpBufferSize: maxFrameBytes }),
        rooms,
        revocations,
        authSecret,
        attendance,
        cluster,
        background: [
          { close: async () => audit.close() },
          ...(background ? [background] : []),
          attendanceQueue,
          ...(metrics ? [metrics] : []),
          webhooks,
          retentionQueue,
        ],
      });
      const jobs = attendanceQueue.inBackground(logger);
      rooms.on('roomOpened', (room) => {
        jobs.roomOpened(room.id);
        room.once('closed', () => jobs.roomClosed(room.id));
      });
      node.#signaling = attachSignaling(node.io, {
        verifier,
        rooms,
        logger,
        rateLimit: config.signaling.rateLimit,
        rateBurst: config.signaling.rateBurst,
        cluster,
        observer: metrics?.signaling,
        perAddress: {
          max: config.signaling.maxConnectionsPerAddress,
          trustedProxies: trustedProxies(config.http.trustedProxies),
        },
      });
      node.http.on('clientError', answerClientError);
      node.io.attach(node.http);
      node.http.listen(config.http.port, config.http.host);
      await once(node.http, 'listening');
      if (metricsHttp) {
        started.push(() => metricsHttp.close());
        metricsHttp.listen(config.metrics.port, config.metrics.host);
        await once(metricsHttp, 'listening');
      }
      await node.#joinCluster();
      const metricsAt = metricsHttp?.address() as AddressInfo | undefined;
      logger.info(
        { url: node.url, workers: pool.workers.length, embeddedRedis: !!embedded, metricsPort: metricsAt?.port },
        'haven node ready',
      );
      return node;
    } catch (err) {
      await undo();
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
    // A draining node (stopping) takes no new sessions: a load balancer should send nobody here.
    const draining = this.#stopping !== undefined;
    return { ready: redis && workers > 0 && !draining, redis, workers, draining };
  }

  /** Graceful shutdown: stop taking connections, disconnect clients, close media, Redis last. */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      this.logger.info('haven node stopping');
      // Drain: no new rooms here; each room's lease is given up and its clients move to another node.
      const served = this.rooms.rooms.map((room) => room.id);
      await this.cluster.drain(served).catch(() => {});
      for (const roomId of served) this.#moveRoom(roomId, 'draining');
      await this.cluster.stop().catch(() => {});
      this.rooms.closeAll();
      this.io.disconnectSockets(true);
      await new Promise<void>((r) => this.io.close(() => r()));
      this.http.closeAllConnections();
      this.metricsHttp?.close();
      this.metricsHttp?.closeAllConnections();
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

function tokenVerifier(
  config: Config,
  secret: string | undefined,
  revocations: RevocationStore,
  logger: Logger,
): TokenVerifier {
  const { issuer, audience, publicKeyFile, maxTokenLifetimeS, clockSkewS } = config.auth;
  const publicKeyPem = publicKeyFile ? readFileSync(publicKeyFile, 'utf8') : undefined;
  return TokenVerifier.create(
    { issuer, audience, secret, publicKeyPem, maxTokenLifetimeS, clockSkewS },
    revocations,
    logger,
  );
}
