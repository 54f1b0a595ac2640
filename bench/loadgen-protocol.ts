/** Messages between the bench (`main.ts`) and its load generator process (`loadgen.ts`). */

import type { HavenTarget } from './haven-client.ts';
import type { ReceiverTotals } from './media.ts';
import type { Publishing } from './peer.ts';
import type { Percentiles } from './result.ts';
import type { MissingTrack } from './track-check.ts';

/** A room to fill: its first `facilitators` members are facilitators. */
export interface RoomPlan {
  id: string;
  size: number;
  facilitators: number;
  publishing: Publishing;
  facilitatorPublishing: Publishing;
  /** An end-to-end encrypted room: its members join with a public key and send opaque frames. */
  e2ee?: boolean;
}

/** A baseline participant's sockets and key, for the bench to wire bare mediasoup transports to. */
export interface BaselineEndpoint {
  room: string;
  id: string;
  sendPort: number;
  recvPort: number;
  sendKey: string;
  sources: { kind: 'audio' | 'video'; ssrc: number }[];
}

export type Command =
  | { type: 'configure'; videoBitrate: number }
  | { type: 'join-haven'; target: HavenTarget; rooms: RoomPlan[] }
  | { type: 'baseline-peers'; rooms: RoomPlan[] }
  | {
      type: 'baseline-wire';
      wiring: { id: string; send?: { ip: string; port: number; key: string }; recvKey: string }[];
    }
  | { type: 'window-start' }
  | { type: 'window-end' }
  | { type: 'moderate'; target: HavenTarget; rounds: number }
  | { type: 'close-all' };

export type Reply =
  | { type: 'ok' }
  | { type: 'error'; message: string }
  | { type: 'joined'; admitted: number[]; firstPacket: number[]; failed: number }
  | { type: 'baseline-endpoints'; endpoints: BaselineEndpoint[] }
  | {
      type: 'window';
      seconds: number;
      totals: ReceiverTotals;
      sentPackets: number;
      errors: number;
      /** Haven only: tracks some participant should receive and does not. */
      missing: MissingTrack[];
    }
  | { type: 'moderated'; muteAll: Percentiles; admitAll: Percentiles; remove: Percentiles }
  | {
      type: 'progress';
      received: number;
      expected: number;
      sent: number;
      producers: number;
      consumers: number;
      errors: number;
    };
