/**
 * The media workers: producers and consumers per worker slot, counted from mediasoup's own
 * `observer` events (router → transport → producer/consumer); deaths from the pool's events; CPU
 * and memory asked of each worker at scrape time. The label is the worker's slot (0 … workers − 1),
 * which a replacement keeps.
 */
import type { Transport, Worker } from 'mediasoup/node/lib/types.js';
import type { PoolWorker, WorkerPool } from '../media/worker-pool.ts';
import type { Series } from './series.ts';

export interface WorkerMetrics {
  /** Sets the gauges read at scrape time; a worker that cannot answer keeps its last CPU and RSS. */
  refresh(): Promise<void>;
}

interface Carried {
  producers: number;
  consumers: number;
}

export function observeWorkers(series: Series, pool: WorkerPool): WorkerMetrics {
  // Per worker process, not per slot: a dead worker's last closes never count on its successor.
  const carried = new WeakMap<Worker, Carried>();
  const watch = ({ index, worker }: PoolWorker) => {
    if (carried.has(worker)) return;
    const counts: Carried = { producers: 0, consumers: 0 };
    carried.set(worker, counts);
    series.workerDeaths.inc({ worker: String(index) }, 0);
    const onTransport = (transport: Transport) => {
      transport.observer.on('newproducer', (producer) => {
        counts.producers++;
        producer.observer.once('close', () => counts.producers--);
      });
      transport.observer.on('newconsumer', (consumer) => {
        counts.consumers++;
        consumer.observer.once('close', () => counts.consumers--);
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
          const slot = { worker: String(index) };
          const counts = carried.get(worker);
          series.producers.set(slot, counts?.producers ?? 0);
          series.consumers.set(slot, counts?.consumers ?? 0);
          const usage = await worker.getResourceUsage().catch(() => undefined);
          if (!usage) return;
          // getrusage: times in ms, ru_maxrss in KiB (Linux).
          series.workerCpu.set(slot, (usage.ru_utime + usage.ru_stime) / 1000);
          series.workerRss.set(slot, usage.ru_maxrss * 1024);
        }),
      );
    },
  };
}
