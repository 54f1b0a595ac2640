/** What the page and the frame worker tell each other (frame-transforms.ts ⇄ frame-worker.ts). */
import type { E2eeStats } from './e2ee-stats.ts';

/** Given to each transform: which side, which kind of media, and the test hook's pass-through. */
export interface FrameTransformOptions {
  side: 'send' | 'recv';
  kind: 'audio' | 'video';
  /** Receivers only: frames go through unchanged (the `__havenE2eeTest.passThroughReceive` hook). */
  passThrough?: boolean;
}

export type FrameWorkerRequest =
  /** Every epoch held (the worker forgets the others) and the one to send with (null: senders drop frames). */
  | { type: 'keys'; keys: { epoch: number; secret: Uint8Array }[]; sendEpoch: number | null }
  /** Insertable streams: a sender's or receiver's frames, transferred. */
  | {
      type: 'stream';
      readable: ReadableStream;
      writable: WritableStream;
      options: FrameTransformOptions;
    }
  | { type: 'stats'; id: number };

export type FrameWorkerReply = { type: 'stats'; id: number; stats: E2eeStats };
