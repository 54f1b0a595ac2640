/**
 * Whether every synthetic participant receives every track it should: each other member's
 * published tracks in its room, consumed and with packets in the measuring window. A miss names
 * the receiver, the producer and whose it is (pseudonymous ids only).
 */

export interface Receiver {
  id: string;
  room: string;
  /** What this participant publishes: producer id → kind. */
  produces: ReadonlyMap<string, 'audio' | 'video'>;
  /** What it consumes, resumed: producer id → the consumer's SSRC (the one its packets arrive with). */
  consumes: ReadonlyMap<string, number>;
  /** Producer id → why consuming it failed (the request and its code), if it did. */
  failed?: ReadonlyMap<string, string>;
  /** Whether it receives media at all (latecomers of the moderation scenario come and go without). */
  receives: boolean;
}

export interface MissingTrack {
  participant: string;
  producerId: string;
  owner: string;
  kind: 'audio' | 'video';
  /** Never consumed (and resumed), its consume or resume refused (`consume: TIMEOUT`, …), or consumed without a packet in the window. */
  reason: string;
}

/** The tracks some participant misses; `packetsOf(ssrc)` is what arrived on a consumer's SSRC. */
export function missingTracks(members: readonly Receiver[], packetsOf: (ssrc: number) => number): MissingTrack[] {
  const missing: MissingTrack[] = [];
  for (const receiver of members) {
    if (!receiver.receives) continue;
    for (const owner of members) {
      if (owner === receiver || owner.room !== receiver.room) continue;
      for (const [producerId, kind] of owner.produces) {
        const ssrc = receiver.consumes.get(producerId);
        const reason =
          ssrc === undefined
            ? (receiver.failed?.get(producerId) ?? 'not consumed')
            : packetsOf(ssrc) > 0
              ? undefined
              : 'no packets';
        if (reason) missing.push({ participant: receiver.id, producerId, owner: owner.id, kind, reason });
      }
    }
  }
  return missing;
}

/** One line for the console and the result: who missed what (the first few, then a count). */
export function describeMissing(missing: readonly MissingTrack[], total = missing.length, shown = 8): string {
  const lines = missing
    .slice(0, shown)
    .map((m) => `${m.participant} lacks ${m.owner}'s ${m.kind} ${m.producerId} (${m.reason})`);
  const more = total > shown ? `; and ${total - shown} more` : '';
  return `${total} tracks missing: ${lines.join('; ')}${more}`;
}
