/** Whether this browser can take part in an E2EE room. */
import { frameWorkerSource } from './frame-worker-source.ts';

interface EncodedTransformGlobals {
  Worker?: unknown;
  Blob?: unknown;
  URL?: { createObjectURL?: unknown };
  crypto?: { subtle?: unknown };
  RTCRtpScriptTransform?: unknown;
  RTCRtpSender?: { prototype?: { createEncodedStreams?: unknown } };
}

/** Whether frames can go through `RTCRtpScriptTransform` (else insertable streams, if any). */
export function hasScriptTransform(): boolean {
  return typeof (globalThis as EncodedTransformGlobals).RTCRtpScriptTransform === 'function';
}

/**
 * Whether this client can encrypt media end to end: WebCrypto, a worker, and an encoded
 * transform (`RTCRtpScriptTransform`, or Chromium's insertable streams). False in Node (no
 * worker). A client that cannot is refused by an E2EE room (`E2EE_UNSUPPORTED`).
 */
export function isE2eeSupported(): boolean {
  const g = globalThis as EncodedTransformGlobals;
  if (frameWorkerSource === undefined || typeof g.Worker !== 'function' || typeof g.Blob !== 'function') return false;
  if (typeof g.URL?.createObjectURL !== 'function' || typeof g.crypto?.subtle !== 'object') return false;
  return hasScriptTransform() || typeof g.RTCRtpSender?.prototype?.createEncodedStreams === 'function';
}
