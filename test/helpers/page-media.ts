/**
 * What a test page's peer connections carry, read from their stats (the page must record its
 * connections: `recordPeerConnections` in browser.ts, which `browserFor` installs).
 */
import type { Page } from 'playwright-core';
import { waitFor } from '../../bench/processes.ts';

export interface InboundTrack {
  kind: string;
  ssrc: number;
  /** The receiving `MediaStreamTrack`'s id (the stats' `trackIdentifier`). */
  trackId: string;
  bytes: number;
  frames: number;
  /** Audio samples played out (`totalSamplesReceived`); 0 for video. */
  samples: number;
}

/** Inbound RTP streams of the page's open peer connections that carry media. */
export async function inboundTracks(page: Page): Promise<InboundTrack[]> {
  return page.evaluate(async () => {
    const tracks: InboundTrack[] = [];
    for (const pc of (window as unknown as { peerConnections: RTCPeerConnection[] }).peerConnections) {
      if (pc.connectionState === 'closed') continue;
      (await pc.getStats()).forEach((s) => {
        // mediasoup's bandwidth probe (ssrc 1234) never decodes: count only real media.
        if (s.type === 'inbound-rtp' && s.ssrc !== 1234 && s.bytesReceived > 0) {
          tracks.push({
            kind: s.kind,
            ssrc: s.ssrc,
            trackId: s.trackIdentifier,
            bytes: s.bytesReceived,
            frames: s.framesDecoded ?? 0,
            samples: s.totalSamplesReceived ?? 0,
          });
        }
      });
    }
    return tracks;
  });
}

/**
 * An init script (for `addInitScript(smallCamera, { width, height, frameRate })`) that captures
 * every camera at that size, whatever the SDK asks (1280×720 at 30): many pages on two cores.
 */
export const smallCamera = (size: { width: number; height: number; frameRate: number }) => {
  const devices = navigator.mediaDevices;
  const original = devices?.getUserMedia?.bind(devices);
  if (!original) return;
  devices.getUserMedia = (constraints) =>
    original(
      constraints?.video
        ? {
            ...constraints,
            video: { width: { exact: size.width }, height: { exact: size.height }, frameRate: { max: size.frameRate } },
          }
        : constraints,
    );
};

/** Waits until the page decodes video from `others` peers and receives their audio. */
export async function receivingFrom(
  page: Page,
  others: number,
  what: string,
  timeoutMs = 20_000,
): Promise<InboundTrack[]> {
  return waitFor(
    async () => {
      const tracks = await inboundTracks(page);
      const video = tracks.filter((t) => t.kind === 'video' && t.frames > 0);
      const audio = tracks.filter((t) => t.kind === 'audio');
      return video.length >= others && audio.length >= others ? tracks : undefined;
    },
    timeoutMs,
    what,
  );
}

/** The candidate types (`host`, `srflx`, `prflx`, `relay`) of each connected peer connection's selected pair. */
export async function selectedCandidateTypes(page: Page): Promise<{ local: string; remote: string }[]> {
  return page.evaluate(async () => {
    const pairs: { local: string; remote: string }[] = [];
    for (const pc of (window as unknown as { peerConnections: RTCPeerConnection[] }).peerConnections) {
      if (pc.connectionState !== 'connected') continue;
      const stats = new Map<string, Record<string, unknown>>();
      (await pc.getStats()).forEach((s) => {
        stats.set(s.id, s);
      });
      for (const s of stats.values()) {
        if (s.type !== 'transport' || typeof s.selectedCandidatePairId !== 'string') continue;
        const pair = stats.get(s.selectedCandidatePairId);
        const local = stats.get(String(pair?.localCandidateId));
        const remote = stats.get(String(pair?.remoteCandidateId));
        pairs.push({ local: String(local?.candidateType), remote: String(remote?.candidateType) });
      }
    }
    return pairs;
  });
}
