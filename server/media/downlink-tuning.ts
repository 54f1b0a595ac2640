/**
 * The downlink allocator's tuning: how long a tile must misfit or fit before it is held or
 * released, the audio-only thresholds, the back-off of a tile that relapses, how the estimate is
 * read and what counts as congestion. The throttled-link test and the network bench (README,
 * "Poor home networks") show what a change does.
 */

/** Ticks (seconds) a tile must not fit before it is paused, and fit with margin before it comes back. */
export const holdAfterTicks = 2;
export const releaseAfterTicks = 2;
/** A paused tile comes back only if it fits in this share of the budget (no flapping at the edge). */
export const releaseMargin = 0.85;
/** Audio-only: on below the threshold for 5 ticks (not on the dip a new limit makes); off above 1.5× it for 5. */
export const audioOnlyAfterTicks = 5;
export const audioOnlyOffFactor = 1.5;
export const audioOnlyOffAfterTicks = 5;
/**
 * A tile paused again soon after it came back waits twice as long to come back (up to 4×, so
 * 8 s): only sending tells whether the link carries it, and each try costs the voices a few
 * packets. The speaker's tile never waits longer than the usual 2 s.
 */
export const maxReleaseDoublings = 2;
/** A tile sent this long counts as settled: its back-off is forgotten. */
export const settledMs = 30_000;
/** The estimate is the median of mediasoup's reports over this window. */
export const estimateWindowMs = 3_000;
/** A layer whose rate is not known yet is counted at this (bps): a camera's lowest layer. */
export const unknownLayerBps = 150_000;
/** Audio needs its RTP rate plus IP, UDP and SRTP overhead: ×1.5 and 1 kbit/s covers Opus at 20 ms. */
export const audioOverhead = (bps: number) => bps * 1.5 + 1_000;

/** Packet loss at or above this on the downlink means it is congested (the plan applies)… */
export const congestionLoss = 0.02;
/** …for this long after the last such loss. */
export const congestionMs = 20_000;
/** The transport looks beyond the plan only once this long has passed since the last loss. */
export const quietBeforeProbingMs = 5_000;

/** mediasoup priorities: audio above all, then the speaker's camera, screen shares, other cameras. */
export const priorities = { audio: 255, speaker: 200, screen: 150, camera: 50 } as const;
