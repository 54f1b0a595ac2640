/**
 * The frame worker (its own bundle, built by scripts/build-sdk.ts into the SDK as a string): one
 * transform for every sender and receiver, whether the browser hands it the frames through
 * `RTCRtpScriptTransform` (`rtctransform` event) or through insertable streams (the streams
 * posted here by the page). A sender without the send epoch's key drops its frames: nothing
 * leaves in clear. A receiver drops what does not decrypt and, when video comes back on a delta
 * frame, asks the sender for a key frame.
 */
import { e2eeClearBytes } from '../protocol/limits.ts';
import type { E2eeStats } from './e2ee-stats.ts';
import { decryptFrame, deriveFrameKey, encryptFrame, frameEpoch } from './frame-crypto.ts';
import type { FrameTransformOptions, FrameWorkerRequest } from './frame-worker-messages.ts';

/** An encoded audio or video frame (RTCEncodedAudioFrame / RTCEncodedVideoFrame). */
interface EncodedFrame {
  data: ArrayBuffer;
  /** Video only: `'key'`, `'delta'` or `'empty'`. */
  readonly type?: string;
}

/** What RTCRtpScriptTransformer offers besides its streams (sendKeyFrameRequest on receivers). */
interface Transformer {
  readonly readable: ReadableStream<EncodedFrame>;
  readonly writable: WritableStream<EncodedFrame>;
  readonly options: FrameTransformOptions;
  sendKeyFrameRequest?: () => Promise<void>;
}

interface WorkerScope {
  onmessage: ((event: MessageEvent<FrameWorkerRequest>) => void) | null;
  onrtctransform: ((event: { transformer: Transformer }) => void) | null;
  postMessage(message: unknown): void;
}
const scope = self as unknown as WorkerScope;

/** At most one key frame request a second per receiver while it waits for one. */
const keyFrameRequestIntervalMs = 1_000;

/** Each epoch's frame key, and the secret it came from (as text, to tell a replaced secret). */
const keys = new Map<number, { tag: string; key: Promise<CryptoKey> }>();
let sendEpoch: number | null = null;
const stats: E2eeStats = { framesEncrypted: 0, framesDecrypted: 0, framesFailed: 0, encryptMs: 0, decryptMs: 0 };

function clearBytes(frame: EncodedFrame, options: FrameTransformOptions): number {
  if (options.kind === 'audio') return e2eeClearBytes.audio;
  return frame.type === 'key' ? e2eeClearBytes.videoKey : e2eeClearBytes.videoDelta;
}

function sender(options: FrameTransformOptions): TransformStream {
  return new TransformStream<EncodedFrame, EncodedFrame>({
    async transform(frame, controller) {
      const epoch = sendEpoch;
      const key = epoch === null ? undefined : keys.get(epoch)?.key;
      if (epoch === null || !key) return;
      const started = performance.now();
      const sealed = await encryptFrame(await key, epoch, new Uint8Array(frame.data), clearBytes(frame, options));
      stats.encryptMs += performance.now() - started;
      stats.framesEncrypted++;
      frame.data = sealed.buffer as ArrayBuffer;
      controller.enqueue(frame);
    },
  });
}

function receiver(options: FrameTransformOptions, transformer: Transformer | undefined): TransformStream {
  // Video waits for a key frame at the start and after any frame it could not decrypt.
  let awaitingKeyFrame = options.kind === 'video';
  let lastRequest = Number.NEGATIVE_INFINITY;
  return new TransformStream<EncodedFrame, EncodedFrame>({
    async transform(frame, controller) {
      if (options.passThrough) {
        controller.enqueue(frame);
        return;
      }
      const data = new Uint8Array(frame.data);
      const epoch = frameEpoch(data);
      const key = epoch === undefined ? undefined : keys.get(epoch)?.key;
      const started = performance.now();
      const opened = key ? await decryptFrame(await key, data, clearBytes(frame, options)) : null;
      if (!opened) {
        stats.framesFailed++;
        if (options.kind === 'video') awaitingKeyFrame = true;
        return;
      }
      stats.decryptMs += performance.now() - started;
      stats.framesDecrypted++;
      if (awaitingKeyFrame) {
        if (frame.type === 'key') awaitingKeyFrame = false;
        else if (transformer?.sendKeyFrameRequest && started - lastRequest >= keyFrameRequestIntervalMs) {
          lastRequest = started;
          transformer.sendKeyFrameRequest().catch(() => {});
        }
      }
      frame.data = opened.buffer as ArrayBuffer;
      controller.enqueue(frame);
    },
  });
}

function attach(
  readable: ReadableStream<EncodedFrame>,
  writable: WritableStream<EncodedFrame>,
  options: FrameTransformOptions,
  transformer?: Transformer,
): void {
  const transform = options.side === 'send' ? sender(options) : receiver(options, transformer);
  // The streams end when the sender or receiver stops.
  readable
    .pipeThrough(transform)
    .pipeTo(writable)
    .catch(() => {});
}

scope.onrtctransform = ({ transformer }) =>
  attach(transformer.readable, transformer.writable, transformer.options, transformer);

scope.onmessage = ({ data: request }) => {
  switch (request.type) {
    case 'keys': {
      const held = new Set(request.keys.map((key) => key.epoch));
      for (const epoch of [...keys.keys()]) if (!held.has(epoch)) keys.delete(epoch);
      for (const { epoch, secret } of request.keys) {
        // Derived again when an epoch's secret was replaced (the leader's over one drawn in a race).
        const tag = secret.join(',');
        if (keys.get(epoch)?.tag === tag) continue;
        const key = deriveFrameKey(secret);
        key.catch(() => keys.delete(epoch));
        keys.set(epoch, { tag, key });
      }
      sendEpoch = request.sendEpoch;
      return;
    }
    case 'stream':
      attach(request.readable, request.writable, request.options);
      return;
    case 'stats':
      scope.postMessage({ type: 'stats', id: request.id, stats: { ...stats } });
      return;
  }
};
