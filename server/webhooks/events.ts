/**
 * Webhook events: JSON POSTed to the clinic's endpoints (the types, the body, and what a caller
 * gives to emit one). Bodies carry ids, times and numbers only.
 */
import { z } from 'zod';
import type { AuditCheckpoint } from '../audit/checkpoint.ts';

export const webhookEventTypes = [
  'session.started',
  'session.ended',
  'participant.removed',
  'attendance.ready',
  'threshold.missed',
  'audit.checkpoint',
] as const;
export type WebhookEventType = (typeof webhookEventTypes)[number];

/** Job data and event body: ids, times and numbers only. */
export interface WebhookEvent {
  id: string;
  type: WebhookEventType;
  /** The room (absent for `threshold.missed`, which is about a week). */
  room?: string;
  participant?: string;
  occurredAt: string;
  /** Facts of the event, e.g. `{ week, presentSeconds, thresholdHours }` for `threshold.missed`. */
  data?: Record<string, string | number>;
}

export const webhookEventSchema = z.object({
  id: z.string(),
  type: z.enum(webhookEventTypes),
  room: z.string().optional(),
  participant: z.string().optional(),
  occurredAt: z.string(),
  data: z.record(z.string(), z.union([z.string(), z.number()])).optional(),
}) satisfies z.ZodType<WebhookEvent>;

export interface WebhookEventInput {
  room?: string;
  participant?: string;
  data?: Record<string, string | number>;
  /**
   * Makes the event's id a function of its type, room, participant and this key, so that emitting
   * the same event again (a job retried after a crash) queues nothing: every endpoint gets it once.
   */
  onceKey?: string;
}

/** Queues a webhook event; rejects if it could not. */
export type EmitWebhook = (type: WebhookEventType, input: WebhookEventInput) => Promise<void>;

/**
 * An `audit.checkpoint`: the room's audit chain head, signed (Ed25519, checkable with the audit
 * public key alone). Kept by the clinic, it is what `haven audit verify --checkpoint` checks a
 * chain's end against. Sent once per head.
 */
export function checkpointEvent(checkpoint: AuditCheckpoint): WebhookEventInput {
  const { room, seq, hash, at, kid, signature } = checkpoint;
  return { room, data: { seq, hash, at, kid, signature }, onceKey: `${seq}:${hash}` };
}
