/**
 * Node outages in a session's attendance events, spelled out before the presence rules run
 * (compute.ts): an old owner's late writes put back where they happened, and a disconnection of
 * everyone the old owner had connected, dated at the moment it last served the room.
 */
import type { AttendanceEvent } from './event.ts';

/**
 * A superseded owner's late writes back where they happened: an event that reached the stream
 * after a `restored` event but happened before it (the old node recorded it, then froze or died
 * before writing it; a retried write goes after the top) is placed before that restore, so it is
 * a fact of the old owner's time and part of its last-served moment, not a change after the
 * session moved on.
 */
export function lateWritesBeforeRestores(events: readonly AttendanceEvent[]): AttendanceEvent[] {
  const out: AttendanceEvent[] = [];
  /** Positions in `out` of the `restored` events so far. */
  const restores: number[] = [];
  for (const e of events) {
    if (e.type === 'restored') restores.push(out.length);
    // Compared with the latest restore (the current owner's clock) only: owners' clocks may differ.
    const latest = restores.at(-1);
    if (e.type === 'restored' || latest === undefined || (out[latest] as AttendanceEvent).at <= e.at) {
      out.push(e);
      continue;
    }
    // Before the first restore that came after it happened.
    const k = restores.findIndex((i) => (out[i] as AttendanceEvent).at > e.at);
    const at = restores[k] as number;
    out.splice(at, 0, e);
    for (let j = k; j < restores.length; j++) restores[j] = (restores[j] as number) + 1;
  }
  return out;
}

/**
 * The events with each outage spelled out: after a `restored` event (or, with `servedUntil`, at
 * the end), a `disconnected` for everyone the old owner had connected (placed, not dropped),
 * dated at the moment it last served the room: the later of its last lease renewal
 * (`lastServedAt`) and the last event before, and never after the restore itself.
 */
export function withOutages(events: readonly AttendanceEvent[], servedUntil?: number): AttendanceEvent[] {
  const out: AttendanceEvent[] = [];
  /** Participant → connected; present while the person has a place (waiting or admitted). */
  const placed = new Map<string, { connected: boolean; stage: string }>();
  let lastAt = 0;
  const outage = (marker: AttendanceEvent, lastServedAt: number, until: number): void => {
    const at = Math.min(Math.max(lastServedAt, lastAt), until);
    for (const [participant, p] of placed) {
      if (!p.connected) continue;
      p.connected = false;
      out.push({
        id: `${marker.id}:${participant}`,
        type: 'disconnected',
        room: marker.room,
        participant,
        at,
        details: { stage: p.stage, outage: true },
      });
    }
  };
  for (const e of events) {
    if (e.type === 'restored') {
      out.push(e);
      const lastServedAt = e.details?.lastServedAt;
      outage(e, typeof lastServedAt === 'number' ? lastServedAt : 0, e.at);
      lastAt = Math.max(lastAt, e.at);
      continue;
    }
    out.push(e);
    lastAt = Math.max(lastAt, e.at);
    if (e.type === 'sessionEnded') placed.clear();
    if (!e.participant) continue;
    const p = placed.get(e.participant);
    switch (e.type) {
      case 'waiting':
      case 'admitted':
        // A join connects; an admission from the waiting room leaves the connection as it was.
        if (p) p.stage = e.type;
        else placed.set(e.participant, { connected: true, stage: e.type });
        break;
      case 'movedToWaitingRoom':
        if (p) p.stage = 'waiting';
        break;
      case 'disconnected':
        if (p) p.connected = false;
        break;
      case 'reconnected':
        if (p) p.connected = true;
        break;
      case 'denied':
      case 'removed':
      case 'left':
        placed.delete(e.participant);
        break;
      default:
        break;
    }
  }
  const last = events[events.length - 1];
  if (servedUntil !== undefined && last) outage(last, servedUntil, Number.POSITIVE_INFINITY);
  return out;
}
