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

/**
 * A checkpoint from what carries one: the checkpoint itself, a log line `{ checkpoint }`, or an
 * `audit.checkpoint` webhook body (`{ type, room, data }`). A string says what is wrong.
 */
export function parseCheckpoint(value: unknown): AuditCheckpoint | string {
  if (typeof value !== 'object' || value === null) return 'not a JSON object';
  const raw = value as Record<string, unknown>;
  let fields: Record<string, unknown> = raw;
  if (typeof raw.checkpoint === 'object' && raw.checkpoint !== null) fields = raw.checkpoint as Record<string, unknown>;
  else if (raw.type === 'audit.checkpoint' && typeof raw.data === 'object' && raw.data !== null) {
    fields = { ...(raw.data as Record<string, unknown>), room: raw.room };
  }
  const { room, seq, hash, at, kid, signature } = fields;
  if (typeof room !== 'string' || !idPattern.test(room)) return 'no room';
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 1) return 'seq is not a whole number ≥ 1';
  if (typeof hash !== 'string' || !/^[0-9a-f]{64}$/.test(hash)) return 'hash is not a SHA-256';
  if (typeof at !== 'string' || Number.isNaN(Date.parse(at))) return 'at is not a time';
  if (typeof kid !== 'string' || typeof signature !== 'string') return 'no kid or signature';
  return { room, seq, hash, at, kid, signature };
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
