/**
 * `client.moderation`: what a facilitator does to run a session (admit from the waiting room,
 * mute, remove, lock, end, …), one method per moderation request of the protocol, and the
 * waiting room and live attendance as facilitators see them. The server enforces who may do
 * what: anyone but a facilitator is refused with a `HavenRequestError` of code `FORBIDDEN`, and
 * every action is audited there. This module only checks arguments and sends requests.
 */
import { LiveAttendance } from './attendance.ts';
import { Breakouts, type BreakoutsView } from './breakouts.ts';
import type { NotificationHandlers } from './notification-router.ts';
import type {
  AdmitAllResponse,
  AttendanceSnapshot,
  AudioMode,
  RequestName,
  RequestOf,
  ResponseOf,
  SessionState,
  WaitingEntry,
} from './protocol/index.ts';
import type { SessionEvents } from './session-events.ts';

/** The requests a {@link Moderation} sends: the moderation ones, and `lowerHand` for someone else's hand. */
export type ModerationRequestSender = <K extends RequestName>(name: K, payload: RequestOf<K>) => Promise<ResponseOf<K>>;

/**
 * @internal The waiting room and live attendance as a facilitator sees them (the state behind a
 * {@link Moderation}), kept current from the join answer and the room's notifications.
 */
export class ModerationState {
  readonly #events: SessionEvents;
  #waiting: readonly WaitingEntry[] = Object.freeze([]);
  #attendance: LiveAttendance | undefined;
  #sessionEnded = false;

  constructor(events: SessionEvents) {
    this.#events = events;
  }

  /** Who waits, oldest first (empty for anyone but a facilitator). */
  get waiting(): readonly WaitingEntry[] {
    return this.#waiting;
  }

  /** The latest live attendance, once asked for or pushed. */
  get attendance(): LiveAttendance | undefined {
    return this.#attendance;
  }

  /** The server said the session has ended (a `sessionEnded` notification came). */
  get sessionEnded(): boolean {
    return this.#sessionEnded;
  }

  markSessionEnded(): void {
    this.#sessionEnded = true;
  }

  /** Who waits, as an admission says. */
  applySession(session: SessionState): void {
    this.#waiting = Object.freeze(session.waiting.map((entry) => ({ ...entry })));
  }

  /** Out of the room: the waiting room is out of view. */
  leave(): void {
    this.#waiting = Object.freeze([]);
  }

  /** Keeps the newest view (a push and an answer may cross); emits `attendanceUpdated` for a new one. */
  applyAttendance(snapshot: AttendanceSnapshot, receivedAt: number): LiveAttendance {
    const current = this.#attendance;
    if (current && snapshot.asOf < current.asOf) return current;
    const next = new LiveAttendance(snapshot, receivedAt, current);
    this.#attendance = next;
    this.#events.safeEmit('attendanceUpdated', next);
    return next;
  }

  /**
   * Back in the room with a live attendance view in use: changes pushed while the connection was
   * down were lost, so ask again (a failure leaves the view as it was; the next push updates it).
   */
  refreshAttendance(ask: () => Promise<AttendanceSnapshot>, stillCurrent: () => boolean): void {
    if (!this.#attendance) return;
    ask().then(
      (snapshot) => {
        if (stillCurrent()) this.applyAttendance(snapshot, Date.now());
      },
      () => {},
    );
  }

  /** The handlers of the notifications it applies. */
  handlers(): NotificationHandlers<'waitingRoomChanged' | 'attendanceUpdated'> {
    return {
      waitingRoomChanged: ({ waiting }) => {
        this.#waiting = Object.freeze(waiting.map((entry) => ({ ...entry })));
        this.#events.safeEmit('waitingRoomChanged', this.#waiting);
      },
      attendanceUpdated: (snapshot) => this.applyAttendance(snapshot, Date.now()),
    };
  }
}

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

  /** Breakout rooms: plan, start, visit, move, broadcast, recall; see {@link Breakouts}. */
  readonly breakouts: Breakouts;

  /** @internal Created by the SessionClient. */
  constructor(send: ModerationRequestSender, state: ModerationState, breakouts: BreakoutsView) {
    this.#send = send;
    this.#state = state;
    this.breakouts = new Breakouts(send, breakouts);
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
    return this.#state.applyAttendance(snapshot, Date.now());
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

  /**
   * Suggests to someone that they receive audio only (e.g. their video stalls): they get
   * `audioOnlySuggested`; only they can turn it on. Audited like every moderation action.
   */
  async suggestAudioOnly(participantId: string): Promise<void> {
    await this.#send('suggestAudioOnly', { participantId: checkId(participantId) });
  }

  /** Lowers someone's raised hand. */
  async lowerHand(participantId: string): Promise<void> {
    await this.#send('lowerHand', { participantId: checkId(participantId) });
  }
}
