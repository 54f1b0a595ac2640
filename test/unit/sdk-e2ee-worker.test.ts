/**
 * The E2EE frame worker's transform in Node (its global scope stood in for, frames as plain
 * objects through real web streams): a sender without the send epoch's key drops every frame; with
 * it, frames leave encrypted, their clear bytes by kind; a receiver decrypts, drops and counts what
 * does not open, asks for a key frame when video resumes on a delta frame, and (the test hook)
 * passes frames through untouched; the counters add up.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { E2eeStats } from '../../client-sdk/src/e2ee/e2ee-stats.ts';
import { newEpochSecret } from '../../client-sdk/src/e2ee/epoch-secret.ts';
import { decryptFrame, deriveFrameKey, encryptFrame, frameEpoch } from '../../client-sdk/src/e2ee/frame-crypto.ts';
import type { FrameTransformOptions, FrameWorkerRequest } from '../../client-sdk/src/e2ee/frame-worker-messages.ts';
import { e2eeClearBytes } from '../../client-sdk/src/protocol/index.ts';

interface Frame {
  data: ArrayBuffer;
  type?: 'key' | 'delta';
}

/** The worker's global scope, as the module sees it (`self`). */
const replies: unknown[] = [];
const scope = {
  onmessage: null as null | ((event: { data: FrameWorkerRequest }) => void),
  onrtctransform: null as null | ((event: { transformer: unknown }) => void),
  postMessage: (message: unknown) => replies.push(message),
};
(globalThis as { self?: unknown }).self = scope;
await import('../../client-sdk/src/e2ee/frame-worker.ts');

const send = (request: FrameWorkerRequest) => scope.onmessage?.({ data: request });

/** Runs `frames` through a transform with `options`; resolves with what came out and the key frame requests. */
async function transform(options: FrameTransformOptions, frames: Frame[]): Promise<{ out: Frame[]; requests: number }> {
  const out: Frame[] = [];
  let requests = 0;
  let done!: () => void;
  const closed = new Promise<void>((resolve) => {
    done = resolve;
  });
  const readable = new ReadableStream<Frame>({
    start(controller) {
      for (const frame of frames) controller.enqueue(frame);
      controller.close();
    },
  });
  const writable = new WritableStream<Frame>({ write: (frame) => void out.push(frame), close: () => done() });
  const sendKeyFrameRequest = async () => {
    requests++;
  };
  scope.onrtctransform?.({ transformer: { readable, writable, options, sendKeyFrameRequest } });
  await closed;
  return { out, requests };
}

const bytes = (length: number, seed: number) => Uint8Array.from({ length }, (_, i) => (i * 13 + seed) & 0xff);
const frame = (data: Uint8Array, type?: 'key' | 'delta'): Frame => ({
  data: data.slice().buffer,
  ...(type && { type }),
});

async function stats(): Promise<E2eeStats> {
  const id = replies.length + 1000;
  send({ type: 'stats', id });
  const reply = replies.find((r) => (r as { id: number }).id === id) as { stats: E2eeStats };
  return reply.stats;
}

test('a sender without the send epoch’s key drops every frame: nothing leaves in clear', async () => {
  send({ type: 'keys', keys: [{ epoch: 1, secret: newEpochSecret() }], sendEpoch: null });
  const { out } = await transform({ side: 'send', kind: 'video' }, [
    frame(bytes(300, 1), 'key'),
    frame(bytes(50, 2), 'delta'),
  ]);
  assert.equal(out, []);
  send({ type: 'keys', keys: [], sendEpoch: 5 });
  assert.equal(
    (await transform({ side: 'send', kind: 'audio' }, [frame(bytes(60, 3))])).out,
    [],
    'active epoch without its key',
  );
});

test('a sender encrypts with the send epoch, clear bytes by kind; a receiver decrypts; others’ frames fail', async () => {
  const secret = newEpochSecret();
  const key = await deriveFrameKey(secret);
  send({ type: 'keys', keys: [{ epoch: 3, secret }], sendEpoch: 3 });
  const before = await stats();
  const clear = [frame(bytes(900, 4), 'key'), frame(bytes(200, 5), 'delta')];
  const { out } = await transform(
    { side: 'send', kind: 'video' },
    clear.map((f) => ({ ...f, data: f.data.slice(0) })),
  );
  assert.is(out.length, 2);
  for (const [i, sealed] of out.entries()) {
    const data = new Uint8Array(sealed.data);
    const n = i === 0 ? e2eeClearBytes.videoKey : e2eeClearBytes.videoDelta;
    assert.is(frameEpoch(data), 3);
    assert.equal([...data.subarray(0, n)], [...new Uint8Array(clear[i]?.data as ArrayBuffer).subarray(0, n)]);
    assert.equal([...((await decryptFrame(key, data, n)) ?? [])], [...new Uint8Array(clear[i]?.data as ArrayBuffer)]);
  }
  const audio = (await transform({ side: 'send', kind: 'audio' }, [frame(bytes(70, 6))])).out[0] as Frame;
  assert.ok(await decryptFrame(key, new Uint8Array(audio.data), e2eeClearBytes.audio), 'audio keeps 1 byte in clear');

  const foreign = await encryptFrame(await deriveFrameKey(newEpochSecret()), 3, bytes(100, 7), 3);
  const received = await transform({ side: 'recv', kind: 'video' }, [
    { ...out[0], data: (out[0] as Frame).data.slice(0) } as Frame,
    frame(foreign, 'delta'),
    frame(bytes(100, 8), 'delta'),
    { ...out[1], data: (out[1] as Frame).data.slice(0) } as Frame,
  ]);
  assert.equal(
    received.out.map((f) => [...new Uint8Array(f.data)]),
    clear.map((f) => [...new Uint8Array(f.data)]),
    'decrypted; another key’s frame and a clear frame dropped',
  );
  const after = await stats();
  assert.is(after.framesEncrypted - before.framesEncrypted, 3);
  assert.is(after.framesDecrypted - before.framesDecrypted, 2);
  assert.is(after.framesFailed - before.framesFailed, 2);
  assert.ok(after.encryptMs >= before.encryptMs && after.decryptMs >= before.decryptMs);
});

test('video resuming on a delta frame asks for a key frame; starting on a key frame, or audio, does not', async () => {
  const secret = newEpochSecret();
  const key = await deriveFrameKey(secret);
  send({ type: 'keys', keys: [{ epoch: 4, secret }], sendEpoch: 4 });
  const sealed = async (type: 'key' | 'delta', seed: number) =>
    frame(await encryptFrame(key, 4, bytes(120, seed), type === 'key' ? 10 : 3), type);
  const fromDelta = await transform({ side: 'recv', kind: 'video' }, [await sealed('delta', 1)]);
  assert.is(fromDelta.requests, 1, 'the first frame decrypted is a delta frame: a key frame is asked for');
  const fromKey = await transform({ side: 'recv', kind: 'video' }, [await sealed('key', 2), await sealed('delta', 3)]);
  assert.is(fromKey.requests, 0);
  const afterLoss = await transform({ side: 'recv', kind: 'video' }, [
    await sealed('key', 4),
    frame(bytes(80, 5), 'delta'),
    await sealed('delta', 6),
  ]);
  assert.is(afterLoss.out.length, 2);
  assert.is(afterLoss.requests, 1, 'after a frame that did not decrypt');
  const audio = await transform({ side: 'recv', kind: 'audio' }, [frame(await encryptFrame(key, 4, bytes(40, 7), 1))]);
  assert.is(audio.out.length, 1);
  assert.is(audio.requests, 0);
  // Epochs the page no longer holds are forgotten by the worker too.
  send({ type: 'keys', keys: [{ epoch: 5, secret: newEpochSecret() }], sendEpoch: 5 });
  assert.is((await transform({ side: 'recv', kind: 'video' }, [await sealed('key', 8)])).out.length, 0);
});

test('the test hook’s pass-through receiver hands frames on untouched and counts nothing', async () => {
  const before = await stats();
  const data = bytes(90, 9);
  const { out } = await transform({ side: 'recv', kind: 'video', passThrough: true }, [frame(data, 'key')]);
  assert.equal([...new Uint8Array((out[0] as Frame).data)], [...data]);
  assert.equal(await stats(), before);
});

test.run();
