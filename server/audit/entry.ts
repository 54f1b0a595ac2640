/**
 * An audit entry and its one codec: validation of what may go in (ids, short enums, numbers,
 * booleans; never text, names or tokens), the canonical serialization its SHA-256 `hash` covers,
 * and the Redis stream fields it is stored as (`<prefix>audit:<room>`). Every reader imports it.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { idCharacters, idPattern, maxIdLength } from '../../client-sdk/src/protocol/index.ts';
import { fieldsOf, jsonText } from '../redis/codec.ts';

export type AuditDetails = Record<string, string | number | boolean>;

export interface AuditEntry {
  /** Position in the room's chain, from 1, without gaps. */
  seq: number;
  /** When it was recorded (ISO 8601, UTC). */
  at: string;
  room: string;
  /** Pseudonymous id of who acted (a participant id, or e.g. `admin-api`). */
  actor: string;
  /** What was done, e.g. `admit`, `mute`, `room.create`. */
  action: string;
  /** Pseudonymous id of whom it was done to, if anyone. */
  target?: string;
  /** `ok`, or the error code the action failed with. */
  result: string;
  details?: AuditDetails;
  /** `hash` of the entry before; {@link genesisHash} for the first. */
  prev: string;
  /** SHA-256 (hex) of {@link canonicalEntry} of this entry. */
  hash: string;
  /** Id of the HMAC key {@link mac} was computed with (see keys.ts). */
  kid?: string;
  /** HMAC-SHA256 (hex) over room, seq, prev and hash, with a key Redis never holds. */
  mac?: string;
}

export interface AuditRecordInput {
  room: string;
  actor: string;
  action: string;
  target?: string;
  /** Default `ok`. */
  result?: string;
  details?: AuditDetails;
}

/** An entry before its hash and HMAC are computed. */
export type UnsignedEntry = Omit<AuditEntry, 'hash' | 'kid' | 'mac'>;

/** `prev` of a room's first entry. */
export const genesisHash = '0'.repeat(64);

/** Room, actor and target ids: the alphabet of token `sub` and `room` claims. */
/** Actions and results (`admit`, `room.create`, `ROOM_LOCKED`). */
export const codePattern = new RegExp(`^[${idCharacters}]{1,64}$`);
const detailKeyPattern = /^[A-Za-z_][A-Za-z0-9_]{0,31}$/;
const detailStringPattern = new RegExp(`^[${idCharacters}]*$`);
const maxDetailString = 64;
const maxDetailKeys = 16;

/* ---- Validation ----------------------------------------------------------------------------- */

export function checkId(what: string, value: unknown, pattern = idPattern): string {
  if (typeof value !== 'string' || !pattern.test(value)) {
    throw new TypeError(
      `audit ${what} must be an id (letters, digits, . _ : -; at most ${pattern === idPattern ? maxIdLength : 64} characters)`,
    );
  }
  return value;
}

/** Copies `details` in sorted key order after checking every key and value; TypeError otherwise. */
export function checkDetails(details: unknown): AuditDetails | undefined {
  if (details === undefined) return undefined;
  if (typeof details !== 'object' || details === null || Array.isArray(details)) {
    throw new TypeError('audit details must be a plain object');
  }
  const proto = Object.getPrototypeOf(details);
  if (proto !== Object.prototype && proto !== null) throw new TypeError('audit details must be a plain object');
  const keys = Object.keys(details).sort();
  if (keys.length > maxDetailKeys) throw new TypeError(`audit details: at most ${maxDetailKeys} keys`);
  if (keys.length === 0) return undefined;
  const copy: AuditDetails = {};
  for (const key of keys) {
    if (!detailKeyPattern.test(key))
      throw new TypeError('audit details: keys must be identifiers of at most 32 characters');
    const value = (details as Record<string, unknown>)[key];
    if (typeof value === 'string') {
      if (value.length > maxDetailString || !detailStringPattern.test(value)) {
        throw new TypeError(
          `audit details.${key}: strings must be ids or short enums (at most ${maxDetailString} of letters, digits, . _ : -)`,
        );
      }
    } else if (typeof value === 'number') {
      if (!Number.isFinite(value)) throw new TypeError(`audit details.${key}: numbers must be finite`);
    } else if (typeof value !== 'boolean') {
      throw new TypeError(`audit details.${key}: only strings, numbers and booleans are allowed`);
    }
    copy[key] = value;
  }
  return copy;
}

/* ---- Hashing ---------------------------------------------------------------------------------- */

/**
 * The canonical serialization hashed into `hash`: a JSON array of every other field in a fixed
 * order (absent `target` / `details` as null), `details` as `[key, value]` pairs sorted by key.
 */
export function canonicalEntry(entry: UnsignedEntry): string {
  const details =
    entry.details === undefined
      ? null
      : Object.keys(entry.details)
          .sort()
          .map((key) => [key, (entry.details as AuditDetails)[key]]);
  return JSON.stringify([
    'haven-audit-v1',
    entry.seq,
    entry.at,
    entry.room,
    entry.actor,
    entry.action,
    entry.target ?? null,
    entry.result,
    details,
    entry.prev,
  ]);
}

export function hashEntry(entry: UnsignedEntry): string {
  return createHash('sha256').update(canonicalEntry(entry)).digest('hex');
}

/* ---- Stream encoding ---------------------------------------------------------------------------- */

/** The prefix of every room's audit stream (retention scans `<this>*`). */
export const auditStreamsPrefix = (prefix = 'haven:') => `${prefix}audit:`;

/** The room's audit stream. */
export const auditStreamKey = (room: string, prefix = 'haven:') => `${auditStreamsPrefix(prefix)}${room}`;

export function toFields(entry: AuditEntry): string[] {
  const fields = ['seq', String(entry.seq), 'at', entry.at, 'room', entry.room, 'actor', entry.actor];
  fields.push('action', entry.action);
  if (entry.target !== undefined) fields.push('target', entry.target);
  fields.push('result', entry.result);
  if (entry.details !== undefined) fields.push('details', JSON.stringify(entry.details));
  fields.push('prev', entry.prev, 'hash', entry.hash);
  if (entry.kid !== undefined && entry.mac !== undefined) fields.push('kid', entry.kid, 'mac', entry.mac);
  return fields;
}

const requiredFields = ['seq', 'at', 'room', 'actor', 'action', 'result', 'prev', 'hash'] as const;
/** First: every field there (what is missing is said before what is malformed). */
const presentFields = z.looseObject(
  Object.fromEntries(requiredFields.map((name) => [name, z.string({ error: `malformed entry: no ${name}` })])),
);
const detailsProblem = 'malformed entry: details are not a JSON object';
const entryFields = z.object({
  seq: z
    .string()
    .regex(/^\d{1,15}$/, 'malformed entry: seq is not a number')
    .transform(Number),
  at: z.string(),
  room: z.string(),
  actor: z.string(),
  action: z.string(),
  result: z.string(),
  prev: z.string(),
  hash: z.string(),
  target: z.string().optional(),
  // Only its shape: what the values are is for the hash (and `verify`) to tell.
  details: jsonText(z.record(z.string(), z.unknown(), { error: detailsProblem }), detailsProblem)
    .transform((details) => details as AuditDetails)
    .optional(),
  kid: z.string().optional(),
  mac: z.string().optional(),
});

/** Parses a stream entry's fields; a string says what is wrong with it. */
export function fromFields(fields: string[]): AuditEntry | string {
  const record = fieldsOf(fields);
  const present = presentFields.safeParse(record);
  if (!present.success) return present.error.issues[0]?.message ?? 'malformed entry';
  const parsed = entryFields.safeParse(record);
  // Fields in the order `haven audit show` prints them (the schema's).
  return parsed.success ? parsed.data : (parsed.error.issues[0]?.message ?? 'malformed entry');
}
