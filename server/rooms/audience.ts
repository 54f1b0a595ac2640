/**
 * Who sees whom in a room, and the one place its notifications leave from. Members see only
 * those in the same place (the main room, or one breakout group). Observers are hidden from
 * participants unless the room shows them; facilitators see everyone in their place; those
 * at the consent gate or in the waiting room see nothing of the session (only what is addressed
 * to them). Only connected members are told; a notification goes out as the room's `notify`.
 */
import type { NotificationName, ServerNotifications } from '../../client-sdk/src/protocol/index.ts';
import type { Member } from './member.ts';
import type { RoomDefinition } from './room-store.ts';

/** A notification for one participant. */
export type Notification = { [K in NotificationName]: { name: K; args: ServerNotifications[K] } }[NotificationName];

export class Audience {
  readonly #members: ReadonlyMap<string, Member>;
  readonly #definition: RoomDefinition;
  readonly #emit: (participantId: string, notification: Notification) => void;

  constructor(
    members: ReadonlyMap<string, Member>,
    definition: RoomDefinition,
    emit: (participantId: string, notification: Notification) => void,
  ) {
    this.#members = members;
    this.#definition = definition;
    this.#emit = emit;
  }

  /**
   * Whether `viewer` sees `subject` in the session: both in the same place (the main room or one
   * breakout group), and observers are hidden from participants unless the room shows them.
   */
  visibleTo(viewer: Member, subject: Member): boolean {
    return this.sameSpace(viewer, subject) && (viewer.role !== 'participant' || this.visibleToAll(subject));
  }

  /** Both in the main room, or both in the same breakout group. */
  sameSpace(a: Member, b: Member): boolean {
    return a.breakout === b.breakout;
  }

  /** Whether every participant may see `subject` (anyone but an observer the room hides). */
  visibleToAll(subject: Member): boolean {
    return !(subject.role === 'observer' && !this.#definition.observersVisible);
  }

  /** Those in the session. */
  admitted(): Member[] {
    return [...this.#members.values()].filter((m) => m.stage === 'admitted');
  }

  /** Tells one participant, connected or not (their channel is where their next connection listens). */
  notify<K extends NotificationName>(participantId: string, name: K, args: ServerNotifications[K]): void {
    this.#emit(participantId, { name, args } as Notification);
  }

  /** Tells `member` if connected. */
  tell<K extends NotificationName>(member: Member, name: K, args: ServerNotifications[K]): void {
    if (member.connected) this.notify(member.id, name, args);
  }

  /** Tells every connected member in the session (but `except`) who may see `subject`. */
  broadcast<K extends NotificationName>(
    name: K,
    args: ServerNotifications[K],
    except?: string,
    subject?: Member,
  ): void {
    for (const member of this.admitted()) {
      if (member.id === except || !member.connected) continue;
      if (subject && !this.visibleTo(member, subject)) continue;
      this.notify(member.id, name, args);
    }
  }

  /** Tells the connected facilitators in the session (and `alsoTell`, if in it and connected). */
  facilitators<K extends NotificationName>(name: K, args: ServerNotifications[K], alsoTell?: string): void {
    for (const m of this.admitted()) {
      if (m.connected && (m.id === alsoTell || m.role === 'facilitator')) this.notify(m.id, name, args);
    }
  }

  /** Tells everyone connected in the waiting room. */
  waiting<K extends NotificationName>(name: K, args: ServerNotifications[K]): void {
    for (const m of this.#members.values()) if (m.stage === 'waiting' && m.connected) this.notify(m.id, name, args);
  }

  /** Tells those who may see `member` of its media's changes, and `member` of what concerns it. */
  follow(member: Member): void {
    const { media, id } = member;
    media.on('startedMuted', (producerId) => {
      this.notify(id, 'mutedByFacilitator', [{ source: 'microphone', producerId }]);
    });
    media.on('published', (track) => this.broadcast('trackPublished', [media.trackInfo(track)], id, member));
    media.on('updated', (track) => this.broadcast('trackUpdated', [media.trackInfo(track)], id, member));
    media.on('unpublished', (track) => {
      this.broadcast('trackUnpublished', [{ producerId: track.producer.id, participantId: id }], id, member);
    });
    media.on('consumerClosed', (consumerId) => this.notify(id, 'consumerClosed', [{ consumerId }]));
    media.on('consumerPaused', (consumerId, reason) => this.tell(member, 'consumerPaused', [{ consumerId, reason }]));
    media.on('audioOnlyChanged', (state) => this.tell(member, 'audioOnlyChanged', [state]));
    media.on('publisherLayers', (producerId, maxSpatialLayer) =>
      this.tell(member, 'publisherLayers', [{ producerId, maxSpatialLayer }]),
    );
  }

  /** Tells everyone connected, whatever their stage. */
  everyone<K extends NotificationName>(name: K, args: ServerNotifications[K]): void {
    for (const m of this.#members.values()) if (m.connected) this.notify(m.id, name, args);
  }
}
