/** Attendance as CSV (RFC 4180: CRLF line ends, fields with a comma, quote or line break quoted). */
import type { ParticipantAttendance, SessionAttendance } from './compute.ts';

export const attendanceCsvHeader = [
  'room',
  'participant',
  'status',
  'first_seen',
  'admitted_at',
  'last_left_at',
  'present_seconds',
  'waiting_seconds',
  'disconnections',
  'late_arrival_seconds',
  'early_departure_seconds',
  'breakout_moves',
] as const;

function field(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replaceAll('"', '""')}"` : value;
}

const time = (ms: number | null): string => (ms === null ? '' : new Date(ms).toISOString());

/** `<time> <group id>` per move, `main` for the main room (as the events name it), `;` between. */
const moves = (p: ParticipantAttendance): string =>
  p.moves.map((m) => `${time(m.at)} ${m.breakout ?? 'main'}`).join(';');

/** One line per participant, in the order of `a.participants`; times ISO 8601 UTC, empty when unknown. */
export function attendanceCsv(a: SessionAttendance): string {
  const rows: string[][] = [[...attendanceCsvHeader]];
  for (const p of a.participants) {
    rows.push([
      a.room,
      p.participant,
      p.status,
      time(p.firstSeenAt),
      time(p.admittedAt),
      time(p.lastLeftAt),
      String(p.presentSeconds),
      String(p.waitingSeconds),
      String(p.disconnections),
      String(p.lateArrivalSeconds),
      String(p.earlyDepartureSeconds),
      moves(p),
    ]);
  }
  return rows.map((row) => `${row.map(field).join(',')}\r\n`).join('');
}

/** Parses RFC 4180 CSV (CRLF or LF line ends; a final line end is optional). */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let value = '';
  let quoted = false;
  let started = false; // something of the current row was read
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          value += '"';
          i++;
        } else quoted = false;
      } else value += c;
      continue;
    }
    if (c === '"') {
      quoted = true;
      started = true;
    } else if (c === ',') {
      row.push(value);
      value = '';
      started = true;
    } else if (c === '\r' || c === '\n') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      row.push(value);
      rows.push(row);
      row = [];
      value = '';
      started = false;
    } else {
      value += c;
      started = true;
    }
  }
  if (quoted) throw new Error('unterminated quoted field');
  if (started) {
    row.push(value);
    rows.push(row);
  }
  return rows;
}
