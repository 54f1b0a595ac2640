/**
 * Who may send which request: for every request of the protocol, the roles and the stages allowed.
 * Typed by `RequestName`, so a request added to the protocol does not compile until someone decides
 * who may send it. Signaling checks this before a room is called; rooms keep their own checks
 * (defence in depth) and what depends on more than role and stage: the token's capabilities, the
 * target of a moderation request, the room's settings.
 */
import type { RequestName, Role } from '../../client-sdk/src/protocol/index.ts';
import { HavenError } from '../errors.ts';
import type { CallerNeed } from '../rooms/member.ts';

/** Where a connection stands: not joined yet, at the consent gate, in the waiting room, in the session. */
export type ConnectionStage = 'none' | 'consent' | 'waiting' | 'admitted';

export const roles: readonly Role[] = ['facilitator', 'participant', 'observer'];
export const stages: readonly ConnectionStage[] = ['none', 'consent', 'waiting', 'admitted'];

export interface Permission {
  roles: readonly Role[];
  stages: readonly ConnectionStage[];
}

const joining: Permission = { roles, stages: ['none'] };
const atConsentGate: Permission = { roles: ['participant'], stages: ['consent'] };
const joined: Permission = { roles, stages: ['consent', 'waiting', 'admitted'] };
/** Media, hands and chat: anyone in the session (capabilities are the room's to check). */
const inSession: Permission = { roles, stages: ['admitted'] };
const facilitators: Permission = { roles: ['facilitator'], stages: ['admitted'] };

export const permissions: { readonly [K in RequestName]: Permission } = {
  join: joining,
  acceptConsent: atConsentGate,
  leave: joined,
  createTransport: inSession,
  connectTransport: inSession,
  restartIce: inSession,
  createPlainTransport: inSession,
  connectPlainTransport: inSession,
  produce: inSession,
  pauseProducer: inSession,
  resumeProducer: inSession,
  closeProducer: inSession,
  consume: inSession,
  resumeConsumer: inSession,
  pauseConsumer: inSession,
  setPreferredSize: inSession,
  setAudioOnly: inSession,
  raiseHand: inSession,
  /** One's own hand; a facilitator may lower anyone's (the room checks the target). */
  lowerHand: inSession,
  sendChat: inSession,
  /** E2EE rooms' key exchange: the room checks that the sender leads it and that the room is one. */
  e2eeDistribute: inSession,
  e2eeKeyReceived: inSession,
  admit: facilitators,
  admitAll: facilitators,
  deny: facilitators,
  messageWaitingRoom: facilitators,
  moveToWaitingRoom: facilitators,
  mute: facilitators,
  muteAll: facilitators,
  suggestAudioOnly: facilitators,
  setAudioMode: facilitators,
  requestUnmute: facilitators,
  disableCamera: facilitators,
  stopScreenShare: facilitators,
  remove: facilitators,
  lockRoom: facilitators,
  endSession: facilitators,
  setDisplayName: facilitators,
  spotlight: facilitators,
  deleteChatMessage: facilitators,
  liveAttendance: facilitators,
  createBreakouts: facilitators,
  updateBreakouts: facilitators,
  startBreakouts: facilitators,
  moveToBreakout: facilitators,
  visitBreakout: facilitators,
  broadcastToBreakouts: facilitators,
  recallBreakouts: facilitators,
  /** Anyone in a breakout group (the room checks that the caller is in one). */
  askForHelp: inSession,
};

export function isAllowed(name: RequestName, role: Role, stage: ConnectionStage): boolean {
  const permission = permissions[name];
  return permission.stages.includes(stage) && permission.roles.includes(role);
}

/**
 * Throws the refusal of `name` from `role` at `stage`, if the table refuses it: `INVALID_STATE` for
 * a request out of order (before joining, joining twice, consent when none is asked), `FORBIDDEN`
 * for a session request before admission or a request the role may not make.
 */
export function authorize(name: RequestName, role: Role, stage: ConnectionStage): void {
  const permission = permissions[name];
  if (!permission.stages.includes(stage)) {
    if (stage === 'none') throw new HavenError('INVALID_STATE', 'join the room first');
    if (name === 'join') throw new HavenError('INVALID_STATE', 'joined already');
    if (permission.stages.includes('admitted')) throw new HavenError('FORBIDDEN', 'not admitted to the session yet');
    throw new HavenError('INVALID_STATE', `${name} is not for this stage (${stage})`);
  }
  if (!permission.roles.includes(role)) {
    throw new HavenError('FORBIDDEN', role === 'facilitator' ? `${name} is not for facilitators` : 'facilitators only');
  }
}

/** What `stageIn` reads of a room. */
interface StagedRoom {
  readonly closed: boolean;
  stageOf(participantId: string): Exclude<ConnectionStage, 'none'> | undefined;
}

/** The stage of a connection's participant in its room: `none` before joining or once out of it. */
export function stageIn(room: StagedRoom | undefined, participantId: string): ConnectionStage {
  return room && !room.closed ? (room.stageOf(participantId) ?? 'none') : 'none';
}

/**
 * What the room checks of the caller of `name` (its connection always): from the table, so that
 * the two never disagree. Session requests need the caller admitted; facilitators' requests, a
 * facilitator admitted; the rest (consent), only joined.
 */
export function callerNeed(name: Exclude<RequestName, 'join' | 'leave'>): CallerNeed {
  const { roles: allowed, stages: at } = permissions[name];
  if (at.length !== 1 || at[0] !== 'admitted') return 'joined';
  return allowed.length === 1 && allowed[0] === 'facilitator' ? 'facilitator' : 'session';
}
