/**
 * Which part of a SessionClient handles each server notification: the room view, moderation,
 * this client, everyone else, the key exchange of an E2EE room, the network's quality and
 * audio-only, the join flow; a notification about a participant goes to this
 * client's record or to the others' depending on whom it names. When it is handled is the
 * router's business (notification-router.ts).
 */
import type { BreakoutsView } from './breakouts.ts';
import type { KeyExchange } from './e2ee/key-exchange.ts';
import type { JoinFlow } from './join-flow.ts';
import type { ModerationState } from './moderation.ts';
import type { NetworkQuality } from './network-quality.ts';
import type { NotificationRoutes } from './notification-router.ts';
import type { LocalMember } from './participants/local-member.ts';
import type { RemoteMembers } from './participants/remote-members.ts';
import type { RoomView } from './room-view.ts';
import type { SessionEvents } from './session-events.ts';
import type { Signaling } from './signaling.ts';

/** The parts of a SessionClient that notifications go to, besides its join flow. */
export interface SessionParts {
  readonly events: SessionEvents;
  readonly view: RoomView;
  readonly moderation: ModerationState;
  readonly self: LocalMember;
  readonly others: RemoteMembers;
  readonly keys: KeyExchange;
  readonly network: NetworkQuality;
  readonly breakouts: BreakoutsView;
}

/** Which part handles each notification of `signaling`. */
export function sessionRoutes(signaling: Signaling, join: JoinFlow, parts: SessionParts): NotificationRoutes {
  const { events, self, others, network } = parts;
  const { stage, final, mediaReset } = join.handlers(signaling);
  const breakouts = parts.breakouts.handlers();
  return {
    room: {
      ...parts.view.handlers(),
      ...parts.moderation.handlers(),
      ...others.handlers(),
      ...self.handlers(),
      ...parts.keys.handlers(),
      ...network.handlers(),
      ...breakouts,
      // The key exchange first: the send epoch is the new place's before its members join the view.
      movedToBreakout: (place) => {
        parts.keys.moved(place.group?.id ?? null);
        breakouts.movedToBreakout(place);
      },
      mediaReset,
      // About this client, or someone else:
      participantLeft: ({ participantId, reason }) => {
        if (participantId === self.id) join.onSelfLeft(reason);
        else {
          others.remove(participantId, reason);
          network.forget(participantId);
          parts.view.leftView(participantId);
        }
      },
      trackUpdated: (info) => {
        if (info.participantId === self.id) self.applyServerTrackUpdate(info);
        else others.updated(info);
      },
      displayNameChanged: ({ participantId, name }) => {
        if (participantId === self.id) self.rename(name);
        else others.rename(participantId, name);
        events.safeEmit('displayNameChanged', participantId, name);
      },
    },
    stage,
    final,
  };
}
