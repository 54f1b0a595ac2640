/**
 * What each published track sends now, as the SFU receives it: the bitrate of every simulcast
 * encoding (a spatial layer) and its loss, read once a second from mediasoup's producer stats for
 * the whole room, so that each receiver's downlink allocator, dynacast and connection quality
 * share one reading instead of asking the media worker once each.
 */
import type { Producer, ProducerStat } from 'mediasoup/node/lib/types.js';

export interface LayerRate {
  /** Bits per second of this encoding (RTP packets as received, headers included). */
  bitrate: number;
  /** mediasoup's loss fraction of this encoding over its last report (0–1). */
  lossFraction: number;
  /** Jitter in ms (RTP timestamp units turned into ms with the codec's clock rate). */
  jitterMs: number;
}

export interface TrackRate {
  /** By spatial layer (encoding index); a layer not arriving has bitrate 0. */
  layers: LayerRate[];
  /** Sum of the layers. */
  bitrate: number;
  sampledAt: number;
}

const none: LayerRate = { bitrate: 0, lossFraction: 0, jitterMs: 0 };

/** The layers of one stats reading, in the producer's encoding order (rid, else SSRC, else one). */
export function layerRates(producer: Pick<Producer, 'rtpParameters'>, stats: ProducerStat[]): LayerRate[] {
  const encodings = producer.rtpParameters.encodings ?? [];
  const clockRate = producer.rtpParameters.codecs[0]?.clockRate ?? 90_000;
  const rate = (stat: ProducerStat | undefined): LayerRate =>
    stat
      ? {
          bitrate: stat.bitrate,
          lossFraction: stat.fractionLost / 256,
          jitterMs: (stat.jitter / clockRate) * 1000,
        }
      : none;
  if (encodings.length <= 1) return [rate(stats[0])];
  return encodings.map((encoding, index) =>
    rate(
      stats.find((s) => (encoding.rid ? s.rid === encoding.rid : encoding.ssrc ? s.ssrc === encoding.ssrc : false)) ??
        (encoding.rid || encoding.ssrc ? undefined : stats[index]),
    ),
  );
}

export class TrackRates {
  readonly #rates = new Map<string, TrackRate>();

  /** The last reading of a producer's layers; undefined before the first. */
  of(producerId: string): TrackRate | undefined {
    return this.#rates.get(producerId);
  }

  /** Reads every producer's stats (those that fail, closing meanwhile, are left out). */
  async sample(producers: Iterable<Producer>): Promise<void> {
    const seen = new Set<string>();
    await Promise.all(
      [...producers].map(async (producer) => {
        seen.add(producer.id);
        try {
          const layers = layerRates(producer, await producer.getStats());
          const bitrate = layers.reduce((sum, l) => sum + l.bitrate, 0);
          this.#rates.set(producer.id, { layers, bitrate, sampledAt: Date.now() });
        } catch {
          this.#rates.delete(producer.id);
        }
      }),
    );
    for (const id of this.#rates.keys()) if (!seen.has(id)) this.#rates.delete(id);
  }
}
