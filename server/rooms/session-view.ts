/**
 * What a member is answered where they stand: the consent text at the gate, the waiting room's
 * state while waiting, or the session as they may see it (who else is in it, hands, the waiting
 * list for facilitators, their media's router and TURN credentials, an E2EE room's key roster,
 * their breakout group: `participants` are those of their group, or of the main room).
 */
import type { JoinResponse, SessionState } from '../../client-sdk/src/protocol/index.ts';
import { turnIceServers } from '../media/turn.ts';
import type { Member } from './member.ts';
import type { Room } from './room.ts';
import type { RoomSettings } from './room-settings.ts';

export class SessionView {
  readonly #room: Room;
  readonly #settings: Pick<RoomSettings, 'reconnectGraceMs' | 'turn'>;

  constructor(room: Room, settings: Pick<RoomSettings, 'reconnectGraceMs' | 'turn'>) {
    this.#room = room;
    this.#settings = settings;
  }

  stageResponse(member: Member, resumed: boolean): JoinResponse {
    const { reconnectGraceMs } = this.#settings;
    const { definition, waitingRoom } = this.#room;
    if (member.stage === 'consent' && definition.consent)
      return { stage: 'consent', consent: definition.consent, reconnectGraceMs };
    if (member.stage === 'waiting') return { stage: 'waiting', waiting: waitingRoom.info(), reconnectGraceMs };
    return { stage: 'admitted', session: this.session(member, resumed) };
  }

  /** The session as `member` sees it (`resumed`: they took their place back after a reconnection). */
  session(member: Member, resumed: boolean): SessionState {
    const { audience, moderation, definition, hands, waitingRoom, e2ee } = this.#room;
    return {
      room: {
        id: definition.id,
        kind: definition.kind,
        title: definition.title,
        e2ee: e2ee.enabled,
        shareConnectionQuality: definition.shareConnectionQuality ?? false,
      },
      self: member.info(),
      capabilities: member.capabilities,
      participants: audience
        .admitted()
        .filter((m) => m !== member && audience.visibleTo(member, m))
        .map((m) => m.info()),
      routerRtpCapabilities: member.media.home.router.rtpCapabilities,
      iceServers: turnIceServers(this.#settings.turn, member.id),
      resumed,
      reconnectGraceMs: this.#settings.reconnectGraceMs,
      audioMode: moderation.audioMode,
      locked: moderation.locked,
      spotlight: moderation.spotlit,
      hands: hands.seenBy(member),
      waiting: member.role === 'facilitator' ? waitingRoom.list() : [],
      ...(e2ee.enabled ? { e2ee: e2ee.roster(member) } : {}),
      connectionQuality: this.#room.quality.visibleTo(member),
      audioOnly: member.media.downlink.audioOnly,
      breakout: this.#room.breakouts.placeOf(member),
      breakouts: member.role === 'facilitator' ? this.#room.breakouts.state() : null,
    };
  }
}
