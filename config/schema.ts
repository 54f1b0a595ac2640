/**
 * Haven's configuration: one typed schema with defaults. Every key can be set by an environment
 * variable (named in `envNames`) or in a JSON file named by `HAVEN_CONFIG`; the environment wins.
 * The README's configuration table is generated from this file (`npm run config:doc`).
 */
import { availableParallelism } from 'node:os';
import { z } from 'zod';

const port = z.coerce.number().int().min(0).max(65535);
const positiveInt = z.coerce.number().int().positive();

export const configSchema = z
  .strictObject({
    /** Deployment mode. `production` turns off development conveniences. Default `development`. */
    env: z
      .enum(['development', 'production'])
      .default('development')
      .describe('Deployment mode; `production` turns off development conveniences.'),
    http: z
      .strictObject({
        /** Address the HTTP API and signaling listen on. Default `127.0.0.1`. */
        host: z
          .string()
          .min(1)
          .default('127.0.0.1')
          .describe('Address the HTTP API and signaling listen on (`0.0.0.0` for every interface).'),
        /** TCP port of the HTTP API and signaling; 0 picks a free one. Default 7880. */
        port: port.default(7880).describe('TCP port of the HTTP API and signaling; `0` picks a free port.'),
      })
      .prefault({}),
    /** Folder for the node's own data (embedded Redis). Default `./data`. */
    dataDir: z
      .string()
      .min(1)
      .default('./data')
      .describe('Folder for the node’s own data (the embedded Redis keeps its AOF here).'),
    redis: z
      .strictObject({
        /** Redis to use. Unset: the node starts its own `redis-server` in `dataDir`. */
        url: z
          .url({ protocol: /^rediss?$/, error: 'expected a redis:// or rediss:// URL' })
          .optional()
          .describe('Redis to use (`redis://[:password@]host:port[/db]`). Unset: the node starts its own.'),
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
        /** Lowest UDP/TCP port the workers use for media. Default 40000. */
        rtcMinPort: port.min(1).default(40000).describe('Lowest UDP/TCP port the workers use for media.'),
        /** Highest UDP/TCP port the workers use for media. Default 49999. */
        rtcMaxPort: port.min(1).default(49999).describe('Highest UDP/TCP port the workers use for media.'),
      })
      .prefault({}),
    /** Longest a graceful shutdown may take before the node forces its exit. Default 10000 ms. */
    shutdownTimeoutMs: positiveInt
      .default(10_000)
      .describe('Longest a graceful shutdown (SIGTERM/SIGINT) may take, in ms, before the exit is forced.'),
  })
  .superRefine((config, ctx) => {
    if (config.media.rtcMinPort > config.media.rtcMaxPort) {
      ctx.addIssue({
        code: 'custom',
        path: ['media', 'rtcMinPort'],
        message: `must not be above media.rtcMaxPort (${config.media.rtcMaxPort})`,
      });
    }
  });

export type Config = z.infer<typeof configSchema>;

/** The environment variable of each key (dotted path in the schema). */
export const envNames = {
  env: 'HAVEN_ENV',
  'http.host': 'HAVEN_HTTP_HOST',
  'http.port': 'HAVEN_HTTP_PORT',
  dataDir: 'HAVEN_DATA_DIR',
  'redis.url': 'REDIS_URL',
  'redis.serverBin': 'HAVEN_REDIS_SERVER_BIN',
  'log.level': 'HAVEN_LOG_LEVEL',
  'log.format': 'HAVEN_LOG_FORMAT',
  'media.workers': 'HAVEN_MEDIA_WORKERS',
  'media.logLevel': 'HAVEN_MEDIA_LOG_LEVEL',
  'media.rtcMinPort': 'HAVEN_MEDIA_RTC_MIN_PORT',
  'media.rtcMaxPort': 'HAVEN_MEDIA_RTC_MAX_PORT',
  shutdownTimeoutMs: 'HAVEN_SHUTDOWN_TIMEOUT_MS',
} as const;

export type ConfigKey = keyof typeof envNames;

/** Environment variable naming the optional JSON configuration file. */
export const configFileEnv = 'HAVEN_CONFIG';
