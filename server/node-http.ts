/**
 * A node's HTTP server: health and readiness, the admin API over the node's stores (rooms,
 * computed attendance, webhook deliveries, the audit log), and the demo page in development.
 */
import { createServer, type Server as HttpServer } from 'node:http';
import type { Redis } from 'ioredis';
import { type Config, isDemoEnabled } from '../config/schema.ts';
import { attendanceOf, participantSessions } from './attendance/results.ts';
import type { AuditLog } from './audit/audit-log.ts';
import type { Cluster } from './cluster/cluster.ts';
import { createHttpApp, type Readiness } from './http/app.ts';
import { createDemoHandler } from './http/demo.ts';
import { type MetricsSource, metricsRoutes } from './http/metrics-route.ts';
import type { Logger } from './logger.ts';
import type { RoomManager } from './rooms/room-manager.ts';
import type { RoomStore } from './rooms/room-store.ts';
import { endpointSummaries, listDeliveries } from './webhooks/deliveries.ts';

export interface NodeHttpDeps {
  config: Config;
  logger: Logger;
  redis: Redis;
  store: RoomStore;
  rooms: RoomManager;
  audit: AuditLog;
  cluster: Cluster;
  /** The HS256 secret the demo mints tokens with; no demo without it. */
  authSecret: string | undefined;
  readiness: () => Promise<Readiness>;
  /** The node's metrics, when enabled: served here unless a separate metrics port is set. */
  metrics?: MetricsSource;
}

export function createNodeHttpServer(deps: NodeHttpDeps): HttpServer {
  const { config, logger, redis, store, rooms, audit, cluster, authSecret } = deps;
  return createServer(
    createHttpApp({
      readiness: deps.readiness,
      metrics:
        deps.metrics && config.metrics.port === undefined
          ? metricsRoutes({ metrics: deps.metrics, token: config.metrics.token, logger })
          : undefined,
      admin: {
        apiKey: config.admin.apiKey,
        store,
        rooms,
        logger,
        audit,
        sessionsOf: (participant, fromMs, toMs) => participantSessions(redis, participant, fromMs, toMs),
        program: {
          timeZone: config.attendance.timeZone,
          weeklyThresholdHours: config.attendance.weeklyThresholdHours,
        },
        deliveries: (query) => listDeliveries(redis, query),
        endpoints: () => endpointSummaries(redis, config.webhooks.urls),
        remoteOwnerUrl: (room) => cluster.remoteOwnerUrl(room),
        servingNode: () => ({ id: cluster.nodeId, url: cluster.registry.url }),
        attendanceOf: (room) => attendanceOf(redis, room),
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
  );
}
