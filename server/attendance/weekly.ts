/**
 * Weekly attendance: IOP programs certify hours attended per ISO week (adults at least 9 h), in
 * the program's time zone. No date library: the local date comes from `Intl.DateTimeFormat`.
 */
import type { SessionAttendance } from './compute.ts';

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      calendar: 'gregory',
      numberingSystem: 'latn',
      era: 'short',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
    });
    formatters.set(timeZone, f);
  }
  return f;
}

/** The local calendar date of `ms` in `timeZone` (a `RangeError` for an unknown zone). */
export function localDate(ms: number, timeZone: string): { year: number; month: number; day: number } {
  const parts = formatter(timeZone).formatToParts(new Date(ms));
  const get = (type: string): number => Number(parts.find((p) => p.type === type)?.value);
  const era = parts.find((p) => p.type === 'era')?.value;
  const year = era === 'BC' ? 1 - get('year') : get('year');
  return { year, month: get('month'), day: get('day') };
}

/** ISO 8601 week (`2026-W49`) of the local date of `ms` in the IANA zone `timeZone`. */
export function isoWeekOf(ms: number, timeZone: string): string {
  const { year, month, day } = localDate(ms, timeZone);
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day);
  const weekday = (date.getUTCDay() + 6) % 7; // Monday 0 … Sunday 6
  // The week belongs to the year of its Thursday.
  const thursday = new Date(date.getTime() + (3 - weekday) * 86_400_000);
  const isoYear = thursday.getUTCFullYear();
  const jan1 = new Date(0);
  jan1.setUTCFullYear(isoYear, 0, 1);
  const week = 1 + Math.floor((thursday.getTime() - jan1.getTime()) / (7 * 86_400_000));
  return `${isoYear}-W${String(week).padStart(2, '0')}`;
}

export interface WeeklyTotal {
  week: string;
  presentSeconds: number;
  /** Sessions of the week the participant was present in. */
  sessions: number;
  meetsThreshold: boolean;
}

/** When a session counts: its scheduled start, else when it started (else when the participant came). */
function sessionTime(session: SessionAttendance, firstSeenAt: number | null): number | null {
  return session.scheduled?.start ?? session.sessionStartedAt ?? firstSeenAt;
}

/**
 * A participant's hours per ISO week (in `timeZone`), weeks in order. A week appears if the
 * participant is in any of its sessions (a no-show week shows 0 hours, below the threshold).
 * A session given twice (same room and start) counts once.
 */
export function weeklyTotals(
  sessions: readonly SessionAttendance[],
  participant: string,
  timeZone: string,
  thresholdHours = 9,
): WeeklyTotal[] {
  const seen = new Set<string>();
  const weeks = new Map<string, { presentSeconds: number; sessions: number }>();
  for (const session of sessions) {
    const entry = session.participants.find((p) => p.participant === participant);
    if (!entry) continue;
    const at = sessionTime(session, entry.firstSeenAt);
    if (at === null) continue;
    const key = `${session.room}\n${session.scheduled?.start ?? ''}\n${session.sessionStartedAt ?? ''}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const week = isoWeekOf(at, timeZone);
    const total = weeks.get(week) ?? { presentSeconds: 0, sessions: 0 };
    total.presentSeconds += entry.presentSeconds;
    if (entry.presentSeconds > 0) total.sessions++;
    weeks.set(week, total);
  }
  return [...weeks]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([week, t]) => ({ week, ...t, meetsThreshold: t.presentSeconds >= thresholdHours * 3600 }));
}
