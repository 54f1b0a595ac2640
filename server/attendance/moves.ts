/**
 * Moves between a session's main room and its breakout groups, as an attendance record lists them
 * (compute.ts). Time in a group is presence in the session: a move never starts or ends presence,
 * it only says where the person was. Ids only (`b1`, `b2`, …), never the groups' names.
 */
import { idPattern } from '../../client-sdk/src/protocol/index.ts';
import type { AttendanceEvent } from './event.ts';

export interface BreakoutMove {
  /** ms since the epoch */
  at: number;
  /** The group's id, or null for the main room. */
  breakout: string | null;
}

/**
 * The place a `movedToBreakout` event names (`details.breakout`): a group's id, or null for the
 * main room (`main`); undefined when it names neither, so that nothing but an id reaches a record.
 */
export function placeOf(event: AttendanceEvent): string | null | undefined {
  const breakout = event.details?.breakout;
  if (breakout === 'main') return null;
  return typeof breakout === 'string' && idPattern.test(breakout) ? breakout : undefined;
}

/**
 * Adds a move to `to` unless the person is there already: where their last move took them, the
 * main room before any (everyone enters the session there).
 */
export function addMove(moves: BreakoutMove[], at: number, to: string | null): void {
  if (to !== (moves.at(-1)?.breakout ?? null)) moves.push({ at, breakout: to });
}
