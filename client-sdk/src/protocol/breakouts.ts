/**
 * Breakout rooms: small groups inside a running session. A facilitator plans them (by hand, or N
 * groups, or K people each, shuffled), starts them, visits any group, moves people, broadcasts to
 * all, and recalls everyone. Everyone stays in the one session (one attendance record each); the
 * server sees to it that nobody receives media from outside their own group.
 */
import type { Role } from './model.ts';
import type { Empty } from './requests.ts';

/** Most groups in one plan. */
export const maxBreakoutGroups = 50;
/** Longest group name, in characters (after trimming). */
export const maxBreakoutNameLength = 40;
/** Longest broadcast text, in characters (after trimming). */
export const maxBroadcastLength = 500;
/** Longest sealed broadcast text (E2EE rooms): `maxBroadcastLength` characters of up to 4 UTF-8 bytes, encrypted. */
export const maxEncryptedBroadcastLength = 3_000;
/** Most people in one group of a shuffled plan (`perGroup`). */
export const maxBreakoutGroupSize = 1_000;
/** The longest a breakout round may be given, in seconds (4 hours). */
export const maxBreakoutDurationS = 14_400;
/** How long before a timed round's end everyone is told it is ending, unless the facilitator says otherwise. */
export const defaultBreakoutNoticeS = 60;

/** A group as its members know it. */
export interface BreakoutInfo {
  /** Pseudonymous (`b1`, `b2`, …): what attendance events and audit records name. */
  id: string;
  name: string;
}

/** Where the caller stands in the session's breakouts (everyone in the session is told). */
export interface BreakoutPlace {
  /** Breakouts are running. */
  running: boolean;
  /** The caller's group; null in the main room. */
  group: BreakoutInfo | null;
  /** When a timed round ends (server ms since the epoch); null when untimed or not running. */
  endsAt: number | null;
}

/** Someone in a group (or the main room), as facilitators see them. */
export interface BreakoutMember {
  participantId: string;
  name: string;
  role: Role;
}

export interface BreakoutGroup extends BreakoutInfo {
  /** While planned: who will go there; while running: who is there now (visiting facilitators too). */
  members: BreakoutMember[];
}

export interface BreakoutHelpRequest {
  breakoutId: string;
  participantId: string;
  /** Server ms since the epoch. */
  at: number;
}

/** The whole of a session's breakouts, for facilitators (`breakoutsChanged`). */
export interface BreakoutsState {
  status: 'none' | 'planned' | 'running';
  groups: BreakoutGroup[];
  /** While running: who is in the main room (newcomers admitted during breakouts land here). */
  main: BreakoutMember[];
  /** When the round started, and when a timed round ends (server ms); null otherwise. */
  startedAt: number | null;
  endsAt: number | null;
  /** Seconds before `endsAt` that everyone is told the round is ending. */
  noticeS: number;
  /** Open help requests, oldest first (one per group; a facilitator visiting the group answers it). */
  help: BreakoutHelpRequest[];
}

/** A facilitator's message to every group. */
export interface BreakoutBroadcast {
  from: string;
  name: string;
  /** In an E2EE room, as relayed: the ciphertext sealed for this place (`e2eeChatPattern`); the SDK decrypts it. */
  text: string;
  /** Server ms since the epoch. */
  sentAt: number;
  /** The place whose copy this is: the recipient's group, or null in the main room. */
  breakoutId: string | null;
}

/**
 * An E2EE room's broadcast: one copy of the text per place, each sealed with that place's chat
 * key (a facilitator holds every group's). The server relays each copy to its own place only.
 */
export interface SealedBroadcast {
  breakoutId: string | null;
  text: string;
}

/** A broadcast: clear `text`, or in an E2EE room `texts`, one for every place someone is in. */
export type BroadcastRequest = { text: string } | { texts: SealedBroadcast[] };

/** Why facilitators were sent a new `breakoutsChanged`. */
export type BreakoutsChange = 'planned' | 'started' | 'moved' | 'newcomer' | 'left' | 'help' | 'ending' | 'ended';

/* ---- Requests ------------------------------------------------------------------------------ */

/** A group planned by hand: its name and who goes there (participant or observer ids). */
export interface PlannedGroup {
  name: string;
  members: string[];
}

/**
 * A plan: groups by hand, or `groups` groups, or groups of `perGroup` people, the session's
 * participants in the main room shuffled among them (observers stay unless placed by hand).
 * Facilitators are never planned: they visit.
 */
export type CreateBreakoutsRequest = { groups: PlannedGroup[] } | { count: number } | { perGroup: number };

/** A changed plan before it starts: the groups again, by hand (ids kept by position). */
export interface UpdateBreakoutsRequest {
  groups: PlannedGroup[];
}

export interface StartBreakoutsRequest {
  /** A timed round: everyone returns to the main room after this many seconds. Absent: until recalled. */
  durationS?: number;
  /** Seconds before the end that everyone is told (`breakoutEnding`). Default `defaultBreakoutNoticeS`, or half a round of 2 minutes or less (rounded down). */
  noticeS?: number;
}

export interface MoveToBreakoutRequest {
  participantId: string;
  /** The group, or null for the main room. */
  breakoutId: string | null;
}

export interface VisitBreakoutRequest {
  /** The group the facilitator goes to, or null to return to the main room. */
  breakoutId: string | null;
}

/** Requests of breakout rooms: facilitators only, but `askForHelp`. Each is audited. */
export interface BreakoutRequests {
  /** A new plan (replacing one not started yet); INVALID_STATE while a round runs. */
  createBreakouts: [CreateBreakoutsRequest, BreakoutsState];
  /** INVALID_STATE without a plan, or once it started. */
  updateBreakouts: [UpdateBreakoutsRequest, BreakoutsState];
  /** Everyone planned goes to their group at once (no consent gate, no waiting room). */
  startBreakouts: [StartBreakoutsRequest, BreakoutsState];
  /** While running: a participant or observer to another group, or back to the main room. */
  moveToBreakout: [MoveToBreakoutRequest, { breakoutId: string | null }];
  /** While running: the calling facilitator goes to a group, or back to the main room. */
  visitBreakout: [VisitBreakoutRequest, { breakoutId: string | null }];
  /**
   * While running: a message to everyone in the session, every group and the main room. In an
   * E2EE room, `texts` (INVALID_STATE for `text`): every place someone is in needs its copy.
   */
  broadcastToBreakouts: [BroadcastRequest, { sentAt: number }];
  /** Everyone back to the main room now (a plan not started is discarded). */
  recallBreakouts: [Empty, Empty];
  /** Anyone in a group: facilitators are told which group asks (INVALID_STATE in the main room). */
  askForHelp: [Empty, Empty];
}

/* ---- Notifications ------------------------------------------------------------------------- */

export interface BreakoutNotifications {
  /** To facilitators: the breakouts changed (`change` says how; `participantId`, whom it was about). */
  breakoutsChanged: [{ state: BreakoutsState; change: BreakoutsChange; participantId?: string }];
  /** To facilitators: someone in a group asks for help. */
  breakoutHelpRequested: [BreakoutHelpRequest];
  /** To everyone in the session: a round started (each person's own move follows). */
  breakoutStarted: [{ endsAt: number | null }];
  /**
   * To the person moved (the round's start, a facilitator's move or visit, the recall): their new
   * place. Everyone they saw before is told `participantLeft` (reason `movedToBreakout`) and so are
   * they of them; those of the new place, `participantJoined`, both ways.
   */
  movedToBreakout: [BreakoutPlace];
  /** To everyone in the session: a timed round ends at `endsAt`. */
  breakoutEnding: [{ endsAt: number; secondsLeft: number }];
  /** To everyone in the session: everyone is back in the main room. */
  breakoutEnded: [Empty];
  /** To everyone in the session, every group: a facilitator's broadcast (`name`: theirs, shown wherever they are). */
  broadcastReceived: [BreakoutBroadcast];
}
