/**
 * The rooms open on this node: opens a room when its first participant arrives (from its stored
 * definition, or — if `autoCreate` — a new group room for a facilitator; restoring the session's
 * facilitation state if another node was running it), forgets it when it closes, and ends
 * sessions on request.
 */
import { TypedEmitter } from '../../client-sdk/src/protocol/typed-emitter.ts';
import type { VerifiedIdentity } from '../auth/tokens.ts';
import { HavenError } from '../errors.ts';
import { Room } from './room.ts';
import type { RoomSettings } from './room-settings.ts';
import type { RoomDefinition, RoomStore } from './room-store.ts';

export type RoomManagerEvents = {
  /** `resumed`: the room goes on from state another node (or an earlier run) left: a failover. */
  roomOpened: [room: Room, resumed: boolean];
};

export class RoomManager extends TypedEmitter<RoomManagerEvents> {
  readonly #store: RoomStore;
  readonly #settings: RoomSettings;
  readonly #autoCreate: boolean;
  readonly #rooms = new Map<string, Room>();
  /** Rooms being opened, so that simultaneous first joins open one room, not two. */
  readonly #opening = new Map<string, Promise<Room>>();

  constructor(store: RoomStore, settings: RoomSettings, autoCreate: boolean) {
    super();
    this.#store = store;
    this.#settings = settings;
    this.#autoCreate = autoCreate;
  }

  get(roomId: string): Room | undefined {
    return this.#rooms.get(roomId);
  }

  get rooms(): readonly Room[] {
    return [...this.#rooms.values()];
  }

  /** The live room `identity` is joining, opened if need be. */
  async roomFor(identity: VerifiedIdentity): Promise<Room> {
    const open = this.#rooms.get(identity.roomId);
    if (open) return open;
    let opening = this.#opening.get(identity.roomId);
    if (!opening) {
      opening = this.#open(identity).finally(() => this.#opening.delete(identity.roomId));
      this.#opening.set(identity.roomId, opening);
    }
    return opening;
  }

  async #open(identity: VerifiedIdentity): Promise<Room> {
    const definition = (await this.#store.get(identity.roomId)) ?? (await this.#autoCreateFor(identity));
    if (definition.endedAt) throw new HavenError('INVALID_STATE', 'the session has ended');
    // State stored for this room: its session was running on a node that died (or stopped); it goes on here.
    const saved = await this.#settings.roomState?.store.load(definition.id);
    const room = await Room.open(definition, this.#settings, saved);
    this.#rooms.set(room.id, room);
    room.once('closed', () => this.#rooms.delete(room.id));
    this.safeEmit('roomOpened', room, saved !== undefined);
    return room;
  }

  /** A facilitator opening a room nobody created: a group room, if `autoCreate` allows it. */
  async #autoCreateFor(identity: VerifiedIdentity): Promise<RoomDefinition> {
    if (!this.#autoCreate || identity.role !== 'facilitator') throw new HavenError('NOT_FOUND', 'no such room');
    try {
      return await this.#store.create({
        id: identity.roomId,
        kind: 'group',
        title: 'Group session',
        origin: 'facilitator',
      });
    } catch (err) {
      // Another node created it in the meantime.
      const created = await this.#store.get(identity.roomId);
      if (!created) throw err;
      return created;
    }
  }

  /** Ends a session: stored as ended (no one joins it again), and closed here if open. */
  async end(roomId: string, reason: string): Promise<boolean> {
    const definition = await this.#store.markEnded(roomId);
    if (!definition) return false;
    this.#rooms.get(roomId)?.end(reason);
    return true;
  }

  closeAll(): void {
    for (const room of this.#rooms.values()) room.close();
  }
}
