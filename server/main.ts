/**
 * Entry point of a Haven node: `npm start` (after set-up) or `node --import tsx server/main.ts`.
 * Reads the configuration (exit 2 with the offending keys if it is invalid), starts the node,
 * and shuts it down gracefully on SIGINT/SIGTERM within `shutdownTimeoutMs`.
 */
import { ConfigError, loadConfig } from '../config/load.ts';
import { isDemoEnabled } from '../config/schema.ts';
import { createLogger } from './logger.ts';
import { HavenNode } from './node.ts';

let config: ReturnType<typeof loadConfig>;
try {
  config = loadConfig();
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  process.stderr.write(`haven: ${err.message}\n`);
  process.exit(2);
}

const logger = createLogger(config);
let node: HavenNode;
try {
  node = await HavenNode.start(config, logger);
} catch (err) {
  logger.fatal({ err }, 'haven node failed to start');
  logger.flush();
  process.exit(1);
}
process.stdout.write(`Haven is running at ${node.url}  (health: ${node.url}/readyz, Ctrl-C to stop)\n`);
if (isDemoEnabled(config)) process.stdout.write(`Demo: ${node.url}/demo\n`);

let shuttingDown = false;
async function shutdown(signal: NodeJS.Signals): Promise<void> {
  if (shuttingDown) return;
  shuttingDown = true;
  logger.info({ signal }, 'shutting down');
  const timer = setTimeout(() => {
    logger.error({ timeoutMs: config.shutdownTimeoutMs }, 'graceful shutdown timed out; forcing exit');
    logger.flush();
    process.exit(1);
  }, config.shutdownTimeoutMs);
  try {
    await node.stop();
    clearTimeout(timer);
    logger.flush();
    process.exit(0);
  } catch (err) {
    logger.error({ err }, 'shutdown failed');
    logger.flush();
    process.exit(1);
  }
}
process.on('SIGINT', shutdown);
process.on('SIGTERM', shutdown);
