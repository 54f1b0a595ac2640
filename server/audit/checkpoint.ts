/**
 * Checkpoints: the head of a room's chain (seq and hash of its newest entry), signed with the
 * audit key's Ed25519 half and sent out of Redis, to the `audit` log stream and as an
 * `audit.checkpoint` webhook. A chain is only as complete as its newest checkpoint says: whoever
 * removes entries from the chain's end removes entries a checkpoint already named, and `verify`
 * given that checkpoint finds the chain shorter than it.
 *
 * A node checkpoints the entries it appended itself (never a head read back from Redis, which a
 * Redis writer could have changed): every `intervalMs` for each room it appended to since, at
 * once when a session ends, and when it closes.
 */

import { z } from 'zod';
import { idPattern } from '../../client-sdk/src/protocol/index.ts';
import type { Logger } from '../logger.ts';
import type { AuditKeys } from './keys.ts';

export interface AuditCheckpoint {
  room: string;
  /** Seq of the newest entry when it was made. */
  seq: number;
  /** That entry's hash. */
  hash: string;
  /** When it was made (ISO 8601, UTC). */
  at: string;
  /** Id of the audit key that signed it. */
  kid: string;
  /** Ed25519 signature (base64url) of {@link checkpointMessage}. */
  signature: string;
}

/** What the signature covers. */
export function checkpointMessage(cp: Omit<AuditCheckpoint, 'kid' | 'signature'>): string {
  return JSON.stringify(['haven-audit-checkpoint-v1', cp.room, cp.seq, cp.hash, cp.at]);
}

export function makeCheckpoint(keys: AuditKeys, head: Omit<AuditCheckpoint, 'kid' | 'signature'>): AuditCheckpoint {
  return { ...head, ...keys.sign(checkpointMessage(head)) };
}

/** Why `cp` cannot be trusted with `keys`, or undefined when its signature checks out. */
export function checkpointProblem(keys: AuditKeys, cp: AuditCheckpoint): string | undefined {
  const valid = keys.checkSignature(cp.kid, checkpointMessage(cp), cp.signature);
  if (valid === undefined) return `checkpoint seq ${cp.seq} is signed with key ${cp.kid}, which was not given`;
  return valid ? undefined : `checkpoint seq ${cp.seq}: signature does not match (checkpoint forged or edited)`;
}

const noSignature = 'no kid or signature';
/** Each field says what is wrong with it; the first one wrong is reported. */
const checkpointFields = z.object({
  room: z.string({ error: 'no room' }).regex(idPattern, 'no room'),
  seq: z.int({ error: 'seq is not a whole number ≥ 1' }).min(1, 'seq is not a whole number ≥ 1'),
  hash: z.string({ error: 'hash is not a SHA-256' }).regex(/^[0-9a-f]{64}$/, 'hash is not a SHA-256'),
  at: z.string({ error: 'at is not a time' }).refine((at) => !Number.isNaN(Date.parse(at)), 'at is not a time'),
  kid: z.string({ error: noSignature }),
  signature: z.string({ error: noSignature }),
}) satisfies z.ZodType<AuditCheckpoint>;

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null;

/**
 * A checkpoint from what carries one: the checkpoint itself, a log line `{ checkpoint }`, or an
 * `audit.checkpoint` webhook body (`{ type, room, data }`). A string says what is wrong.
 */
export function parseCheckpoint(value: unknown): AuditCheckpoint | string {
  if (!isObject(value)) return 'not a JSON object';
  let fields: Record<string, unknown> = value;
  if (isObject(value.checkpoint)) fields = value.checkpoint;
  else if (value.type === 'audit.checkpoint' && isObject(value.data)) fields = { ...value.data, room: value.room };
  const parsed = checkpointFields.safeParse(fields);
  return parsed.success ? parsed.data : (parsed.error.issues[0]?.message ?? 'not a checkpoint');
}

/** The checkpoints of `room` in JSON lines (other rooms' and other lines skipped). */
export function checkpointsInLines(text: string, room: string): AuditCheckpoint[] {
  const found: AuditCheckpoint[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim().startsWith('{')) continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      continue;
    }
    const cp = parseCheckpoint(value);
    if (typeof cp !== 'string' && cp.room === room) found.push(cp);
  }
  return found;
}

export interface CheckpointerOptions {
  keys: AuditKeys;
  /** The `audit` log stream. */
  logger: Logger;
  intervalMs: number;
  /** Where else a checkpoint goes (the `audit.checkpoint` webhook). Must not throw. */
  emit?: (checkpoint: AuditCheckpoint) => void;
  now: () => Date;
}

/** Signs and sends the heads of the rooms this process appended to. */
export class Checkpointer {
  readonly #options: CheckpointerOptions;
  /** Rooms appended to since their last checkpoint, with the newest entry appended. */
  readonly #pending = new Map<string, { seq: number; hash: string }>();
  readonly #timer: NodeJS.Timeout;

  constructor(options: CheckpointerOptions) {
    this.#options = options;
    this.#timer = setInterval(() => this.flush(), options.intervalMs);
    this.#timer.unref();
  }

  /** An entry this process appended: it is the room's head as far as this process knows. */
  appended(room: string, seq: number, hash: string): void {
    const known = this.#pending.get(room);
    if (!known || known.seq < seq) this.#pending.set(room, { seq, hash });
  }

  /** Checkpoints `room` now (a session's end), if it was appended to since its last one. */
  now(room: string): void {
    const head = this.#pending.get(room);
    if (!head) return;
    this.#pending.delete(room);
    const checkpoint = makeCheckpoint(this.#options.keys, { room, ...head, at: this.#options.now().toISOString() });
    this.#options.logger.info({ checkpoint }, 'audit checkpoint');
    this.#options.emit?.(checkpoint);
  }

  /** Checkpoints every room appended to since its last one. */
  flush(): void {
    for (const room of [...this.#pending.keys()]) this.now(room);
  }

  /** Final checkpoints, and no more. */
  close(): void {
    clearInterval(this.#timer);
    this.flush();
  }
}
