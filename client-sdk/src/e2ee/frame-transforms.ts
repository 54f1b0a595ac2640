/**
 * The page's side of frame encryption: one worker per client (from a blob URL: CSP `worker-src
 * blob:`), a transform attached to each RTCRtpSender and RTCRtpReceiver as mediasoup-client
 * creates it (never later: the first frames would leave in clear, or the first key frame be lost),
 * and the keys the worker encrypts and decrypts with. `RTCRtpScriptTransform` where the browser
 * has it, else insertable streams (the transports then need `encodedInsertableStreams`), whose
 * streams go to the same worker and the same transform code.
 */
import type { E2eeStats } from './e2ee-stats.ts';
import type { FrameTransformOptions, FrameWorkerReply, FrameWorkerRequest } from './frame-worker-messages.ts';
import { frameWorkerSource } from './frame-worker-source.ts';
import { hasScriptTransform, isE2eeSupported } from './support.ts';

/** Chromium's insertable streams, on senders and receivers made with `encodedInsertableStreams: true`. */
interface InsertableStreams {
  createEncodedStreams(): { readable: ReadableStream; writable: WritableStream };
}

export const emptyStats: Readonly<E2eeStats> = Object.freeze({
  framesEncrypted: 0,
  framesDecrypted: 0,
  framesFailed: 0,
  encryptMs: 0,
  decryptMs: 0,
});

export class FrameTransforms {
  readonly #worker: Worker;
  readonly #url: string;
  readonly #scriptTransform: boolean;
  readonly #pendingStats = new Map<number, (stats: E2eeStats) => void>();
  #nextStatsId = 0;
  #closed = false;

  private constructor() {
    this.#scriptTransform = hasScriptTransform();
    this.#url = URL.createObjectURL(new Blob([frameWorkerSource as string], { type: 'text/javascript' }));
    this.#worker = new Worker(this.#url, { name: 'haven-e2ee' });
    this.#worker.onmessage = ({ data }: MessageEvent<FrameWorkerReply>) => {
      if (data?.type !== 'stats') return;
      this.#pendingStats.get(data.id)?.(data.stats);
      this.#pendingStats.delete(data.id);
    };
  }

  /** The transforms of this browser; undefined where E2EE is not supported. */
  static create(): FrameTransforms | undefined {
    return isE2eeSupported() ? new FrameTransforms() : undefined;
  }

  /** Whether the transports must be made with `encodedInsertableStreams: true` (no RTCRtpScriptTransform). */
  get insertableStreams(): boolean {
    return !this.#scriptTransform;
  }

  attachSender(sender: RTCRtpSender, kind: 'audio' | 'video'): void {
    this.#attach(sender, { side: 'send', kind });
  }

  attachReceiver(receiver: RTCRtpReceiver, kind: 'audio' | 'video'): void {
    const hook = (globalThis as { __havenE2eeTest?: { passThroughReceive?: unknown } }).__havenE2eeTest;
    const passThrough = typeof hook === 'object' && hook !== null && hook.passThroughReceive === true;
    this.#attach(receiver, { side: 'recv', kind, ...(passThrough ? { passThrough } : {}) });
  }

  /** The epochs to decrypt with and the one to encrypt with (null: senders drop every frame). */
  setKeys(keys: { epoch: number; secret: Uint8Array }[], sendEpoch: number | null): void {
    this.#post({ type: 'keys', keys: keys.map(({ epoch, secret }) => ({ epoch, secret: secret.slice() })), sendEpoch });
  }

  /** The worker's counters. */
  stats(): Promise<E2eeStats> {
    if (this.#closed) return Promise.resolve({ ...emptyStats });
    const id = this.#nextStatsId++;
    return new Promise((resolve) => {
      this.#pendingStats.set(id, resolve);
      this.#post({ type: 'stats', id });
    });
  }

  /** Stops the worker (every transform ends). Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#worker.terminate();
    URL.revokeObjectURL(this.#url);
    for (const resolve of this.#pendingStats.values()) resolve({ ...emptyStats });
    this.#pendingStats.clear();
  }

  #attach(target: RTCRtpSender | RTCRtpReceiver, options: FrameTransformOptions): void {
    if (this.#closed) throw new Error('the end-to-end encryption worker was stopped');
    if (this.#scriptTransform) {
      target.transform = new RTCRtpScriptTransform(this.#worker, options);
      return;
    }
    const { readable, writable } = (target as unknown as InsertableStreams).createEncodedStreams();
    this.#post({ type: 'stream', readable, writable, options }, [readable, writable]);
  }

  #post(request: FrameWorkerRequest, transfer: Transferable[] = []): void {
    if (!this.#closed) this.#worker.postMessage(request, transfer);
  }
}
