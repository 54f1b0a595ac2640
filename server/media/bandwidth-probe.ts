/**
 * Keeps a receive transport's sending near what its downlink plan uses, and looks for more now
 * and then. mediasoup fills the gap between what its consumers could send and its estimate with
 * padding (probation), up to the top simulcast layer of every video it forwards: on a weak link
 * that padding is what makes the voices queue and drop. So while the plan wants more than it
 * has, the transport's maximum outgoing bitrate is held a little above the plan; every few
 * seconds it is raised by one step and a half (libwebrtc's congestion controller probes when
 * its maximum goes up), and if the estimate follows, the plan takes the step. A probe that
 * found nothing makes the next one wait twice as long (up to `maxDoublings`). When the plan has
 * everything it wants, the transport is not limited.
 */
import type { WebRtcTransport } from 'mediasoup/node/lib/types.js';

/** Ticks (seconds) between probes, before back-off. */
const probeEveryTicks = 3;
const maxDoublings = 1;
/** Ticks a probe's raised maximum is held, and its result looked for. */
const probeTicks = 2;
/** Between probes, the maximum is the plan plus this share and this many bps. */
const planMargin = 1.15;
const planSlackBps = 30_000;
/** A probe raises the maximum to the plan plus the next step times this. */
const probeStep = 1.5;
/** mediasoup refuses a maximum below this (other than 0, no maximum). */
const minimumBps = 30_000;

export class BandwidthProbe {
  #transport: WebRtcTransport | undefined;
  #cap = 0;
  #sinceProbe = 0;
  #failures = 0;
  #probe: { ticks: number; granted: number } | undefined;
  /** Never below what ends automatic audio-only: a maximum under it would bring audio-only on by itself. */
  readonly #floor: number;

  constructor(floorBps: number) {
    this.#floor = floorBps;
  }

  /** The transport's maximum outgoing bitrate now (bps; 0: none). */
  get cap(): number {
    return this.#cap;
  }

  attach(transport: WebRtcTransport): void {
    this.#transport = transport;
    this.#cap = 0;
    this.#probe = undefined;
  }

  /**
   * After a plan: what it uses (`planned`, bps), what its next step would cost (undefined when it
   * has all it wants) and how much it grants (a number that grows with each step it takes).
   */
  planned(planned: number, next: number | undefined, granted: number): void {
    if (next === undefined) {
      this.#failures = 0;
      this.#probe = undefined;
      this.#set(0);
      return;
    }
    if (this.#probe) {
      if (granted > this.#probe.granted) {
        this.#failures = 0;
        this.#probe = undefined;
      } else if (--this.#probe.ticks > 0) return;
      else {
        this.#failures++;
        this.#probe = undefined;
      }
    }
    if (++this.#sinceProbe >= probeEveryTicks * 2 ** Math.min(this.#failures, maxDoublings)) {
      this.#sinceProbe = 0;
      this.#probe = { ticks: probeTicks, granted };
      this.#set(planned + next * probeStep);
      return;
    }
    this.#set(planned * planMargin + planSlackBps);
  }

  /**
   * Audio only because the link is weak: the maximum stays near the audio, and probes go up to
   * `target` (what would end audio-only) — held there while the estimate reaches it.
   */
  audioOnly(audioNeed: number, estimate: number, target: number): void {
    const probing = ++this.#sinceProbe >= probeEveryTicks * 2 ** maxDoublings;
    if (probing) this.#sinceProbe = 0;
    this.#set(probing || estimate >= target * 0.75 ? target : audioNeed * planMargin + planSlackBps);
  }

  #set(bps: number): void {
    const cap = bps === 0 ? 0 : Math.max(this.#floor, minimumBps, Math.round(bps));
    // Small changes are left out: each one makes mediasoup share its estimate out again.
    if (cap === this.#cap || (cap > 0 && this.#cap > 0 && Math.abs(cap - this.#cap) < this.#cap * 0.05)) return;
    this.#cap = cap;
    const transport = this.#transport;
    if (transport && !transport.closed) void transport.setMaxOutgoingBitrate(cap).catch(() => {});
  }
}
