/**
 * The network bench's figures: what each listener concealed of each speaker, what a page decodes
 * of each camera, which layers the patient's camera sends, and their console lines.
 */
import type { NetworkWindow } from './network-stats.ts';
import type { Heard } from './speech-audio.ts';

/** One camera as a page receives it over a window. */
export interface CameraFigure {
  participant: string;
  /** Width of the last decoded frame: which layer arrives (0 before any). */
  width: number;
  fps: number;
  kbps: number;
  /** Why the server holds it back (`bandwidth`, `audioOnly`), null when it flows. */
  pausedReason: string | null;
}

/** One simulcast layer the patient's camera sends. */
export interface LayerFigure {
  rid: string;
  kbps: number;
  width: number;
  fps: number;
  limitedBy: string;
}

export interface CaseFigures {
  case: 'baseline' | 'down300' | 'up150' | 'loss5';
  /** What was applied to the patient's link. */
  limit: string;
  /** Every listener's concealment of every speaker who took a turn in the case. */
  heard: Heard[];
  /** What the patient receives of each camera, after the speakers' turns. */
  patientReceives?: CameraFigure[];
  /** What each of the others receives of each camera. */
  othersReceive?: Record<string, CameraFigure[]>;
  /**
   * The limit came while the facilitator spoke: ms after it until what the patient received had
   * fitted it (under 280 kbit/s) without a voice packet lost for three 2 s windows (null: not in
   * 40 s), and the patient's concealment of the facilitator's voice until then.
   */
  adaptation?: { settledMs: number | null; concealedRatio: number; silentConcealedRatio: number };
  /** At the end of each speaker's turn: whether the patient's tile of them was paused (null: not). */
  speakerTilePaused?: Record<string, string | null>;
  /** The patient's camera's layers before and under the limit. */
  patientSends?: { clean: LayerFigure[]; limited: LayerFigure[]; upperOffMs: number | null };
  /** Each connection quality the facilitator was told of the patient, ms after the limit. */
  told?: { quality: string; reason: string | null; ms: number }[];
  /** ms after the limit until the facilitator was told `poor` (null: not within the wait). */
  poorMs?: number | null;
  /** The relay's counts of the patient's packets in the case. */
  relay?: { up: { dropped: number; total: number }; down: { dropped: number; total: number } };
  /** The whole machine's busy share over the case (1 = every core): a starved machine conceals too. */
  machineBusy?: number;
  failure?: string;
}

export interface RecoveryFigures {
  after: 'down300' | 'up150';
  /** ms after the limit was lifted until the patient decoded every camera again, none paused. */
  videoBackMs: number | null;
  /** ms until the patient's camera sent an upper layer again (the upload case). */
  upperLayerBackMs?: number | null;
  /** ms until the facilitator was told good or excellent; 0 when it was so already at the lift. */
  qualityBackMs: number | null;
  quality?: string;
  /** The facilitator's last word on the patient was already good or excellent when the limit was lifted. */
  goodAtLift?: boolean;
  failure?: string;
}

const fps = (frames: number, ms: number) => (ms > 0 ? Math.round((frames * 10_000) / ms) / 10 : 0);
const round1 = (x: number) => Math.round(x * 10) / 10;

export function cameras(w: NetworkWindow): CameraFigure[] {
  return w.video
    .filter((v) => v.source !== 'screen')
    .map((v) => ({
      participant: v.participant ?? v.trackId,
      width: v.frameWidth,
      fps: fps(v.framesDecoded, w.ms),
      kbps: round1(v.kbps),
      pausedReason: v.pausedReason ?? null,
    }));
}

export function layers(w: NetworkWindow): LayerFigure[] {
  return w.outbound
    .filter((o) => o.kind === 'video')
    .map((o) => ({
      rid: o.rid ?? '',
      kbps: round1(o.kbps),
      width: o.frameWidth,
      fps: fps(o.framesEncoded, w.ms),
      limitedBy: o.qualityLimitationReason ?? 'none',
    }));
}

const pct = (x: number) => `${(x * 100).toFixed(2)} %`;
const heardText = (h: Pick<Heard, 'concealedRatio' | 'silentConcealedRatio'> & Partial<Pick<Heard, 'lostRatio'>>) =>
  `${pct(h.concealedRatio)} (silent ${pct(h.silentConcealedRatio)}${h.lostRatio === undefined ? '' : `; packets lost ${pct(h.lostRatio)}`})`;

/** The worst and the mean of some listeners' concealment, for one line. */
function spread(heard: Heard[]): string {
  if (heard.length === 0) return 'nothing measured';
  const worst = heard.reduce((a, b) => (b.concealedRatio > a.concealedRatio ? b : a));
  const mean = heard.reduce((sum, h) => sum + h.concealedRatio, 0) / heard.length;
  return `worst ${heardText(worst)} (${worst.listener} hearing ${worst.speaker}), mean ${pct(mean)} over ${heard.length}`;
}

const cameraText = (c: CameraFigure) =>
  `${c.width} wide, ${c.fps} fps, ${c.kbps} kbit/s${c.pausedReason ? `, paused (${c.pausedReason})` : ''}`;
const layerText = (l: LayerFigure) => `${l.rid} ${l.kbps} kbit/s ${l.width} wide ${l.fps} fps`;
const ms = (x: number | null | undefined) => (x === null || x === undefined ? 'not within the wait' : `${x} ms`);

/** The console's lines for one case: one per figure. */
export function describeCase(c: CaseFigures, patient: string): string[] {
  const at = `${c.case} (${c.limit})`;
  const lines: string[] = [];
  for (const h of c.heard.filter((x) => x.listener === patient)) {
    lines.push(`${at}: ${patient} hears ${h.speaker} concealed ${heardText(h)}`);
  }
  const ofPatient = c.heard.filter((h) => h.speaker === patient);
  if (ofPatient.length) lines.push(`${at}: the others hear ${patient} concealed ${spread(ofPatient)}`);
  const others = c.heard.filter((h) => h.speaker !== patient && h.listener !== patient);
  if (others.length) lines.push(`${at}: the others hear each other concealed ${spread(others)}`);
  if (c.adaptation) {
    const a = c.adaptation;
    lines.push(
      `${at}: what ${patient} receives fits the limit ${ms(a.settledMs)} after it (6 s under 280 kbit/s, no voice packet lost); ${patient} concealed ${heardText(a)} of the facilitator's voice until then`,
    );
  }
  for (const cam of c.patientReceives ?? []) {
    lines.push(`${at}: ${patient} receives ${cam.participant}'s camera ${cameraText(cam)}`);
  }
  if (c.speakerTilePaused) {
    const paused = Object.entries(c.speakerTilePaused).filter(([, r]) => r !== null);
    lines.push(
      `${at}: ${patient}'s tile of the speaker at the end of their turn: ${Object.keys(c.speakerTilePaused).length - paused.length} shown, ${paused.length} paused${paused.length ? ` (${paused.map(([n, r]) => `${n}: ${r}`).join(', ')})` : ''}`,
    );
  }
  if (c.othersReceive) {
    const all = Object.values(c.othersReceive).flat();
    const decoding = all.filter((cam) => cam.fps > 0);
    const fpsOf = decoding.map((cam) => cam.fps);
    const widths = [...new Set(decoding.map((cam) => cam.width))].sort((a, b) => a - b);
    lines.push(
      `${at}: the others decode ${decoding.length} of ${all.length} cameras, ${fpsOf.length ? Math.min(...fpsOf) : 0}–${fpsOf.length ? Math.max(...fpsOf) : 0} fps, ${widths.join('/')} wide`,
    );
  }
  if (c.patientSends) {
    lines.push(`${at}: ${patient}'s camera sends on a clean link ${c.patientSends.clean.map(layerText).join(', ')}`);
    lines.push(`${at}: ${patient}'s camera sends under the limit ${c.patientSends.limited.map(layerText).join(', ')}`);
    lines.push(`${at}: ${patient}'s upper layers off ${ms(c.patientSends.upperOffMs)} after the limit`);
  }
  if (c.told) {
    const told = c.told.map((t) => `${t.quality} (${t.reason}) at +${t.ms} ms`).join(', ');
    lines.push(`${at}: the facilitator told of ${patient}: ${told || 'nothing'}`);
  }
  if (c.poorMs !== undefined)
    lines.push(`${at}: the facilitator told ${patient} is poor ${ms(c.poorMs)} after the limit`);
  if (c.relay) {
    for (const way of ['up', 'down'] as const) {
      const r = c.relay[way];
      lines.push(
        `${at}: the relay dropped ${r.dropped} of ${r.total} of ${patient}'s packets ${way} (${pct(r.dropped / Math.max(1, r.total))})`,
      );
    }
  }
  if (c.machineBusy !== undefined) lines.push(`${at}: the machine was ${Math.round(c.machineBusy * 100)} % busy`);
  if (c.failure) lines.push(`${at}: FAILED ${c.failure}`);
  return lines;
}

export function describeRecovery(r: RecoveryFigures, patient: string): string[] {
  const at = `recovery after ${r.after}`;
  const lines = [`${at}: ${patient} decodes every camera again ${ms(r.videoBackMs)} after the limit was lifted`];
  if (r.upperLayerBackMs !== undefined) {
    lines.push(`${at}: ${patient}'s camera sends an upper layer again ${ms(r.upperLayerBackMs)} after`);
  }
  lines.push(
    r.goodAtLift
      ? `${at}: the facilitator had been told ${patient} is ${r.quality} again before the limit was lifted`
      : `${at}: the facilitator told ${patient} is ${r.quality ?? 'good'} ${ms(r.qualityBackMs)} after`,
  );
  if (r.failure) lines.push(`${at}: FAILED ${r.failure}`);
  return lines;
}
