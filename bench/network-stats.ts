/**
 * What a page's media looks like on a poor link, from its peer connections' stats (the page must
 * record them: `recordPeerConnections`): per received audio track how much was concealed (the
 * jitter buffer's guesses for what never arrived in time), per received video track its layer
 * (frame width) and frames decoded, per sent stream (simulcast `rid`) what it sent and whether
 * it is active. Take a snapshot, wait for something, take another, and compare.
 *
 * Tracks are named after their participant when the page runs the demo (`havenDemo.client`):
 * the receiver's track id is the SDK's `RemoteTrack.track.id`.
 */
import type { Page } from 'playwright-core';

export interface InboundAudio {
  trackId: string;
  ssrc: number;
  /** The publisher's display name, when the page is the demo's. */
  participant?: string;
  concealed: number;
  silentConcealed: number;
  total: number;
  packetsLost: number;
  packetsReceived: number;
  bytes: number;
  /** The SDK's `RemoteTrack.pausedReason`: why the server holds this voice back (never, for bandwidth). */
  pausedReason?: string | null;
}

export interface InboundVideo {
  trackId: string;
  ssrc: number;
  participant?: string;
  source?: string;
  /** The SDK's `RemoteTrack.pausedReason` (`bandwidth`, `audioOnly`, …), once the SDK has it. */
  pausedReason?: string | null;
  frameWidth: number;
  framesDecoded: number;
  bytes: number;
}

export interface OutboundStream {
  kind: string;
  ssrc: number;
  /** The simulcast layer's rid (`r0` lowest …), none for audio. */
  rid?: string;
  bytes: number;
  active: boolean;
  qualityLimitationReason?: string;
  frameWidth: number;
  framesEncoded: number;
}

export interface NetworkSnapshot {
  /** `performance.now()` of the page when read. */
  at: number;
  audio: InboundAudio[];
  video: InboundVideo[];
  outbound: OutboundStream[];
}

/** The fields of `inbound-rtp` and `outbound-rtp` stats read here (other stats lack them). */
interface RtpStats {
  type: string;
  kind: string;
  ssrc: number;
  trackIdentifier: string;
  rid?: string;
  bytesReceived?: number;
  bytesSent?: number;
  concealedSamples?: number;
  silentConcealedSamples?: number;
  totalSamplesReceived?: number;
  packetsLost?: number;
  packetsReceived?: number;
  frameWidth?: number;
  framesDecoded?: number;
  framesEncoded?: number;
  active?: boolean;
  qualityLimitationReason?: string;
}

/** Reads every open peer connection's media streams (mediasoup's probe, ssrc 1234, left out). */
export function networkSnapshot(page: Page): Promise<NetworkSnapshot> {
  return page.evaluate(async () => {
    const w = window as unknown as {
      peerConnections: RTCPeerConnection[];
      havenDemo?: {
        client?: {
          participants: Map<
            string,
            {
              name: string;
              tracks: Map<string, { track: MediaStreamTrack; source: string; pausedReason?: string | null }>;
            }
          >;
        };
      };
    };
    const byTrack = new Map<string, { participant: string; source: string; pausedReason?: string | null }>();
    for (const p of w.havenDemo?.client?.participants.values() ?? []) {
      for (const t of p.tracks.values()) {
        byTrack.set(t.track.id, { participant: p.name, source: t.source, pausedReason: t.pausedReason });
      }
    }
    const snapshot = {
      at: performance.now(),
      audio: [] as InboundAudio[],
      video: [] as InboundVideo[],
      outbound: [] as OutboundStream[],
    };
    for (const pc of w.peerConnections) {
      if (pc.connectionState === 'closed') continue;
      (await pc.getStats()).forEach((s: RtpStats) => {
        if (s.ssrc === 1234) return;
        if (s.type === 'inbound-rtp') {
          const known = byTrack.get(s.trackIdentifier);
          const common = {
            trackId: s.trackIdentifier,
            ssrc: s.ssrc,
            participant: known?.participant,
            bytes: s.bytesReceived ?? 0,
          };
          if (s.kind === 'audio') {
            snapshot.audio.push({
              ...common,
              concealed: s.concealedSamples ?? 0,
              silentConcealed: s.silentConcealedSamples ?? 0,
              total: s.totalSamplesReceived ?? 0,
              packetsLost: s.packetsLost ?? 0,
              packetsReceived: s.packetsReceived ?? 0,
              pausedReason: known?.pausedReason,
            });
          } else {
            snapshot.video.push({
              ...common,
              source: known?.source,
              pausedReason: known?.pausedReason,
              frameWidth: s.frameWidth ?? 0,
              framesDecoded: s.framesDecoded ?? 0,
            });
          }
        } else if (s.type === 'outbound-rtp') {
          snapshot.outbound.push({
            kind: s.kind,
            ssrc: s.ssrc,
            rid: s.rid,
            bytes: s.bytesSent ?? 0,
            active: s.active ?? true,
            qualityLimitationReason: s.qualityLimitationReason,
            frameWidth: s.frameWidth ?? 0,
            framesEncoded: s.framesEncoded ?? 0,
          });
        }
      });
    }
    return snapshot;
  });
}

export interface AudioWindow {
  trackId: string;
  participant?: string;
  /** Δconcealed / Δtotal samples: the share of the window the listener heard guessed audio. */
  concealedRatio: number;
  /** The same for concealment that was silence (during the speaker's DTX). */
  silentConcealedRatio: number;
  samples: number;
  /** RTP packets never received (after retransmission: Opus is retransmitted on NACK). */
  packetsLost: number;
  packetsReceived: number;
  /** Why the server held the voice back at the window's end (`null`: it did not). */
  pausedReason?: string | null;
  kbps: number;
}

export interface VideoWindow {
  trackId: string;
  participant?: string;
  source?: string;
  pausedReason?: string | null;
  /** Width of the last decoded frame (0 before the first): which layer arrives. */
  frameWidth: number;
  framesDecoded: number;
  kbps: number;
}

export interface OutboundWindow {
  kind: string;
  rid?: string;
  active: boolean;
  qualityLimitationReason?: string;
  frameWidth: number;
  framesEncoded: number;
  kbps: number;
}

const kbps = (bytes: number, ms: number) => (ms > 0 ? (bytes * 8) / ms : 0);

/** What each stream of `after` did since `before` (streams new in `after` count from zero). */
export function networkWindow(before: NetworkSnapshot, after: NetworkSnapshot) {
  const ms = after.at - before.at;
  const audio: AudioWindow[] = after.audio.map((a) => {
    const b = before.audio.find((x) => x.ssrc === a.ssrc && x.trackId === a.trackId);
    const samples = a.total - (b?.total ?? 0);
    return {
      trackId: a.trackId,
      participant: a.participant,
      concealedRatio: samples > 0 ? (a.concealed - (b?.concealed ?? 0)) / samples : 0,
      silentConcealedRatio: samples > 0 ? (a.silentConcealed - (b?.silentConcealed ?? 0)) / samples : 0,
      samples,
      packetsLost: a.packetsLost - (b?.packetsLost ?? 0),
      packetsReceived: a.packetsReceived - (b?.packetsReceived ?? 0),
      pausedReason: a.pausedReason,
      kbps: kbps(a.bytes - (b?.bytes ?? 0), ms),
    };
  });
  const video: VideoWindow[] = after.video.map((v) => {
    const b = before.video.find((x) => x.ssrc === v.ssrc && x.trackId === v.trackId);
    return {
      trackId: v.trackId,
      participant: v.participant,
      source: v.source,
      pausedReason: v.pausedReason,
      frameWidth: v.frameWidth,
      framesDecoded: v.framesDecoded - (b?.framesDecoded ?? 0),
      kbps: kbps(v.bytes - (b?.bytes ?? 0), ms),
    };
  });
  const outbound: OutboundWindow[] = after.outbound.map((o) => {
    const b = before.outbound.find((x) => x.ssrc === o.ssrc);
    return {
      kind: o.kind,
      rid: o.rid,
      active: o.active,
      qualityLimitationReason: o.qualityLimitationReason,
      frameWidth: o.frameWidth,
      framesEncoded: o.framesEncoded - (b?.framesEncoded ?? 0),
      kbps: kbps(o.bytes - (b?.bytes ?? 0), ms),
    };
  });
  return { ms, audio, video, outbound };
}

export type NetworkWindow = ReturnType<typeof networkWindow>;

/** What `page` receives and sends over the next `ms` (a window measured, not a wait for a state). */
export async function observeWindow(page: Page, ms: number): Promise<NetworkWindow> {
  const before = await networkSnapshot(page);
  await new Promise((resolve) => setTimeout(resolve, ms));
  return networkWindow(before, await networkSnapshot(page));
}

/**
 * Observes `page` in windows of 2 s until `times` windows in a row pass `check`; fails after
 * `timeoutMs` (default 40 s) with what the last window saw.
 */
export async function settleWindow(
  page: Page,
  check: (w: NetworkWindow) => boolean,
  what: string,
  { timeoutMs = 40_000, times = 1 }: { timeoutMs?: number; times?: number } = {},
): Promise<NetworkWindow> {
  const deadline = Date.now() + timeoutMs;
  let passed = 0;
  for (;;) {
    const w = await observeWindow(page, 2_000);
    passed = check(w) ? passed + 1 : 0;
    if (passed >= times) return w;
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}; the last window saw:\n${describeWindow(w).join('\n')}`,
      );
    }
  }
}

/** One line per stream of a window, for a test's log. */
export function describeWindow(w: NetworkWindow): string[] {
  const pct = (x: number) => `${(x * 100).toFixed(2)} %`;
  return [
    ...w.audio.map(
      (a) =>
        `audio from ${a.participant ?? a.trackId}: concealed ${pct(a.concealedRatio)} (silent ${pct(a.silentConcealedRatio)}), ${a.packetsLost} lost, ${a.kbps.toFixed(1)} kbit/s`,
    ),
    ...w.video.map(
      (v) =>
        `video from ${v.participant ?? v.trackId}: ${v.frameWidth} wide, ${v.framesDecoded} frames, ${v.kbps.toFixed(1)} kbit/s${v.pausedReason ? `, paused (${v.pausedReason})` : ''}`,
    ),
    ...w.outbound.map(
      (o) =>
        `sent ${o.kind}${o.rid ? ` ${o.rid}` : ''}: ${o.kbps.toFixed(1)} kbit/s${o.active ? '' : ' (inactive)'}${o.kind === 'video' ? `, ${o.frameWidth} wide, limited by ${o.qualityLimitationReason}` : ''}`,
    ),
  ];
}
