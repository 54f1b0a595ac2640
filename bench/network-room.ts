/**
 * The network bench's group: a node whose media listens on 127.0.0.1 and is announced at a
 * namespace's host address, where the UDP loss relay listens (so every page's media crosses the
 * relay, and only the patient's is lossy); the hosts' demo pages in one Chromium on this host
 * (the first is the facilitator), the patient's page in a Chromium inside the namespace, whose
 * veth link the bench shapes with `tbf`. Every microphone is the synthetic voice (silent until
 * its turn); every camera is captured small (see `lightCamera`), so that eight pages fit two
 * cores.
 */
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import type { BrowserContext, Page } from 'playwright-core';
import { recordPeerConnections } from './chromium.ts';
import { type LaunchedChromium, launchChromium } from './chromium-launch.ts';
import { createNetns, type Netns } from './netns.ts';
import { type NodeProcess, startNodeProcess } from './node-process.ts';
import { waitFor } from './processes.ts';
import { setSpeaking, speechAudio } from './speech-audio.ts';
import { startUdpLossRelay, type UdpLossRelay } from './udp-loss-relay.ts';

/** The hosts' names, the facilitator first; a group of N people takes the first N − 1. */
const hostNames = ['Fay', 'Ben', 'Cai', 'Dee', 'Eli', 'Gus', 'Ivy'];
export const maxPeople = hostNames.length + 1;
export const patient = 'Pat';

/** The camera every page captures: 640×360 at 15 frames/s (Chromium sends two layers of it, 160 and 320 wide). */
export const lightCamera = { width: 640, height: 360, frameRate: 15 };

/**
 * An init script (source text) that asks the fake camera for `lightCamera` whatever the SDK asks
 * (1280×720 at 30): seven 720p encoders and 49 decoders would starve two cores, and the audio
 * measured would then show the machine, not the link.
 */
const lightCameraScript = `(() => {
  const devices = navigator.mediaDevices;
  if (!devices || !devices.getUserMedia) return;
  const original = devices.getUserMedia.bind(devices);
  const size = ${JSON.stringify(lightCamera)};
  devices.getUserMedia = (constraints) =>
    original(constraints && constraints.video
      ? { ...constraints, video: { width: { exact: size.width }, height: { exact: size.height }, frameRate: { max: size.frameRate } } }
      : constraints);
})();`;

export interface QualityEntry {
  participantId: string;
  quality: string;
  reason: string | null;
  at: number;
}

type DemoWindow = {
  havenDemo: {
    timings: { joinedMs?: number };
    client: {
      localParticipant: { id: string };
      participants: Map<string, { name: string; getTrack(source: string): unknown }>;
      on(event: string, listener: (...args: unknown[]) => void): void;
    };
  };
  qualityLog: QualityEntry[];
};

export interface NetworkRoom {
  ns: Netns;
  relay: UdpLossRelay;
  node: NodeProcess;
  hosts: string[];
  facilitator: string;
  everyone: string[];
  pages: Map<string, Page>;
  page(name: string): Page;
  /** What the facilitator's page was told of `name`'s connection quality (this machine's clock). */
  qualityOf(name: string): Promise<QualityEntry[]>;
  /** Every host asks for `name`'s camera at 1280×720, as a large tile would (dynacast then keeps its layers). */
  hostsWantLarge(name: string): Promise<void>;
  chromiumVersion: string;
  close(): Promise<void>;
}

export async function startNetworkRoom(people: number): Promise<NetworkRoom> {
  const hosts = hostNames.slice(0, people - 1);
  const everyone = [...hosts, patient];
  const pages = new Map<string, Page>();
  const closers: (() => unknown)[] = [];
  const close = async () => {
    for (const c of closers.reverse()) await Promise.resolve(c()).catch(() => {});
  };
  try {
    const ns = await createNetns();
    closers.push(() => ns.remove());
    // The relay listens on the same port at the namespace's host address.
    const mediaPort = await freeUdpPort();
    const adminKey = randomBytes(24).toString('hex');
    const node = await startNodeProcess({
      HAVEN_ADMIN_API_KEY: adminKey,
      HAVEN_HTTP_HOST: ns.hostAddress,
      HAVEN_MEDIA_LISTEN_IP: '127.0.0.1',
      HAVEN_MEDIA_ANNOUNCED_IP: ns.hostAddress,
      HAVEN_MEDIA_WEBRTC_PORT: String(mediaPort),
    });
    closers.push(() => node.kill());
    const relay = await startUdpLossRelay({
      listen: { address: ns.hostAddress, port: mediaPort },
      target: { address: '127.0.0.1', port: mediaPort },
      lossy: [{ address: ns.nsAddress }],
      seed: 15,
    });
    closers.push(() => relay.stop());
    const room = `bench-network-${randomBytes(3).toString('hex')}`;
    const res = await fetch(`${node.url}/v1/rooms`, {
      method: 'POST',
      headers: { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ id: room, title: 'Poor home network', waitingRoom: false, capacity: people + 2 }),
    });
    if (res.status !== 201) throw new Error(`room not created: HTTP ${res.status}`);
    const browsers: LaunchedChromium[] = [];
    for (const netns of [undefined, ns.name]) {
      const browser = await launchChromium({ netns, secureOrigins: [node.url] });
      closers.push(() => browser.close());
      for (const script of [recordPeerConnections, speechAudio, lightCameraScript])
        await browser.context.addInitScript(script);
      browsers.push(browser);
    }
    const [hostBrowser, patientBrowser] = browsers as [LaunchedChromium, LaunchedChromium];
    const open = async (browser: LaunchedChromium, name: string, role: string) => {
      pages.set(name, await openDemoPage(browser.context, `${node.url}/demo?room=${room}`, name, role));
    };
    for (const [i, name] of hosts.entries()) await open(hostBrowser, name, i === 0 ? 'facilitator' : 'participant');
    await open(patientBrowser, patient, 'participant');
    const page = (name: string) => {
      const found = pages.get(name);
      if (!found) throw new Error(`no page for ${name}`);
      return found;
    };
    const facilitator = hosts[0] as string;
    await recordQualities(page(facilitator));
    // Starts each voice, silent: the bench's call is the user gesture an AudioContext needs.
    for (const name of everyone) await setSpeaking(page(name), false);
    const idOf = (name: string) => participantIdOf(page(name));
    await waitFor(
      async () => {
        const counts = await Promise.all(everyone.map((name) => decodingCameras(page(name))));
        return counts.every((n) => n >= people - 1);
      },
      90_000,
      'every page to decode every other camera',
    );
    return {
      ns,
      relay,
      node,
      hosts,
      facilitator,
      everyone,
      pages,
      page,
      chromiumVersion: hostBrowser.context.browser()?.version() ?? '',
      qualityOf: async (name) => qualitiesTold(page(facilitator), await idOf(name)),
      async hostsWantLarge(name) {
        const id = await idOf(name);
        for (const host of hosts) await askForLarge(page(host), id);
      },
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

/** Opens the demo at `demoUrl` (`…/demo?room=…`) as `name`, joining at once; resolves once joined. */
export async function openDemoPage(
  context: BrowserContext,
  demoUrl: string,
  name: string,
  role: string,
): Promise<Page> {
  const opened = await context.newPage();
  opened.on('pageerror', (err) => console.error(`[${name}] page error: ${err.message}`));
  await opened.goto(`${demoUrl}&name=${name}&role=${role}&auto=1`);
  await opened.waitForFunction(
    () => (window as unknown as DemoWindow).havenDemo.timings.joinedMs !== undefined,
    undefined,
    { timeout: 30_000 },
  );
  return opened;
}

/** From now on, keeps every connection quality a demo page is told (with this machine's clock). */
export async function recordQualities(page: Page): Promise<void> {
  await page.evaluate(() => {
    const w = window as unknown as DemoWindow;
    w.qualityLog = [];
    w.havenDemo.client.on('connectionQualityChanged', (participantId, quality, reason) =>
      w.qualityLog.push({
        participantId: participantId as string,
        quality: quality as string,
        reason: reason as string | null,
        at: Date.now(),
      }),
    );
  });
}

/** What a page that `recordQualities` was told of `participantId`. */
export async function qualitiesTold(page: Page, participantId: string): Promise<QualityEntry[]> {
  const log = await page.evaluate(() => (window as unknown as DemoWindow).qualityLog);
  return log.filter((entry) => entry.participantId === participantId);
}

/** The demo page's own participant id. */
export const participantIdOf = (page: Page): Promise<string> =>
  page.evaluate(() => (window as unknown as DemoWindow).havenDemo.client.localParticipant.id);

/** The page asks for `participantId`'s camera at 1280×720, as a large tile would (dynacast then keeps its layers). */
export async function askForLarge(page: Page, participantId: string): Promise<void> {
  await page.evaluate(async (pid) => {
    const w = window as unknown as DemoWindow;
    const camera = w.havenDemo.client.participants.get(pid)?.getTrack('camera') as
      | { setPreferredSize(width: number, height: number): Promise<void> }
      | undefined;
    await camera?.setPreferredSize(1280, 720);
  }, participantId);
}

/** A UDP port on 127.0.0.1 that was free a moment ago. */
async function freeUdpPort(): Promise<number> {
  const socket = createSocket('udp4');
  socket.bind(0, '127.0.0.1');
  await once(socket, 'listening');
  const { port } = socket.address();
  socket.close();
  return port;
}

/** How many remote videos the page has decoded a frame of. */
function decodingCameras(page: Page): Promise<number> {
  return page.evaluate(async () => {
    let n = 0;
    for (const pc of (window as unknown as { peerConnections: RTCPeerConnection[] }).peerConnections) {
      if (pc.connectionState === 'closed') continue;
      (await pc.getStats()).forEach((s) => {
        if (s.type === 'inbound-rtp' && s.kind === 'video' && s.ssrc !== 1234 && s.framesDecoded > 0) n++;
      });
    }
    return n;
  });
}
