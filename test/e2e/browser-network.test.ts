/**
 * A patient on a poor home link, end to end: three demo pages on this host (the facilitator Fay,
 * Ben and Cai) and the patient Pat's page in a network namespace, whose veth link a test limits
 * with `tbf` (300 kbit/s down, then 150 kbit/s up, then no limit). All media goes through the
 * test's UDP relay (the node listens on 127.0.0.1 and announces the relay's address), which drops
 * 5 % of Pat's packets both ways in the last case. Every page's microphone is a synthetic voice
 * (speech-audio.ts) and people speak one at a time, as in a group: the others are silent and
 * Opus DTX makes them nearly free.
 *
 * Asserted: each speaker's voice reaches each listener, never held back by the server and with at
 * most 2 % of its packets lost after retransmission over the speaker's turn; which layer of each
 * camera arrives (frame width) or why it is paused, which layers Pat's camera sends, and which
 * connection quality the facilitator is told. Logged beside them: what each listener concealed of
 * each speaker (`concealedSamples / totalSamplesReceived`), which the bench reports against 2 %.
 */
import type { Page } from 'playwright-core';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createNetns, type Netns } from '../../bench/netns.ts';
import {
  askForLarge,
  openDemoPage,
  participantIdOf,
  qualitiesTold,
  recordQualities,
} from '../../bench/network-room.ts';
import {
  describeWindow,
  type NetworkWindow,
  networkSnapshot,
  observeWindow,
  settleWindow,
} from '../../bench/network-stats.ts';
import type { NodeProcess } from '../../bench/node-process.ts';
import { waitFor } from '../../bench/processes.ts';
import { describeHeard, type Heard, setSpeaking, speakInTurns, speechAudio } from '../../bench/speech-audio.ts';
import { startUdpLossRelay, type UdpLossRelay } from '../../bench/udp-loss-relay.ts';
import { launchBrowser, recordPeerConnections, type TestBrowser } from '../helpers/browser.ts';
import { runAll } from '../helpers/hooks.ts';
import { receivingFrom, selectedCandidateTypes } from '../helpers/page-media.ts';
import { freePort } from '../helpers/ports.ts';
import { sessionNode } from '../helpers/session-node.ts';

/** The issue's 2 %, held on the voice packets a listener never got (see `voiceDelivered`). */
const maxLost = 0.02;
/** Seconds of a speaker's audio each listener plays in one turn. */
const turnSeconds = 6;
const hosts = ['Fay', 'Ben', 'Cai'];
const patient = 'Pat';
const everyone = [...hosts, patient];

let ns: Netns;
let relay: UdpLossRelay;
let node: NodeProcess;
let hostBrowser: TestBrowser;
let patientBrowser: TestBrowser;
const pages = new Map<string, Page>();
const room = `e2e-network-${process.pid}`;

const page = (name: string): Page => {
  const found = pages.get(name);
  if (!found) throw new Error(`no page for ${name}`);
  return found;
};

async function open(browser: TestBrowser, name: string, role: string): Promise<void> {
  pages.set(name, await openDemoPage(browser.context, `${node.url}/demo?room=${room}`, name, role));
}

// Registered first: the pages close before the node stops, the relay and the namespace go last.
test.before(async () => {
  // uvu does not print what failed in a hook: say it here.
  await setUp().catch(async (err) => {
    console.log(`    set-up failed: ${(err as Error).stack}`);
    for (const [name, opened] of pages)
      log(name, await observe(name, 2_000).catch(() => opened && { ms: 0, audio: [], video: [], outbound: [] }));
    throw err;
  });
});

async function setUp(): Promise<void> {
  ns = await createNetns();
  const mediaPort = await freePort();
  node = await haven.startNode({
    // The demo signs its own tokens.
    HAVEN_AUTH_SECRET: undefined,
    HAVEN_HTTP_HOST: ns.hostAddress,
    HAVEN_MEDIA_LISTEN_IP: '127.0.0.1',
    HAVEN_MEDIA_ANNOUNCED_IP: ns.hostAddress,
    HAVEN_MEDIA_WEBRTC_PORT: String(mediaPort),
  });
  relay = await startUdpLossRelay({
    listen: { address: ns.hostAddress, port: mediaPort },
    target: { address: '127.0.0.1', port: mediaPort },
    lossy: [{ address: ns.nsAddress }],
    seed: 15,
  });
  hostBrowser = await launchBrowser({ secureOrigins: [node.url] });
  patientBrowser = await launchBrowser({ netns: ns.name, secureOrigins: [node.url] });
  for (const browser of [hostBrowser, patientBrowser]) {
    await browser.context.addInitScript(recordPeerConnections);
    await browser.context.addInitScript(speechAudio);
  }
  await haven.newRoom({ id: room, title: 'Poor home network', waitingRoom: false }, node.url);
  await open(hostBrowser, 'Fay', 'facilitator');
  for (const name of ['Ben', 'Cai']) await open(hostBrowser, name, 'participant');
  await open(patientBrowser, patient, 'participant');
  // What the facilitator is told about connection qualities, with this machine's clock.
  await recordQualities(page('Fay'));
  // Starts each page's voice (silent): the test's call is the user gesture its AudioContext
  // needs, and until it runs the microphone sends nothing at all.
  for (const name of everyone) await setSpeaking(page(name), false);
  for (const name of everyone) await receivingFrom(page(name), 3, `${name} to receive the three others`, 40_000);
}
test.after(() =>
  runAll([
    () => patientBrowser?.close(),
    () => hostBrowser?.close(),
    () => node?.kill(),
    () => relay?.stop(),
    () => ns?.remove(),
  ]),
);
const haven = sessionNode(test, { start: false });

const participantId = (name: string) => participantIdOf(page(name));

/** When the last limit was lifted. */
let liftedAt = 0;

const pct = (x: number) => `${(x * 100).toFixed(2)} %`;

/** Each of `speakers` talks in turn, every other page listening (see speakInTurns). */
async function takeTurns(
  speakers: string[],
  what: string,
  atTurnEnd?: (speaker: string) => Promise<void>,
): Promise<Heard[]> {
  const heard = await speakInTurns(pages, speakers, { seconds: turnSeconds, what, atTurnEnd });
  console.log(`    ${what}: concealed ${describeHeard(heard).join('; ')}`);
  return heard;
}

/**
 * Asserts that each selected listener got each speaker's voice as the network delivered it: never
 * held back by the server, and at most 2 % of its packets lost after retransmission. What the page
 * then played as guessed audio (concealment) is logged beside it, not asserted here: on two cores
 * shared by four Chromium pages (and, in CI, other jobs) a page starved of CPU misses its playout
 * deadlines whatever the network does, and nothing here can tell that from its link. The bench
 * (`npm run bench -- network`) reports concealment against the issue's 2 %.
 */
function voiceDelivered(heard: Heard[], select: (h: Heard) => boolean, what: string): void {
  for (const h of heard.filter(select)) {
    assert.is(h.heldBack, null, `${what}: the server held ${h.speaker}'s voice back from ${h.listener}`);
    assert.ok(
      h.lostRatio <= maxLost,
      `${what}: ${h.listener} lost ${pct(h.lostRatio)} of ${h.speaker}'s voice packets (at most ${pct(maxLost)}; ` +
        `concealed ${pct(h.concealedRatio)})`,
    );
  }
}

const observe = (name: string, ms: number) => observeWindow(page(name), ms);
const settle = (name: string, check: (w: NetworkWindow) => boolean, what: string, timeoutMs = 40_000, times = 1) =>
  settleWindow(page(name), check, `${what} (${name})`, { timeoutMs, times });

const log = (name: string, w: NetworkWindow, only?: (line: string) => boolean) => {
  for (const line of describeWindow(w).filter(only ?? (() => true))) console.log(`      ${name}: ${line}`);
};

/** Asks each host page for Pat's camera at 1280×720, as a large tile would (dynacast then sends every layer). */
async function hostsWantPatLarge(): Promise<void> {
  const patId = await participantId(patient);
  for (const name of hosts) await askForLarge(page(name), patId);
}

/** The quality the facilitator's page was last told for `name`, and when. */
async function qualityLogFor(name: string) {
  return qualitiesTold(page('Fay'), await participantId(name));
}

test('every page’s media goes through the relay; only the patient’s is lossy', async () => {
  for (const name of everyone) {
    // The server answers each page's checks at the relay's upstream socket, so the page's
    // selected local candidate is the peer-reflexive one the server's answers named.
    const pairs = await selectedCandidateTypes(page(name));
    assert.equal(
      pairs.map((pair) => pair.local),
      ['prflx', 'prflx'],
      `${name}: both transports through the relay`,
    );
  }
  const clients = await relay.clients();
  const patients = clients.filter((c) => c.lossy);
  assert.ok(patients.length >= 2 && patients.every((c) => c.address === ns.nsAddress), 'Pat’s two transports');
  assert.ok(
    clients.filter((c) => !c.lossy && c.up.forwarded + c.down.forwarded > 100).length >= 6,
    'the host pages’ six transports carry media through the relay',
  );
});

test('clean link: everyone gets everyone’s voice', async () => {
  voiceDelivered(await takeTurns(everyone, 'clean link'), () => true, 'clean link');
});

test('300 kbit/s down to the patient: every speaker’s voice delivered, video at the lowest layer or paused, the others unaffected', async () => {
  const shapedAt = Date.now();
  await ns.shape('down', 300);
  try {
    // The server's estimate of Pat's downlink falls and the video it forwards follows: wait until
    // what Pat receives has fitted the link, without a voice packet lost, for three windows in a
    // row (the adaptation takes some seconds; the bound is for the session that goes on).
    const settled = await settle(
      patient,
      (w) =>
        [...w.audio, ...w.video].reduce((sum, s) => sum + s.kbps, 0) < 280 && w.audio.every((a) => a.packetsLost === 0),
      'what Pat receives to fit 300 kbit/s, no voice packet lost',
      60_000,
      3,
    );
    log(patient, settled, (line) => !line.startsWith('sent'));
    // Whether Pat sees each speaker at the end of their turn: the speaker's camera is kept longest.
    const speakerPaused: Record<string, string | null | undefined> = {};
    const heard = await takeTurns(hosts, '300 kbit/s down', async (speaker) => {
      const snapshot = await networkSnapshot(page(patient));
      speakerPaused[speaker] = snapshot.video.find((v) => v.participant === speaker)?.pausedReason;
    });
    console.log(`      Pat's tile of the speaker at the end of each turn: ${JSON.stringify(speakerPaused)}`);
    const received = await observe(patient, 3_000);
    log(patient, received, (line) => !line.startsWith('sent'));
    // The others still see each other and Pat.
    const others = await Promise.all(hosts.map((name) => observe(name, 3_000)));
    const told = (await qualityLogFor(patient)).filter((entry) => entry.at >= shapedAt);
    console.log(
      `      Fay told of Pat: ${told.map((e) => `${e.quality} (${e.reason}) at +${e.at - shapedAt} ms`).join(', ') || 'nothing'}`,
    );
    assert.ok(
      told.some((e) => e.quality === 'poor' && e.reason !== 'upload'),
      'the facilitator was told that Pat’s download is poor',
    );
    voiceDelivered(heard, (h) => h.listener === patient, 'Pat on 300 kbit/s down');
    voiceDelivered(heard, (h) => h.listener !== patient, 'the others while Pat is on 300 kbit/s down');
    for (const v of received.video) {
      assert.ok(
        v.frameWidth <= 320 || v.pausedReason === 'bandwidth',
        `Pat receives ${v.participant}'s camera at ${v.frameWidth} wide, not paused (${v.pausedReason})`,
      );
    }
    for (const [i, w] of others.entries()) {
      for (const v of w.video) assert.ok(v.framesDecoded > 0, `${hosts[i]} still decodes ${v.participant}'s camera`);
    }
    // The speaker's camera goes first (its lowest layer fits 300 kbit/s beside the voices); a turn
    // that begins while the estimate dips may pass with it paused, not every turn.
    assert.ok(
      hosts.some((speaker) => speakerPaused[speaker] === null),
      `Pat sees some speaker while they speak (${JSON.stringify(speakerPaused)})`,
    );
  } finally {
    await ns.shape('down', null);
  }
});

test('150 kbit/s up from the patient: their voice reaches the others, their camera drops its upper layers, the facilitator is told', async () => {
  // Dynacast sends only the layers someone receives: ask for Pat's camera large first.
  await hostsWantPatLarge();
  const upper = (w: NetworkWindow) => w.outbound.filter((o) => o.kind === 'video' && o.rid !== 'r0');
  const clean = await settle(
    patient,
    (w) => upper(w).some((o) => o.kbps > 50),
    'Pat’s camera to send an upper layer on a clean link',
  );
  log(patient, clean, (line) => line.startsWith('sent'));
  const shapedAt = Date.now();
  await ns.shape('up', 150);
  try {
    const sent = await settle(
      patient,
      (w) => upper(w).every((o) => o.kbps < 5),
      'Pat’s camera to stop sending its upper layers',
    );
    log(patient, sent, (line) => line.startsWith('sent'));
    const heard = await takeTurns([patient], '150 kbit/s up');
    voiceDelivered(heard, (h) => h.speaker === patient, 'Pat on 150 kbit/s up');
    const poor = await waitFor(
      async () =>
        (await qualityLogFor(patient)).find(
          (entry) => entry.at >= shapedAt && entry.quality === 'poor' && entry.reason !== 'download',
        ),
      30_000,
      'the facilitator to be told that Pat’s connection is poor',
    );
    console.log(`      Fay told Pat is poor (${poor.reason}) ${poor.at - shapedAt} ms after the limit`);
    assert.ok(poor.at - shapedAt <= 5_000, `poor within 5 s of the limit (${poor.at - shapedAt} ms)`);
    assert.ok(poor.reason === 'upload' || poor.reason === 'both', `the reason: ${poor.reason}`);
  } finally {
    await ns.shape('up', null);
    liftedAt = Date.now();
  }
});

test('the limit lifted: Pat’s video comes back and the quality returns to good', async () => {
  const back = await settle(
    patient,
    (w) => w.video.length === 3 && w.video.every((v) => v.framesDecoded > 0 && !v.pausedReason),
    'Pat to decode every camera again',
    30_000,
  );
  console.log(`      Pat decodes every camera again ${Date.now() - liftedAt} ms after the limit was lifted`);
  log(patient, back);
  const upperBack = await settle(
    patient,
    (w) => w.outbound.some((o) => o.kind === 'video' && o.rid !== 'r0' && o.kbps > 50),
    'Pat’s camera to send an upper layer again',
    30_000,
  );
  console.log(`      Pat's camera sends an upper layer again ${Date.now() - liftedAt} ms after the limit was lifted`);
  log(patient, upperBack, (line) => line.startsWith('sent'));
  const good = await waitFor(
    async () => {
      const last = (await qualityLogFor(patient)).at(-1);
      return last && (last.quality === 'good' || last.quality === 'excellent') ? last : undefined;
    },
    30_000,
    'the facilitator to be told that Pat’s connection is good again',
  );
  console.log(`      Fay told Pat is ${good.quality} ${good.at - liftedAt} ms after the limit was lifted`);
});

test('5 % of the patient’s packets lost both ways: retransmission delivers every voice', async () => {
  const before = (await relay.clients()).filter((c) => c.lossy);
  await relay.setLoss(0.05);
  try {
    const heard = await takeTurns(everyone, '5 % loss');
    voiceDelivered(heard, (h) => h.listener === patient || h.speaker === patient, 'Pat with 5 % loss');
  } finally {
    await relay.setLoss(0);
  }
  const after = (await relay.clients()).filter((c) => c.lossy);
  const counts = (clients: typeof after, way: 'up' | 'down') =>
    clients.reduce(
      (sum, c) => ({ forwarded: sum.forwarded + c[way].forwarded, dropped: sum.dropped + c[way].dropped }),
      {
        forwarded: 0,
        dropped: 0,
      },
    );
  for (const way of ['up', 'down'] as const) {
    const b = counts(before, way);
    const a = counts(after, way);
    const dropped = a.dropped - b.dropped;
    const total = dropped + a.forwarded - b.forwarded;
    console.log(`      relay dropped ${dropped} of ${total} of Pat's packets ${way} (${pct(dropped / total)})`);
    assert.ok(Math.abs(dropped / total - 0.05) < 0.01, `about 5 % dropped ${way}`);
  }
});

test.run();
