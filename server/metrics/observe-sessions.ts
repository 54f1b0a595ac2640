/**
 * Rooms, participants and joins, from the events rooms already emit, and the requests signaling
 * answers (its observer seam). Ids are used only as keys of in-memory timers, never as labels.
 */
import type { ConnectionQuality, ConsumerPauseReason } from '../../client-sdk/src/protocol/index.ts';
import type { VerifiedIdentity } from '../auth/tokens.ts';
import type { Room } from '../rooms/room.ts';
import type { RoomManager } from '../rooms/room-manager.ts';
import type { SignalingObserver } from '../signaling/signaling.ts';
import type { Series } from './series.ts';

/** Joins timed at once at most: past it the oldest timer is dropped (a join never admitted). */
const maxTimedJoins = 10_000;
export const stages = ['consent', 'waiting', 'admitted'] as const;
const connectionQualities: readonly ConnectionQuality[] = ['excellent', 'good', 'poor', 'lost'];
const holdReasons: readonly ConsumerPauseReason[] = ['bandwidth', 'audioOnly'];

export interface SessionMetrics {
  signaling: SignalingObserver;
  /** Sets the gauges read at scrape time (rooms, participants by stage and connection quality, videos held back). */
  refresh(): void;
}

export function observeSessions(series: Series, rooms: RoomManager, now = () => performance.now()): SessionMetrics {
  const connectedAt = new Map<string, number>();
  const key = (room: string, participant: string) => `${room}\n${participant}`;

  const onRoom = (room: Room, resumed: boolean) => {
    if (resumed) series.failovers.inc();
    room.on('presence', (event) => {
      const { participant } = event;
      if (event.type !== 'admitted' || participant === undefined) return;
      const at = now();
      const since = connectedAt.get(key(room.id, participant));
      connectedAt.delete(key(room.id, participant));
      if (since !== undefined) series.tokenToAdmitted.observe((at - since) / 1000);
      // First transport connected after the admission: the participant's media starts.
      room.members.get(participant)?.media.once('connected', () => {
        series.admittedToMedia.observe((now() - at) / 1000);
      });
    });
    room.on('memberGone', (participant) => connectedAt.delete(key(room.id, participant)));
  };
  rooms.on('roomOpened', onRoom);

  return {
    signaling: {
      connected: (identity: VerifiedIdentity) => {
        const k = key(identity.roomId, identity.participantId);
        connectedAt.delete(k);
        if (connectedAt.size >= maxTimedJoins) connectedAt.delete(connectedAt.keys().next().value as string);
        connectedAt.set(k, now());
      },
      answered: (event, code) => {
        series.requests.inc({ event, code });
        if (code === 'RATE_LIMITED') series.rateLimited.inc({ event });
      },
    },
    refresh() {
      const open = rooms.rooms;
      series.roomsOpen.set(open.length);
      const counts = new Map<string, number>(stages.map((stage) => [stage, 0]));
      for (const room of open) {
        for (const member of room.members.values()) counts.set(member.stage, (counts.get(member.stage) ?? 0) + 1);
      }
      for (const [stage, n] of counts) series.participants.set({ stage }, n);
      const qualities = new Map<string, number>(connectionQualities.map((quality) => [quality, 0]));
      const held = new Map<ConsumerPauseReason, number>(holdReasons.map((reason) => [reason, 0]));
      for (const room of open) {
        for (const [participantId, member] of room.members) {
          if (member.stage !== 'admitted') continue;
          const quality = room.quality.qualityOf(participantId);
          qualities.set(quality, (qualities.get(quality) ?? 0) + 1);
          for (const reason of holdReasons)
            held.set(reason, (held.get(reason) ?? 0) + member.media.downlink.held(reason));
        }
      }
      for (const [quality, n] of qualities) series.connectionQuality.set({ quality }, n);
      for (const [reason, n] of held) series.videosHeld.set({ reason }, n);
    },
  };
}
