/**
 * `npm run bench -- network`: the throttled-link cases with a whole group. `--people`
 * (default 8) demo pages: all but one on this host, the patient's in a network namespace whose
 * veth link is shaped with `tbf`, every page's media through the UDP loss relay (network-room.ts).
 * People speak one at a time with the synthetic voice. In one run: a clean baseline, 300 kbit/s
 * down to the patient, its recovery, 150 kbit/s up from the patient, its recovery, 5 % of the
 * patient's packets lost both ways. Figures: each listener's concealment of each speaker
 * (Δ concealedSamples ÷ Δ totalSamplesReceived over the speaker's turn, and its silent part), what
 * each page decodes of each camera (width, frames/s, why paused), the layers the patient's camera
 * sends, what the facilitator is told and when. A case that fails is reported and the run goes on.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { optionsOrUsage, UsageError, wholeNumber } from './cli.ts';
import {
  type CaseFigures,
  cameras,
  describeCase,
  describeRecovery,
  layers,
  type RecoveryFigures,
} from './network-figures.ts';
import { lightCamera, maxPeople, type NetworkRoom, patient, startNetworkRoom } from './network-room.ts';
import { type NetworkWindow, networkSnapshot, networkWindow, observeWindow, settleWindow } from './network-stats.ts';
import { machineBusySince, machineTicks } from './proc-stats.ts';
import { waitFor } from './processes.ts';
import { setSpeaking, speakInTurns } from './speech-audio.ts';

const usage = `usage: npm run bench -- network [options]
  --people N         people in the group, the patient included (3–${maxPeople}, default ${maxPeople})
  --turn-seconds N   seconds of each speaker's voice every listener plays in a turn (default 6)
  --out DIR          where result.json goes (default bench/results/<time>)`;

function options(argv: string[]) {
  const { values } = parseArgs({
    args: argv,
    options: {
      people: { type: 'string', default: String(maxPeople) },
      'turn-seconds': { type: 'string', default: '6' },
      out: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) throw new UsageError(usage);
  return {
    people: wholeNumber('people', values.people, 3, maxPeople),
    turnSeconds: wholeNumber('turn-seconds', values['turn-seconds'], 1, 120),
    out: values.out ?? join('bench', 'results', new Date().toISOString().replace(/[:.]/g, '-')),
  };
}
type Options = ReturnType<typeof options>;

export interface NetworkResult {
  scenario: 'network';
  startedAt: string;
  /** Seconds from start to the last case's end. */
  durationSeconds: number;
  machine: { cpus: number; cpuModel: string; node: string; chromium: string };
  options: { people: number; turnSeconds: number; camera: typeof lightCamera };
  cases: CaseFigures[];
  recoveries: RecoveryFigures[];
  failure?: string;
}

/** Waits for what the patient receives and sends to settle: windows of 2 s (network-stats.ts). */
const settle = (room: NetworkRoom, check: (w: NetworkWindow) => boolean, what: string, times = 1) =>
  settleWindow(room.page(patient), check, what, { timeoutMs: 40_000, times });

const upper = (w: NetworkWindow) => w.outbound.filter((o) => o.kind === 'video' && o.rid !== 'r0');

/** What every page but the patient's decodes of each camera over 3 s. */
async function othersReceive(room: NetworkRoom) {
  const windows = await Promise.all(room.hosts.map((name) => observeWindow(room.page(name), 3_000)));
  return Object.fromEntries(room.hosts.map((name, i) => [name, cameras(windows[i] as NetworkWindow)]));
}

/** Runs one case's body, keeping what it measured when a step of it fails. */
async function measured(figures: CaseFigures, body: (f: CaseFigures) => Promise<void>): Promise<CaseFigures> {
  const ticks = machineTicks();
  try {
    await body(figures);
  } catch (err) {
    figures.failure = (err as Error).message.split('\n')[0];
  }
  figures.machineBusy = Math.round(machineBusySince(ticks) * 100) / 100;
  return figures;
}

function baseline(room: NetworkRoom, o: Options): Promise<CaseFigures> {
  return measured({ case: 'baseline', limit: 'no limit', heard: [] }, async (f) => {
    f.heard = await speakInTurns(room.pages, room.everyone, { seconds: o.turnSeconds, what: 'baseline' });
    f.patientReceives = cameras(await observeWindow(room.page(patient), 3_000));
    f.othersReceive = await othersReceive(room);
  });
}

async function down300(room: NetworkRoom, o: Options): Promise<[CaseFigures, RecoveryFigures]> {
  const facilitator = room.page(room.facilitator);
  // The limit comes mid-sentence: the facilitator speaks while the plan adapts to it.
  await setSpeaking(facilitator, true);
  const before = await networkSnapshot(room.page(patient));
  const shapedAt = Date.now();
  await room.ns.shape('down', 300);
  const figures = await measured({ case: 'down300', limit: '300 kbit/s down to the patient', heard: [] }, async (f) => {
    try {
      // The estimate of the patient's downlink falls and the video forwarded follows: wait until
      // what the patient receives fits the limit without a voice packet lost, three windows in a
      // row (as the e2e test does); the turns measure the session that goes on.
      const settled = await settle(
        room,
        (w) =>
          [...w.audio, ...w.video].reduce((sum, s) => sum + s.kbps, 0) < 280 &&
          w.audio.every((a) => a.packetsLost === 0),
        'what the patient receives to fit 300 kbit/s, no voice packet lost',
        3,
      ).then(
        () => true,
        () => false,
      );
      const adapting = networkWindow(before, await networkSnapshot(room.page(patient)));
      const voice = adapting.audio.find((a) => a.participant === room.facilitator);
      f.adaptation = {
        settledMs: settled ? Date.now() - shapedAt : null,
        concealedRatio: voice?.concealedRatio ?? 0,
        silentConcealedRatio: voice?.silentConcealedRatio ?? 0,
      };
      await setSpeaking(facilitator, false);
      f.speakerTilePaused = {};
      const paused = f.speakerTilePaused;
      f.heard = await speakInTurns(room.pages, room.hosts, {
        seconds: o.turnSeconds,
        what: '300 kbit/s down',
        atTurnEnd: async (speaker) => {
          const snapshot = await networkSnapshot(room.page(patient));
          paused[speaker] = snapshot.video.find((v) => v.participant === speaker)?.pausedReason ?? null;
        },
      });
      f.patientReceives = cameras(await observeWindow(room.page(patient), 3_000));
      f.othersReceive = await othersReceive(room);
      f.told = (await room.qualityOf(patient))
        .filter((e) => e.at >= shapedAt)
        .map((e) => ({ quality: e.quality, reason: e.reason, ms: e.at - shapedAt }));
    } finally {
      await setSpeaking(facilitator, false);
      await room.ns.shape('down', null);
    }
  });
  return [figures, await recovery(room, 'down300', Date.now())];
}

async function up150(room: NetworkRoom, o: Options): Promise<[CaseFigures, RecoveryFigures]> {
  const figures = await measured({ case: 'up150', limit: '150 kbit/s up from the patient', heard: [] }, async (f) => {
    // Dynacast sends only the layers someone receives: the hosts ask for the patient's camera large.
    await room.hostsWantLarge(patient);
    const clean = await settle(room, (w) => upper(w).some((x) => x.kbps > 50), 'an upper layer on a clean link');
    const shapedAt = Date.now();
    await room.ns.shape('up', 150);
    try {
      f.patientSends = { clean: layers(clean), limited: [], upperOffMs: null };
      const sends = f.patientSends;
      const limited = await settle(room, (w) => upper(w).every((x) => x.kbps < 5), 'the upper layers to stop').catch(
        () => undefined,
      );
      if (limited) sends.upperOffMs = Date.now() - shapedAt;
      sends.limited = layers(limited ?? (await observeWindow(room.page(patient), 2_000)));
      f.heard = await speakInTurns(room.pages, [patient], { seconds: o.turnSeconds, what: '150 kbit/s up' });
      const poor = await waitFor(
        async () =>
          (await room.qualityOf(patient)).find(
            (e) => e.at >= shapedAt && e.quality === 'poor' && e.reason !== 'download',
          ),
        30_000,
        'the facilitator to be told the patient is poor',
      ).catch(() => undefined);
      f.poorMs = poor ? poor.at - shapedAt : null;
      f.told = (await room.qualityOf(patient))
        .filter((e) => e.at >= shapedAt)
        .map((e) => ({ quality: e.quality, reason: e.reason, ms: e.at - shapedAt }));
    } finally {
      await room.ns.shape('up', null);
    }
  });
  return [figures, await recovery(room, 'up150', Date.now(), true)];
}

/** After a limit is lifted at `liftedAt`: until video, (the upper layers) and the quality come back. */
async function recovery(
  room: NetworkRoom,
  after: RecoveryFigures['after'],
  liftedAt: number,
  layersToo = false,
): Promise<RecoveryFigures> {
  const r: RecoveryFigures = { after, videoBackMs: null, qualityBackMs: null };
  const others = room.everyone.length - 1;
  const failures: string[] = [];
  await settle(
    room,
    (w) => w.video.length >= others && w.video.every((v) => v.framesDecoded > 0 && !v.pausedReason),
    'the patient to decode every camera again',
  ).then(
    () => {
      r.videoBackMs = Date.now() - liftedAt;
    },
    (err: Error) => failures.push(err.message.split('\n')[0] as string),
  );
  if (layersToo) {
    r.upperLayerBackMs = null;
    await settle(room, (w) => upper(w).some((x) => x.kbps > 50), 'an upper layer again').then(
      () => {
        r.upperLayerBackMs = Date.now() - liftedAt;
      },
      (err: Error) => failures.push(err.message.split('\n')[0] as string),
    );
  }
  const good = await waitFor(
    async () => {
      const last = (await room.qualityOf(patient)).at(-1);
      return !last || last.quality === 'good' || last.quality === 'excellent'
        ? (last ?? { at: 0, quality: 'excellent' })
        : undefined;
    },
    40_000,
    'the facilitator to be told the patient is good again',
  ).catch((err: Error) => {
    failures.push(err.message);
    return undefined;
  });
  if (good) {
    r.qualityBackMs = Math.max(0, good.at - liftedAt);
    r.quality = good.quality;
    r.goodAtLift = good.at < liftedAt;
  }
  if (failures.length) r.failure = failures.join('; ');
  return r;
}

function loss5(room: NetworkRoom, o: Options): Promise<CaseFigures> {
  return measured({ case: 'loss5', limit: '5 % of the patient’s packets lost both ways', heard: [] }, async (f) => {
    const before = (await room.relay.clients()).filter((c) => c.lossy);
    await room.relay.setLoss(0.05);
    try {
      f.heard = await speakInTurns(room.pages, room.everyone, { seconds: o.turnSeconds, what: '5 % loss' });
    } finally {
      await room.relay.setLoss(0);
    }
    const after = (await room.relay.clients()).filter((c) => c.lossy);
    const count = (clients: typeof after, way: 'up' | 'down') =>
      clients.reduce(
        (sum, c) => ({ dropped: sum.dropped + c[way].dropped, total: sum.total + c[way].dropped + c[way].forwarded }),
        {
          dropped: 0,
          total: 0,
        },
      );
    const delta = (way: 'up' | 'down') => {
      const b = count(before, way);
      const a = count(after, way);
      return { dropped: a.dropped - b.dropped, total: a.total - b.total };
    };
    f.relay = { up: delta('up'), down: delta('down') };
  });
}

export async function runNetwork(argv: string[]): Promise<number> {
  const o = optionsOrUsage(() => options(argv));
  if (!o) return 2;
  const started = Date.now();
  const result: NetworkResult = {
    scenario: 'network',
    startedAt: new Date(started).toISOString(),
    durationSeconds: 0,
    machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown', node: process.version, chromium: '' },
    options: { people: o.people, turnSeconds: o.turnSeconds, camera: lightCamera },
    cases: [],
    recoveries: [],
  };
  let room: NetworkRoom | undefined;
  const report = (c: CaseFigures) => {
    result.cases.push(c);
    for (const line of describeCase(c, patient)) console.log(line);
  };
  const recovered = (r: RecoveryFigures) => {
    result.recoveries.push(r);
    for (const line of describeRecovery(r, patient)) console.log(line);
  };
  try {
    room = await startNetworkRoom(o.people);
    result.machine.chromium = room.chromiumVersion;
    console.log(
      `${o.people} people joined (${room.everyone.join(', ')}; ${patient} in the namespace) in ${Math.round((Date.now() - started) / 1000)} s`,
    );
    report(await baseline(room, o));
    const [down, downBack] = await down300(room, o);
    report(down);
    recovered(downBack);
    const [up, upBack] = await up150(room, o);
    report(up);
    recovered(upBack);
    report(await loss5(room, o));
    const failed = [...result.cases, ...result.recoveries].filter((c) => c.failure);
    if (failed.length) result.failure = `${failed.length} cases or recoveries failed`;
  } catch (err) {
    result.failure = (err as Error).message;
    console.error(`bench failed: ${result.failure}`);
  } finally {
    await room?.close();
  }
  result.durationSeconds = Math.round((Date.now() - started) / 1000);
  mkdirSync(o.out, { recursive: true });
  const file = join(o.out, 'result.json');
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  console.log(`run took ${result.durationSeconds} s\nresult: ${file}`);
  return result.failure ? 1 : 0;
}
