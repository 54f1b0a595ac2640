/**
 * `client.moderation`: what a facilitator does to run a session (admit from the waiting room,
 * mute, remove, lock, end, …), one method per moderation request of the protocol, and the
 * waiting room and live attendance as facilitators see them. The server enforces who may do
 * what: anyone but a facilitator is refused with a `HavenRequestError` of code `FORBIDDEN`, and
 * every action is audited there. This module only checks arguments and sends requests.
 */
import type { LiveAttendance } from './attendance.ts';
import type {
  AdmitAllResponse,
  AttendanceSnapshot,
  AudioMode,
  RequestName,
  RequestOf,
  ResponseOf,
  WaitingEntry,
} from './protocol/index.ts';

/** The requests a {@link Moderation} sends: the moderation ones, and `lowerHand` for someone else's hand. */
export type ModerationRequestSender = <K extends RequestName>(name: K, payload: RequestOf<K>) => Promise<ResponseOf<K>>;

/** @internal State behind a {@link Moderation}, kept current by the SessionClient. */
export interface ModerationState {
  /** Who waits, oldest first (empty for anyone but a facilitator). */
  waiting: readonly WaitingEntry[];
  /** The latest live attendance, once asked for or pushed. */
  attendance: LiveAttendance | undefined;
  /** The server said the session has ended (a `sessionEnded` notification came). */
  sessionEnded: boolean;
}

/** @internal Takes a snapshot in (unless a newer one is there) and answers the current view. */
export type AttendanceApplier = (snapshot: AttendanceSnapshot, receivedAt: number) => LiveAttendance;

/** Options of {@link Moderation.remove}. */
export interface RemoveOptions {
  /** Also refuse this person for the rest of the session (the server revokes their token). Default `false`. */
  ban?: boolean;
}

const audioModes: readonly AudioMode[] = ['open', 'controlled'];

function checkId(value: unknown, name = 'participantId'): string {
  if (typeof value !== 'string' || value.length === 0) throw new TypeError(`${name} must be a non-empty string`);
  return value;
}

function checkText(value: unknown, name: string): string {
  if (typeof value !== 'string' || value.trim().length === 0) {
    throw new TypeError(`${name} must be a string with something in it`);
  }
  return value;
}

/**
 * A facilitator's controls. Every method needs the client to be `joined` (else
 * `InvalidStateError`), throws a `TypeError` for a bad argument before sending anything, and
 * rejects with a `HavenRequestError` for what the server refuses (`FORBIDDEN` for anyone but a
 * facilitator, `NOT_FOUND` for someone no longer there, …) or what got no answer (`TIMEOUT`,
 * `DISCONNECTED`). What an action changes comes back as events (`waitingRoomChanged`,
 * `participantLeft`, `roomLocked`, …), for the facilitator who did it as for everyone else.
 */
export class Moderation {
  readonly #send: ModerationRequestSender;
  readonly #state: ModerationState;
  readonly #applyAttendance: AttendanceApplier;

  /** @internal Created by the SessionClient. */
  constructor(send: ModerationRequestSender, state: ModerationState, applyAttendance: AttendanceApplier) {
    this.#send = send;
    this.#state = state;
    this.#applyAttendance = applyAttendance;
  }

  /**
   * Who is in the waiting room, oldest first: kept current for facilitators (from the join answer,
   * then every `waitingRoomChanged`); always empty for others. A new array after each change.
   */
  get waiting(): ReadonlyArray<WaitingEntry> {
    return this.#state.waiting;
  }

  /**
   * The latest live attendance (who is present, since when, minutes so far): undefined until
   * {@link Moderation.liveAttendance} is called; then kept current by the server's pushes (event
   * `attendanceUpdated`), and refreshed after each reconnection. A new object
   * after each change; between changes, `entry.minutesSoFar()` keeps counting.
   */
  get attendance(): LiveAttendance | undefined {
    return this.#state.attendance;
  }

  /**
   * Asks the server who is present now, since when and for how long (billing's figures), and
   * resolves with it; `attendance` and the `attendanceUpdated` event follow it from then on.
   *
   * @throws HavenRequestError `FORBIDDEN` for anyone but a facilitator; `INTERNAL` when the server
   *   cannot read attendance right now (try again).
   */
  async liveAttendance(): Promise<LiveAttendance> {
    const snapshot = await this.#send('liveAttendance', {});
    return this.#applyAttendance(snapshot, Date.now());
  }

  /** Lets someone in from the waiting room. */
  async admit(participantId: string): Promise<void> {
    await this.#send('admit', { participantId: checkId(participantId) });
  }

  /**
   * Lets everyone waiting in, in arrival order, up to the room's capacity. Resolves with who was
   * admitted and who was left waiting (`ROOM_FULL`; they are told the session is full).
   */
  async admitAll(): Promise<AdmitAllResponse> {
    return this.#send('admitAll', {});
  }

  /**
   * Turns someone in the waiting room away (their connection is closed).
   *
   * @param reason - shown to them; default: none.
   */
  async deny(participantId: string, reason?: string): Promise<void> {
    if (reason !== undefined && typeof reason !== 'string') throw new TypeError('reason must be a string');
    const id = checkId(participantId);
    await this.#send('deny', reason === undefined ? { participantId: id } : { participantId: id, reason });
  }

  /** Tells everyone waiting something ("we start in 5 minutes"); it replaces the previous message. */
  async messageWaitingRoom(text: string): Promise<void> {
    await this.#send('messageWaitingRoom', { text: checkText(text, 'text') });
  }

  /** Sends a participant back to the waiting room (their media stops until admitted again). */
  async moveToWaitingRoom(participantId: string): Promise<void> {
    await this.#send('moveToWaitingRoom', { participantId: checkId(participantId) });
  }

  /** Mutes someone's microphone (the server pauses it; only they can unmute). */
  async mute(participantId: string): Promise<void> {
    await this.#send('mute', { participantId: checkId(participantId) });
  }

  /** Mutes every participant's microphone; resolves with how many were muted. */
  async muteAll(): Promise<number> {
    return (await this.#send('muteAll', {})).muted;
  }

  /**
   * `'controlled'`: participants may unmute only after a facilitator asked them to
   * ({@link Moderation.requestUnmute}); `'open'`: as they like.
   *
   * @throws TypeError unless `mode` is `'open'` or `'controlled'`.
   */
  async setAudioMode(mode: AudioMode): Promise<void> {
    if (!audioModes.includes(mode)) throw new TypeError(`mode must be one of ${audioModes.join(', ')}`);
    await this.#send('setAudioMode', { mode });
  }

  /** Asks someone to unmute (they get `unmuteRequested`; the server never unmutes anyone itself). */
  async requestUnmute(participantId: string): Promise<void> {
    await this.#send('requestUnmute', { participantId: checkId(participantId) });
  }

  /** Turns someone's camera off (the server pauses it; only they can turn it on again). */
  async disableCamera(participantId: string): Promise<void> {
    await this.#send('disableCamera', { participantId: checkId(participantId) });
  }

  /** Stops someone's screen sharing (the server closes it). */
  async stopScreenShare(participantId: string): Promise<void> {
    await this.#send('stopScreenShare', { participantId: checkId(participantId) });
  }

  /** Removes someone from the session (their connection is closed); `{ ban: true }` keeps them out. */
  async remove(participantId: string, options: RemoveOptions = {}): Promise<void> {
    if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
    if (options.ban !== undefined && typeof options.ban !== 'boolean')
      throw new TypeError('options.ban must be a boolean');
    await this.#send('remove', { participantId: checkId(participantId), ban: options.ban ?? false });
  }

  /** Locks the room (nobody new gets in, not even into the waiting room) or, with `false`, unlocks it. */
  async lockRoom(locked = true): Promise<void> {
    if (typeof locked !== 'boolean') throw new TypeError('locked must be a boolean');
    await this.#send('lockRoom', { locked });
  }

  /**
   * Ends the session for everyone (each client, this one too, gets `sessionEnded` and closes with
   * reason `sessionEnded`). Resolves once the server has ended it.
   */
  async endSession(): Promise<void> {
    try {
      await this.#send('endSession', {});
    } catch (error) {
      // The server's `sessionEnded` may come before its answer, and this client closes on it: the
      // answer is then lost with the connection, but the session did end.
      if (!this.#state.sessionEnded) throw error;
    }
  }

  /** Gives someone another display name (e.g. an alias they asked for); everyone gets `displayNameChanged`. */
  async setDisplayName(participantId: string, name: string): Promise<void> {
    await this.#send('setDisplayName', { participantId: checkId(participantId), name: checkText(name, 'name') });
  }

  /** Puts someone in the spotlight for everyone, or `null` to end it. */
  async spotlight(participantId: string | null): Promise<void> {
    await this.#send('spotlight', { participantId: participantId === null ? null : checkId(participantId) });
  }

  /** Deletes a chat message for everyone who got it. */
  async deleteChatMessage(messageId: string): Promise<void> {
    await this.#send('deleteChatMessage', { messageId: checkId(messageId, 'messageId') });
  }

  /** Lowers someone's raised hand. */
  async lowerHand(participantId: string): Promise<void> {
    await this.#send('lowerHand', { participantId: checkId(participantId) });
  }
}
