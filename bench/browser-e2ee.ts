/**
 * `npm run bench -- browser-e2ee`: what end-to-end encryption costs in the browser. One node, one
 * run: `--pages` Chromium pages (the demo app, each its own renderer) join a plain room and
 * publish camera (3-layer simulcast) and microphone, each receiving all the others; once every page
 * decodes every other, the CPU of all Chromium processes is measured over `--seconds`. Then the
 * same in an E2EE room (a fresh browser), where each page's `client.e2ee.getStats()` also gives
 * the frames encrypted and decrypted and the time the frame worker spent in AES-GCM. The pages'
 * own WebRTC counters (frames encoded and decoded, bits, layers held back by CPU) show whether
 * both phases did the same media work; the machine's busy share shows a disturbed run.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import type { E2eeStats } from '../client-sdk/src/index.ts';
import { cameraEncodings } from '../client-sdk/src/publish-presets.ts';
import { createBenchRoom } from './bench-room.ts';
import { chromiumPath, recordPeerConnections, webrtcChromiumArgs } from './chromium.ts';
import { optionsOrUsage, UsageError, wholeNumber } from './cli.ts';
import { type NodeProcess, startNodeProcess } from './node-process.ts';
import { CpuSampler, descendants, machineBusySince, machineTicks, sumLoads } from './proc-stats.ts';
import { waitFor } from './processes.ts';

const usage = `usage: npm run bench -- browser-e2ee [options]
  --pages N     Chromium pages in each room, a facilitator included (2–8, default 3)
  --seconds N   measuring window of each phase (default 30)
  --ramp N      seconds of media after every page decodes every other, before the window (default 5)
  --out DIR     where result.json goes (default bench/results/<time>)`;

function options(argv: string[]) {
  const { values } = parseArgs({
    args: argv,
    options: {
      pages: { type: 'string', default: '3' },
      seconds: { type: 'string', default: '30' },
      ramp: { type: 'string', default: '5' },
      out: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) throw new UsageError(usage);
  return {
    pages: wholeNumber('pages', values.pages, 2, 8),
    seconds: wholeNumber('seconds', values.seconds, 1, 3_600),
    ramp: wholeNumber('ramp', values.ramp, 0, 600),
    out: values.out ?? join('bench', 'results', new Date().toISOString().replace(/[:.]/g, '-')),
  };
}
type Options = ReturnType<typeof options>;

/** What the pages' peer connections did in a window, all pages together, per second. */
export interface PageMedia {
  videoFramesDecodedPerSecond: number;
  /** Every simulcast layer's frames. */
  videoFramesEncodedPerSecond: number;
  receivedBitsPerSecond: number;
  sentBitsPerSecond: number;
  /** Outgoing video layers that Chromium limited (CPU or bandwidth) at the window's end: a phase that did less shows here. */
  limitedLayers: number;
}

/** The frame worker's figures over the window, all pages together, audio and video together. */
export interface PageCrypto {
  framesEncryptedPerSecond: number;
  framesDecryptedPerSecond: number;
  /** Frames that did not decrypt in the window (should be 0). */
  framesFailed: number;
  /**
   * Mean time per frame inside the worker's crypto call, µs (Δms ÷ Δframes): wall time around the
   * await of WebCrypto, the hop to Chromium's crypto thread included, so it grows on a busy machine.
   */
  encryptUsPerFrame: number;
  decryptUsPerFrame: number;
  /** (Δ encrypt ms + Δ decrypt ms) ÷ the window, all pages: that same wall time as a share of the window (not CPU). */
  cryptoTimeShare: number;
}

export interface BrowserPhase {
  e2ee: boolean;
  pages: number;
  seconds: number;
  /** Every Chromium process of the phase's browser, share of one core (1 = a whole core). */
  browserCpu: number;
  browserProcesses: number;
  /** The Haven node and its media workers, for scale. */
  serverCpu: number;
  /** The whole machine's busy share in the window (1 = every core): others' load shows here. */
  machineBusy: number;
  media: PageMedia;
  /** E2EE phase only. */
  crypto?: PageCrypto;
}

export interface BrowserE2eeResult {
  scenario: 'browser-e2ee';
  startedAt: string;
  /** `chromium`: the version the browser gives (empty if it never started). */
  machine: { cpus: number; cpuModel: string; node: string; chromium: string };
  options: Record<string, string | number>;
  phases: BrowserPhase[];
  /** E2EE ÷ plain, both phases measured. */
  comparison?: { browserCpuRatio: number; machineBusyPlain: number; machineBusyE2ee: number };
  failure?: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A page's cumulative counters: its peer connections' stats, and the SDK's E2EE stats in an E2EE room. */
interface PageCounters {
  at: number;
  framesDecoded: number;
  framesEncoded: number;
  bytesReceived: number;
  bytesSent: number;
  limitedLayers: number;
  /** Remote tracks with media: video that decodes, audio that arrives. */
  decodingVideo: number;
  receivingAudio: number;
  /** Outgoing video layers with frames now (the encoder adds the top ones as the bandwidth estimate grows). */
  sendingLayers: number;
  e2ee?: E2eeStats;
}

type BenchWindow = {
  peerConnections: RTCPeerConnection[];
  havenDemo: {
    timings: { joinedMs?: number };
    client?: {
      connectionState: string;
      acceptConsent(): Promise<void>;
      moderation: { waiting: readonly unknown[]; admitAll(): Promise<unknown> };
      e2ee: { state: string; epoch: number | null; memberCount: number; getStats(): Promise<E2eeStats> };
      participants: Map<
        string,
        { getTrack(source: string): { setPreferredSize(w: number, h: number): Promise<void> } | undefined }
      >;
    };
  };
};

/**
 * Every remote camera asked for at 720p: dynacast turns off the layers nobody receives, and both
 * phases must encrypt and forward all three of each camera's layers.
 */
const askForBigTiles = (page: Page): Promise<void> =>
  page.evaluate(async () => {
    const participants = (window as unknown as BenchWindow).havenDemo.client?.participants.values() ?? [];
    for (const p of participants) await p.getTrack('camera')?.setPreferredSize(1280, 720);
  });

const countersOf = (page: Page, e2ee: boolean): Promise<PageCounters> =>
  page.evaluate(async (withE2ee) => {
    const w = window as unknown as BenchWindow;
    const c = {
      at: performance.timeOrigin + performance.now(),
      framesDecoded: 0,
      framesEncoded: 0,
      bytesReceived: 0,
      bytesSent: 0,
      limitedLayers: 0,
      decodingVideo: 0,
      receivingAudio: 0,
      sendingLayers: 0,
    };
    for (const pc of w.peerConnections) {
      if (pc.connectionState === 'closed') continue;
      (await pc.getStats()).forEach((s) => {
        // mediasoup's bandwidth probe (ssrc 1234) is not media.
        if (s.type === 'inbound-rtp' && s.ssrc !== 1234) {
          c.bytesReceived += s.bytesReceived ?? 0;
          if (s.kind === 'video') c.framesDecoded += s.framesDecoded ?? 0;
          if (s.kind === 'video' && s.framesDecoded > 0) c.decodingVideo++;
          if (s.kind === 'audio' && s.bytesReceived > 0) c.receivingAudio++;
        } else if (s.type === 'outbound-rtp') {
          c.bytesSent += s.bytesSent ?? 0;
          if (s.kind === 'video') c.framesEncoded += s.framesEncoded ?? 0;
          if (s.kind === 'video' && s.framesPerSecond > 0) c.sendingLayers++;
          if (s.kind === 'video' && s.qualityLimitationReason && s.qualityLimitationReason !== 'none')
            c.limitedLayers++;
        }
      });
    }
    const e2ee = withE2ee ? await w.havenDemo.client?.e2ee.getStats() : undefined;
    return { ...c, ...(e2ee ? { e2ee } : {}) };
  }, e2ee);

/** Everything the pages did between two readings, per second (each page's own clock span). */
function mediaBetween(start: PageCounters[], end: PageCounters[]): { media: PageMedia; crypto?: PageCrypto } {
  const rate = (pick: (c: PageCounters) => number, scale = 1) =>
    end.reduce((sum, e, i) => {
      const s = start[i] as PageCounters;
      return sum + ((pick(e) - pick(s)) * scale) / Math.max(0.001, (e.at - s.at) / 1000);
    }, 0);
  const media: PageMedia = {
    videoFramesDecodedPerSecond: Math.round(rate((c) => c.framesDecoded)),
    videoFramesEncodedPerSecond: Math.round(rate((c) => c.framesEncoded)),
    receivedBitsPerSecond: Math.round(rate((c) => c.bytesReceived, 8)),
    sentBitsPerSecond: Math.round(rate((c) => c.bytesSent, 8)),
    limitedLayers: end.reduce((sum, e) => sum + e.limitedLayers, 0),
  };
  if (!end.every((e, i) => e.e2ee && start[i]?.e2ee)) return { media };
  const delta = (pick: (s: E2eeStats) => number) =>
    end.reduce((sum, e, i) => sum + pick(e.e2ee as E2eeStats) - pick(start[i]?.e2ee as E2eeStats), 0);
  const seconds = end.reduce((sum, e, i) => sum + (e.at - (start[i] as PageCounters).at), 0) / 1000 / end.length;
  const encrypted = delta((s) => s.framesEncrypted);
  const decrypted = delta((s) => s.framesDecrypted);
  const encryptMs = delta((s) => s.encryptMs);
  const decryptMs = delta((s) => s.decryptMs);
  return {
    media,
    crypto: {
      framesEncryptedPerSecond: Math.round(rate((c) => c.e2ee?.framesEncrypted ?? 0)),
      framesDecryptedPerSecond: Math.round(rate((c) => c.e2ee?.framesDecrypted ?? 0)),
      framesFailed: delta((s) => s.framesFailed),
      encryptUsPerFrame: encrypted > 0 ? (encryptMs * 1000) / encrypted : Number.NaN,
      decryptUsPerFrame: decrypted > 0 ? (decryptMs * 1000) / decrypted : Number.NaN,
      cryptoTimeShare: (encryptMs + decryptMs) / 1000 / seconds,
    },
  };
}

/** A fresh Chromium with a fake camera and microphone, allowed to use them. */
async function launch(): Promise<{ context: BrowserContext; close(): Promise<void> }> {
  const userDataDir = mkdtempSync(join(tmpdir(), 'haven-bench-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: chromiumPath,
    headless: true,
    permissions: ['camera', 'microphone'],
    args: [...webrtcChromiumArgs],
  });
  await context.addInitScript(recordPeerConnections);
  return {
    context,
    async close() {
      await context.close().catch(() => {});
      rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}

/**
 * Opens the demo for one person; a participant is taken past the consent gate (a facilitator goes
 * straight in). Resolves once in the waiting room or joined.
 */
async function openPage(context: BrowserContext, url: string, room: string, name: string, role: string) {
  const page = await context.newPage();
  page.on('pageerror', (err) => console.error(`[${name}] page error: ${err.message}`));
  await page.goto(`${url}/demo?room=${room}&name=${name}&role=${role}&auto=1`);
  if (role === 'facilitator') return page;
  const stateOf = () => page.evaluate(() => (window as unknown as BenchWindow).havenDemo.client?.connectionState);
  await waitFor(async () => (await stateOf()) === 'consent', 20_000, `${name} to be shown the consent text`);
  await page.evaluate(() => (window as unknown as BenchWindow).havenDemo.client?.acceptConsent());
  return page;
}

const joined = (page: Page) =>
  page.evaluate(() => (window as unknown as BenchWindow).havenDemo.timings.joinedMs !== undefined);

/** The facilitator's page, then the participants', admitted from the waiting room by the facilitator. */
async function joinPages(context: BrowserContext, url: string, room: string, count: number): Promise<Page[]> {
  const facilitator = await openPage(context, url, room, 'f0', 'facilitator');
  await waitFor(() => joined(facilitator), 20_000, 'the facilitator to join');
  const pages = [facilitator];
  for (let i = 1; i < count; i++) pages.push(await openPage(context, url, room, `p${i}`, 'participant'));
  await waitFor(
    () =>
      facilitator.evaluate(
        (n) => (window as unknown as BenchWindow).havenDemo.client?.moderation.waiting.length === n,
        count - 1,
      ),
    20_000,
    'every participant in the waiting room',
  );
  await facilitator.evaluate(() => (window as unknown as BenchWindow).havenDemo.client?.moderation.admitAll());
  for (const page of pages) await waitFor(() => joined(page), 20_000, 'every participant to join');
  return pages;
}

/**
 * Until every page sends all its camera's layers, decodes every other's video and receives its
 * audio (and in an E2EE room, all hold one epoch): both phases then do the same media work.
 */
async function untilAllDecodeAll(pages: Page[], e2ee: boolean): Promise<void> {
  const others = pages.length - 1;
  await waitFor(
    async () => {
      await Promise.all(pages.map(askForBigTiles));
      const counters = await Promise.all(pages.map((p) => countersOf(p, false)));
      const ready = (c: PageCounters) =>
        c.sendingLayers >= cameraEncodings.length && c.decodingVideo >= others && c.receivingAudio >= others;
      if (!counters.every(ready)) return false;
      if (!e2ee) return true;
      const views = await Promise.all(
        pages.map((p) =>
          p.evaluate(() => {
            const e = (window as unknown as BenchWindow).havenDemo.client?.e2ee;
            return e && { state: e.state, epoch: e.epoch, members: e.memberCount };
          }),
        ),
      );
      const epoch = views[0]?.epoch;
      return views.every((v) => v?.state === 'active' && v.epoch === epoch && v.members === pages.length);
    },
    60_000,
    'every page to send all its layers and decode every other page',
  );
}

/** Chromium's processes: the bench's descendants outside the node's tree. */
function browserPids(node: NodeProcess): number[] {
  const nodePid = node.child.pid as number;
  const nodeTree = new Set([nodePid, ...descendants(nodePid)]);
  return descendants(process.pid).filter((pid) => !nodeTree.has(pid));
}

/** One room's phase; `result.machine.chromium` is set from the browser launched. */
async function runPhase(o: Options, node: NodeProcess, adminKey: string, e2ee: boolean, result: BrowserE2eeResult) {
  const room = `bench-browser-${e2ee ? 'e2ee' : 'plain'}-${randomBytes(3).toString('hex')}`;
  await createBenchRoom(node.url, adminKey, { id: room, kind: 'group', capacity: o.pages + 4, e2ee });
  const browser = await launch();
  result.machine.chromium = browser.context.browser()?.version() ?? '';
  try {
    const pages = await joinPages(browser.context, node.url, room, o.pages);
    await untilAllDecodeAll(pages, e2ee);
    await sleep(o.ramp * 1000);
    const pids = browserPids(node);
    const nodePid = node.child.pid as number;
    const start = await Promise.all(pages.map((p) => countersOf(p, e2ee)));
    const browserCpu = new CpuSampler(pids);
    const server = new CpuSampler([nodePid, ...descendants(nodePid)]);
    const machine = machineTicks();
    await sleep(o.seconds * 1000);
    const browserLoad = sumLoads(browserCpu.stop());
    const serverLoad = sumLoads(server.stop());
    const machineBusy = machineBusySince(machine);
    const end = await Promise.all(pages.map((p) => countersOf(p, e2ee)));
    const phase: BrowserPhase = {
      e2ee,
      pages: o.pages,
      seconds: Math.round(browserCpu.elapsedSeconds() * 10) / 10,
      browserCpu: browserLoad.cpu,
      browserProcesses: pids.length,
      serverCpu: serverLoad.cpu,
      machineBusy,
      ...mediaBetween(start, end),
    };
    return phase;
  } finally {
    await browser.close();
  }
}

const pct = (x: number) => `${(x * 100).toFixed(1)} %`;
const us = (x: number) => (Number.isFinite(x) ? `${x.toFixed(1)} µs` : '–');

/** The console's line for one phase. */
export function describePhase(p: BrowserPhase): string {
  const m = p.media;
  const media = `video decoded ${m.videoFramesDecodedPerSecond} frames/s, encoded ${m.videoFramesEncodedPerSecond} frames/s (all layers) · sent ${(m.sentBitsPerSecond / 1e6).toFixed(1)} Mbit/s, received ${(m.receivedBitsPerSecond / 1e6).toFixed(1)} Mbit/s · ${m.limitedLayers} layers limited`;
  const c = p.crypto;
  const crypto = c
    ? ` · encrypted ${c.framesEncryptedPerSecond} frames/s, decrypted ${c.framesDecryptedPerSecond} frames/s (audio and video), ${c.framesFailed} failed · ${us(c.encryptUsPerFrame)} per encrypted frame, ${us(c.decryptUsPerFrame)} per decrypted frame · in crypto ${pct(c.cryptoTimeShare)} of the window`
    : '';
  return `${p.e2ee ? 'E2EE ' : 'plain'} · ${p.pages} pages · Chromium ${pct(p.browserCpu)} of a core (${p.browserProcesses} processes) · node + workers ${pct(p.serverCpu)} · ${media}${crypto} · machine ${pct(p.machineBusy)} busy`;
}

export async function runBrowserE2ee(argv: string[]): Promise<number> {
  const o = optionsOrUsage(() => options(argv));
  if (!o) return 2;
  const result: BrowserE2eeResult = {
    scenario: 'browser-e2ee',
    startedAt: new Date().toISOString(),
    machine: {
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model ?? 'unknown',
      node: process.version,
      chromium: '',
    },
    options: { pages: o.pages, seconds: o.seconds, ramp: o.ramp },
    phases: [],
  };
  const adminKey = randomBytes(24).toString('hex');
  let node: NodeProcess | undefined;
  try {
    node = await startNodeProcess({
      HAVEN_AUTH_SECRET: randomBytes(24).toString('hex'),
      HAVEN_ADMIN_API_KEY: adminKey,
      HAVEN_MEDIA_WEBRTC_PORT: '0',
      // The demo mints the pages' tokens with the node's secret: a development node.
      HAVEN_ENV: 'development',
      HAVEN_DEMO: 'true',
    });
    for (const e2ee of [false, true]) {
      const phase = await runPhase(o, node, adminKey, e2ee, result);
      result.phases.push(phase);
      console.log(describePhase(phase));
    }
    const [plain, e2ee] = result.phases as [BrowserPhase, BrowserPhase];
    result.comparison = {
      browserCpuRatio: e2ee.browserCpu / plain.browserCpu,
      machineBusyPlain: plain.machineBusy,
      machineBusyE2ee: e2ee.machineBusy,
    };
    console.log(
      `E2EE ÷ plain, Chromium CPU: ${result.comparison.browserCpuRatio.toFixed(2)}× (${pct(e2ee.browserCpu)} against ${pct(plain.browserCpu)} of a core, ${o.pages} pages); machine busy ${pct(e2ee.machineBusy)} E2EE, ${pct(plain.machineBusy)} plain`,
    );
    const failed = e2ee.crypto?.framesFailed ?? 0;
    if (failed > 0) result.failure = `${failed} frames did not decrypt in the E2EE window`;
  } catch (err) {
    result.failure = (err as Error).message;
    console.error(`bench failed: ${result.failure}`);
  } finally {
    node?.kill();
  }
  mkdirSync(o.out, { recursive: true });
  const file = join(o.out, 'result.json');
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  console.log(`result: ${file}`);
  return result.failure ? 1 : 0;
}
