/** @internal What the parts of a SessionClient (join flow, members) see of the client: its state, connection and media. */
import type { MediaSession } from './media-session.ts';
import type { MediaOptions } from './options.ts';
import type { CloseReason, ConnectionState, SessionEvents } from './session-events.ts';
import type { Signaling } from './signaling.ts';

export interface ClientContext {
  /** The client itself, which emits the events. */
  readonly events: SessionEvents;
  state(): ConnectionState;
  setState(state: ConnectionState): void;
  /** Throws an `InvalidStateError` naming `what` unless the client is in one of `allowed`. */
  assertState(what: string, ...allowed: ConnectionState[]): void;
  /** The current connection, if any. */
  signaling(): Signaling | undefined;
  /** The current media session, if any. */
  media(): MediaSession | undefined;
  /** Whether remote tracks may be received now (in an E2EE room: once a key is active). */
  receiving(): boolean;
  /** What new media transports are created with (the client's options). */
  mediaOptions(): MediaOptions;
  close(reason: CloseReason, error?: Error): void;
}
