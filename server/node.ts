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
import { RevocationStore, TokenVerifier } from './auth/tokens.ts';
import { createHttpApp, type Readiness } from './http/app.ts';
import { createDemoHandler } from './http/demo.ts';
import type { Logger } from './logger.ts';
import { WorkerPool } from './media/worker-pool.ts';
import { EmbeddedRedis } from './redis/embedded-redis.ts';
import { ChatArchive } from './rooms/chat-archive.ts';
import { RoomManager } from './rooms/room-manager.ts';
import { RoomStore } from './rooms/room-store.ts';
import { attachSignaling, type HavenSocketServer } from './signaling/signaling.ts';

const redisPingTimeoutMs = 1_000;
const backgroundCloseTimeoutMs = 2_000;

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
  /** BullMQ workers and queues, closed before Redis. */
  readonly #background: { close(): Promise<void> }[];
  readonly #embeddedRedis: EmbeddedRedis | undefined;
  #stopping: Promise<void> | undefined;

  private constructor(parts: {
    config: Config;
    logger: Logger;
    redis: Redis;
    embeddedRedis: EmbeddedRedis | undefined;
    pool: WorkerPool;
    http: HttpServer;
    io: HavenSocketServer;
    rooms: RoomManager;
    revocations: RevocationStore;
    authSecret: string | undefined;
    attendance: AttendanceRecorder;
    background: { close(): Promise<void> }[];
  }) {
    this.config = parts.config;
    this.logger = parts.logger;
    this.redis = parts.redis;
    this.#embeddedRedis = parts.embeddedRedis;
    this.pool = parts.pool;
    this.http = parts.http;
    this.io = parts.io;
    this.rooms = parts.rooms;
    this.revocations = parts.revocations;
    this.authSecret = parts.authSecret;
    this.attendance = parts.attendance;
    this.#background = parts.background;
  }

  static async start(config: Config, logger: Logger): Promise<HavenNode> {
    const dataDir = resolve(config.dataDir);
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
      if (!config.redis.url) {
        embeddedRedis = await EmbeddedRedis.start({
          dataDir: join(dataDir, 'redis'),
          serverBin: config.redis.serverBin,
          logger,
        });
      }
      const redisUrl = config.redis.url ?? (embeddedRedis as EmbeddedRedis).url;
      redis = await connectRedis(redisUrl, logger);
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
      attendanceQueue = new AttendanceQueue(redisUrl, config.attendance.intervalS * 1000);
      await attendanceQueue.scheduleWeeklyCheck();
      webhookQueue = new WebhookQueue(redisUrl, redis, config.webhooks);
      const hooks = webhookQueue;
      const emit = (type: WebhookEventType, input: WebhookEventInput) =>
        hooks.emit(type, input).catch((err: Error) => {
          logger.error({ room: input.room, type, err: { message: err.message } }, 'webhook not queued');
        });
      const workerSettings = { stalledMs: config.workers.stalledS * 1000 };
      retentionQueue = new RetentionQueue(redisUrl, config.retention);
      await retentionQueue.schedule();
      if (config.workers.inProcess) {
        attendanceWorker = startAttendanceWorker(
          redisUrl,
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
        webhookWorker = startWebhookWorker(redisUrl, redis, config.webhooks, workerSettings, logger);
        retentionWorker = startRetentionWorker(redisUrl, { redis, settings: config.retention }, workerSettings, logger);
      }
      const webhookOf: Partial<Record<AttendanceEventType, WebhookEventType>> = {
        sessionStarted: 'session.started',
        sessionEnded: 'session.ended',
        removed: 'participant.removed',
      };
      const audit = new AuditLog(redis, logger);
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
            recorder.record(event);
            const hook = webhookOf[event.type];
            if (hook) void emit(hook, { room: event.room, participant: event.participant });
          },
          chatArchive: new ChatArchive(redis, logger),
          liveAttendance: liveAttendanceReader({ redis, recorder, reconnectGraceMs, logger }),
          revoke: async (identity) => {
            if (identity.jti) await revocations.revoke(identity.jti, identity.expiresAtMs);
          },
        },
        isRoomAutoCreateEnabled(config),
      );
      const node: HavenNode = new HavenNode({
        config,
        logger,
        redis,
        embeddedRedis,
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
              attendanceOf: async (room) => {
                const json = await (redis as Redis).get(attendanceResultKey(room));
                return json ? JSON.parse(json) : undefined;
              },
            },
            demo:
              isDemoEnabled(config) && authSecret
                ? createDemoHandler({ secret: authSecret, issuer: config.auth.issuer, audience: config.auth.audience })
                : undefined,
          }),
        ),
        io: new SocketServer({ serveClient: false, maxHttpBufferSize: 100_000 }),
        rooms,
        revocations,
        authSecret,
        attendance,
        // Jobs are idempotent: a worker closing does not wait for the one it runs.
        background: [
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
      attachSignaling(node.io, {
        verifier,
        rooms,
        logger,
        rateLimit: config.signaling.rateLimit,
        rateBurst: config.signaling.rateBurst,
      });
      node.io.attach(node.http);
      node.http.listen(config.http.port, config.http.host);
      await once(node.http, 'listening');
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
      throw err;
    }
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

/** Connects to Redis and waits until it answers; the URL (it may hold a password) is never logged. */
async function connectRedis(url: string, logger: Logger): Promise<Redis> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 3 });
  redis.on('error', (err: Error) => logger.warn({ component: 'redis', err: { message: err.message } }, 'redis error'));
  await redis.connect();
  return redis;
}
