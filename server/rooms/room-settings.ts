/**
 * What a room is given by the node that runs it: its media workers, its timings, and the services
 * it reports to (audit log, attendance, token revocation, chat archive, state store), so that it
 * needs no Redis, socket or queue of its own.
 */
import type { ChatMessage } from '../../client-sdk/src/protocol/index.ts';
import type { LiveFigures } from '../attendance/live.ts';
import type { NewAttendanceEvent } from '../attendance/recorder.ts';
import type { VerifiedIdentity } from '../auth/tokens.ts';
import type { Logger } from '../logger.ts';
import type { TurnSettings } from '../media/turn.ts';
import type { WorkerPool } from '../media/worker-pool.ts';
import type { E2eeSettings } from './e2ee-keys.ts';
import type { RoomPersistenceOptions } from './room-persistence.ts';
import type { RoomDefinition } from './room-store.ts';

/** What the room asks the audit log to record (ids only). */
export interface AuditRecord {
  room: string;
  actor: string;
  action: string;
  target?: string;
  result?: string;
  details?: Record<string, string | number | boolean>;
}

export interface RoomSettings {
  pool: WorkerPool;
  logger: Logger;
  reconnectGraceMs: number;
  emptyTimeoutMs: number;
  maxConsumersPerRouter: number;
  /** A receiver whose downlink estimate stays below this (bps) gets audio only until it recovers. */
  audioOnlyBelowBps: number;
  turn: TurnSettings;
  /** End-to-end encrypted rooms' key rotation and acknowledgement wait (read only by E2EE rooms). */
  e2ee: E2eeSettings;
  /** Records a moderation action or a consent (fire and forget: the audit log reports its own failures). */
  audit: (record: AuditRecord) => void;
  /** Revokes a removed participant's token (its `jti`). */
  revoke: (identity: VerifiedIdentity) => Promise<void>;
  /** Keeps (or forgets) a chat message after the session, for rooms with `keepChat`. */
  chatArchive: { keep(room: string, message: ChatMessage): void; forget(room: string, messageId: string): void };
  /** Records a presence change for attendance (ids only; the recorder never blocks). */
  attendance: (event: NewAttendanceEvent) => void;
  /**
   * Plain RTP transports (SRTP, no ICE/DTLS) on this address, for the bench's load generator;
   * absent: refused.
   */
  plainTransports?: { listenIp: string; announcedIp?: string };
  /** This room's live attendance figures (ids only), as billing computes them; throws a HavenError. */
  liveAttendance: (room: RoomDefinition) => Promise<LiveFigures>;
  /**
   * Where rooms write their facilitation state through, and are restored from when they open
   * again after their node died (absent: memory only). `fence` is this node's lease on the room
   * (the cluster's): a write is applied only while Redis still names it, else skipped.
   */
  roomState?: RoomPersistenceOptions;
}
