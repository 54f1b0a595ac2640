/**
 * Keeps a receive transport's sending near what its downlink plan uses, with room for one more
 * step. mediasoup fills the gap between what its consumers could send and its estimate with
 * padding (probation), up to the top simulcast layer of every video it forwards: on a weak link
 * that padding is what makes the voices queue and drop. So while the plan wants more than it
 * has, the transport's maximum outgoing bitrate is the plan plus one and a half of its next step
 * (another tile, or a tile's next layer): the congestion controller may look that far and no
 * further, and if its estimate gets there, the plan takes the step. Right after a loss it is the
 * plan alone (the link is full). When the plan has everything it wants, the transport is not
 * limited.
 */
import type { WebRtcTransport } from 'mediasoup/node/lib/types.js';

/** The maximum is the plan plus the next step times this, plus `slackBps`. */
const stepRoom = 1.5;
const slackBps = 30_000;
/** Right after a loss, the maximum is the plan plus this share and `slackBps`. */
const planMargin = 1.05;
/** mediasoup refuses a maximum below this (other than 0, no maximum). */
const minimumBps = 30_000;
/** Ticks (seconds) between probes above the audio while audio only. */
const audioOnlyProbeTicks = 6;

export class BandwidthProbe {
  #transport: WebRtcTransport | undefined;
  #cap = 0;
  #sinceProbe = 0;
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
  }

  /**
   * After a plan: what it uses (`planned`, bps), what its next step would cost (undefined when it
   * has all it wants), and whether the link has been quiet (no loss) long enough to look for it.
   */
  planned(planned: number, next: number | undefined, quiet: boolean): void {
    if (next === undefined) this.#set(0);
    else this.#set(quiet ? planned + next * stepRoom + slackBps : planned * planMargin + slackBps);
  }

  /**
   * Audio only because the link is weak: the maximum stays near the audio, and now and then goes
   * up to `target` (what would end audio-only), held there while the estimate reaches it.
   */
  audioOnly(audioNeed: number, estimate: number, target: number): void {
    const probing = ++this.#sinceProbe >= audioOnlyProbeTicks;
    if (probing) this.#sinceProbe = 0;
    this.#set(probing || estimate >= target * 0.75 ? target : audioNeed * 1.15 + slackBps);
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
