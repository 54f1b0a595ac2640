/**
 * The node's logger: pino, JSON in production, pretty for people in development. Fields that can
 * carry a secret or a patient's words (tokens, names, SDP, chat text) are redacted wherever they
 * appear, so a careless `log.info({ payload })` cannot leak them.
 */
import { type Logger, pino } from 'pino';
import pretty from 'pino-pretty';
import type { Config } from '../config/schema.ts';

export type { Logger };

/** Field names censored at any of the first three levels of a log object (`text` is chat text). */
const secretFields = [
  'token',
  'accessToken',
  'authorization',
  'password',
  'secret',
  'apiKey',
  'name',
  'displayName',
  'sdp',
  'text',
];
export const redactPaths = [
  ...secretFields,
  ...secretFields.map((f) => `*.${f}`),
  ...secretFields.map((f) => `*.*.${f}`),
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-api-key"]',
];

/** Creates the root logger from the configuration; `destination` is for tests. */
export function createLogger(config: Pick<Config, 'env' | 'log'>, destination?: NodeJS.WritableStream): Logger {
  const format = config.log.format ?? (config.env === 'production' ? 'json' : 'pretty');
  const options = {
    level: config.log.level,
    base: { pid: process.pid },
    redact: { paths: redactPaths, censor: '[redacted]' },
  };
  if (format === 'pretty') {
    return pino(options, pretty({ colorize: !destination && process.stdout.isTTY, destination: destination ?? 1 }));
  }
  return pino(options, destination ?? pino.destination({ dest: 1, sync: false }));
}
