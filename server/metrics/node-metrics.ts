/**
 * A node's metrics: the series (series.ts) fed by the node's parts through the events they emit
 * already (rooms, the worker pool, leases) or a small observer (signaling), and the gauges read
 * at scrape time. Nothing outside this folder imports prom-client. A fault here never fails a
 * request: a part that cannot be read is left as it was last scraped.
 */
import type { Logger } from '../logger.ts';
import type { WorkerPool } from '../media/worker-pool.ts';
import type { RoomManager } from '../rooms/room-manager.ts';
import type { SignalingObserver } from '../signaling/signaling.ts';
import { type BackendSources, observeBackends } from './observe-backends.ts';
import { observeSessions } from './observe-sessions.ts';
import { observeWorkers } from './observe-workers.ts';
import { createSeries } from './series.ts';

export interface NodeMetricsSources extends BackendSources {
  rooms: RoomManager;
  pool: WorkerPool;
  logger: Logger;
  ready: () => Promise<boolean>;
}

/** A scrape waits this long at most for the parts it asks (workers, Redis) before answering. */
const refreshTimeoutMs = 2_000;

export class NodeMetrics {
  readonly contentType: string;
  readonly signaling: SignalingObserver;
  readonly #series = createSeries();
  readonly #refresh: () => Promise<unknown>;
  readonly #close: () => Promise<void>;

  constructor(sources: NodeMetricsSources) {
    const series = this.#series;
    const log = sources.logger.child({ component: 'metrics' });
    this.contentType = series.registry.contentType;
    const sessions = observeSessions(series, sources.rooms);
    const workers = observeWorkers(series, sources.pool);
    const backends = observeBackends(series, sources);
    // Signaling calls in on every request: whatever goes wrong stays here.
    this.signaling = {
      connected: (identity) => contained(log, () => sessions.signaling.connected(identity)),
      answered: (event, code) => contained(log, () => sessions.signaling.answered(event, code)),
    };
    const part = (name: string, work: () => unknown) =>
      Promise.resolve()
        .then(work)
        .catch((err: Error) => log.warn({ part: name, err: { message: err.message } }, 'metrics part not read'));
    this.#refresh = () =>
      Promise.all([
        part('sessions', () => sessions.refresh()),
        part('workers', () => workers.refresh()),
        part('backends', () => backends.refresh()),
        part('readiness', async () => series.ready.set((await sources.ready()) ? 1 : 0)),
      ]);
    this.#close = () => backends.close();
  }

  /** The Prometheus text exposition, gauges read now (within about two seconds). */
  async scrape(): Promise<string> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.#refresh(), new Promise((r) => (timer = setTimeout(r, refreshTimeoutMs)))]);
    clearTimeout(timer);
    return this.#series.registry.metrics();
  }

  close(): Promise<void> {
    return this.#close();
  }
}

function contained(log: Logger, work: () => void): void {
  try {
    work();
  } catch (err) {
    log.warn({ err: { message: (err as Error).message } }, 'metrics observer failed');
  }
}
