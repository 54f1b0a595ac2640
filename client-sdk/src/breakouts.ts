/**
 * Breakout rooms in the SDK: where this client stands (`client.breakout`, for everyone) and the
 * whole of the session's breakouts as facilitators see them (`client.moderation.breakouts`),
 * kept from the join answer and the breakout notifications, each change emitted. The media
 * follows from the participant notifications the server sends around each move (those left
 * behind leave the view, those of the new place join it): nothing here touches tracks.
 */
import { InvalidStateError } from './errors.ts';
import type { NotificationHandlers } from './notification-router.ts';
import {
  type BreakoutBroadcast,
  type BreakoutNotifications,
  type BreakoutPlace,
  type BreakoutRequests,
  type BreakoutsState,
  type CreateBreakoutsRequest,
  maxBreakoutDurationS,
  maxBreakoutGroupSize,
  maxBreakoutGroups,
  maxBreakoutNameLength,
  maxBroadcastLength,
  type PlannedGroup,
  type RequestOf,
  type ResponseOf,
  type SealedBroadcast,
  type SessionState,
  type StartBreakoutsRequest,
} from './protocol/index.ts';
import type { ReceivedBroadcast, SessionEvents } from './session-events.ts';

/** What broadcasts need of an E2EE room's key exchange: a copy sealed per place, and opening one. */
export interface BroadcastKeys {
  readonly enabled: boolean;
  sealBroadcast(text: string, places: (string | null)[]): Promise<SealedBroadcast[]>;
  openBroadcast(broadcast: BreakoutBroadcast): Promise<ReceivedBroadcast>;
}

/** Sends one breakout request (the client checks it is in the room). */
export type BreakoutRequestSender = <K extends keyof BreakoutRequests>(
  name: K,
  payload: RequestOf<K>,
) => Promise<ResponseOf<K>>;

/** Where someone stands outside any round (and before the first admission). */
const idle: Readonly<BreakoutPlace> = Object.freeze({ running: false, group: null, endsAt: null });

function frozenPlace(place: BreakoutPlace): Readonly<BreakoutPlace> {
  return Object.freeze({ ...place, group: place.group ? Object.freeze({ ...place.group }) : null });
}

function samePlace(a: BreakoutPlace, b: BreakoutPlace): boolean {
  return a.running === b.running && a.endsAt === b.endsAt && a.group?.id === b.group?.id;
}

/**
 * @internal This client's place in the breakouts and, for a facilitator, the whole of them (the
 * state behind `client.breakout` and {@link Breakouts}).
 */
export class BreakoutsView {
  readonly #events: SessionEvents;
  readonly keys: BroadcastKeys | undefined;
  #place: Readonly<BreakoutPlace> = idle;
  #state: Readonly<BreakoutsState> | null = null;
  /** The last broadcast being decrypted: each is emitted after those that came before it. */
  #opening: Promise<void> = Promise.resolve();

  constructor(events: SessionEvents, keys?: BroadcastKeys) {
    this.#events = events;
    this.keys = keys;
  }

  get place(): Readonly<BreakoutPlace> {
    return this.#place;
  }

  get state(): Readonly<BreakoutsState> | null {
    return this.#state;
  }

  /**
   * What an admission says (a reload or a rejoin lands in one's group): `movedToBreakout` when
   * the place differs from what the client knew (a move missed while the connection was down).
   */
  applySession(session: SessionState): void {
    this.#state = session.breakouts ? Object.freeze({ ...session.breakouts }) : null;
    if (!samePlace(this.#place, session.breakout)) this.#move(session.breakout);
  }

  /** Out of the room: no place, no view of the breakouts (the server took this client out of them). */
  leave(): void {
    this.#place = idle;
    this.#state = null;
  }

  handlers(): NotificationHandlers<keyof BreakoutNotifications> {
    const events = this.#events;
    return {
      breakoutsChanged: ({ state, change, participantId }) => {
        this.#state = Object.freeze({ ...state });
        events.safeEmit('breakoutsChanged', this.#state, change, participantId);
      },
      breakoutHelpRequested: (request) => events.safeEmit('breakoutHelpRequested', { ...request }),
      // Everyone is in the main room at the start; each person's own move follows.
      breakoutStarted: ({ endsAt }) => {
        this.#place = frozenPlace({ running: true, group: this.#place.group, endsAt });
        events.safeEmit('breakoutStarted', endsAt);
      },
      movedToBreakout: (place) => this.#move(place),
      breakoutEnding: ({ endsAt, secondsLeft }) => {
        if (this.#place.running) this.#place = frozenPlace({ ...this.#place, endsAt });
        events.safeEmit('breakoutEnding', endsAt, secondsLeft);
      },
      // Those who were in a group were moved back first (`movedToBreakout`).
      breakoutEnded: () => {
        this.#place = idle;
        events.safeEmit('breakoutEnded');
      },
      broadcastReceived: (broadcast) => this.#receiveBroadcast(broadcast),
    };
  }

  /** As it is, or (E2EE) decrypted: opened at once, emitted in turn. */
  #receiveBroadcast(broadcast: BreakoutBroadcast): void {
    if (!this.keys?.enabled) {
      this.#events.safeEmit('broadcastReceived', { ...broadcast });
      return;
    }
    const opened = this.keys
      .openBroadcast({ ...broadcast })
      .catch((): ReceivedBroadcast => ({ ...broadcast, text: '', undecryptable: true }));
    this.#opening = this.#opening.then(async () => {
      this.#events.safeEmit('broadcastReceived', await opened);
    });
  }

  #move(place: BreakoutPlace): void {
    this.#place = place.running || place.group ? frozenPlace(place) : idle;
    this.#events.safeEmit('movedToBreakout', this.#place);
  }
}

/** Options of {@link Breakouts.start}. */
export interface StartBreakoutsOptions {
  /** A timed round: everyone returns to the main room after this many seconds (10 to 14,400). Default: none. */
  durationS?: number;
  /** With `durationS`: seconds before the end that everyone gets `breakoutEnding`. Default 60, or half a round of 2 minutes or less. */
  noticeS?: number;
}

function checkInteger(value: unknown, name: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max)
    throw new TypeError(`${name} must be an integer from ${min} to ${max}`);
  return value;
}

function checkId(value: unknown, name: string): string {
  if (typeof value !== 'string' || value.length === 0) throw new TypeError(`${name} must be a non-empty string`);
  return value;
}

function checkGroups(groups: unknown): PlannedGroup[] {
  if (!Array.isArray(groups) || groups.length === 0 || groups.length > maxBreakoutGroups)
    throw new TypeError(`groups must be an array of 1 to ${maxBreakoutGroups} groups`);
  return groups.map((group: Partial<PlannedGroup>, i) => {
    const name = typeof group?.name === 'string' ? group.name.trim() : '';
    if (name.length === 0 || name.length > maxBreakoutNameLength)
      throw new TypeError(`groups[${i}].name must be 1 to ${maxBreakoutNameLength} characters`);
    if (!Array.isArray(group.members)) throw new TypeError(`groups[${i}].members must be an array of ids`);
    return { name, members: group.members.map((id, j) => checkId(id, `groups[${i}].members[${j}]`)) };
  });
}

function checkPlan(plan: unknown): CreateBreakoutsRequest {
  if (typeof plan !== 'object' || plan === null || Object.keys(plan).length !== 1)
    throw new TypeError('plan must be one of { groups }, { count } or { perGroup }');
  if ('groups' in plan) return { groups: checkGroups(plan.groups) };
  if ('count' in plan) return { count: checkInteger(plan.count, 'count', 1, maxBreakoutGroups) };
  if ('perGroup' in plan) return { perGroup: checkInteger(plan.perGroup, 'perGroup', 1, maxBreakoutGroupSize) };
  throw new TypeError('plan must be one of { groups }, { count } or { perGroup }');
}

function checkStart(options: unknown): StartBreakoutsRequest {
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
  const { durationS, noticeS } = options as StartBreakoutsOptions;
  const request: StartBreakoutsRequest = {};
  if (durationS !== undefined) request.durationS = checkInteger(durationS, 'durationS', 10, maxBreakoutDurationS);
  if (noticeS !== undefined) request.noticeS = checkInteger(noticeS, 'noticeS', 0, maxBreakoutDurationS);
  return request;
}

/**
 * A facilitator's breakout rooms (`client.moderation.breakouts`). Every method needs the client
 * `joined` (else `InvalidStateError`), throws a `TypeError` for a bad argument before sending
 * anything, and rejects with a `HavenRequestError`: `FORBIDDEN` for anyone but a facilitator,
 * `INVALID_STATE` when no round is planned or running (or one runs, for `create`), `NOT_FOUND`
 * for an unknown group or person. What a call changes comes back as `breakoutsChanged` (so
 * `state` is current once it resolves) and, for those moved, as `movedToBreakout`.
 */
export class Breakouts {
  readonly #send: BreakoutRequestSender;
  readonly #view: BreakoutsView;

  /** @internal Created by the SessionClient. */
  constructor(send: BreakoutRequestSender, view: BreakoutsView) {
    this.#send = send;
    this.#view = view;
  }

  /**
   * The session's breakouts as facilitators see them (status, groups and who is in each, the main
   * room, the timer, open help requests), from the join answer and every `breakoutsChanged`;
   * null for anyone but a facilitator, and before joining. A new object after each change.
   */
  get state(): Readonly<BreakoutsState> | null {
    return this.#view.state;
  }

  /**
   * Plans a round, replacing a plan not started yet: `{ groups: [{ name, members }] }` by hand,
   * `{ count }` groups or `{ perGroup }` people each (the participants in the main room, shuffled;
   * observers only by hand, facilitators never: they visit).
   * @throws HavenRequestError `INVALID_STATE` while a round runs; `NOT_FOUND` for someone not in
   *   the session; `INVALID_REQUEST` for a facilitator or someone in two groups.
   */
  create(plan: CreateBreakoutsRequest): Promise<BreakoutsState> {
    return this.#send('createBreakouts', checkPlan(plan));
  }

  /** Changes the planned groups (ids kept by position). `INVALID_STATE` without a plan or once started. */
  update(groups: PlannedGroup[]): Promise<BreakoutsState> {
    return this.#send('updateBreakouts', { groups: checkGroups(groups) });
  }

  /**
   * Starts the planned round: everyone planned goes to their group at once (`breakoutStarted`,
   * then each one's `movedToBreakout`); facilitators stay in the main room.
   * @throws HavenRequestError `INVALID_STATE` without a plan; `INVALID_REQUEST` for `noticeS`
   *   without `durationS` or not shorter than it.
   */
  start(options: StartBreakoutsOptions = {}): Promise<BreakoutsState> {
    return this.#send('startBreakouts', checkStart(options));
  }

  /**
   * Moves a participant or observer to group `breakoutId`, or (`null`) back to the main room.
   * @throws HavenRequestError `FORBIDDEN` for a facilitator (they `visit`); `NOT_FOUND`;
   *   `INVALID_STATE` when no round runs.
   */
  async move(participantId: string, breakoutId: string | null): Promise<void> {
    const id = checkId(participantId, 'participantId');
    await this.#send('moveToBreakout', { participantId: id, breakoutId: orMain(breakoutId) });
  }

  /** Goes to group `breakoutId` (answering its help request), or (`null`) back to the main room. */
  async visit(breakoutId: string | null): Promise<void> {
    await this.#send('visitBreakout', { breakoutId: orMain(breakoutId) });
  }

  /**
   * Sends `text` to everyone in the session, every group and the main room (`broadcastReceived`);
   * resolves with when the server sent it. In an E2EE room the SDK seals a copy for each place
   * with that place's key (nobody else can read it, the server included).
   * @throws HavenRequestError `INVALID_STATE` when no round runs, or (E2EE) when a place someone
   *   is in has no key yet (a group just formed: try again).
   * @throws InvalidStateError (E2EE) before encryption is active.
   */
  async broadcast(text: string): Promise<number> {
    const trimmed = typeof text === 'string' ? text.trim() : '';
    if (trimmed.length === 0 || trimmed.length > maxBroadcastLength)
      throw new TypeError(`text must be 1 to ${maxBroadcastLength} characters`);
    const keys = this.#view.keys;
    if (!keys?.enabled) return (await this.#send('broadcastToBreakouts', { text: trimmed })).sentAt;
    const places = [null, ...(this.#view.state?.groups.map((g) => g.id) ?? [])];
    const texts = await keys.sealBroadcast(trimmed, places);
    if (texts.length === 0) throw new InvalidStateError('broadcast(): end-to-end encryption is not active yet');
    return (await this.#send('broadcastToBreakouts', { texts })).sentAt;
  }

  /** Everyone back to the main room now (`breakoutEnded`); a plan not started is discarded. */
  async recall(): Promise<void> {
    await this.#send('recallBreakouts', {});
  }
}

function orMain(breakoutId: unknown): string | null {
  return breakoutId === null ? null : checkId(breakoutId, 'breakoutId');
}
