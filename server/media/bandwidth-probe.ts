/**
 * Keeps a receive transport's sending near what its downlink plan uses, with room for its next
 * step. mediasoup fills the gap between what its consumers could send and its estimate with
 * padding (probation), up to the top simulcast layer of every video it forwards: on a weak link
 * that padding is what makes the voices queue and drop. So while the plan wants more than it
 * has, the transport's maximum outgoing bitrate is the plan plus one and a half of its next step
 * (another tile, or a tile's next layer): the congestion controller may look that far and no
 * further, and if its estimate gets there, the plan takes the step. Right after a loss it is the
 * plan alone (the link is full). When the plan has everything it wants, the transport is not
 * limited.
 *
 * Each time the estimate reaches the most it may (this maximum, or mediasoup's own: 1.35× what
 * its unpaused consumers could send), the link has carried what it was given, and the next
 * maximum looks twice as many steps ahead (up to `maxReach`): a link whose limit was lifted gets
 * its tiles back in a few rounds instead of one tile per round. A loss starts again at one.
 * Raising the maximum is itself a probe: mediasoup's congestion controller sends a short burst
 * at the new maximum, and takes what arrives as its estimate.
 */
import type { WebRtcTransport } from 'mediasoup/node/lib/types.js';

/** The maximum is the plan plus the next step times this, plus `slackBps`. */
const stepRoom = 1.5;
const slackBps = 30_000;
/** Right after a loss, the maximum is the plan plus this share and `slackBps`. */
const planMargin = 1.05;
/** The estimate has reached the maximum when it is this share of it (mediasoup reports at most the maximum). */
const reachedShare = 0.97;
/** The most steps one maximum looks ahead. */
const maxReach = 8;
/** mediasoup refuses a maximum below this (other than 0, no maximum). */
const minimumBps = 30_000;

export class BandwidthProbe {
  #transport: WebRtcTransport | undefined;
  #cap = 0;
  /** How many of the plan's next steps the maximum leaves room for, and the maximum that last doubled it. */
  #reach = 1;
  #reachedCap = 0;
  /** The estimate when the maximum was set to look beyond the plan (0: it does not). */
  #estimateAtLookAhead = 0;
  /** Never below what ends automatic audio-only: a maximum under it would bring audio-only on by itself. */
  readonly #floor: number;

  constructor(floorBps: number) {
    this.#floor = floorBps;
  }

  /** The transport's maximum outgoing bitrate now (bps; 0: none). */
  get cap(): number {
    return this.#cap;
  }

  /** Whether the link has lately carried more than one step beyond the plan (it is recovering, not full). */
  get recovering(): boolean {
    return this.#reach > 1;
  }

  attach(transport: WebRtcTransport): void {
    this.#transport = transport;
    this.#cap = 0;
    this.#reach = 1;
    this.#reachedCap = 0;
    this.#estimateAtLookAhead = 0;
  }

  /**
   * After a plan: what it uses (`planned`, bps), what its next steps would cost in order (none
   * when it has all it wants), whether the link has been quiet (no loss) long enough to look
   * beyond it, the estimate now and the most mediasoup lets it reach (bps; `maxBitrate`).
   */
  planned(planned: number, steps: number[], quiet: boolean, estimate: number, ceiling: number): void {
    if (!quiet) this.#reach = 1;
    else if (this.#reachedAhead(estimate, ceiling)) {
      this.#reach = Math.min(this.#reach * 2, maxReach);
      this.#reachedCap = this.#limit(ceiling);
      this.#estimateAtLookAhead = estimate;
    }
    if (!quiet || steps.length === 0) this.#estimateAtLookAhead = 0;
    else if (this.#estimateAtLookAhead === 0) this.#estimateAtLookAhead = estimate;
    const ahead = steps.slice(0, this.#reach).reduce((sum, step) => sum + step, 0);
    if (steps.length === 0) this.#set(0);
    else this.#set(quiet ? planned + ahead * stepRoom + slackBps : planned * planMargin + slackBps);
  }

  /**
   * Audio only because the link is weak: the maximum is the floor, above what ends audio-only,
   * so that mediasoup's estimate may climb to it (padding fills the gap; audio alone counts for
   * nothing in what mediasoup wants to send).
   */
  audioOnly(): void {
    this.#estimateAtLookAhead = 0;
    this.#set(this.#floor);
  }

  /**
   * The estimate climbed to the most it may reach while the maximum looked beyond the plan: this
   * transport's maximum, or mediasoup's own when lower (`ceiling`). Not a limit it was at
   * already, as the floor can be.
   */
  #reachedAhead(estimate: number, ceiling: number): boolean {
    const limit = this.#limit(ceiling);
    return (
      this.#estimateAtLookAhead > 0 &&
      limit !== this.#reachedCap &&
      limit > this.#estimateAtLookAhead * 1.05 &&
      estimate >= limit * reachedShare
    );
  }

  /** The most the estimate may reach: this transport's maximum and mediasoup's, whichever is set and lower. */
  #limit(ceiling: number): number {
    return this.#cap > 0 && ceiling > 0 ? Math.min(this.#cap, ceiling) : this.#cap || ceiling;
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
