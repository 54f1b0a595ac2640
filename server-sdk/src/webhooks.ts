/**
 * Webhook signatures, both sides in one place: Haven's webhook worker signs with `signWebhook`, a
 * portal's receiver checks with `verifyWebhook`, so the two cannot drift apart.
 *
 * `Haven-Signature: v1=<hex HMAC-SHA256(secret, "<Haven-Timestamp>.<raw body>")>`, with
 * `Haven-Timestamp` in Unix seconds; the timestamp is signed too, so an old delivery cannot be
 * replayed under a fresh one.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { HavenWebhookError } from './errors.ts';
import type { components } from './generated/openapi.ts';

export type WebhookEvent = components['schemas']['WebhookEvent'];

/** Request headers as `node:http` gives them (names in lower case), or a Fetch API `Headers`. */
export type WebhookHeaders = Record<string, string | string[] | undefined> | { get(name: string): string | null };

export interface VerifyWebhookOptions {
  /** The delivery's request headers: `Haven-Signature` and `Haven-Timestamp` are read. */
  headers: WebhookHeaders;
  /** The body exactly as received, before any JSON parsing (a re-serialised body does not verify). */
  rawBody: string | Uint8Array;
  /** `HAVEN_WEBHOOK_SECRET`, the node's signing secret. */
  secret: string;
  /** Largest distance between `Haven-Timestamp` and now, in seconds. Default 300. */
  toleranceS?: number;
  /** The current time in ms since the epoch. Default `Date.now()`. */
  nowMs?: number;
}

/** The `Haven-Signature` value for `body` sent at `timestamp` (Unix seconds). */
export function signWebhook(secret: string, timestamp: number, body: string | Uint8Array): string {
  return `v1=${createHmac('sha256', secret).update(`${timestamp}.`).update(body).digest('hex')}`;
}

/**
 * Checks a delivery's signature and age, then parses its body. Resolves nothing asynchronously:
 * returns the event, or throws a `HavenWebhookError` (`MISSING_SIGNATURE`, `INVALID_SIGNATURE`,
 * `STALE_TIMESTAMP`, `INVALID_PAYLOAD`). A TypeError means the options themselves are wrong.
 */
export function verifyWebhook(options: VerifyWebhookOptions): WebhookEvent {
  const { headers, rawBody, secret, toleranceS = 300, nowMs = Date.now() } = options;
  if (typeof secret !== 'string' || secret === '') throw new TypeError('secret must be a non-empty string');
  if (typeof rawBody !== 'string' && !(rawBody instanceof Uint8Array)) {
    throw new TypeError('rawBody must be the body as received: a string or a Buffer');
  }
  if (!(toleranceS > 0)) throw new TypeError('toleranceS must be a positive number of seconds');

  const signature = header(headers, 'haven-signature');
  const timestampText = header(headers, 'haven-timestamp');
  if (signature === undefined || !/^v1=[0-9a-f]{64}$/.test(signature)) {
    throw new HavenWebhookError('MISSING_SIGNATURE', 'no Haven-Signature header of the form v1=<64 hex digits>');
  }
  if (timestampText === undefined || !/^\d{1,12}$/.test(timestampText)) {
    throw new HavenWebhookError('MISSING_SIGNATURE', 'no Haven-Timestamp header in Unix seconds');
  }
  const timestamp = Number(timestampText);
  const expected = Buffer.from(signWebhook(secret, timestamp, rawBody));
  if (!timingSafeEqual(expected, Buffer.from(signature))) {
    throw new HavenWebhookError('INVALID_SIGNATURE', 'the signature does not match this body and secret');
  }
  // Checked after the signature, so that a forger learns nothing from the reason.
  if (Math.abs(nowMs / 1000 - timestamp) > toleranceS) {
    throw new HavenWebhookError('STALE_TIMESTAMP', `Haven-Timestamp is more than ${toleranceS} s from now`);
  }
  return parseEvent(typeof rawBody === 'string' ? rawBody : Buffer.from(rawBody).toString('utf8'));
}

/** One header's value; a repeated header is refused rather than guessed at. */
function header(headers: WebhookHeaders, name: string): string | undefined {
  if (typeof headers.get === 'function') return headers.get(name) ?? undefined;
  const value = (headers as Record<string, string | string[] | undefined>)[name];
  return typeof value === 'string' ? value.trim() : undefined;
}

function parseEvent(body: string): WebhookEvent {
  let event: unknown;
  try {
    event = JSON.parse(body);
  } catch {
    throw new HavenWebhookError('INVALID_PAYLOAD', 'the body is not JSON');
  }
  const fields = event as Partial<Record<keyof WebhookEvent, unknown>> | null;
  // Any `type`: an event type newer than this package is still Haven's, and still signed.
  if (
    typeof fields !== 'object' ||
    fields === null ||
    typeof fields.id !== 'string' ||
    typeof fields.type !== 'string' ||
    typeof fields.occurredAt !== 'string'
  ) {
    throw new HavenWebhookError('INVALID_PAYLOAD', 'the body is not a Haven event ({ id, type, occurredAt, … })');
  }
  return event as WebhookEvent;
}
