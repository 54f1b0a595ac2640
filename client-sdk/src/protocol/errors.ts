/**
 * Error codes of the protocol and the shape of a request's acknowledgement. A request is a
 * socket.io event with an acknowledgement: the client emits `socket.emit(name, request, ack)` and
 * the server answers `ack({ ok: true, data })` or `ack({ ok: false, error: { code, message } })`.
 */
import type { ConsentInfo } from './model.ts';

export const errorCodes = [
  /** Missing, malformed, expired, revoked or otherwise unacceptable access token. */
  'UNAUTHORIZED',
  /** The caller's role or capabilities do not allow this. */
  'FORBIDDEN',
  /** The payload does not match the request's schema. */
  'INVALID_REQUEST',
  /** No such room, transport, producer or consumer. */
  'NOT_FOUND',
  /** The room is locked: nobody new gets in. */
  'ROOM_LOCKED',
  /** The room is at capacity for the caller's role. */
  'ROOM_FULL',
  /** Too many requests from this connection. */
  'RATE_LIMITED',
  /** The request is valid but not now (e.g. produce before join). */
  'INVALID_STATE',
  /** The event name is not part of the protocol. */
  'UNKNOWN_EVENT',
  /** Something failed on the server; nothing was changed. */
  'INTERNAL',
  /** The room is served by another node: connect to `url` (the SDK does by itself). */
  'REDIRECT',
  /** Not now, try again in a few seconds: the room is moving to another node, or nodes are shutting down. */
  'UNAVAILABLE',
  /** An HTTP body over the limit (64 KiB): nothing was read or changed. */
  'PAYLOAD_TOO_LARGE',
  /** Too many signaling connections open from the caller's address: one must close first. */
  'TOO_MANY_CONNECTIONS',
  /** The room is end-to-end encrypted and this client cannot encrypt (no encoded transform in the browser). */
  'E2EE_UNSUPPORTED',
] as const;
export type ErrorCode = (typeof errorCodes)[number];

export interface ProtocolError {
  code: ErrorCode;
  message: string;
  /** With `REDIRECT`: the node serving the room. */
  url?: string;
  /** With `UNAVAILABLE`: in how many ms trying again makes sense (the SDK waits that long). */
  retryAfterMs?: number;
  /** With `INVALID_REQUEST` to `acceptConsent` of a version no longer in force: the text now in force. */
  consent?: ConsentInfo;
  /** With `INTERNAL`: the id of the server's log line about the fault, to quote when reporting it. */
  errorId?: string;
}

export type Ack<T> = { ok: true; data: T } | { ok: false; error: ProtocolError };

/**
 * Codes a rejoin can overcome by trying again (later, or at another node). `TOO_MANY_CONNECTIONS`
 * is one: the connection a dropped client reconnects to replace may still be counted until the
 * node sees it gone, and connections of the same address end; the reconnect policy paces retries.
 */
const retryableCodes: readonly ErrorCode[] = [
  'RATE_LIMITED',
  'INVALID_STATE',
  'INTERNAL',
  'REDIRECT',
  'UNAVAILABLE',
  'TOO_MANY_CONNECTIONS',
];

/** Codes a rejoin cannot overcome by retrying: the SDK stops reconnecting when answered one. */
export const fatalRejoinCodes: readonly ErrorCode[] = errorCodes.filter((code) => !retryableCodes.includes(code));
