/**
 * A room's moderation policy: what facilitators may do to others and to the room (admit, deny,
 * mute, remove or ban, lock, alias, spotlight, …), the room-wide state those decide (locked, audio
 * mode, spotlight, bans), and the one place where the room's audit log is written: every action
 * is recorded with its outcome, a refusal with its code. Callers come checked by the room
 * (`Room.caller`): a facilitator in the session, through their current connection.
 */
import type { AdmitAllResponse, AudioMode, TrackSource } from '../../client-sdk/src/protocol/index.ts';
import { HavenError } from '../errors.ts';
import type { Member, Stage } from './member.ts';
import type { Room } from './room.ts';
import type { RoomPersistence } from './room-persistence.ts';
import type { AuditRecord, RoomSettings } from './room-settings.ts';
import type { RoomStateSnapshot } from './room-state.ts';

export class Moderation {
  readonly #room: Room;
  readonly #settings: Pick<RoomSettings, 'audit' | 'revoke'>;
  readonly #persistence: RoomPersistence;
  #locked = false;
  #audioMode: AudioMode = 'open';
  #spotlight: string | null = null;
  /** Removed with a ban: refused for the rest of the session. */
  readonly #banned = new Set<string>();

  constructor(room: Room, settings: Pick<RoomSettings, 'audit' | 'revoke'>, persistence: RoomPersistence) {
    this.#room = room;
    this.#settings = settings;
    this.#persistence = persistence;
  }

  get locked(): boolean {
    return this.#locked;
  }

  get audioMode(): AudioMode {
    return this.#audioMode;
  }

  get spotlit(): string | null {
    return this.#spotlight;
  }

  isBanned(participantId: string): boolean {
    return this.#banned.has(participantId);
  }

  bans(): string[] {
    return [...this.#banned];
  }

  /** The room-wide decisions of a session taken back after its node died. */
  restore(saved: RoomStateSnapshot): void {
    this.#locked = saved.locked;
    this.#audioMode = saved.audioMode;
    for (const id of saved.bans) this.#banned.add(id);
  }

  /** A spotlight restored with the room's state, if its subject is in the session. */
  restoreSpotlight(participantId: string | null): void {
    const spotlit = participantId === null ? undefined : this.#room.members.get(participantId);
    this.#spotlight = spotlit?.stage === 'admitted' ? spotlit.id : null;
  }

  /** Controlled audio: a participant's microphone stays muted until a facilitator asks them to unmute. */
  heldMuted(member: Member, source: TrackSource): boolean {
    const controlled = this.#audioMode === 'controlled' && member.role === 'participant';
    return source === 'microphone' && controlled && !member.unmuteGranted;
  }

  /** Records an action in the audit log (ids only; fire and forget). */
  record(record: Omit<AuditRecord, 'room'>): void {
    this.#settings.audit({ room: this.#room.id, ...record });
  }

  /**
   * Audits an action (a facilitator's, or a participant's own where the room audits it); `run`
   * performs it. A refusal is audited with its code, then thrown. `details`: ids and numbers only.
   */
  async audited<T>(
    actor: Member,
    action: string,
    target: string | undefined,
    run: () => T | Promise<T>,
    details?: AuditRecord['details'],
  ): Promise<T> {
    const recorded = (result: string) =>
      this.record({ actor: actor.id, action, target, result, ...(details === undefined ? {} : { details }) });
    try {
      const result = await run();
      recorded('ok');
      return result;
    } catch (err) {
      recorded(err instanceof HavenError ? err.code : 'INTERNAL');
      throw err;
    }
  }

  #target(participantId: string, stage?: Stage): Member {
    const member = this.#room.members.get(participantId);
    if (!member || (stage && member.stage !== stage)) {
      throw new HavenError('NOT_FOUND', stage === 'waiting' ? 'nobody waiting with that id' : 'no such participant');
    }
    return member;
  }

  /* ---- The waiting room ---------------------------------------------------------------------- */

  async admit(actor: Member, targetId: string): Promise<void> {
    await this.audited(actor, 'admit', targetId, () => this.#room.waitingRoom.admit(this.#target(targetId, 'waiting')));
  }

  /** Admits everyone waiting, in arrival order, up to the room's capacity; names who is left. */
  admitAll(actor: Member): Promise<AdmitAllResponse> {
    return this.audited(actor, 'admitAll', undefined, () => this.#room.waitingRoom.admitAll());
  }

  async deny(actor: Member, targetId: string, reason?: string): Promise<void> {
    await this.audited(actor, 'deny', targetId, () => this.#room.turnAway(this.#target(targetId, 'waiting'), reason));
  }

  async messageWaitingRoom(actor: Member, text: string): Promise<void> {
    await this.audited(actor, 'messageWaitingRoom', undefined, () => this.#room.waitingRoom.setMessage(text));
  }

  async moveToWaitingRoom(actor: Member, targetId: string): Promise<void> {
    await this.audited(actor, 'moveToWaitingRoom', targetId, () => {
      const target = this.#target(targetId, 'admitted');
      if (target.role !== 'participant') throw new HavenError('FORBIDDEN', 'only participants wait');
      this.#room.moveToWaitingRoom(target);
    });
  }

  /* ---- Media --------------------------------------------------------------------------------- */

  /** Pauses (microphone, camera) or closes (screen) a participant's track, and tells them. */
  async #silence(target: Member, source: TrackSource): Promise<boolean> {
    const track = target.media.trackOf(source);
    if (source === 'microphone' && target.unmuteGranted) {
      target.unmuteGranted = false;
      this.#room.safeEmit('memberChanged', target, 'unmuteGranted');
    }
    if (!track || (source !== 'screen' && track.producer.paused)) return false;
    this.#room.audience.notify(target.id, 'mutedByFacilitator', [{ source, producerId: track.producer.id }]);
    if (source === 'screen') track.producer.close();
    else await target.media.pause(track, true);
    return true;
  }

  #silenceOne(actor: Member, targetId: string, action: string, source: TrackSource): Promise<void> {
    return this.audited(actor, action, targetId, async () => {
      await this.#silence(this.#target(targetId, 'admitted'), source);
    });
  }

  mute(actor: Member, targetId: string): Promise<void> {
    return this.#silenceOne(actor, targetId, 'mute', 'microphone');
  }

  disableCamera(actor: Member, targetId: string): Promise<void> {
    return this.#silenceOne(actor, targetId, 'disableCamera', 'camera');
  }

  stopScreenShare(actor: Member, targetId: string): Promise<void> {
    return this.#silenceOne(actor, targetId, 'stopScreenShare', 'screen');
  }

  /** Mutes everyone but the facilitators. */
  muteAll(actor: Member): Promise<{ muted: number }> {
    return this.audited(actor, 'muteAll', undefined, async () => {
      // All at once: each person is told without waiting for the others' producers to pause.
      const silenced = await Promise.all(
        this.#room.audience
          .admitted()
          .filter((m) => m.role !== 'facilitator')
          .map((m) => this.#silence(m, 'microphone')),
      );
      return { muted: silenced.filter(Boolean).length };
    });
  }

  async setAudioMode(actor: Member, mode: AudioMode): Promise<void> {
    await this.audited(actor, 'setAudioMode', undefined, () => {
      this.#audioMode = mode;
      // The store withdraws every grant with the new mode.
      for (const m of this.#room.members.values()) m.unmuteGranted = false;
      this.#room.safeEmit('changed', { type: 'audioMode', mode });
      this.#room.audience.broadcast('audioModeChanged', [{ mode }]);
    });
  }

  /** Asks a participant to unmute: only they can (consent); in controlled audio mode it allows them to. */
  async requestUnmute(actor: Member, targetId: string): Promise<void> {
    await this.audited(actor, 'requestUnmute', targetId, () => {
      const target = this.#target(targetId, 'admitted');
      target.unmuteGranted = true;
      this.#room.safeEmit('memberChanged', target, 'unmuteGranted');
      this.#room.audience.notify(targetId, 'unmuteRequested', [{ by: actor.id }]);
    });
  }

  /** Suggests receiving audio only (a weak connection): only the person can turn it on. */
  async suggestAudioOnly(actor: Member, targetId: string): Promise<void> {
    await this.audited(actor, 'suggestAudioOnly', targetId, () => {
      this.#target(targetId, 'admitted');
      this.#room.audience.notify(targetId, 'audioOnlySuggested', [{ by: actor.id }]);
    });
  }

  /* ---- Presence ------------------------------------------------------------------------------ */

  /** Removes a participant or observer (its token revoked); with `ban`, for the rest of the session. */
  async remove(actor: Member, targetId: string, ban: boolean): Promise<void> {
    await this.audited(actor, ban ? 'ban' : 'remove', targetId, async () => {
      const target = this.#target(targetId);
      if (target.role === 'facilitator') throw new HavenError('FORBIDDEN', 'a facilitator cannot be removed');
      // The token that brought them in is spent either way; a ban also refuses any new one.
      await this.#settings.revoke(target.identity);
      if (ban) {
        await this.#persistence.ban(targetId);
        this.#banned.add(targetId);
      }
      this.#room.audience.notify(targetId, 'removed', [{ banned: ban }]);
      this.#room.leave(targetId, 'removed');
      this.#room.safeEmit('evict', targetId);
    });
  }

  async lock(actor: Member, locked: boolean): Promise<void> {
    await this.audited(actor, locked ? 'lock' : 'unlock', undefined, async () => {
      await this.#persistence.locked(locked);
      this.#locked = locked;
      this.#room.audience.broadcast('roomLocked', [{ locked }]);
    });
  }

  /** Records that the caller ends the session (signaling ends it through the room manager). */
  authorizeEnd(actor: Member): void {
    this.record({ actor: actor.id, action: 'endSession', result: 'ok' });
  }

  async setDisplayName(actor: Member, targetId: string, name: string): Promise<void> {
    await this.audited(actor, 'setDisplayName', targetId, () => {
      const target = this.#target(targetId);
      target.alias = name;
      this.#room.safeEmit('memberChanged', target, 'alias');
      if (target.stage === 'admitted') {
        this.#room.audience.broadcast('displayNameChanged', [{ participantId: targetId, name }], undefined, target);
      } else if (target.stage === 'waiting') this.#room.waitingRoom.changed();
    });
  }

  async spotlight(actor: Member, targetId: string | null): Promise<void> {
    await this.audited(actor, 'spotlight', targetId ?? undefined, () => {
      if (targetId !== null) this.#target(targetId, 'admitted');
      this.#setSpotlight(targetId);
    });
  }

  /** Someone left the session: a spotlight on them goes out. */
  left(participantId: string): void {
    if (this.#spotlight === participantId) this.#setSpotlight(null);
  }

  #setSpotlight(participantId: string | null): void {
    this.#spotlight = participantId;
    this.#room.safeEmit('changed', { type: 'spotlight', participantId });
    this.#room.audience.broadcast('spotlightChanged', [{ participantId }]);
  }

  /* ---- Hands and chat ------------------------------------------------------------------------ */

  /** Lowers one's own hand, or (a facilitator) anyone's. */
  async lowerHand(actor: Member, targetId: string): Promise<void> {
    const { hands } = this.#room;
    if (targetId === actor.id) return hands.lower(targetId);
    if (actor.role !== 'facilitator') throw new HavenError('FORBIDDEN', 'facilitators only');
    await this.audited(actor, 'lowerHand', targetId, () => {
      if (!hands.has(targetId)) throw new HavenError('NOT_FOUND', 'no raised hand for that participant');
      hands.lower(targetId);
    });
  }

  async deleteChatMessage(actor: Member, messageId: string): Promise<void> {
    await this.audited(actor, 'deleteChatMessage', undefined, () => this.#room.chat.delete(messageId));
  }
}
