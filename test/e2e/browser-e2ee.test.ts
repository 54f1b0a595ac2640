/**
 * End-to-end encryption in real Chromium pages (the demo app and the SDK) over a real node: three
 * pages in an E2EE group room decode each other and agree on one security code; what the SFU
 * forwards (tapped at the node over a plain transport) is not VP8 beyond the clear header, and
 * decodes only once decrypted with the epoch's key (and every frame it forwards opens with its
 * epoch's key: nothing leaves in clear); a receiver without the key decodes next to nothing;
 * a browser that can only use insertable streams takes part; one that cannot encrypt is refused
 * `E2EE_UNSUPPORTED`; chat reaches the others in clear but is ciphertext in Redis and absent from
 * the node's log; someone who is not the key leader cannot distribute keys.
 */
import type { Page } from 'playwright-core';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { waitFor } from '../../bench/processes.ts';
import { setSpeaking, speechAudio } from '../../bench/speech-audio.ts';
import { e2eeClearBytes } from '../../client-sdk/src/protocol/index.ts';
import { browserFor } from '../helpers/browser.ts';
import {
  agreedEpoch,
  e2eeOf,
  e2eeStats,
  frameEpoch,
  openE2eePage,
  openedWith,
  participantIdOf,
  secretsOf,
} from '../helpers/e2ee-pages.ts';
import { type MediaTap, openMediaTap, vp8Frames } from '../helpers/media-tap.ts';
import { receivingFrom } from '../helpers/page-media.ts';
import { sessionNode } from '../helpers/session-node.ts';
import { codeOf } from '../helpers/signaling-client.ts';
import { redisContents } from '../helpers/test-redis.ts';

// Closed before the node stops, so that no page is left reconnecting.
const browser = browserFor(test);
// The demo mints tokens with the node's secret (the test's), so raw sockets join the same room.
const haven = sessionNode(test, {
  redis: true,
  env: { HAVEN_MEDIA_PLAIN_TRANSPORTS: 'true', HAVEN_LOG_LEVEL: 'debug', HAVEN_E2EE_KEY_ACK_TIMEOUT_MS: '10000' },
});
const { node } = haven;
const redis = haven.redisClient();
let room = '';
const pages: Record<string, Page> = {};
let tap: MediaTap | undefined;

type DemoWindow = {
  havenDemo: {
    client?: {
      participants: Map<
        string,
        { getTrack(source: string): { setPreferredSize(w: number, h: number): Promise<void> } | undefined }
      >;
      activeSpeakerId: string | null;
      moderation: {
        mute(id: string): Promise<void>;
        deleteChatMessage(id: string): Promise<void>;
        breakouts: {
          create(plan: { groups: { name: string; members: string[] }[] }): Promise<unknown>;
          start(): Promise<unknown>;
          broadcast(text: string): Promise<number>;
          recall(): Promise<void>;
        };
      };
      once(event: 'mutedByFacilitator' | 'broadcastReceived', listener: (value: unknown) => void): void;
      publishScreen(): Promise<unknown>;
      setMicrophoneEnabled(enabled: boolean): Promise<void>;
      sendChat(text: string): Promise<string>;
    };
  };
};

async function open(name: string, role: string, init?: () => void): Promise<Page> {
  const opened = await openE2eePage(browser.context, node.url, room, name, role, init);
  // Starts the page's synthetic microphone (silent): the autoplay policy held it until a gesture.
  await setSpeaking(opened, false);
  pages[name] = opened;
  return opened;
}

const page = (name: string) => pages[name] as Page;

test.before(async () => {
  await browser.context.addInitScript(speechAudio);
  room = await haven.newRoom({ title: 'E2EE group', waitingRoom: false, e2ee: true, keepChat: true });
});
test.after(() => tap?.close());

test('three pages in an E2EE room decode each other’s audio and video, with one security code', async () => {
  await open('Ana', 'facilitator');
  await open('Ben', 'participant');
  await open('Cai', 'participant');
  const { securityCode } = await agreedEpoch([page('Ana'), page('Ben'), page('Cai')], 3, 'one epoch on three pages');
  assert.match(securityCode, /^\d{4} \d{4} \d{4}$/);
  for (const name of ['Ana', 'Ben', 'Cai']) await receivingFrom(page(name), 2, `${name} to decode two peers`);
  for (const name of ['Ana', 'Ben', 'Cai']) {
    const stats = await e2eeStats(page(name));
    assert.ok(stats.framesEncrypted > 0 && stats.framesDecrypted > 0, `${name} encrypts and decrypts`);
  }
  const badge = await page('Ben').textContent('#e2ee');
  assert.ok(badge?.includes(securityCode), `the demo shows the code: ${badge}`);
});

test('simulcast layers, the active speaker and a facilitator’s mute work on encrypted media', async () => {
  const anaId = await participantIdOf(page('Ana'));
  const benId = await participantIdOf(page('Ben'));
  // A small tile asks for a lower simulcast layer: the SFU switches on a key frame it reads in clear.
  const width = () => inboundWidthFrom(page('Ben'), anaId);
  const prefer = (w: number, h: number) =>
    page('Ben').evaluate(
      ([id, width, height]) =>
        (window as unknown as DemoWindow).havenDemo.client?.participants
          .get(id as string)
          ?.getTrack('camera')
          ?.setPreferredSize(width as number, height as number),
      [anaId, w, h] as const,
    );
  await prefer(1280, 720);
  await waitFor(async () => (await width()) >= 640, 20_000, "Ben to get Ana's top layer");
  await prefer(160, 90);
  await waitFor(async () => (await width()) <= 320, 20_000, "Ben to get a low layer of Ana's camera");

  // The active speaker comes from audio levels (an RTP header extension, in clear). The pages'
  // microphones are a synthetic voice, silent until told to speak (Chromium's own fake microphone
  // is a steady beep, which the speaker detection rightly takes for background noise): a page
  // that is not the active speaker now speaks, and must become the active speaker everywhere.
  const three = ['Ana', 'Ben', 'Cai'].map(page);
  const ids = await Promise.all(three.map(participantIdOf));
  const activeSpeakers = () =>
    Promise.all(
      three.map((p) => p.evaluate(() => (window as unknown as DemoWindow).havenDemo.client?.activeSpeakerId)),
    );
  const [before] = await activeSpeakers();
  const speakerAt = ids.findIndex((id) => id !== before && id !== anaId);
  const speaker = ids[speakerAt] as string;
  await setSpeaking(three[speakerAt] as Page, true);
  await waitFor(
    async () => (await activeSpeakers()).every((id) => id === speaker),
    20_000,
    'the one page speaking to be the active speaker on every page',
  ).catch(async (e) => {
    throw new Error(
      `${(e as Error).message} (${speaker} speaks; the pages see ${(await activeSpeakers()).join(', ')})`,
    );
  });
  await setSpeaking(three[speakerAt] as Page, false);

  // A facilitator's mute pauses the producer, as in any room; the participant may unmute again.
  await page('Ben').evaluate(() => {
    const w = window as unknown as DemoWindow & { mutedBy?: Promise<unknown> };
    w.mutedBy = new Promise((resolve) => w.havenDemo.client?.once('mutedByFacilitator', resolve));
  });
  await page('Ana').evaluate((id) => (window as unknown as DemoWindow).havenDemo.client?.moderation.mute(id), benId);
  assert.is(
    await page('Ben').evaluate(() => (window as unknown as { mutedBy: Promise<string> }).mutedBy),
    'microphone',
  );
  await page('Ben').evaluate(() => (window as unknown as DemoWindow).havenDemo.client?.setMicrophoneEnabled(true));
});

test('what the SFU forwards of a camera and a screen share is not VP8; with the epoch key it decodes', async () => {
  await page('Ana').evaluate(() => (window as unknown as DemoWindow).havenDemo.client?.publishScreen());
  tap = await openMediaTap(node.url, room);
  const anaId = await participantIdOf(page('Ana'));
  const tracks = tap.session.participants.find((p) => p.id === anaId)?.tracks ?? [];
  const producers = ['camera', 'screen'].map((source) => tracks.find((t) => t.source === source)?.producerId);
  for (const producer of producers) {
    assert.ok(producer, "Ana's camera and screen are published");
    await tap.consume(producer);
  }
  // The tap joined: a new epoch, which the pages (not the tap) can open.
  await agreedEpoch([page('Ana'), page('Ben'), page('Cai')], 4, 'the epoch after the tap came');
  for (const producer of producers as string[]) {
    // The key frame its consumer asked for, in whichever epoch Ana was sending then.
    const { keyFrame, secret } = await waitFor(
      async () => {
        const secrets = await secretsOf(page('Ana'));
        for (const frame of vp8Frames(tap?.packets(producer) ?? [])) {
          const epochSecret = secrets[frameEpoch(frame.data) ?? -1];
          if (frame.key && epochSecret) return { keyFrame: frame, secret: epochSecret };
        }
        return undefined;
      },
      15_000,
      'a whole key frame at the tap, of an epoch Ana holds',
    );
    const plain = await openedWith(new Uint8Array(keyFrame.data), e2eeClearBytes.videoKey, secret);
    assert.ok(plain, 'the epoch key opens the tapped frame');
    // The clear header (frame tag, start code, size) is the same; the rest is not.
    assert.equal([...keyFrame.data.subarray(0, 10)], [...plain.subarray(0, 10)]);
    assert.equal([...plain.subarray(3, 6)], [0x9d, 0x01, 0x2a], 'a VP8 key frame start code');
    const decoded = await decodeVp8(page('Ana'), [...plain]);
    assert.ok(decoded.picture && decoded.error === undefined, `decrypted: ${JSON.stringify(decoded)}`);
    // As tapped: an error, or (rarely: libvpx makes noise of random data) some other picture.
    const tapped = await decodeVp8(page('Ana'), [...keyFrame.data]);
    assert.is.not(tapped.picture, decoded.picture, `as tapped, not the picture sent: ${JSON.stringify(tapped)}`);
    // Nothing leaves in clear: every whole frame the SFU forwarded opens with its epoch's key.
    const secrets = await secretsOf(page('Ana'));
    const frames = await waitFor(
      () => {
        const whole = vp8Frames(tap?.packets(producer) ?? []);
        return whole.length >= 10 ? whole : undefined;
      },
      20_000,
      'ten whole frames at the tap',
    );
    for (const frame of frames) {
      const epochSecret = secrets[frameEpoch(frame.data) ?? -1];
      const clear = frame.key ? e2eeClearBytes.videoKey : e2eeClearBytes.videoDelta;
      const opened = epochSecret && (await openedWith(new Uint8Array(frame.data), clear, epochSecret));
      assert.ok(opened, `a tapped ${frame.key ? 'key' : 'delta'} frame opens with its epoch's key`);
    }
  }
});

test('someone who is not the key leader cannot distribute keys (FORBIDDEN)', async () => {
  assert.ok(tap);
  const code = await codeOf(tap.socket, 'e2eeDistribute', {
    epoch: 1_000,
    keys: [{ participantId: await participantIdOf(page('Ben')), wrapped: Buffer.alloc(60).toString('base64') }],
  });
  assert.is(code, 'FORBIDDEN');
});

test('a receiver without the key receives the video but decodes next to nothing, and none of it as sent', async () => {
  const dan = await open('Dan', 'participant', () => {
    (window as unknown as { __havenE2eeTest: { passThroughReceive: boolean } }).__havenE2eeTest.passThroughReceive =
      true;
  });
  const video = await waitFor(
    async () => {
      const tracks = await videoFrameCounts(dan);
      return tracks.length >= 3 && tracks.every((t) => t.received >= 100) ? tracks : undefined;
    },
    30_000,
    'Dan to receive 100 video frames from each of three peers',
  );
  // libvpx turns the odd random frame into a picture of noise (about 1 key frame in 300 in a
  // check of ours); frames sent in clear would all decode. What the SFU forwards is checked to be
  // encrypted, frame by frame, in the tap test above.
  for (const t of video) assert.ok(t.decoded <= t.received / 20, `${t.decoded} of ${t.received} frames decoded`);
  await dan.evaluate(() =>
    (window as unknown as { havenDemo: { client: { leave(): Promise<void> } } }).havenDemo.client.leave(),
  );
  await dan.close();
});

test('a browser with insertable streams only (no RTCRtpScriptTransform) encrypts and decrypts too', async () => {
  const eve = await open('Eve', 'participant', () => {
    delete (window as unknown as { RTCRtpScriptTransform?: unknown }).RTCRtpScriptTransform;
  });
  await receivingFrom(eve, 3, 'Eve to decode Ana, Ben and Cai');
  await receivingFrom(page('Ana'), 3, 'Ana to decode Eve too');
  const stats = await e2eeStats(eve);
  assert.ok(stats.framesEncrypted > 0 && stats.framesDecrypted > 0 && stats.framesFailed >= 0);
  assert.is((await e2eeOf(eve))?.state, 'active');
});

test('a browser that cannot encrypt is refused E2EE_UNSUPPORTED', async () => {
  const old = await browser.context.newPage();
  await old.addInitScript(() => {
    delete (window as unknown as { RTCRtpScriptTransform?: unknown }).RTCRtpScriptTransform;
    delete (RTCRtpSender.prototype as unknown as { createEncodedStreams?: unknown }).createEncodedStreams;
  });
  await old.goto(`${node.url}/demo`);
  const outcome = await old.evaluate(async (roomId) => {
    const sdk = await import('/demo/haven-sdk.js' as string);
    const res = await fetch('/demo/token', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ room: roomId, name: 'Fay', role: 'participant' }),
    });
    const { data } = await res.json();
    const client = new sdk.SessionClient({ url: location.origin, token: data.token });
    await client.connect();
    try {
      await client.join();
      return { supported: sdk.isE2eeSupported(), code: 'joined', state: client.connectionState };
    } catch (error) {
      return {
        supported: sdk.isE2eeSupported(),
        code: (error as { code?: string }).code,
        state: client.connectionState,
      };
    }
  }, room);
  assert.equal(outcome, { supported: false, code: 'E2EE_UNSUPPORTED', state: 'closed' });
  await old.close();
});

test('chat reaches the others in clear, but Redis keeps ciphertext and the node never logs it', async () => {
  const text = `I have been sober for ${process.pid} days`;
  const messageId = await page('Ana').evaluate(
    (t) => (window as unknown as DemoWindow).havenDemo.client?.sendChat(t),
    text,
  );
  for (const name of ['Ben', 'Cai']) {
    await waitFor(async () => (await page(name).textContent('#messages'))?.includes(text), 10_000, `${name} reads it`);
  }
  const stored = await redisContents(redis);
  assert.ok(stored.includes('e2ee1.'), 'ciphertext is kept (keepChat)');
  assert.not.ok(stored.includes(text), 'no clear text in Redis');
  assert.not.ok(node.output().includes(text), 'no clear text in the log');
  assert.not.ok(node.output().includes('sober'), 'no part of it either');
  // A facilitator's delete still works by id.
  await page('Ana').evaluate(
    (id) => (window as unknown as DemoWindow).havenDemo.client?.moderation.deleteChatMessage(id),
    messageId as string,
  );
  await waitFor(async () => !(await page('Ben').textContent('#messages'))?.includes(text), 10_000, 'deleted at Ben');
});

test('breakouts: each group its own key; a broadcast reaches every group decrypted, and the node never reads it', async () => {
  const [benId, caiId, eveId] = (await Promise.all(['Ben', 'Cai', 'Eve'].map((n) => participantIdOf(page(n))))) as [
    string,
    string,
    string,
  ];
  const everyone = ['Ana', 'Ben', 'Cai', 'Eve'];
  for (const name of everyone) {
    await page(name).evaluate(() => {
      const w = window as unknown as DemoWindow & { broadcast?: Promise<unknown> };
      w.broadcast = new Promise((resolve) => w.havenDemo.client?.once('broadcastReceived', resolve));
    });
  }
  await page('Ana').evaluate(
    async (groups) => {
      const breakouts = (window as unknown as DemoWindow).havenDemo.client?.moderation.breakouts;
      await breakouts?.create({ groups });
      await breakouts?.start();
    },
    [
      { name: 'A', members: [benId] },
      { name: 'B', members: [caiId, eveId] },
    ],
  );
  // Each group's own epoch (its members and the facilitator), on its own pages.
  await agreedEpoch([page('Ben')], 2, 'group A’s epoch');
  await agreedEpoch([page('Cai'), page('Eve')], 3, 'group B’s epoch');
  const text = `Two minutes left, group ${process.pid}`;
  // The facilitator's SDK holds each group's key once the group's epoch is active there too.
  await waitFor(
    () =>
      page('Ana').evaluate(
        (t) =>
          (window as unknown as DemoWindow).havenDemo.client?.moderation.breakouts.broadcast(t).then(
            () => true,
            (e: { code?: string }) => (e.code === 'INVALID_STATE' ? undefined : Promise.reject(e)),
          ),
        text,
      ),
    10_000,
    'the broadcast to be sealed for every place',
  );
  const received = await Promise.all(
    everyone.map((name) =>
      page(name).evaluate(() => (window as unknown as { broadcast: Promise<Record<string, unknown>> }).broadcast),
    ),
  );
  assert.equal(
    received.map(({ text, breakoutId, undecryptable }) => ({ text, breakoutId, undecryptable })),
    [null, 'b1', 'b2', 'b2'].map((breakoutId) => ({ text, breakoutId, undecryptable: undefined })),
  );
  assert.not.ok(node.output().includes('Two minutes left'), 'no clear text in the log');
  assert.not.ok((await redisContents(redis)).includes('Two minutes left'), 'nor in Redis');
  await page('Ana').evaluate(() => (window as unknown as DemoWindow).havenDemo.client?.moderation.breakouts.recall());
  // One space again: the four pages and the tap (which stayed in the main room).
  await agreedEpoch(everyone.map(page), 5, 'one epoch again after the recall');
});

/** Frames received and decoded of each video the page receives (mediasoup's probe left out). */
function videoFrameCounts(on: Page): Promise<{ received: number; decoded: number }[]> {
  return on.evaluate(async () => {
    const counts: { received: number; decoded: number }[] = [];
    for (const pc of (window as unknown as { peerConnections: RTCPeerConnection[] }).peerConnections) {
      if (pc.connectionState === 'closed') continue;
      (await pc.getStats()).forEach((s) => {
        if (s.type === 'inbound-rtp' && s.kind === 'video' && s.ssrc !== 1234 && s.bytesReceived > 0) {
          counts.push({ received: s.framesReceived ?? 0, decoded: s.framesDecoded ?? 0 });
        }
      });
    }
    return counts;
  });
}

/** The frame width `page` decodes of `fromId`'s camera (0 while none). */
function inboundWidthFrom(on: Page, fromId: string): Promise<number> {
  return on.evaluate(async (from) => {
    const w = window as unknown as {
      havenDemo: {
        client: { participants: Map<string, { getTrack(s: string): { track: MediaStreamTrack } | undefined }> };
      };
      peerConnections: RTCPeerConnection[];
    };
    const track = w.havenDemo.client.participants.get(from)?.getTrack('camera')?.track;
    for (const pc of w.peerConnections) {
      for (const receiver of pc.getReceivers()) {
        if (receiver.track !== track) continue;
        let width = 0;
        (await receiver.getStats()).forEach((s) => {
          if (s.type === 'inbound-rtp') width = s.frameWidth ?? 0;
        });
        return width;
      }
    }
    return 0;
  }, fromId);
}

/**
 * Decodes one VP8 key frame with the page's WebCodecs decoder (libvpx): a SHA-256 of the picture's
 * pixels, or the error. Sent as source text: what the page runs is exactly this, nothing the test's
 * compiler adds.
 */
function decodeVp8(on: Page, frame: number[]): Promise<{ picture?: string; error?: string }> {
  return on.evaluate(`(async () => {
    let pending;
    let error;
    const decoder = new VideoDecoder({
      output(picture) {
        const pixels = new Uint8Array(picture.allocationSize());
        pending = picture.copyTo(pixels).then(async () => {
          picture.close();
          const digest = await crypto.subtle.digest('SHA-256', pixels);
          return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
        });
      },
      error(e) { error = e.message; },
    });
    decoder.configure({ codec: 'vp8' });
    decoder.decode(new EncodedVideoChunk({ type: 'key', timestamp: 0, data: new Uint8Array(${JSON.stringify(frame)}) }));
    await decoder.flush().catch((e) => { error ??= e.message; });
    return { picture: pending ? await pending : undefined, error };
  })()`);
}

test.run();
