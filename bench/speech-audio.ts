/**
 * A synthetic voice for test pages, instead of Chromium's fake microphone (a beep that never
 * stops, ~24 kbit/s all the time). A group sounds like one person talking and the others silent;
 * Opus DTX makes a silent microphone nearly free (a packet every 400 ms or so), and only then do
 * the throttled-link cases measure what a patient's link has to carry.
 *
 * The init script replaces `getUserMedia`'s audio with a WebAudio graph: a sawtooth (a
 * fundamental with every harmonic) through a low-pass "formant", its pitch gliding between
 * ~150 and ~300 Hz, its loudness shaped into syllables (about four a second, with gaps) by slow
 * oscillators; all in the audio graph, so that no page timer (throttled in background tabs)
 * takes part. A page starts silent (digital zero) and speaks while
 * `window.__havenSpeech.setSpeaking(true)`. Video is still Chromium's fake camera.
 */
import type { Page } from 'playwright-core';
import { type NetworkSnapshot, networkSnapshot, networkWindow } from './network-stats.ts';
import { waitFor } from './processes.ts';

export interface SpeechControl {
  setSpeaking(speaking: boolean): Promise<void>;
  readonly speaking: boolean;
  /** The AudioContext's state: `running` once the page could start it. */
  readonly state: string;
}

/** The init script (source text: nothing for tsx to rewrite inside the page). */
export const speechAudio = `(() => {
  const devices = navigator.mediaDevices;
  if (!devices || !devices.getUserMedia) return;
  const original = devices.getUserMedia.bind(devices);
  let graph;
  const build = () => {
    const ctx = new AudioContext({ sampleRate: 48000 });
    const gain = (value) => {
      const node = ctx.createGain();
      node.gain.value = value;
      return node;
    };
    const oscillators = [];
    // A slow oscillator of hz hertz whose output, times depth, goes to into.
    const lfo = (hz, depth, into) => {
      const o = ctx.createOscillator();
      o.frequency.value = hz;
      o.connect(gain(depth)).connect(into);
      oscillators.push(o);
    };
    const voice = ctx.createOscillator();
    voice.type = 'sawtooth';
    voice.frequency.value = 220;
    oscillators.push(voice);
    // Intonation: two slow oscillators move the pitch ±75 Hz around 220 Hz.
    lfo(0.37, 50, voice.frequency);
    lfo(1.3, 25, voice.frequency);
    const formant = ctx.createBiquadFilter();
    formant.type = 'lowpass';
    formant.frequency.value = 1800;
    formant.Q.value = 4;
    // Syllables: a 4.1 Hz and a 0.9 Hz oscillator summed (to ±1), only what rises above a
    // threshold sounds.
    const mix = gain(1);
    lfo(4.1, 1 / 1.6, mix);
    lfo(0.9, 0.6 / 1.6, mix);
    const envelope = ctx.createWaveShaper();
    const curve = new Float32Array(1025);
    for (let i = 0; i < curve.length; i++) {
      const x = (i / (curve.length - 1)) * 2 - 1;
      curve[i] = Math.max(0, x - 0.1) ** 1.5;
    }
    envelope.curve = curve;
    mix.connect(envelope);
    const loudness = gain(0);
    envelope.connect(loudness.gain);
    const master = gain(0);
    const out = ctx.createMediaStreamDestination();
    voice.connect(formant).connect(loudness).connect(gain(0.5)).connect(master).connect(out);
    for (const o of oscillators) o.start();
    return { ctx, master, out, speaking: false };
  };
  const control = {
    setSpeaking: (speaking) => {
      graph = graph || build();
      graph.speaking = !!speaking;
      graph.master.gain.setValueAtTime(speaking ? 1 : 0, graph.ctx.currentTime);
      // Called from the test (playwright evaluates with a user gesture): the autoplay policy
      // lets the context start now if it could not when the microphone was captured.
      return graph.ctx.resume();
    },
    get speaking() { return !!(graph && graph.speaking); },
    get state() { return graph ? graph.ctx.state : 'none'; },
  };
  window.__havenSpeech = control;
  devices.getUserMedia = async (constraints) => {
    if (!constraints || !constraints.audio) return original(constraints);
    graph = graph || build();
    // Without a user gesture the context stays suspended (the autoplay policy) and this never
    // settles: the track carries nothing until the test's first setSpeaking.
    graph.ctx.resume();
    const stream = constraints.video ? await original({ video: constraints.video }) : new MediaStream();
    for (const track of graph.out.stream.getAudioTracks()) stream.addTrack(track.clone());
    return stream;
  };
})();`;

/** Turns a page's synthetic voice on or off (the page must have the init script). */
export async function setSpeaking(page: Page, speaking: boolean): Promise<void> {
  await page.evaluate(
    (on) => (window as unknown as { __havenSpeech: SpeechControl }).__havenSpeech.setSpeaking(on),
    speaking,
  );
}

/** The page's AudioContext state (`running`, `suspended`, or `none` before any capture). */
export function speechState(page: Page): Promise<string> {
  return page.evaluate(() => (window as unknown as { __havenSpeech: SpeechControl }).__havenSpeech.state);
}

/** What one listener concealed of one speaker's turn. */
export interface Heard {
  speaker: string;
  listener: string;
  /** Δconcealed / Δtotal samples of the speaker's track over the turn (1 when nothing arrived). */
  concealedRatio: number;
  /** The part of it that was concealed silence (the speaker's DTX pauses): no voice lost there. */
  silentConcealedRatio: number;
  /**
   * The share of the turn's voice packets that never arrived (lost after retransmission): what
   * the network lost, whatever the pages' CPU did (1 when nothing arrived).
   */
  lostRatio: number;
  /** Why the server held the voice back at some look during the turn (`null`: at none). */
  heldBack: string | null;
}

export interface TurnOptions {
  /** Seconds of the speaker's voice each listener plays in a turn (counted in samples played). */
  seconds: number;
  /** For messages. */
  what: string;
  /** Runs at the end of each turn, before the speaker falls silent. */
  atTurnEnd?: (speaker: string) => Promise<void>;
}

/**
 * Each of `speakers` (names of `pages`, demo pages with the init script) talks in turn, the
 * others silent, until every other page has played `seconds` of their voice: a condition, so a
 * slow machine makes turns longer, not results worse. Resolves with what each listener
 * concealed of each speaker over that speaker's turn.
 */
export async function speakInTurns(
  pages: ReadonlyMap<string, Page>,
  speakers: string[],
  { seconds, what, atTurnEnd }: TurnOptions,
): Promise<Heard[]> {
  const heard: Heard[] = [];
  for (const speaker of speakers) {
    const speaking = pages.get(speaker);
    if (!speaking) throw new Error(`speakInTurns: no page for ${speaker}`);
    const listeners = [...pages].filter(([name]) => name !== speaker);
    await setSpeaking(speaking, true);
    try {
      const before = await Promise.all(listeners.map(([, p]) => networkSnapshot(p)));
      const heldBack = new Map<string, string>();
      const windows = await waitFor(
        async () => {
          const now = await Promise.all(
            listeners.map(async ([listener, p], i) => {
              const w = networkWindow(before[i] as NetworkSnapshot, await networkSnapshot(p));
              const audio = w.audio.find((a) => a.participant === speaker);
              if (audio?.pausedReason && !heldBack.has(listener)) heldBack.set(listener, audio.pausedReason);
              return { listener, audio };
            }),
          );
          return now.every((n) => (n.audio?.samples ?? 0) >= seconds * 48_000) ? now : undefined;
        },
        seconds * 4_000 + 20_000,
        `${what}: every listener to play ${seconds} s of ${speaker}`,
      );
      for (const { listener, audio } of windows) {
        const sent = (audio?.packetsLost ?? 0) + (audio?.packetsReceived ?? 0);
        heard.push({
          speaker,
          listener,
          concealedRatio: audio?.concealedRatio ?? 1,
          silentConcealedRatio: audio?.silentConcealedRatio ?? 0,
          lostRatio: sent > 0 ? Math.max(0, audio?.packetsLost ?? 0) / sent : 1,
          heldBack: heldBack.get(listener) ?? null,
        });
      }
      await atTurnEnd?.(speaker);
    } finally {
      await setSpeaking(speaking, false);
    }
  }
  return heard;
}

/** One line per listener: what they concealed of each speaker, and what the network lost of it. */
export function describeHeard(heard: Heard[]): string[] {
  const listeners = [...new Set(heard.map((h) => h.listener))];
  return listeners.map(
    (l) =>
      `${l} hears ${heard
        .filter((h) => h.listener === l)
        .map((h) => `${h.speaker} ${(h.concealedRatio * 100).toFixed(2)} % (lost ${(h.lostRatio * 100).toFixed(2)} %)`)
        .join(', ')}`,
  );
}
