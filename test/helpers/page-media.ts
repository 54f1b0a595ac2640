/**
 * What a test page's peer connections carry, read from their stats (the page must record its
 * connections: `recordPeerConnections` in browser.ts, which `browserFor` installs).
 */
import type { Page } from 'playwright-core';
import { waitFor } from '../../bench/processes.ts';

export interface InboundTrack {
  kind: string;
  ssrc: number;
  bytes: number;
  frames: number;
}

/** Inbound RTP streams of the page's open peer connections that carry media. */
export async function inboundTracks(page: Page): Promise<InboundTrack[]> {
  return page.evaluate(async () => {
    const tracks: { kind: string; ssrc: number; bytes: number; frames: number }[] = [];
    for (const pc of (window as unknown as { peerConnections: RTCPeerConnection[] }).peerConnections) {
      if (pc.connectionState === 'closed') continue;
      (await pc.getStats()).forEach((s) => {
        // mediasoup's bandwidth probe (ssrc 1234) never decodes: count only real media.
        if (s.type === 'inbound-rtp' && s.ssrc !== 1234 && s.bytesReceived > 0) {
          tracks.push({ kind: s.kind, ssrc: s.ssrc, bytes: s.bytesReceived, frames: s.framesDecoded ?? 0 });
        }
      });
    }
    return tracks;
  });
}

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
