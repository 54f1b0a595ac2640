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
    const voice = ctx.createOscillator();
    voice.type = 'sawtooth';
    voice.frequency.value = 220;
    // Intonation: two slow oscillators move the pitch ±75 Hz around 220 Hz.
    const pitch = ctx.createOscillator();
    pitch.frequency.value = 0.37;
    const pitchDepth = ctx.createGain();
    pitchDepth.gain.value = 50;
    const pitch2 = ctx.createOscillator();
    pitch2.frequency.value = 1.3;
    const pitch2Depth = ctx.createGain();
    pitch2Depth.gain.value = 25;
    pitch.connect(pitchDepth).connect(voice.frequency);
    pitch2.connect(pitch2Depth).connect(voice.frequency);
    const formant = ctx.createBiquadFilter();
    formant.type = 'lowpass';
    formant.frequency.value = 1800;
    formant.Q.value = 4;
    // Syllables: a 4.1 Hz and a 0.9 Hz oscillator summed, only what rises above a threshold sounds.
    const syllable = ctx.createOscillator();
    syllable.frequency.value = 4.1;
    const phrase = ctx.createOscillator();
    phrase.frequency.value = 0.9;
    const phraseDepth = ctx.createGain();
    phraseDepth.gain.value = 0.6;
    const envelope = ctx.createWaveShaper();
    const curve = new Float32Array(1025);
    for (let i = 0; i < curve.length; i++) {
      const x = (i / (curve.length - 1)) * 2 - 1;
      curve[i] = Math.max(0, x - 0.1) ** 1.5;
    }
    envelope.curve = curve;
    const mix = ctx.createGain();
    mix.gain.value = 1 / 1.6;
    syllable.connect(mix);
    phrase.connect(phraseDepth).connect(mix);
    mix.connect(envelope);
    const loudness = ctx.createGain();
    loudness.gain.value = 0;
    envelope.connect(loudness.gain);
    const level = ctx.createGain();
    level.gain.value = 0.5;
    const master = ctx.createGain();
    master.gain.value = 0;
    const out = ctx.createMediaStreamDestination();
    voice.connect(formant).connect(loudness).connect(level).connect(master).connect(out);
    for (const o of [voice, pitch, pitch2, syllable, phrase]) o.start();
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
