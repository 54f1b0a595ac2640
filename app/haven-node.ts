/**
 * The composition root of a node's process, and the one module that wires server/ and workers/:
 * a Haven node (server/node.ts, which enqueues) with the BullMQ processors (workers/, which
 * process) in the same process, unless `workers.inProcess` is false: they run apart then
 * (`npm run workers`). app/main.ts, the process entry, starts the node through it.
 */
import type { Config } from '../config/schema.ts';
import type { Logger } from '../server/logger.ts';
import { HavenNode } from '../server/node.ts';
import { startProcessors } from '../workers/processors.ts';

export function startHavenNode(config: Config, logger: Logger): Promise<HavenNode> {
  return HavenNode.start(config, logger, {
    background: config.workers.inProcess ? (services) => startProcessors({ ...services, config, logger }) : undefined,
  });
}
