/** Options of a {@link SessionClient}, their defaults and their validation. */
import { BackoffReconnectPolicy, type ReconnectOptions, type ReconnectPolicy } from './connection/reconnect-policy.ts';
import { HavenRequestError } from './errors.ts';
import { socketPath as defaultSocketPath } from './protocol/index.ts';

/** mediasoup-client's built-in WebRTC handlers (its `BuiltinHandlerName`). */
export type MediaHandlerName = 'Chrome111' | 'Chrome74' | 'Firefox120' | 'Safari12' | 'ReactNative106';

/** Where a {@link SessionClient} connects and how it behaves. */
export interface SessionClientOptions {
  /** Haven server's base URL, e.g. `https://sessions.example-clinic.org`. Required. */
  url: string;
  /**
   * Access token minted by the embedding app's backend, or a function that fetches a fresh one.
   * A function is called before every connection attempt (so reconnections after a long outage
   * get an unexpired token); with a plain string, a refused token ends reconnection. A function
   * that throws, rejects, resolves to no string or takes longer than `connectTimeoutMs` fails the
   * attempt with `TOKEN_UNAVAILABLE` (`cause`: what it threw); while reconnecting the SDK keeps
   * calling it until the grace window has passed. Required.
   */
  token: string | (() => Promise<string>);
  /**
   * Automatic reconnection after a dropped connection: options of the default policy (see
   * {@link ReconnectOptions}), a {@link ReconnectPolicy} of the app's own, or `false` to turn it
   * off. Default: on, with the default policy.
   */
  reconnect?: ReconnectOptions | ReconnectPolicy | false;
  /** socket.io path of the server. Default `'/socket.io'` (the protocol's `socketPath`). */
  socketPath?: string;
  /** Longest wait for the answer to one request, in ms. Default `10000`. */
  requestTimeoutMs?: number;
  /** Longest wait for the connection handshake, in ms. Default `10000`. */
  connectTimeoutMs?: number;
  /**
   * mediasoup-client handler to use. Default: detected from the browser. Set `'Chrome111'` in
   * Node with `@roamhq/wrtc` (there is no user agent to detect).
   */
  mediasoupHandlerName?: MediaHandlerName;
  /**
   * Which ICE candidates the media transports may use: `'all'` (default: direct to the server
   * when the network allows, else through the TURN relay the server hands out) or `'relay'`
   * (only through the TURN relay, as a strict clinic policy requires or to check a relay works).
   * With `'relay'` and no TURN configured on the server, media never connects.
   */
  iceTransportPolicy?: IceTransportPolicy;
}

/** RTCPeerConnection's `iceTransportPolicy`, for both media transports. */
export type IceTransportPolicy = 'all' | 'relay';

/** What the media transports are created with. */
export interface MediaOptions {
  handlerName: MediaHandlerName | undefined;
  iceTransportPolicy: IceTransportPolicy;
}

/** Options with every default filled in. */
export interface ResolvedOptions {
  url: string;
  token: string | (() => Promise<string>);
  reconnect: ReconnectPolicy | false;
  socketPath: string;
  requestTimeoutMs: number;
  connectTimeoutMs: number;
  media: MediaOptions;
}

const handlerNames: readonly MediaHandlerName[] = ['Chrome111', 'Chrome74', 'Firefox120', 'Safari12', 'ReactNative106'];
const icePolicies: readonly IceTransportPolicy[] = ['all', 'relay'];

function positiveNumber(value: unknown, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new TypeError(`${name} must be a positive number of ms`);
  }
  return value;
}

/** Checks `options` and fills in the defaults; throws a `TypeError` naming the first bad option. */
export function resolveOptions(options: SessionClientOptions): ResolvedOptions {
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
  const { url, token, reconnect, socketPath, mediasoupHandlerName, iceTransportPolicy = 'all' } = options;
  if (typeof url !== 'string' || url.length === 0) throw new TypeError('url must be a non-empty string');
  if (!(typeof token === 'string' && token.length > 0) && typeof token !== 'function') {
    throw new TypeError('token must be a non-empty string or a function returning a promise of one');
  }
  if (socketPath !== undefined && (typeof socketPath !== 'string' || !socketPath.startsWith('/'))) {
    throw new TypeError("socketPath must be a string starting with '/'");
  }
  if (mediasoupHandlerName !== undefined && !handlerNames.includes(mediasoupHandlerName)) {
    throw new TypeError(`mediasoupHandlerName must be one of ${handlerNames.join(', ')}`);
  }
  if (!icePolicies.includes(iceTransportPolicy)) {
    throw new TypeError(`iceTransportPolicy must be one of ${icePolicies.join(', ')}`);
  }
  return {
    url,
    token,
    reconnect: reconnect === false ? false : resolveReconnect(reconnect),
    socketPath: socketPath ?? defaultSocketPath,
    requestTimeoutMs: positiveNumber(options.requestTimeoutMs, 'requestTimeoutMs', 10_000),
    connectTimeoutMs: positiveNumber(options.connectTimeoutMs, 'connectTimeoutMs', 10_000),
    media: { handlerName: mediasoupHandlerName, iceTransportPolicy },
  };
}

/** The app's own policy, or the default one with the options checked. */
function resolveReconnect(reconnect: ReconnectOptions | ReconnectPolicy | undefined): ReconnectPolicy {
  if (reconnect !== undefined && (typeof reconnect !== 'object' || reconnect === null)) {
    throw new TypeError('reconnect must be an object or false');
  }
  if (reconnect && 'nextRetryDelayMs' in reconnect) {
    if (typeof reconnect.nextRetryDelayMs !== 'function') {
      throw new TypeError('reconnect.nextRetryDelayMs must be a function');
    }
    return reconnect;
  }
  return new BackoffReconnectPolicy(reconnect);
}

/**
 * The token for one connection attempt: the string, or what the function resolves to within
 * `timeoutMs`. Anything else is a `HavenRequestError` `TOKEN_UNAVAILABLE` (e.g. the embedding
 * app's `fetch` failed), never a bare error without a code.
 */
export async function obtainToken(token: ResolvedOptions['token'], timeoutMs: number): Promise<string> {
  if (typeof token === 'string') return token;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(new HavenRequestError('TOKEN_UNAVAILABLE', `the token function took over ${timeoutMs} ms`, 'connect')),
      timeoutMs,
    );
  });
  let value: unknown;
  try {
    value = await Promise.race([Promise.resolve().then(token), late]);
  } catch (error) {
    if (error instanceof HavenRequestError) throw error;
    const message = error instanceof Error ? error.message : String(error);
    throw new HavenRequestError('TOKEN_UNAVAILABLE', `the token function failed: ${message}`, 'connect', {}, error);
  } finally {
    clearTimeout(timer);
  }
  if (typeof value !== 'string' || value.length === 0) {
    throw new HavenRequestError(
      'TOKEN_UNAVAILABLE',
      'the token function must resolve to a non-empty string',
      'connect',
    );
  }
  return value;
}
