/** What a refused socket.io handshake (`connect_error`) means, as a {@link HavenRequestError}. */
import { HavenRequestError } from '../errors.ts';
import type { ErrorCode } from '../protocol/index.ts';

/** The error a failed handshake (socket.io `connect_error`, with the server's `data`) stands for. */
export function handshakeError(error: Error & { data?: unknown }): HavenRequestError {
  const data = error.data as
    | { code?: unknown; message?: unknown; url?: unknown; retryAfterMs?: unknown; errorId?: unknown }
    | undefined;
  if (typeof data?.code === 'string') {
    const message = typeof data.message === 'string' ? data.message : error.message;
    const details = {
      ...(typeof data.url === 'string' ? { url: data.url } : {}),
      ...(typeof data.retryAfterMs === 'number' ? { retryAfterMs: data.retryAfterMs } : {}),
      ...(typeof data.errorId === 'string' ? { errorId: data.errorId } : {}),
    };
    return new HavenRequestError(data.code as ErrorCode, message, 'connect', details);
  }
  if (error.message === 'UNAUTHORIZED') return new HavenRequestError('UNAUTHORIZED', 'access token refused', 'connect');
  if (error.message === 'timeout')
    return new HavenRequestError('TIMEOUT', 'no connection to the server in time', 'connect');
  return new HavenRequestError('DISCONNECTED', `could not reach the server (${error.message})`, 'connect');
}
