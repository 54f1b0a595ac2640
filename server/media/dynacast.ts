/**
 * Dynacast: a publisher sends only the simulcast layers someone receives. Each second, for each
 * camera published in the room, the highest spatial layer any consumer being sent prefers (set
 * by its receiver's rendered size and downlink, see DownlinkAllocator); the layers above it are
 * turned off at the publisher (`publisherLayers`), which saves a patient's uplink and CPU. A
 * layer is turned on again at once when someone needs it, and off only after a few seconds
 * unneeded (a tile resized back and forth does not make the camera flap). The lowest layer
 * always stays on, so that a newcomer sees the publisher at once.
 */
import type { MemberMedia } from './member-media.ts';

/** Ticks (seconds) a layer must be unneeded before it is turned off. */
const lowerAfterTicks = 3;

interface Sent {
  maxSpatialLayer: number;
  lowerTicks: number;
}

export class Dynacast {
  readonly #sent = new Map<string, Sent>();
  readonly #tell: (owner: MemberMedia, producerId: string, maxSpatialLayer: number) => void;

  constructor(tell: (owner: MemberMedia, producerId: string, maxSpatialLayer: number) => void) {
    this.#tell = tell;
  }

  /** The layers wanted now, from every consumer of the room's placed media. */
  tick(placed: MemberMedia[]): void {
    // A consumer with no preference yet is sent the top layer (mediasoup's default): Infinity, capped below.
    const wanted = new Map<string, number>();
    for (const media of placed) {
      for (const consumer of media.consumers.values()) {
        if (consumer.type !== 'simulcast' || consumer.paused || consumer.closed) continue;
        const layer = consumer.preferredLayers?.spatialLayer ?? Number.POSITIVE_INFINITY;
        wanted.set(consumer.producerId, Math.max(wanted.get(consumer.producerId) ?? 0, layer));
      }
    }
    const live = new Set<string>();
    for (const owner of placed) {
      for (const { producer } of owner.tracks.values()) {
        if (producer.type !== 'simulcast' || producer.closed) continue;
        live.add(producer.id);
        const top = (producer.rtpParameters.encodings?.length ?? 1) - 1;
        this.#follow(owner, producer.id, Math.min(top, wanted.get(producer.id) ?? 0), top);
      }
    }
    for (const id of this.#sent.keys()) if (!live.has(id)) this.#sent.delete(id);
  }

  #follow(owner: MemberMedia, producerId: string, want: number, top: number): void {
    const sent = this.#sent.get(producerId) ?? { maxSpatialLayer: top, lowerTicks: 0 };
    this.#sent.set(producerId, sent);
    if (want > sent.maxSpatialLayer) {
      sent.maxSpatialLayer = want;
      sent.lowerTicks = 0;
      this.#tell(owner, producerId, want);
    } else if (want < sent.maxSpatialLayer) {
      if (++sent.lowerTicks < lowerAfterTicks) return;
      sent.maxSpatialLayer = want;
      sent.lowerTicks = 0;
      this.#tell(owner, producerId, want);
    } else sent.lowerTicks = 0;
  }

  /** The layers a producer is told to send now (all, before dynacast first lowered them). */
  maxSpatialLayer(producerId: string): number | undefined {
    return this.#sent.get(producerId)?.maxSpatialLayer;
  }
}
