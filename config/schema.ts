/**
 * Haven's configuration: one typed schema with defaults. Every key can be set by an environment
 * variable (named in `envNames`) or in a JSON file named by `HAVEN_CONFIG`; the environment wins.
 * The README's configuration table is generated from this file (`npm run config:doc`).
 */
import { availableParallelism } from 'node:os';
import { z } from 'zod';
import { httpSection, signalingSection } from './connections.ts';
import { checkSettingsTogether } from './cross-checks.ts';
import { e2eeSection } from './e2ee.ts';
import { flag, list, port, positiveInt } from './primitives.ts';

export const configShape = z.strictObject({
  /** Deployment mode. `production` turns off development conveniences. Default `development`. */
  env: z
    .enum(['development', 'production'])
    .default('development')
    .describe('Deployment mode; `production` turns off development conveniences.'),
  http: httpSection,
  /** Folder for the node's own data (embedded Redis). Default `./data`. */
  dataDir: z
    .string()
    .min(1)
    .default('./data')
    .describe('Folder for the node’s own data (the embedded Redis keeps its AOF here).'),
  redis: z
    .strictObject({
      /** Redis to use. Unset (and no `sentinels`): the node starts its own `redis-server` in `dataDir`. */
      url: z
        .url({ protocol: /^rediss?$/, error: 'expected a redis:// or rediss:// URL' })
        .optional()
        .describe(
          'Redis to use (`redis://[:password@]host:port[/db]`). Unset, and no sentinels: the node starts its own (for a single node only).',
        ),
      /** Redis Sentinels that name the current master, instead of `url`: Redis with automatic failover. */
      sentinels: list(
        z
          .string()
          .regex(/^(\[[0-9A-Fa-f:.]+\]|[^\s:[\]]+):\d{1,5}$/, 'expected host:port (an IPv6 address in brackets)')
          .refine((s) => Number(s.slice(s.lastIndexOf(':') + 1)) <= 65535, 'port above 65535'),
      )
        .optional()
        .describe(
          'Redis Sentinels (`host:port`, comma-separated in the environment) asked for the current master, instead of `REDIS_URL`: Redis with a replica and automatic failover.',
        ),
      /** The master group the sentinels monitor (`sentinel monitor <name> …`). Default `mymaster`. */
      sentinelName: z
        .string()
        .min(1)
        .default('mymaster')
        .describe('Name of the master group the sentinels monitor (`sentinel monitor <name> …`).'),
      /** Password of the master and replicas found through the sentinels (their `requirepass`). */
      password: z
        .string()
        .min(1)
        .optional()
        .describe(
          'Password of the Redis master and replicas found through the sentinels (`requirepass`); with `REDIS_URL`, put it in the URL.',
        ),
      /** Password of the sentinels themselves, when they have one (`requirepass` in sentinel.conf). */
      sentinelPassword: z
        .string()
        .min(1)
        .optional()
        .describe('Password of the sentinels themselves (`requirepass` in their sentinel.conf), when they have one.'),
      /** The `redis-server` binary for the embedded Redis. Default `redis-server`. */
      serverBin: z
        .string()
        .min(1)
        .default('redis-server')
        .describe('`redis-server` binary the embedded Redis is started from.'),
    })
    .prefault({}),
  log: z
    .strictObject({
      /** Minimum level logged. Default `info`. */
      level: z
        .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
        .default('info')
        .describe('Minimum level logged.'),
      /** `json` (one object a line) or `pretty` (for people). Default: `pretty` in development, `json` in production. */
      format: z
        .enum(['json', 'pretty'])
        .optional()
        .describe('Log line format: `json` (one object a line, for collectors) or `pretty` (for people).'),
    })
    .prefault({}),
  media: z
    .strictObject({
      /** mediasoup workers (processes) to run. Default: one per core. */
      workers: positiveInt
        .max(64)
        .default(availableParallelism())
        .describe('mediasoup worker processes (one C++ process each) to run.'),
      /** Log level inside the mediasoup workers. Default `warn`. */
      logLevel: z
        .enum(['debug', 'warn', 'error', 'none'])
        .default('warn')
        .describe('Log level inside the mediasoup workers.'),
      /** Address the workers receive media on. Default `127.0.0.1`. */
      listenIp: z
        .string()
        .min(1)
        .default('127.0.0.1')
        .describe(
          'Address the media workers listen on (`0.0.0.0` for every interface; then set the announced address).',
        ),
      /** Address given to clients for media, when it differs from `listenIp` (NAT, `0.0.0.0`). */
      announcedIp: z
        .string()
        .min(1)
        .optional()
        .describe(
          'Public address or host name announced to clients for media, when it differs from the listen address.',
        ),
      /** First port of the per-worker WebRTC servers (worker i: port + i, UDP and TCP); 0 picks free ports. */
      webRtcPort: port
        .default(7882)
        .describe('WebRTC media port of the first worker (worker i uses this + i, UDP and TCP); `0` picks free ports.'),
      /** Consumers one router carries before a room spreads to another worker. Default 500. */
      maxConsumersPerRouter: positiveInt
        .default(500)
        .describe('Consumers one router carries before a big room spreads to a router on another worker.'),
      /** Below this downlink estimate (on a lossy link) a receiver gets audio only until it recovers. Default 120. */
      audioOnlyBelowKbps: positiveInt
        .default(120)
        .describe(
          'A receiver on a link that loses packets whose downlink bandwidth estimate stays below this (kbit/s) for 5 s receives audio only, until it stays above 1.5× this for 5 s.',
        ),
      /** Plain RTP transports (SRTP, no ICE/DTLS) for the bench's load generator. Default false. */
      plainTransports: flag
        .default(false)
        .describe(
          'Allow plain RTP transports with SRTP (no ICE/DTLS) on `listenIp`: for the bench’s load generator, not for clients.',
        ),
      /** Lowest UDP/TCP port the workers use for media. Default 40000. */
      rtcMinPort: port.min(1).default(40000).describe('Lowest UDP/TCP port the workers use for media.'),
      /** Highest UDP/TCP port the workers use for media. Default 49999. */
      rtcMaxPort: port.min(1).default(49999).describe('Highest UDP/TCP port the workers use for media.'),
    })
    .prefault({}),
  auth: z
    .strictObject({
      /** Expected `iss` of access tokens. Default `haven`. */
      issuer: z.string().min(1).default('haven').describe('Expected `iss` claim of access tokens.'),
      /** Expected `aud` of access tokens. Default `haven`. */
      audience: z.string().min(1).default('haven').describe('Expected `aud` claim of access tokens.'),
      /** HS256 shared secret the embedding app signs tokens with (at least 32 characters). */
      secret: z
        .string()
        .min(32)
        .optional()
        .describe(
          'HS256 shared secret access tokens are signed with (32+ characters). Unset in development: a random one per start.',
        ),
      /** PEM file with the public key (RS256 or ES256) access tokens are verified with. */
      publicKeyFile: z
        .string()
        .min(1)
        .optional()
        .describe('PEM file of the RSA (RS256) or EC P-256 (ES256) public key access tokens are verified with.'),
      /** Longest lifetime (exp − iat) accepted, in seconds. Default 14400 (4 h). */
      maxTokenLifetimeS: positiveInt
        .default(4 * 3600)
        .describe('Longest token lifetime (`exp` − `iat`) accepted, in seconds.'),
      /** Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds. Default 30. */
      clockSkewS: z.coerce
        .number()
        .int()
        .min(0)
        .max(300)
        .default(30)
        .describe('Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.'),
    })
    .prefault({}),
  admin: z
    .strictObject({
      /** Key of the admin HTTP API (`Authorization: Bearer …`). Unset: the admin API refuses every call. */
      apiKey: z
        .string()
        .min(24)
        .optional()
        .describe(
          'Key of the admin HTTP API (`Authorization: Bearer <key>`, 24+ characters). Unset: the admin API is off.',
        ),
    })
    .prefault({}),
  metrics: z
    .strictObject({
      /** Bearer token of `GET /metrics` on the HTTP port. Unset (and no `port`): no metrics, `/metrics` answers 404. */
      token: z
        .string()
        .min(24)
        .optional()
        .describe(
          'Bearer token of `GET /metrics` (Prometheus text format) on the HTTP port (24+ characters). Unset, and no metrics port: metrics are off (404).',
        ),
      /** Address of the separate metrics listener (with `port`). Default `127.0.0.1`. */
      host: z
        .string()
        .min(1)
        .default('127.0.0.1')
        .describe('Address the separate metrics listener binds to (with `metrics.port`): a private network’s.'),
      /** Port of a separate, plain metrics listener; then `/metrics` is served there only. */
      port: port
        .optional()
        .describe(
          'Port of a separate plain HTTP listener for `GET /metrics` (then not served on the HTTP port; the token, if set, is asked there too).',
        ),
    })
    .prefault({}),
  rooms: z
    .strictObject({
      /** Whether a facilitator's valid token opens a room not created through the admin API. */
      autoCreate: flag
        .optional()
        .describe('Whether a facilitator with a valid token opens a room that was not created through the admin API.'),
      /** Seconds an empty room stays open (router kept) before it closes. Default 300. */
      emptyTimeoutS: z.coerce
        .number()
        .int()
        .min(0)
        .default(300)
        .describe('Seconds an empty room stays open before it closes and frees its media router.'),
      /** Seconds a dropped participant's place is kept for a reconnection. Default 30. */
      reconnectGraceS: z.coerce
        .number()
        .int()
        .min(0)
        .max(600)
        .default(30)
        .describe('Seconds a dropped connection keeps its place in the room (no leave seen by others).'),
    })
    .prefault({}),
  signaling: signalingSection,
  e2ee: e2eeSection,
  turn: z
    .strictObject({
      /** TURN server URLs handed to clients (`turn:host:3478?transport=udp`, `turns:…`). */
      urls: list(z.string().regex(/^turns?:/, 'expected a turn: or turns: URL'))
        .default([])
        .describe('TURN URLs given to clients for restrictive networks (comma-separated in the environment).'),
      /** coturn `static-auth-secret` (REST API scheme) the node derives time-limited credentials from. */
      secret: z
        .string()
        .min(16)
        .optional()
        .describe('coturn `static-auth-secret`: clients get time-limited TURN credentials derived from it.'),
      /** Lifetime of TURN credentials, in seconds. Default 3600. */
      ttlS: positiveInt.default(3600).describe('Lifetime of the TURN credentials given to clients, in seconds.'),
    })
    .prefault({}),
  attendance: z
    .strictObject({
      /** Seconds between attendance computations while a session runs. Default 300. */
      intervalS: positiveInt
        .default(300)
        .describe('Seconds between attendance computations while a session runs (one more at its end).'),
      /** IANA time zone of the program: weeks are counted in it. Default `UTC`. */
      timeZone: z
        .string()
        .refine((zone) => {
          try {
            new Intl.DateTimeFormat('en', { timeZone: zone });
            return true;
          } catch {
            return false;
          }
        }, 'expected an IANA time zone, e.g. America/New_York')
        .default('UTC')
        .describe('IANA time zone of the program; attendance weeks (ISO, Monday first) are counted in it.'),
      /** Hours a week a participant must attend (adult IOP: 9). Default 9. */
      weeklyThresholdHours: z.coerce
        .number()
        .min(0)
        .max(168)
        .default(9)
        .describe('Hours a week a participant must attend; weeks below are flagged.'),
    })
    .prefault({}),
  webhooks: z
    .strictObject({
      /** Endpoints that receive the events (session started/ended, attendance ready, participant removed). */
      urls: list(z.url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' }))
        .default([])
        .describe('Endpoints events are POSTed to (comma-separated in the environment).'),
      /** HMAC-SHA256 key of the `Haven-Signature` header (at least 16 characters). */
      secret: z
        .string()
        .min(16)
        .optional()
        .describe('Key the `Haven-Signature` HMAC-SHA256 is computed with (16+ characters).'),
      /** Attempts before a delivery is dead-lettered. Default 8. */
      maxAttempts: positiveInt.max(50).default(8).describe('Attempts before a delivery is dead-lettered.'),
      /** First retry delay, doubled at each attempt, in ms. Default 1000. */
      backoffMs: positiveInt.default(1000).describe('First retry delay in ms, doubled at each further attempt.'),
    })
    .prefault({}),
  cluster: z
    .strictObject({
      /** This node's id among the nodes sharing the Redis. Default: a random one per start. */
      nodeId: z
        .string()
        .regex(/^[A-Za-z0-9._-]{1,64}$/, 'letters, digits and . _ - only, at most 64')
        .optional()
        .describe('This node’s id among the nodes sharing the Redis. Unset: a random one at each start.'),
      /** URL clients and the other nodes reach this node at. Default: its own listen address. */
      publicUrl: z
        .url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' })
        .optional()
        .describe(
          'URL clients and the other nodes reach this node at (redirects point there). Unset: the listen address.',
        ),
      /** Seconds without a heartbeat before a node is gone and its rooms move. Default 5. */
      nodeTimeoutS: positiveInt
        .max(120)
        .default(5)
        .describe('Seconds without a heartbeat before a node counts as gone; also how long a room’s lease lasts.'),
    })
    .prefault({}),
  workers: z
    .strictObject({
      /** Run the background workers (BullMQ) inside the node. Default true. */
      inProcess: flag
        .default(true)
        .describe('Run the background workers (BullMQ) in the node; `false` when they run apart (`npm run workers`).'),
      /** Seconds before a job whose worker died is run again by another. Default 30. */
      stalledS: positiveInt
        .max(3600)
        .default(30)
        .describe('Seconds after which a job whose worker died (crash, lost host) is run again by another worker.'),
    })
    .prefault({}),
  retention: z
    .strictObject({
      /** Days raw attendance events are kept; 0 keeps them forever. Default 90. */
      eventsDays: z.coerce
        .number()
        .int()
        .min(0)
        .max(36_500)
        .default(90)
        .describe(
          'Days raw attendance events are kept (computed attendance, the billing record, is kept regardless); `0` keeps them forever.',
        ),
      /** Days kept chat (rooms with `keepChat`) is kept; 0 keeps it forever. Default 30. */
      chatDays: z.coerce
        .number()
        .int()
        .min(0)
        .max(36_500)
        .default(30)
        .describe('Days chat of rooms created with `keepChat` is kept, per message; `0` keeps it forever.'),
      /** Days audit entries are kept; 0 keeps them forever. Default 2190 (six years, as HIPAA asks of documentation). */
      auditDays: z.coerce
        .number()
        .int()
        .min(0)
        .max(36_500)
        .default(2190)
        .describe(
          'Days audit log entries are kept (six years: HIPAA’s documentation retention); the chain stays verifiable; `0` keeps them forever.',
        ),
      /** Days webhook delivery records are kept; 0 keeps them forever. Default 30. */
      deliveriesDays: z.coerce
        .number()
        .int()
        .min(0)
        .max(36_500)
        .default(30)
        .describe('Days webhook delivery records are kept; `0` keeps them forever.'),
      /** Seconds between retention runs. Default 3600. */
      intervalS: positiveInt.default(3600).describe('Seconds between retention runs (the first at the node’s start).'),
    })
    .prefault({}),
  audit: z
    .strictObject({
      /** Secret (32+ characters) the audit chain's HMACs and checkpoint signatures derive from; never stored in Redis. Required in production (or `hmacKeyFile`). */
      hmacKey: z
        .string()
        .min(32)
        .optional()
        .describe(
          'Secret (32+ characters) audit entries are HMAC’d and checkpoints signed with; kept out of Redis. Required in production (or the file). Unset in development: derived from `auth.secret`, else random per start.',
        ),
      /** File of audit secrets, one a line: the first signs, every one verifies (key rotation). */
      hmacKeyFile: z
        .string()
        .min(1)
        .optional()
        .describe(
          'File of audit secrets, one a line: the first signs, all verify (rotation). Instead of `audit.hmacKey`.',
        ),
      /** Seconds between signed checkpoints of the heads of rooms with new entries. Default 60. */
      checkpointIntervalS: positiveInt
        .max(86_400)
        .default(60)
        .describe(
          'Seconds between signed `audit.checkpoint`s of rooms with new entries (also at each session end); entries after the last one can be cut undetected.',
        ),
    })
    .prefault({}),
  /** Whether `/demo` serves the demo web app. Never in production. */
  demo: flag
    .optional()
    .describe('Serve the demo web app at `/demo` (it mints development tokens). Forced off in production.'),
  /** Longest a graceful shutdown may take before the node forces its exit. Default 10000 ms. */
  shutdownTimeoutMs: positiveInt
    .default(10_000)
    .describe('Longest a graceful shutdown (SIGTERM/SIGINT) may take, in ms, before the exit is forced.'),
});

export const configSchema = configShape.superRefine(checkSettingsTogether);

export type Config = z.infer<typeof configSchema>;

/** Settings whose default depends on the mode: development conveniences, secure in production. */
export function isDemoEnabled(config: Config): boolean {
  return config.env !== 'production' && (config.demo ?? true);
}
/** Whether the node serves `/metrics` at all (a token, or a separate listener). */
export function isMetricsEnabled(config: Config): boolean {
  return config.metrics.token !== undefined || config.metrics.port !== undefined;
}
export function isRoomAutoCreateEnabled(config: Config): boolean {
  return config.rooms.autoCreate ?? config.env !== 'production';
}

export { type ConfigKey, configFileEnv, envNames } from './env-names.ts';
