/**
 * The media workers: producers and consumers per worker slot, from mediasoup's own `observer`
 * events (router → transport → producer/consumer), deaths from the pool's events, CPU and memory
 * asked of each worker at scrape time. The label is the worker's slot (0 … workers − 1).
 */
import type { Transport, Worker } from 'mediasoup/node/lib/types.js';
import type { PoolWorker, WorkerPool } from '../media/worker-pool.ts';
import type { Series } from './series.ts';

export interface WorkerMetrics {
  /** Sets the gauges read at scrape time (CPU, RSS); a worker that cannot answer is left out. */
  refresh(): Promise<void>;
}

export function observeWorkers(series: Series, pool: WorkerPool): WorkerMetrics {
  const watched = new WeakSet<Worker>();
  const watch = ({ index, worker }: PoolWorker) => {
    if (watched.has(worker)) return;
    watched.add(worker);
    const worker_ = String(index);
    series.producers.set({ worker: worker_ }, 0);
    series.consumers.set({ worker: worker_ }, 0);
    series.workerDeaths.inc({ worker: worker_ }, 0);
    const onTransport = (transport: Transport) => {
      transport.observer.on('newproducer', (producer) => {
        series.producers.inc({ worker: worker_ });
        producer.observer.once('close', () => series.producers.dec({ worker: worker_ }));
      });
      transport.observer.on('newconsumer', (consumer) => {
        series.consumers.inc({ worker: worker_ });
        consumer.observer.once('close', () => series.consumers.dec({ worker: worker_ }));
      });
    };
    worker.observer.on('newrouter', (router) => router.observer.on('newtransport', onTransport));
  };
  for (const worker of pool.workers) watch(worker);
  pool.on('workerDied', (index) => {
    series.workerDeaths.inc({ worker: String(index) });
    series.producers.set({ worker: String(index) }, 0);
    series.consumers.set({ worker: String(index) }, 0);
  });
  pool.on('workerReplaced', (index) => {
    const replacement = pool.workers.find((w) => w.index === index);
    if (replacement) watch(replacement);
  });

  return {
    async refresh() {
      await Promise.all(
        pool.workers.map(async ({ index, worker }) => {
          const usage = await worker.getResourceUsage().catch(() => undefined);
          if (!usage) return;
          // getrusage: times in ms, ru_maxrss in KiB (Linux).
          series.workerCpu.set({ worker: String(index) }, (usage.ru_utime + usage.ru_stime) / 1000);
          series.workerRss.set({ worker: String(index) }, usage.ru_maxrss * 1024);
        }),
      );
    },
  };
}
