/**
 * Entry point of a Haven node: `npm start` (after set-up), or
 * `node --max-semi-space-size=64 --import tsx app/main.ts` (the flag: README, Running a node).
 * Reads the configuration (exit 2 with the offending keys if it is invalid), starts the node with
 * its in-process workers (haven-node.ts, the composition root), and shuts it down gracefully
 * on SIGINT/SIGTERM within `shutdownTimeoutMs`.
 */

import { ConfigError, loadConfig } from '../config/load.ts';
import { isDemoEnabled } from '../config/schema.ts';
import { newErrorId } from '../server/errors.ts';
import { createLogger } from '../server/logger.ts';
import type { HavenNode } from '../server/node.ts';
import { startHavenNode } from './haven-node.ts';

let config: ReturnType<typeof loadConfig>;
try {
  config = loadConfig();
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  process.stderr.write(`haven: ${err.message}\n`);
  process.exit(2);
}

const logger = createLogger(config);
let node: HavenNode | undefined;
let shuttingDown = false;

/*
 * Last resort. Every socket.io listener and HTTP route runs guarded (a fault there answers
 * INTERNAL with an errorId and the node goes on serving), so nothing a client sends gets here.
 * - A rejection nobody handled: the operation it belonged to is abandoned, but nothing ran half
 *   way; logged with an id, and the node keeps serving.
 * - An exception thrown past every guard: the stack unwound through code in an unknown state
 *   (Node's documentation: not safe to resume). The node drains as on SIGTERM, so rooms move and
 *   clients reconnect within their grace, attendance is flushed, and exits 1 for its supervisor
 *   to start it again.
 */
process.on('unhandledRejection', (reason) => {
  logger.error({ errorId: newErrorId(), err: reason }, 'unhandled rejection');
});
process.on('uncaughtException', (err) => {
  logger.fatal({ errorId: newErrorId(), err }, 'uncaught exception; draining and exiting');
  void shutdown('uncaughtException', 1);
});

try {
  node = await startHavenNode(config, logger);
} catch (err) {
  // A setting only checked at start (an audit key file that is missing or short): exit 2, as above.
  if (err instanceof ConfigError) {
    process.stderr.write(`haven: ${err.message}\n`);
    process.exit(2);
  }
  logger.fatal({ err }, 'haven node failed to start');
  logger.flush();
  process.exit(1);
}
process.stdout.write(`Haven is running at ${node.url}  (health: ${node.url}/readyz, Ctrl-C to stop)\n`);
if (isDemoEnabled(config)) process.stdout.write(`Demo: ${node.url}/demo\n`);

async function shutdown(reason: string, exitCode = 0): Promise<void> {
  if (shuttingDown) return;
  shuttingDown = true;
  logger.info({ reason }, 'shutting down');
  const timer = setTimeout(() => {
    logger.error({ timeoutMs: config.shutdownTimeoutMs }, 'graceful shutdown timed out; forcing exit');
    logger.flush();
    process.exit(1);
  }, config.shutdownTimeoutMs);
  try {
    await node?.stop();
    clearTimeout(timer);
    logger.flush();
    process.exit(exitCode);
  } catch (err) {
    logger.error({ err }, 'shutdown failed');
    logger.flush();
    process.exit(1);
  }
}
process.on('SIGINT', () => shutdown('SIGINT'));
process.on('SIGTERM', () => shutdown('SIGTERM'));
