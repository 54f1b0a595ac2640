/**
 * One socket.io connection to a Haven server: typed requests with acknowledgements and a
 * deadline, and the server's notifications as typed events. It never reconnects by itself (the
 * SessionClient does, with a fresh connection per attempt: see connection/connection-lifecycle.ts).
 */
import { io, type Socket } from 'socket.io-client';
import { handshakeError } from './connection/handshake-error.ts';
import { backoffDelay } from './connection/reconnect-policy.ts';
import { HavenRequestError } from './errors.ts';
import type {
  Ack,
  ClientToServerEvents,
  NotificationName,
  RequestName,
  RequestOf,
  ResponseOf,
  ServerNotifications,
  ServerToClientEvents,
} from './protocol/index.ts';
import { TypedEmitter } from './protocol/typed-emitter.ts';

type HavenSocket = Socket<ServerToClientEvents, ClientToServerEvents>;

/** Every notification of the protocol (a compile error here means the protocol grew one). */
const notifications = {
  participantJoined: true,
  participantLeft: true,
  trackPublished: true,
  trackUnpublished: true,
  trackUpdated: true,
  consumerClosed: true,
  activeSpeaker: true,
  mediaReset: true,
  sessionEnded: true,
  replaced: true,
  waiting: true,
  admitted: true,
  denied: true,
  waitingRoomChanged: true,
  attendanceUpdated: true,
  mutedByFacilitator: true,
  unmuteRequested: true,
  removed: true,
  roomLocked: true,
  audioModeChanged: true,
  displayNameChanged: true,
  spotlightChanged: true,
  handRaised: true,
  handLowered: true,
  chatMessage: true,
  chatMessageDeleted: true,
  connectionQualityChanged: true,
  audioOnlyChanged: true,
  audioOnlySuggested: true,
  consumerPaused: true,
  publisherLayers: true,
  e2eeRoster: true,
  e2eeKey: true,
  e2eeEpochActive: true,
  moved: true,
  breakoutsChanged: true,
  breakoutHelpRequested: true,
  breakoutStarted: true,
  movedToBreakout: true,
  breakoutEnding: true,
  breakoutEnded: true,
  broadcastReceived: true,
} satisfies Record<NotificationName, true>;
export const notificationNames = Object.keys(notifications) as NotificationName[];

export type SignalingEvents = ServerNotifications & {
  /** The connection dropped (socket.io's reason, e.g. `'transport close'`, `'io server disconnect'`). */
  disconnected: [reason: string];
};

export interface SignalingOptions {
  url: string;
  path: string;
  token: string;
  connectTimeoutMs: number;
  requestTimeoutMs: number;
}

/**
 * Retries of a request refused with `RATE_LIMITED` (the server refuses those before doing
 * anything, so a retry is safe): a rejoin in a big room sends a burst of consume requests.
 */
const rateLimitedRetries = 4;

/** Loose view of socket.io's typed `timeout(ms).emit`, for one generic request function. */
type TimedEmit = (
  event: string,
  payload: unknown,
  callback: (error: Error | null, response: Ack<unknown> | undefined) => void,
) => void;

function isAck(value: unknown): value is Ack<unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const { ok } = value as { ok?: unknown };
  if (ok === true) return true;
  const { error } = value as { error?: { code?: unknown } };
  return ok === false && typeof error === 'object' && error !== null && typeof error.code === 'string';
}

export class Signaling extends TypedEmitter<SignalingEvents> {
  readonly #socket: HavenSocket;
  readonly #requestTimeoutMs: number;
  #closed = false;

  private constructor(socket: HavenSocket, requestTimeoutMs: number) {
    super();
    this.#socket = socket;
    this.#requestTimeoutMs = requestTimeoutMs;
    for (const name of notificationNames) {
      const forward = (...args: unknown[]) => {
        if (!this.#closed) this.safeEmit(name, ...(args as SignalingEvents[typeof name]));
      };
      (this.#socket as unknown as Socket).on(name, forward);
    }
    this.#socket.on('disconnect', (reason) => {
      if (this.#closed) return;
      this.#closed = true;
      this.safeEmit('disconnected', reason);
    });
  }

  /** Connects; rejects with a `HavenRequestError` (`UNAUTHORIZED`, `TIMEOUT`, `DISCONNECTED`, …). */
  static open(options: SignalingOptions): Promise<Signaling> {
    const socket: HavenSocket = io(options.url, {
      path: options.path,
      auth: { token: options.token },
      transports: ['websocket'],
      // One connection per attempt: the SessionClient runs its own reconnection loop.
      reconnection: false,
      forceNew: true,
      autoConnect: false,
      timeout: options.connectTimeoutMs,
    });
    return new Promise((resolve, reject) => {
      const onConnect = () => {
        socket.off('connect_error', onError);
        resolve(new Signaling(socket, options.requestTimeoutMs));
      };
      const onError = (error: Error) => {
        socket.off('connect', onConnect);
        socket.disconnect();
        reject(handshakeError(error));
      };
      socket.once('connect', onConnect);
      socket.once('connect_error', onError);
      socket.connect();
    });
  }

  /** Whether the connection is up. */
  get connected(): boolean {
    return !this.#closed && this.#socket.connected;
  }

  /**
   * Sends request `name` and resolves with the `data` of its acknowledgement; rejects with a
   * `HavenRequestError`: the server's code, `TIMEOUT` after `requestTimeoutMs`, or `DISCONNECTED`
   * (never sent, or the connection dropped before the answer). A request is never buffered for a
   * later connection. One refused with `RATE_LIMITED` is retried up to 4 times, 0.25–2 s apart.
   */
  async request<K extends RequestName>(name: K, payload: RequestOf<K>): Promise<ResponseOf<K>> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.#send(name, payload);
      } catch (error) {
        const limited = error instanceof HavenRequestError && error.code === 'RATE_LIMITED';
        if (!limited || attempt >= rateLimitedRetries || !this.connected) throw error;
        const wait = 250 + backoffDelay(attempt, { baseDelayMs: 250, maxDelayMs: 1_750 });
        await new Promise((resolve) => setTimeout(resolve, wait));
      }
    }
  }

  #send<K extends RequestName>(name: K, payload: RequestOf<K>): Promise<ResponseOf<K>> {
    if (!this.connected) {
      return Promise.reject(new HavenRequestError('DISCONNECTED', 'not connected to the server', name));
    }
    return new Promise((resolve, reject) => {
      const timed = this.#socket.timeout(this.#requestTimeoutMs) as unknown as { emit: TimedEmit };
      timed.emit(name, payload, (error, response) => {
        if (error) {
          const timedOut = error.message === 'operation has timed out';
          const code = timedOut ? 'TIMEOUT' : 'DISCONNECTED';
          const message = timedOut ? `no answer within ${this.#requestTimeoutMs} ms` : 'the connection dropped';
          reject(new HavenRequestError(code, message, name));
        } else if (!isAck(response)) {
          reject(new HavenRequestError('INTERNAL', 'malformed answer from the server', name));
        } else if (response.ok) {
          resolve(response.data as ResponseOf<K>);
        } else {
          const { code, message, consent, errorId } = response.error;
          reject(new HavenRequestError(code, message, name, { consent, errorId }));
        }
      });
    });
  }

  /** Closes the connection (no `disconnected` event); pending requests fail with `DISCONNECTED`. Idempotent. */
  close(): void {
    this.#closed = true;
    this.removeAllListeners();
    this.#socket.disconnect();
  }
}
