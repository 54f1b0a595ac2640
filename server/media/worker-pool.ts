/**
 * The pool of mediasoup workers (one C++ process each, one per core by default). A worker that
 * dies is logged and replaced with a new one in its slot; routers are placed on the least-loaded
 * live worker, load being the producers and consumers its routers carry (what costs CPU).
 */
import * as mediasoup from 'mediasoup';
import type { Router, RouterOptions, WebRtcServer, Worker, WorkerLogLevel } from 'mediasoup/node/lib/types.js';
import { TypedEmitter } from '../../client-sdk/src/protocol/typed-emitter.ts';
import type { Logger } from '../logger.ts';
import { isProcessAlive } from '../processes.ts';

export interface WorkerPoolOptions {
  /** Number of workers. */
  size: number;
  logLevel?: WorkerLogLevel;
  rtcMinPort?: number;
  rtcMaxPort?: number;
  /**
   * One WebRTC server per worker, so that clients' media reaches a handful of fixed ports: worker
   * i listens on `port + i`, UDP and TCP (port 0: free ports). Absent: no WebRTC servers.
   */
  webRtc?: { listenIp: string; announcedIp?: string; port: number };
  logger?: Logger;
}

/** A worker in the pool, with the load the pool tracks for placement. */
export interface PoolWorker {
  /** Slot in the pool, kept by a replacement. */
  readonly index: number;
  readonly worker: Worker;
  /** The worker's WebRTC server, when the pool has `webRtc` options. */
  readonly webRtcServer: WebRtcServer | undefined;
  /** Live producers plus consumers on this worker's routers. */
  load: number;
  routers: number;
}

export type WorkerPoolEvents = {
  /** A worker died; `replaced` follows once its successor runs. */
  workerDied: [index: number, pid: number, error: Error];
  workerReplaced: [index: number, pid: number];
};

const respawnDelayMs = 200;
const maxRespawnDelayMs = 5_000;
const exitTimeoutMs = 3_000;

export class WorkerPool extends TypedEmitter<WorkerPoolEvents> {
  readonly #options: WorkerPoolOptions;
  readonly #slots: (PoolWorker | undefined)[];
  readonly #logger: Logger | undefined;
  #closed = false;
  #closing: Promise<void> | undefined;

  private constructor(options: WorkerPoolOptions) {
    super();
    this.#options = options;
    this.#slots = new Array(options.size).fill(undefined);
    this.#logger = options.logger?.child({ component: 'worker-pool' });
  }

  /** Starts `options.size` workers; rejects if any fails to start. */
  static async create(options: WorkerPoolOptions): Promise<WorkerPool> {
    if (!Number.isInteger(options.size) || options.size < 1) throw new TypeError('size must be a positive integer');
    const pool = new WorkerPool(options);
    try {
      await Promise.all(pool.#slots.map((_, index) => pool.#start(index)));
    } catch (err) {
      await pool.close();
      throw err;
    }
    pool.#logger?.info({ workers: options.size }, 'media workers started');
    return pool;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** The live workers (a dead one is absent until its replacement runs). */
  get workers(): readonly PoolWorker[] {
    return this.#slots.filter((slot): slot is PoolWorker => slot !== undefined && !slot.worker.closed);
  }

  /** The live worker carrying the least load (fewest routers on a tie), preferring those not in `avoid`. */
  leastLoaded(avoid: ReadonlySet<PoolWorker> = new Set()): PoolWorker {
    const byLoad = [...this.workers].sort((a, b) => a.load - b.load || a.routers - b.routers || a.index - b.index);
    const best = byLoad.find((w) => !avoid.has(w)) ?? byLoad[0];
    if (!best) throw new Error('no live media worker');
    return best;
  }

  /** Resolves once a worker is alive (at once if one is); rejects after `timeoutMs`. */
  whenAlive(timeoutMs: number): Promise<void> {
    if (this.workers.length > 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.off('workerReplaced', onReplaced);
        reject(new Error(`no live media worker within ${timeoutMs} ms`));
      }, timeoutMs);
      const onReplaced = () => {
        clearTimeout(timer);
        this.off('workerReplaced', onReplaced);
        resolve();
      };
      this.on('workerReplaced', onReplaced);
    });
  }

  /** Creates a router on the least-loaded worker (not one in `avoid`, if another is alive). */
  async createRouter(
    options: RouterOptions,
    avoid?: ReadonlySet<PoolWorker>,
  ): Promise<{ router: Router; worker: PoolWorker }> {
    const worker = this.leastLoaded(avoid);
    return { router: await worker.worker.createRouter(options), worker };
  }

  async #start(index: number): Promise<void> {
    const worker = await mediasoup.createWorker({
      logLevel: this.#options.logLevel ?? 'warn',
      rtcMinPort: this.#options.rtcMinPort,
      rtcMaxPort: this.#options.rtcMaxPort,
      appData: { index },
    });
    let webRtcServer: WebRtcServer | undefined;
    const webRtc = this.#options.webRtc;
    if (webRtc) {
      const listen = {
        ip: webRtc.listenIp,
        announcedIp: webRtc.announcedIp,
        port: webRtc.port ? webRtc.port + index : undefined,
      };
      try {
        webRtcServer = await worker.createWebRtcServer({
          listenInfos: [
            { protocol: 'udp', ...listen },
            { protocol: 'tcp', ...listen },
          ],
        });
      } catch (err) {
        worker.close();
        throw new Error(
          `media worker ${index}: cannot listen on ${webRtc.listenIp}:${listen.port ?? 'any'}: ${(err as Error).message}`,
        );
      }
    }
    const slot: PoolWorker = { index, worker, webRtcServer, load: 0, routers: 0 };
    this.#trackLoad(slot);
    worker.on('died', (error) => this.#onDied(slot, error));
    if (this.#closed) {
      worker.close();
      return;
    }
    this.#slots[index] = slot;
  }

  /** Follows producers and consumers through mediasoup's observers to keep `load` current. */
  #trackLoad(slot: PoolWorker): void {
    const add = (n: number) => {
      slot.load += n;
    };
    slot.worker.observer.on('newrouter', (router) => {
      slot.routers++;
      router.observer.once('close', () => slot.routers--);
      router.observer.on('newtransport', (transport) => {
        for (const event of ['newproducer', 'newconsumer'] as const) {
          transport.observer.on(event, (child: { observer: { once(e: 'close', f: () => void): void } }) => {
            add(1);
            child.observer.once('close', () => add(-1));
          });
        }
      });
    });
  }

  #onDied(slot: PoolWorker, error: Error): void {
    const pid = slot.worker.pid;
    if (this.#slots[slot.index] === slot) this.#slots[slot.index] = undefined;
    if (this.#closed) return;
    this.#logger?.error({ worker: slot.index, pid, err: error }, 'media worker died; replacing it');
    this.safeEmit('workerDied', slot.index, pid, error);
    this.#respawn(slot.index);
  }

  /** Starts a replacement at once; repeated failures back off up to `maxRespawnDelayMs`. */
  #respawn(index: number, failures = 0): void {
    if (this.#closed) return;
    this.#start(index).then(
      () => {
        const replacement = this.#slots[index];
        if (!replacement) return;
        this.#logger?.info({ worker: index, pid: replacement.worker.pid }, 'media worker replaced');
        this.safeEmit('workerReplaced', index, replacement.worker.pid);
      },
      (err: Error) => {
        this.#logger?.error({ worker: index, err }, 'media worker failed to start; retrying');
        const delay = Math.min(respawnDelayMs * 2 ** failures, maxRespawnDelayMs);
        setTimeout(() => this.#respawn(index, failures + 1), delay).unref();
      },
    );
  }

  /**
   * Closes every worker (and so their routers); resolves once their processes are gone (SIGKILL
   * after `exitTimeoutMs`). Idempotent.
   */
  close(): Promise<void> {
    if (this.#closing) return this.#closing;
    this.#closed = true;
    const pids = this.#slots.flatMap((slot) => (slot ? [slot.worker.pid] : []));
    for (const slot of this.#slots) slot?.worker.close();
    this.#slots.fill(undefined);
    this.#closing = waitForExit(pids);
    return this.#closing;
  }
}

/** mediasoup's Worker.close() sends SIGTERM and does not wait: wait here, so no worker outlives the pool. */
async function waitForExit(pids: number[]): Promise<void> {
  const deadline = Date.now() + exitTimeoutMs;
  while (pids.some(isProcessAlive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  for (const pid of pids.filter(isProcessAlive)) process.kill(pid, 'SIGKILL');
}
