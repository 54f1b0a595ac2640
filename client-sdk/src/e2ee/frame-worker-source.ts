/**
 * The frame worker's code, bundled from frame-worker.ts by scripts/build-sdk.ts and put into the
 * SDK bundle as a string (esbuild `define`), so that the page starts it from a blob URL: no
 * second file to serve. Undefined when the SDK runs from its sources (Node tests).
 */
declare const __HAVEN_E2EE_WORKER__: string | undefined;

export const frameWorkerSource: string | undefined =
  typeof __HAVEN_E2EE_WORKER__ === 'string' ? __HAVEN_E2EE_WORKER__ : undefined;
