/**
 * A session's breakout rounds: the plan (groups by hand, or N groups, or K people each, shuffled),
 * changed until it starts; the running round (everyone planned moved to their group at once, a
 * facilitator visiting or moving people, help requests, a broadcast to every group, an optional
 * timer with a notice before its end); and the recall, when everyone returns to the main room.
 * Facilitators are told every change (`breakoutsChanged`); every action is audited, ids only. The
 * moves themselves are `BreakoutPlacement`'s. The state is written through like the rest of the
 * room's (`StoredBreakouts`) and taken back by a node restoring the session, timers included.
 */
import { randomInt } from 'node:crypto';
import type {
  BreakoutGroup,
  BreakoutHelpRequest,
  BreakoutMember,
  BreakoutPlace,
  BreakoutsChange,
  BreakoutsState,
  BroadcastRequest,
  CreateBreakoutsRequest,
  PlannedGroup,
  StartBreakoutsRequest,
} from '../../client-sdk/src/protocol/index.ts';
import { defaultBreakoutNoticeS, e2eeChatPattern, maxBreakoutGroups } from '../../client-sdk/src/protocol/index.ts';
import { HavenError } from '../errors.ts';
import { BreakoutPlacement } from './breakout-placement.ts';
import { spaceOf } from './e2ee-space.ts';
import type { Member } from './member.ts';
import type { Room } from './room.ts';
import type { StoredBreakouts } from './room-state.ts';

interface Group {
  id: string;
  name: string;
  /** Who goes there when the round starts (while running, members' `breakout` says who is). */
  planned: string[];
}

/** What the timer's own recall is audited as. */
const timerActor = 'timer';

export class Breakouts {
  readonly #room: Room;
  readonly #placement: BreakoutPlacement;
  #status: 'none' | 'planned' | 'running' = 'none';
  #groups: Group[] = [];
  #startedAt: number | null = null;
  #endsAt: number | null = null;
  #noticeS = defaultBreakoutNoticeS;
  #noticed = false;
  /** Open help requests, one per group, in the order asked. */
  readonly #help = new Map<string, BreakoutHelpRequest>();
  #nextId = 1;
  #noticeTimer: NodeJS.Timeout | undefined;
  #endTimer: NodeJS.Timeout | undefined;

  constructor(room: Room) {
    this.#room = room;
    this.#placement = new BreakoutPlacement(room);
  }

  get running(): boolean {
    return this.#status === 'running';
  }

  /** Where `member` stands (their session state). */
  placeOf(member: Member): BreakoutPlace {
    return this.#placeIn(this.#groups.find((g) => g.id === member.breakout));
  }

  #placeIn(group: Group | undefined): BreakoutPlace {
    if (!this.running) return { running: false, group: null, endsAt: null };
    return { running: true, group: group ? { id: group.id, name: group.name } : null, endsAt: this.#endsAt };
  }

  /** The whole of it, as facilitators see it. */
  state(): BreakoutsState {
    const admitted = this.#room.audience.admitted();
    const listed = (ids: Iterable<string>) =>
      [...ids].flatMap((id) => {
        const m = this.#room.members.get(id);
        return m?.admitted ? [memberOf(m)] : [];
      });
    const groups: BreakoutGroup[] = this.#groups.map((g) => ({
      id: g.id,
      name: g.name,
      members: this.running ? admitted.filter((m) => m.breakout === g.id).map(memberOf) : listed(g.planned),
    }));
    return {
      status: this.#status,
      groups,
      main: this.running ? admitted.filter((m) => m.breakout === undefined).map(memberOf) : [],
      startedAt: this.#startedAt,
      endsAt: this.#endsAt,
      noticeS: this.#noticeS,
      help: [...this.#help.values()],
    };
  }

  /* ---- The plan ------------------------------------------------------------------------------- */

  /** A new plan, replacing one not started yet. */
  create(actor: Member, request: CreateBreakoutsRequest): Promise<BreakoutsState> {
    const details = 'groups' in request ? { by: 'hand' } : 'count' in request ? { by: 'count' } : { by: 'size' };
    return this.#room.moderation.audited(
      actor,
      'createBreakouts',
      undefined,
      () => {
        this.#requireNotRunning();
        const planned = 'groups' in request ? this.#byHand(request.groups) : this.#shuffled(request);
        // Ids are never reused in a session: an attendance move or an audit entry names one group.
        this.#groups = planned.map((g) => ({ id: `b${this.#nextId++}`, name: g.name, planned: g.members }));
        this.#status = 'planned';
        return this.#changed('planned');
      },
      details,
    );
  }

  /** The plan's groups again, by hand (the ids kept by position, new ones numbered on). */
  update(actor: Member, groups: PlannedGroup[]): Promise<BreakoutsState> {
    return this.#room.moderation.audited(actor, 'updateBreakouts', undefined, () => {
      this.#requireNotRunning();
      if (this.#status !== 'planned') throw new HavenError('INVALID_STATE', 'no breakouts are planned');
      const planned = this.#byHand(groups);
      this.#groups = planned.map((g, i) => ({
        id: this.#groups[i]?.id ?? `b${this.#nextId++}`,
        name: g.name,
        planned: g.members,
      }));
      return this.#changed('planned');
    });
  }

  #requireNotRunning(): void {
    if (this.running) throw new HavenError('INVALID_STATE', 'breakouts are running: recall them first');
  }

  /** Groups by hand: each member admitted, a participant or observer, in one group at most. */
  #byHand(groups: PlannedGroup[]): PlannedGroup[] {
    const seen = new Set<string>();
    for (const group of groups) {
      for (const id of group.members) {
        const m = this.#room.members.get(id);
        if (!m?.admitted) throw new HavenError('NOT_FOUND', `no such participant in the session: ${id}`);
        if (m.role === 'facilitator')
          throw new HavenError('INVALID_REQUEST', 'facilitators visit groups (visitBreakout)');
        if (seen.has(id)) throw new HavenError('INVALID_REQUEST', `in two groups: ${id}`);
        seen.add(id);
      }
    }
    return groups.map((g) => ({ name: g.name, members: [...g.members] }));
  }

  /** The session's participants, shuffled into `count` groups or groups of `perGroup`. */
  #shuffled(request: { count: number } | { perGroup: number }): PlannedGroup[] {
    const people = this.#room.audience
      .admitted()
      .filter((m) => m.role === 'participant')
      .map((m) => m.id);
    for (let i = people.length - 1; i > 0; i--) {
      const j = randomInt(i + 1);
      [people[i], people[j]] = [people[j] as string, people[i] as string];
    }
    const count = 'count' in request ? request.count : Math.max(1, Math.ceil(people.length / request.perGroup));
    if (count > maxBreakoutGroups) throw new HavenError('INVALID_REQUEST', `at most ${maxBreakoutGroups} groups`);
    return Array.from({ length: count }, (_, i) => ({
      name: `Group ${i + 1}`,
      members: people.filter((_, j) => j % count === i),
    }));
  }

  /* ---- The round ------------------------------------------------------------------------------ */

  /** Everyone planned (still in the session) goes to their group now. */
  start(actor: Member, request: StartBreakoutsRequest): Promise<BreakoutsState> {
    return this.#room.moderation.audited(actor, 'startBreakouts', undefined, () => {
      this.#requireNotRunning();
      if (this.#status !== 'planned') throw new HavenError('INVALID_STATE', 'no breakouts are planned');
      const { durationS, noticeS = defaultNoticeS(durationS) } = request;
      if (durationS === undefined && request.noticeS !== undefined) {
        throw new HavenError('INVALID_REQUEST', 'noticeS: only with durationS');
      }
      if (durationS !== undefined && noticeS >= durationS) {
        throw new HavenError('INVALID_REQUEST', 'noticeS: must be shorter than durationS');
      }
      const now = Date.now();
      this.#status = 'running';
      this.#startedAt = now;
      this.#endsAt = durationS === undefined ? null : now + durationS * 1_000;
      this.#noticeS = noticeS;
      this.#noticed = false;
      this.#room.audience.broadcast('breakoutStarted', [{ endsAt: this.#endsAt }]);
      for (const group of this.#groups) {
        for (const id of group.planned) {
          const m = this.#room.members.get(id);
          if (m?.admitted) this.#placement.move(m, group.id, this.#placeIn(group));
        }
      }
      this.#armTimers();
      return this.#changed('started');
    });
  }

  /** A participant or observer to another group, or (null) back to the main room. */
  move(actor: Member, targetId: string, breakoutId: string | null): Promise<{ breakoutId: string | null }> {
    return this.#room.moderation.audited(
      actor,
      'moveToBreakout',
      targetId,
      () => {
        const group = this.#runningGroup(breakoutId);
        const target = this.#room.members.get(targetId);
        if (!target?.admitted) throw new HavenError('NOT_FOUND', 'no such participant');
        if (target.role === 'facilitator') {
          throw new HavenError('FORBIDDEN', 'facilitators choose their group themselves (visitBreakout)');
        }
        this.#moveTo(target, group);
        return { breakoutId };
      },
      { breakout: breakoutId ?? 'main' },
    );
  }

  /** The calling facilitator goes to a group (answering its help request), or back to the main room. */
  visit(actor: Member, breakoutId: string | null): Promise<{ breakoutId: string | null }> {
    return this.#room.moderation.audited(
      actor,
      'visitBreakout',
      undefined,
      () => {
        const group = this.#runningGroup(breakoutId);
        if (group) this.#help.delete(group.id);
        this.#moveTo(actor, group);
        return { breakoutId };
      },
      { breakout: breakoutId ?? 'main' },
    );
  }

  #runningGroup(breakoutId: string | null): Group | undefined {
    if (!this.running) throw new HavenError('INVALID_STATE', 'no breakouts are running');
    if (breakoutId === null) return undefined;
    const group = this.#groups.find((g) => g.id === breakoutId);
    if (!group) throw new HavenError('NOT_FOUND', 'no such breakout group');
    return group;
  }

  #moveTo(member: Member, group: Group | undefined): void {
    if (this.#placement.move(member, group?.id, this.#placeIn(group))) this.#changed('moved', member.id);
  }

  /**
   * A message to everyone in the session, every group and the main room. In an E2EE room the
   * facilitator's client sealed a copy per place, and each place gets its own copy only.
   */
  broadcast(actor: Member, request: BroadcastRequest): Promise<{ sentAt: number }> {
    return this.#room.moderation.audited(actor, 'broadcastToBreakouts', undefined, () => {
      if (!this.running) throw new HavenError('INVALID_STATE', 'no breakouts are running: use the chat');
      const copies = this.#copies(request);
      const sentAt = Date.now();
      for (const member of this.#room.audience.admitted()) {
        const breakoutId = spaceOf(member);
        const text = typeof copies === 'string' ? copies : (copies.get(breakoutId) as string);
        this.#room.audience.tell(member, 'broadcastReceived', [
          { from: actor.id, name: actor.name, text, sentAt, breakoutId },
        ]);
      }
      return { sentAt };
    });
  }

  /** The clear text, or in an E2EE room each place's sealed copy (one for every place someone is in). */
  #copies(request: BroadcastRequest): string | Map<string | null, string> {
    const e2ee = this.#room.e2ee.enabled;
    if (!('texts' in request)) {
      if (e2ee) throw new HavenError('INVALID_STATE', 'this room is end-to-end encrypted: send texts, one per place');
      return request.text;
    }
    if (!e2ee) throw new HavenError('INVALID_REQUEST', 'texts: only in an end-to-end encrypted room (send text)');
    const copies = new Map<string | null, string>();
    for (const { breakoutId, text } of request.texts) {
      if (breakoutId !== null && !this.#groups.some((g) => g.id === breakoutId))
        throw new HavenError('NOT_FOUND', `no breakout group ${breakoutId}`);
      if (copies.has(breakoutId))
        throw new HavenError('INVALID_REQUEST', `texts: two for ${breakoutId ?? 'the main room'}`);
      if (!e2eeChatPattern.test(text)) throw new HavenError('INVALID_REQUEST', 'texts: each must be encrypted');
      copies.set(breakoutId, text);
    }
    for (const member of this.#room.audience.admitted()) {
      const place = spaceOf(member);
      if (!copies.has(place))
        throw new HavenError('INVALID_STATE', `texts: none for ${place ?? 'the main room'}, where someone is`);
    }
    return copies;
  }

  /** Someone in a group asks for help: facilitators are told which group (one open request per group). */
  askForHelp(member: Member): Promise<void> {
    const breakoutId = member.breakout;
    return this.#room.moderation.audited(
      member,
      'askForHelp',
      undefined,
      () => {
        if (!this.running || breakoutId === undefined) throw new HavenError('INVALID_STATE', 'not in a breakout group');
        if (this.#help.has(breakoutId)) return;
        const request = { breakoutId, participantId: member.id, at: Date.now() };
        this.#help.set(breakoutId, request);
        this.#room.audience.facilitators('breakoutHelpRequested', [request]);
        this.#changed('help', member.id);
      },
      { breakout: breakoutId ?? 'main' },
    );
  }

  /** Everyone back to the main room now; a plan not started is discarded. */
  recall(actor: Member): Promise<void> {
    return this.#room.moderation.audited(actor, 'recallBreakouts', undefined, () => {
      if (this.#status === 'none') throw new HavenError('INVALID_STATE', 'no breakouts are planned or running');
      this.#end();
    });
  }

  #end(): void {
    const wasRunning = this.running;
    this.#clearTimers();
    this.#status = 'none';
    const main = this.#placeIn(undefined);
    if (wasRunning) for (const m of this.#room.audience.admitted()) this.#placement.move(m, undefined, main);
    this.#groups = [];
    this.#help.clear();
    this.#startedAt = null;
    this.#endsAt = null;
    this.#noticed = false;
    if (wasRunning) this.#room.audience.broadcast('breakoutEnded', [{}]);
    this.#changed('ended');
  }

  #armTimers(): void {
    this.#clearTimers();
    const endsAt = this.#endsAt;
    if (!this.running || endsAt === null) return;
    const noticeAt = endsAt - this.#noticeS * 1_000;
    if (!this.#noticed) {
      this.#noticeTimer = setTimeout(() => this.#notice(), Math.max(0, noticeAt - Date.now()));
    }
    this.#endTimer = setTimeout(
      () => {
        this.#room.moderation.record({ actor: timerActor, action: 'recallBreakouts', result: 'ok' });
        this.#end();
      },
      Math.max(0, endsAt - Date.now()),
    );
  }

  #notice(): void {
    const endsAt = this.#endsAt;
    if (!this.running || endsAt === null) return;
    this.#noticed = true;
    const secondsLeft = Math.max(0, Math.round((endsAt - Date.now()) / 1_000));
    this.#room.audience.broadcast('breakoutEnding', [{ endsAt, secondsLeft }]);
    this.#changed('ending');
  }

  #clearTimers(): void {
    clearTimeout(this.#noticeTimer);
    clearTimeout(this.#endTimer);
    this.#noticeTimer = undefined;
    this.#endTimer = undefined;
  }

  /* ---- The session around it ------------------------------------------------------------------ */

  /** Someone entered the session: in the main room; during a round, facilitators are told. */
  admitted(member: Member): void {
    if (this.running && member.role !== 'facilitator') this.#changed('newcomer', member.id);
  }

  /** Someone left the session (or went back to waiting): out of the plan, and facilitators told. */
  left(member: Member): void {
    member.breakout = undefined;
    if (this.#status === 'none') return;
    for (const g of this.#groups) g.planned = g.planned.filter((id) => id !== member.id);
    for (const [id, help] of this.#help) if (help.participantId === member.id) this.#help.delete(id);
    this.#changed('left', member.id);
  }

  /** What the store keeps; null before the session's first plan (after it, the next id at least). */
  stored(): StoredBreakouts | null {
    if (this.#status === 'none' && this.#nextId === 1) return null;
    return {
      status: this.#status,
      groups: this.#groups.map((g) => ({ id: g.id, name: g.name, planned: [...g.planned] })),
      startedAt: this.#startedAt,
      endsAt: this.#endsAt,
      noticeS: this.#noticeS,
      noticed: this.#noticed,
      help: [...this.#help.values()],
      nextId: this.#nextId,
    };
  }

  /**
   * Takes back the breakouts of a session whose node died (members' groups come with them): the
   * timers run on from the stored times; a round whose end passed meanwhile ends now.
   */
  restore(saved: StoredBreakouts | null): void {
    const running = saved?.status === 'running';
    const ids = new Set(saved?.groups.map((g) => g.id));
    // Only a running round's groups hold anyone, and only those in the session; a group the
    // stored state lost holds nobody.
    for (const m of this.#room.members.values()) {
      if (!running || !m.admitted || m.breakout === undefined || !ids.has(m.breakout)) m.breakout = undefined;
    }
    if (!saved) return;
    this.#status = saved.status;
    this.#groups = saved.groups.map((g) => ({ ...g, planned: [...g.planned] }));
    this.#startedAt = saved.startedAt;
    this.#endsAt = saved.endsAt;
    this.#noticeS = saved.noticeS;
    this.#noticed = saved.noticed;
    for (const h of saved.help) if (ids.has(h.breakoutId)) this.#help.set(h.breakoutId, h);
    this.#nextId = saved.nextId;
    this.#armTimers();
  }

  close(): void {
    this.#clearTimers();
  }

  /** Tells facilitators (wherever they are) and writes the state through; returns the state. */
  #changed(change: BreakoutsChange, participantId?: string): BreakoutsState {
    const state = this.state();
    this.#room.safeEmit('changed', { type: 'breakouts', state: this.stored() });
    this.#room.audience.facilitators('breakoutsChanged', [
      participantId === undefined ? { state, change } : { state, change, participantId },
    ]);
    return state;
  }
}

function memberOf(m: Member): BreakoutMember {
  return { participantId: m.id, name: m.name, role: m.role };
}

/** The notice a timed round gets unless told: a minute, or half of a round of 2 minutes or less. */
function defaultNoticeS(durationS: number | undefined): number {
  return durationS === undefined ? defaultBreakoutNoticeS : Math.min(defaultBreakoutNoticeS, Math.floor(durationS / 2));
}
