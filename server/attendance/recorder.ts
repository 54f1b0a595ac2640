/**
 * Attendance events: every presence change in a room, with the server's time and ids only,
 * appended to a Redis stream per room (`haven:attendance:<room>`, codec: event.ts) that the
 * attendance workers read. Programs bill by these, so none may be lost and none doubled:
 *
 * - `record()` never waits for Redis: events queue in memory, in order, and are written one by
 *   one; while Redis is unreachable they wait (past `maxBuffered` they spill to a local file, in
 *   order, and are read back from it);
 * - each event's stream id is fixed when it is recorded (`<server ms>-<seq>`, increasing per
 *   room), so a write retried after a lost reply is refused by Redis as "not greater than the
 *   top" instead of being doubled. This relies on one writer per room stream: a room lives on
 *   exactly one node;
 * - through Sentinel, an event counts as written once a replica has it too (`WAIT`): a master
 *   answers before its replica has the write, and if it dies then, the promoted replica never
 *   had it (shown by test/integration/redis-sentinel.test.ts). A master with no replica
 *   connected at all is all there is: its word is taken, with a warning.
 */
import { appendFileSync, existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import type { Logger } from '../logger.ts';
import { type AttendanceEvent, attendanceFields, attendanceStreamKey, type NewAttendanceEvent } from './event.ts';

export type { AttendanceEvent, AttendanceEventType, NewAttendanceEvent } from './event.ts';

export interface AttendanceRecorderOptions {
  /** File events spill to when too many wait for Redis. */
  spillFile: string;
  /** Events kept in memory before spilling. Default 10,000. */
  maxBuffered?: number;
  /** Redis key prefix. Default `haven:`. */
  prefix?: string;
  now?: () => number;
  /** Count an event as written only once a replica has it. Default: when `redis` goes through Sentinel. */
  waitForReplica?: boolean;
}

const retryDelayMs = 500;
/** Longest a write waits for a replica's acknowledgement before it is tried again. */
const replicaWaitMs = 1_000;

export class AttendanceRecorder {
  readonly #redis: Redis;
  readonly #ownConnection: boolean;
  readonly #logger: Logger;
  readonly #spillFile: string;
  readonly #maxBuffered: number;
  readonly #prefix: string;
  readonly #now: () => number;
  /** Per room: the last id given, `[ms, seq]`. */
  readonly #lastIds = new Map<string, [number, number]>();
  /** Oldest first; when `#spilled`, newer events are in the spill file, after these. */
  #queue: AttendanceEvent[] = [];
  #spilled = 0;
  #writing: Promise<void> | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #closed = false;
  readonly #waitForReplica: boolean;
  /** Counts the client's (re)connections: a WAIT answered on another connection proves nothing. */
  #connections = 0;
  readonly #onReady = () => {
    this.#connections++;
  };
  /** No replica was connected when last asked. */
  #alone = false;

  constructor(redis: Redis, logger: Logger, options: AttendanceRecorderOptions) {
    const waitForReplica = options.waitForReplica ?? (redis.options.sentinels?.length ?? 0) > 0;
    // Its own connection then: WAIT holds up the connection it is sent on, and a lagging replica
    // must not hold up the node's other commands.
    this.#redis = waitForReplica ? redis.duplicate() : redis;
    this.#ownConnection = waitForReplica;
    this.#waitForReplica = waitForReplica;
    if (waitForReplica) {
      this.#redis.on('ready', this.#onReady);
      this.#redis.on('error', () => {}); // the node's own client reports the outage; writes are retried
    }
    this.#logger = logger.child({ component: 'attendance' });
    this.#spillFile = options.spillFile;
    this.#maxBuffered = options.maxBuffered ?? 10_000;
    this.#prefix = options.prefix ?? 'haven:';
    this.#now = options.now ?? Date.now;
    // Events spilled by an earlier run that ended before writing them.
    if (existsSync(this.#spillFile)) {
      this.#spilled = this.#readSpill().length;
      if (this.#spilled)
        this.#logger.warn({ events: this.#spilled }, 'writing attendance events spilled by an earlier run');
      this.#kick();
    }
  }

  /** Events not yet in Redis. */
  get pending(): number {
    return this.#queue.length + this.#spilled;
  }

  /** Of those, the events in the spill file on disk. */
  get spilled(): number {
    return this.#spilled;
  }

  /**
   * Copies of `room`'s events not yet known to be in Redis (queued or spilled), oldest first: a
   * live view adds them to what it reads from the stream. The one being written may be in the
   * stream already; readers deduplicate by id (as `computeAttendance` does).
   */
  pendingFor(room: string): AttendanceEvent[] {
    const spilled = this.#spilled > 0 ? this.#readSpill() : [];
    return [...this.#queue, ...spilled].filter((e) => e.room === room).map((e) => ({ ...e }));
  }

  /** Records an event now (server time); it reaches Redis as soon as Redis answers. */
  record(input: NewAttendanceEvent): AttendanceEvent {
    const at = this.#now();
    const [lastMs, lastSeq] = this.#lastIds.get(input.room) ?? [0, -1];
    const [ms, seq] = at > lastMs ? [at, 0] : [lastMs, lastSeq + 1];
    this.#lastIds.set(input.room, [ms, seq]);
    const event: AttendanceEvent = { ...input, id: `${ms}-${seq}`, at };
    if (this.#spilled > 0 || this.#queue.length >= this.#maxBuffered) {
      appendFileSync(this.#spillFile, `${JSON.stringify(event)}\n`);
      if (this.#spilled++ === 0)
        this.#logger.warn({ buffered: this.#queue.length }, 'attendance events spilling to disk');
    } else {
      this.#queue.push(event);
    }
    this.#kick();
    return event;
  }

  /** Resolves once every event recorded so far is in Redis (or rejects after `timeoutMs`). */
  async flush(timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.pending > 0) {
      if (Date.now() > deadline) throw new Error(`${this.pending} attendance events not written`);
      this.#kick();
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Stops writing; what is still queued in memory goes to the spill file for the next start. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    if (this.#ownConnection) this.#redis.disconnect();
    if (this.#queue.length === 0) return;
    const spilled = this.#spilled > 0 ? this.#readSpill() : [];
    const all = [...this.#queue, ...spilled].map((e) => `${JSON.stringify(e)}\n`).join('');
    writeFileSync(`${this.#spillFile}.tmp`, all);
    renameSync(`${this.#spillFile}.tmp`, this.#spillFile);
    this.#logger.warn(
      { events: this.#queue.length + spilled.length },
      'attendance events kept on disk for the next start',
    );
    this.#queue = [];
  }

  #readSpill(): AttendanceEvent[] {
    try {
      return readFileSync(this.#spillFile, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as AttendanceEvent);
    } catch {
      return [];
    }
  }

  #kick(): void {
    if (this.#writing || this.#closed || this.#retryTimer) return;
    this.#writing = this.#drain().finally(() => {
      this.#writing = undefined;
    });
  }

  async #drain(): Promise<void> {
    try {
      for (;;) {
        if (this.#queue.length === 0 && this.#spilled > 0) {
          // Back from disk, in order; new events go to memory again once the file is read.
          this.#queue = this.#readSpill();
          rmSync(this.#spillFile, { force: true });
          this.#spilled = 0;
        }
        const event = this.#queue[0];
        if (!event) return;
        await this.#write(event);
        this.#queue.shift();
      }
    } catch (err) {
      this.#logger.warn(
        { err: { message: (err as Error).message }, pending: this.pending },
        'attendance write failed; retrying',
      );
      this.#retryTimer = setTimeout(() => {
        this.#retryTimer = undefined;
        this.#kick();
      }, retryDelayMs);
      this.#retryTimer.unref();
    }
  }

  async #write(event: AttendanceEvent): Promise<void> {
    const key = attendanceStreamKey(event.room, this.#prefix);
    const fields = attendanceFields(event);
    try {
      await this.#redis.xadd(key, event.id, ...fields);
    } catch (err) {
      if (!/equal or smaller than the target stream top item/.test((err as Error).message)) throw err;
      // Written already by an attempt whose answer was lost: not twice.
      if ((await this.#redis.xrange(key, event.id, event.id)).length === 0) {
        // Not written, but the stream is ahead of this id (a restart, a clock step back): next id after the top.
        const [top] = await this.#redis.xrevrange(key, '+', '-', 'COUNT', 1);
        const [ms, seq] = (top?.[0] ?? '0-0').split('-').map(Number) as [number, number];
        event.id = `${ms}-${seq + 1}`;
        const [lastMs, lastSeq] = this.#lastIds.get(event.room) ?? [0, -1];
        if (ms > lastMs || (ms === lastMs && seq + 1 > lastSeq)) this.#lastIds.set(event.room, [ms, seq + 1]);
        await this.#redis.xadd(key, event.id, ...fields);
      }
    }
    // The connection that answered, kept to check that WAIT's answer is about the same one.
    await this.#onReplica(this.#connections);
  }

  /** Throws (the write is tried again) until a replica has what this connection wrote, if one is connected. */
  async #onReplica(connection: number): Promise<void> {
    if (!this.#waitForReplica) return;
    const sameConnection = () => {
      if (this.#connections !== connection) throw new Error('Redis reconnected before a replica had the event');
    };
    // Alone when last asked: look again before waiting a whole second for no one.
    const waited = !this.#alone || (await this.#connectedReplicas()) > 0;
    const acked = waited ? await this.#redis.wait(1, replicaWaitMs) : 0;
    sameConnection();
    if (acked > 0) {
      this.#alone = false;
      return;
    }
    if (waited && (await this.#connectedReplicas()) > 0) throw new Error('no Redis replica has the event yet');
    sameConnection();
    if (!this.#alone) this.#logger.warn('no Redis replica connected: attendance events are on the master alone');
    this.#alone = true;
  }

  async #connectedReplicas(): Promise<number> {
    const [role, , replicas] = await this.#redis.role();
    return role === 'master' && Array.isArray(replicas) ? replicas.length : 0;
  }
}
