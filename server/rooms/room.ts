/**
 * A live room on this node: the registry of its members and the stages they go through (consent
 * gate, waiting room, session; a dropped connection's grace; leaving; the session's end). It knows
 * nothing of sockets: signaling looks a caller up (`caller`) and calls the room's parts —
 * `waitingRoom`, `moderation`, `hands`, `chat`, `e2ee`, `liveAttendance`, the member's `media` — and
 * delivers the `notify` events that `audience` emits. What changes is told as events (`presence`,
 * `memberChanged`, `memberGone`, `changed`): attendance records the presence, `RoomPersistence`
 * writes the state through. Media lives on `RoomRouters` (server/media/room-routers.ts).
 */
import type { JoinRequest, JoinResponse, LeaveReason } from '../../client-sdk/src/protocol/index.ts';
import { idCharacters } from '../../client-sdk/src/protocol/index.ts';
import { TypedEmitter } from '../../client-sdk/src/protocol/typed-emitter.ts';
import type { AttendanceEventType, NewAttendanceEvent } from '../attendance/recorder.ts';
import type { VerifiedIdentity } from '../auth/tokens.ts';
import { HavenError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { MemberMedia } from '../media/member-media.ts';
import { RoomRouters } from '../media/room-routers.ts';
import { turnIceServers } from '../media/turn.ts';
import { Audience, type Notification } from './audience.ts';
import { Breakouts } from './breakouts.ts';
import { Chat } from './chat.ts';
import { ConnectionQualityFeed } from './connection-quality-feed.ts';
import { E2eeKeys } from './e2ee-keys.ts';
import { Hands } from './hands.ts';
import { LiveAttendance } from './live-attendance.ts';
import { type CallerNeed, capabilitiesIn, Member, type MemberInit, type Stage } from './member.ts';
import { Moderation } from './moderation.ts';
import { type MemberChange, type RoomChange, RoomPersistence } from './room-persistence.ts';
import type { RoomSettings } from './room-settings.ts';
import type { RoomStateSnapshot } from './room-state.ts';
import type { RoomDefinition } from './room-store.ts';
import { SessionView } from './session-view.ts';
import { WaitingRoom } from './waiting-room.ts';

export type { Notification } from './audience.ts';
export type { Stage } from './member.ts';
export type { AuditRecord, RoomSettings } from './room-settings.ts';

export type RoomEvents = {
  notify: [participantId: string, notification: Notification];
  /** The participant's connection must close (denied, removed): signaling closes it after the notification. */
  evict: [participantId: string];
  /** A presence change, for attendance (ids only). */
  presence: [event: NewAttendanceEvent];
  /** Something the room's stored state keeps changed in a member. */
  memberChanged: [member: Member, change: MemberChange];
  /** A member left, was denied or removed. */
  memberGone: [participantId: string];
  /** The room's own state changed (audio mode, spotlight, a hand, a consent). */
  changed: [change: RoomChange];
  closed: [];
};

export interface JoinResult {
  response: JoinResponse;
  /** An older connection of the same participant, now replaced: signaling closes it. */
  replacedConnectionId?: string;
}

export class Room extends TypedEmitter<RoomEvents> {
  readonly definition: RoomDefinition;
  readonly audience: Audience;
  readonly waitingRoom: WaitingRoom;
  readonly moderation: Moderation;
  readonly hands: Hands;
  readonly chat: Chat;
  readonly e2ee: E2eeKeys;
  readonly liveAttendance: LiveAttendance;
  readonly breakouts: Breakouts;
  /** Each admitted member's connection quality, told to those who may see it. */
  readonly quality: ConnectionQualityFeed;
  readonly view: SessionView;
  readonly #settings: RoomSettings;
  readonly #logger: Logger;
  readonly #members = new Map<string, Member>();
  readonly #routers: RoomRouters;
  readonly #persistence: RoomPersistence;
  #emptyTimer: NodeJS.Timeout | undefined;
  #closed = false;

  private constructor(definition: RoomDefinition, settings: RoomSettings) {
    super();
    this.definition = definition;
    this.#settings = settings;
    this.#logger = settings.logger.child({ room: definition.id });
    // Presence goes to attendance first (before what the room's parts do of it).
    this.on('presence', (event) => settings.attendance(event));
    this.audience = new Audience(this.#members, definition, (id, notification) =>
      this.safeEmit('notify', id, notification),
    );
    this.#routers = new RoomRouters({
      pool: settings.pool,
      logger: this.#logger,
      maxConsumersPerRouter: settings.maxConsumersPerRouter,
      audioOnlyBelowBps: settings.audioOnlyBelowBps,
      placed: () => this.audience.admitted().map((m) => m.media),
    });
    this.#routers.on('dominantSpeaker', (participantId) => {
      this.audience.broadcast('activeSpeaker', [{ participantId }], undefined, this.#members.get(participantId));
    });
    // Their media's router was lost: they set it up again on the new one (presence is untouched).
    this.#routers.on('rehomed', (moved) => {
      for (const media of moved) {
        const member = this.#members.get(media.participantId);
        if (member?.media === media) this.audience.tell(member, 'mediaReset', [{ reason: 'media-worker-lost' }]);
      }
    });
    this.#routers.on('unavailable', () => this.end('media unavailable'));
    this.quality = new ConnectionQualityFeed({
      members: () => this.#members.values(),
      definition,
      audience: this.audience,
      rates: this.#routers.rates,
      logger: this.#logger,
      intervalMs: 1_000,
    });
    this.#persistence = new RoomPersistence(this, this.#logger, settings.roomState);
    this.moderation = new Moderation(this, settings, this.#persistence);
    this.waitingRoom = new WaitingRoom(this);
    this.hands = new Hands(this.audience, (participantId, raisedAt) =>
      this.safeEmit('changed', { type: 'hand', participantId, raisedAt }),
    );
    this.chat = new Chat(definition, this.#members, this.audience, settings.chatArchive);
    this.e2ee = new E2eeKeys(this.#members, definition, this.audience, () => settings.e2ee, this.#logger);
    this.liveAttendance = new LiveAttendance(this, this.#logger, settings.liveAttendance);
    this.view = new SessionView(this, settings);
    this.breakouts = new Breakouts(this);
  }

  /**
   * Opens a room on its first router. With `saved` (the session's state, stored by a node that
   * died while running it), the session goes on: its state is restored and everyone it held is a
   * dropped member within the reconnection grace; no second `sessionStarted` is recorded.
   */
  static async open(definition: RoomDefinition, settings: RoomSettings, saved?: RoomStateSnapshot): Promise<Room> {
    const room = new Room(definition, settings);
    await room.#routers.add();
    if (saved) room.#persistence.restore(saved);
    else room.presence('sessionStarted');
    room.quality.start();
    room.#logger.info({ kind: definition.kind, restored: saved !== undefined }, 'room opened');
    room.#armEmptyTimer();
    return room;
  }

  /**
   * Takes back one member of a session whose node died: as after a dropped connection, with no
   * connection and the grace timer running (see `RoomPersistence.restore`).
   */
  restoreMember(init: Omit<MemberInit, 'media' | 'connectionId' | 'restored'>): void {
    const member = this.#newMember({ ...init, connectionId: undefined, restored: true });
    this.#members.set(member.id, member);
    this.#startGrace(member);
  }

  /** The reconnection grace: when it runs out, this member leaves (never a newer one with its id). */
  #startGrace(member: Member): void {
    member.startGrace(this.#settings.reconnectGraceMs, () => {
      if (this.#members.get(member.id) === member) this.leave(member.id, 'disconnected');
    });
  }

  /** A member with its media, whose changes those who may see it are told of. */
  #newMember(init: Omit<MemberInit, 'media'>): Member {
    const member = new Member({
      ...init,
      media: (m) =>
        new MemberMedia({
          participantId: m.id,
          routers: this.#routers,
          plainTransports: this.#settings.plainTransports,
          iceServers: () => turnIceServers(this.#settings.turn, m.id),
          rules: {
            mayPublish: (source) => m.mayPublish(source),
            heldMuted: (source) => this.moderation.heldMuted(m, source),
            mayUseCodec: (mimeType) => this.e2ee.allowsCodec(mimeType),
            mayReceiveFrom: (participantId) => {
              const publisher = this.#members.get(participantId);
              return publisher !== undefined && this.audience.sameSpace(m, publisher);
            },
            breakout: () => m.breakout,
          },
        }),
    });
    member.media.on('connected', (direction) => this.presence('mediaConnected', member.id, { direction }));
    this.audience.follow(member);
    return member;
  }

  get id(): string {
    return this.definition.id;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Participants present or within their reconnection grace. */
  get size(): number {
    return this.#members.size;
  }

  /** Routers the room uses (more than one when it spreads over workers). */
  get routerCount(): number {
    return this.#routers.count;
  }

  get members(): ReadonlyMap<string, Member> {
    return this.#members;
  }

  has(participantId: string): boolean {
    return this.#members.has(participantId);
  }

  /** Where the participant stands in this room; undefined when not in it. */
  stageOf(participantId: string): Stage | undefined {
    return this.#members.get(participantId)?.stage;
  }

  /**
   * The member `connectionId` speaks for, as `need` asks (joined, in the session, facilitating).
   * A connection replaced by a newer one of the same participant acts for nobody.
   */
  caller(participantId: string, connectionId: string, need: CallerNeed): Member {
    const member = this.#members.get(participantId);
    if (!member) throw new HavenError('INVALID_STATE', 'not joined to this room');
    member.check(connectionId, need);
    return member;
  }

  /**
   * Joins `identity` through `connectionId`. A participant meets the consent gate (if the room has
   * a consent text), then the waiting room (if the room has one); facilitators and observers go
   * straight in. The same participant joining again (a reconnection within the grace window, or a
   * second tab) takes back its place and stage: others see no leave, its old media is closed,
   * the older connection is reported for signaling to close. An E2EE room needs `e2ee`'s public key.
   */
  async join(identity: VerifiedIdentity, connectionId: string, e2ee?: JoinRequest['e2ee']): Promise<JoinResult> {
    if (this.#closed || this.definition.endedAt) throw new HavenError('INVALID_STATE', 'the session has ended');
    if (this.moderation.isBanned(identity.participantId))
      throw new HavenError('FORBIDDEN', 'removed from this session');
    const e2eePublicKey = this.e2ee.keyAtJoin(e2ee);
    const existing = this.#members.get(identity.participantId);
    if (existing) return this.#rejoin(existing, identity, connectionId, e2eePublicKey);
    if (this.moderation.locked && identity.role !== 'facilitator') {
      throw new HavenError('ROOM_LOCKED', 'the room is locked');
    }
    const member = this.#newMember({
      identity,
      capabilities: capabilitiesIn(this.definition, identity),
      stage: 'admitted',
      waitingSince: Date.now(),
      connectionId,
      e2eePublicKey,
    });
    const refusal = this.waitingRoom.capacityRefusal(member);
    if (refusal) throw refusal;
    const isParticipant = identity.role === 'participant';
    const consentAsked = this.definition.consent && !this.waitingRoom.hasAccepted(identity.participantId);
    if (isParticipant && consentAsked) member.stage = 'consent';
    else if (isParticipant && this.definition.waitingRoom) member.stage = 'waiting';
    this.#members.set(identity.participantId, member);
    if (member.stage === 'consent') this.safeEmit('memberChanged', member, 'presence');
    this.#cancelEmptyTimer();
    this.#logger.info(
      { participant: identity.participantId, role: identity.role, stage: member.stage },
      'participant joined',
    );
    if (member.stage === 'admitted') await this.admit(member, false);
    else if (member.stage === 'waiting') this.waitingRoom.entered(member);
    return { response: this.view.stageResponse(member, false) };
  }

  #rejoin(existing: Member, identity: VerifiedIdentity, connectionId: string, key: string | undefined): JoinResult {
    existing.endGrace();
    const replaced = existing.connectionId !== connectionId ? existing.connectionId : undefined;
    existing.media.reset();
    if (!existing.connected) this.presence('reconnected', identity.participantId, { stage: existing.stage });
    existing.connectionId = connectionId;
    existing.identity = identity;
    existing.e2eePublicKey = key;
    const named = existing.restored;
    if (named) {
      existing.restored = false;
      existing.capabilities = capabilitiesIn(this.definition, identity);
    }
    this.safeEmit('memberChanged', existing, 'presence');
    this.#cancelEmptyTimer();
    // A restored member rejoined with their token: those who see them learn their name.
    if (named && existing.alias === undefined) {
      const participantId = existing.id;
      if (existing.stage === 'admitted') {
        this.audience.broadcast(
          'displayNameChanged',
          [{ participantId, name: existing.name }],
          participantId,
          existing,
        );
      } else if (existing.stage === 'waiting') this.waitingRoom.changed();
    }
    if (existing.facilitating) this.waitingRoom.updated();
    this.e2ee.rejoined(existing);
    return { replacedConnectionId: replaced, response: this.view.stageResponse(existing, true) };
  }

  /** Puts a member in the session: a router for its media, and everyone who may see it is told. */
  async admit(member: Member, notify: boolean): Promise<void> {
    // Placed in the same tick when a router has room, so that the next person admitted in that
    // tick (several admits in one read) counts this one.
    const home = this.#routers.forNewcomer();
    member.media.home = home instanceof Promise ? await home : home;
    member.stage = 'admitted';
    member.breakout = undefined; // whoever enters the session enters the main room
    const id = member.id;
    this.presence('admitted', id, { role: member.role });
    this.safeEmit('memberChanged', member, 'presence');
    this.audience.broadcast('participantJoined', [member.info()], id, member);
    this.quality.admitted(member);
    this.e2ee.admitted(member);
    this.breakouts.admitted(member);
    if (notify && member.connected) this.audience.notify(id, 'admitted', [this.view.session(member, false)]);
    if (member.role === 'facilitator') this.waitingRoom.updated();
  }

  /** Back from the session to the waiting room: media closed, hand lowered, the others told. */
  moveToWaitingRoom(target: Member): void {
    const id = target.id;
    target.media.reset();
    this.quality.forget(id);
    target.stage = 'waiting';
    target.waitingSince = Date.now();
    this.presence('movedToWaitingRoom', id);
    this.safeEmit('memberChanged', target, 'presence');
    this.hands.lower(id);
    this.audience.broadcast('participantLeft', [{ participantId: id, reason: 'movedToWaitingRoom' }], id, target);
    this.breakouts.left(target);
    this.e2ee.changed();
    if (target.connected) this.audience.notify(id, 'waiting', [this.waitingRoom.info('movedByFacilitator')]);
    this.waitingRoom.changed();
  }

  /** Someone waiting is denied: told why, out of the room, their connection closed. */
  turnAway(target: Member, reason?: string): void {
    const id = target.id;
    this.presence('denied', id);
    this.audience.notify(id, 'denied', [{ reason }]);
    target.close();
    this.#members.delete(id);
    this.safeEmit('memberGone', id);
    this.waitingRoom.changed();
    this.safeEmit('evict', id);
    this.#armEmptyTimer();
  }

  /** The room's consent text changed (admin API): who has not accepted this version must. */
  setConsent(consent: RoomDefinition['consent']): void {
    this.definition.consent = consent;
  }

  /** A connection dropped: the place is kept for the grace window, then the participant leaves. */
  disconnected(participantId: string, connectionId: string): void {
    const member = this.#members.get(participantId);
    if (!member || member.connectionId !== connectionId) return;
    member.connectionId = undefined;
    this.#logger.info({ participant: participantId, stage: member.stage }, 'participant disconnected; place kept');
    this.presence('disconnected', participantId, { stage: member.stage });
    this.safeEmit('memberChanged', member, 'presence');
    this.#startGrace(member);
    if (member.role === 'facilitator') this.waitingRoom.updated();
    this.e2ee.changed();
  }

  /** Removes a participant and its media; those who could see it are told why. */
  leave(participantId: string, reason: LeaveReason): void {
    const member = this.#members.get(participantId);
    if (!member) return;
    member.close();
    this.#members.delete(participantId);
    this.safeEmit('memberGone', participantId);
    this.hands.lower(participantId);
    if (member.stage === 'admitted') {
      this.audience.broadcast('participantLeft', [{ participantId, reason }], undefined, member);
    } else if (member.stage === 'waiting') this.waitingRoom.changed();
    if (member.role === 'facilitator') this.waitingRoom.updated();
    this.e2ee.changed();
    this.quality.forget(participantId);
    this.moderation.left(participantId);
    this.breakouts.left(member);
    this.#logger.info({ participant: participantId, reason }, 'participant left');
    this.presence(reason === 'removed' ? 'removed' : 'left', participantId, { reason, stage: member.stage });
    this.#armEmptyTimer();
  }

  /** Ends the session for everyone and closes the room. */
  end(reason: string): void {
    if (this.#closed) return;
    this.presence('sessionEnded', undefined, { reason: reason.replace(new RegExp(`[^${idCharacters}]+`, 'g'), '-') });
    this.audience.everyone('sessionEnded', [{ reason }]);
    this.close();
  }

  /** Tells of a presence change (for attendance, ids only). */
  presence(type: AttendanceEventType, participant?: string, details?: NewAttendanceEvent['details']): void {
    this.safeEmit('presence', { type, room: this.id, participant, details });
  }

  #armEmptyTimer(): void {
    if (this.#members.size > 0 || this.#closed) return;
    clearTimeout(this.#emptyTimer);
    this.#emptyTimer = setTimeout(() => {
      this.#logger.info('room empty past its timeout');
      this.presence('sessionEnded', undefined, { reason: 'empty' });
      this.close();
    }, this.#settings.emptyTimeoutMs);
  }

  #cancelEmptyTimer(): void {
    clearTimeout(this.#emptyTimer);
    this.#emptyTimer = undefined;
  }

  /** Closes the room: its members (and their media), its routers, its timers. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#emptyTimer);
    const members = [...this.#members.values()];
    this.#members.clear();
    for (const member of members) member.close();
    this.chat.clear();
    this.e2ee.close();
    this.breakouts.close();
    this.quality.close();
    this.#routers.close();
    this.#logger.info('room closed');
    this.safeEmit('closed');
  }
}
