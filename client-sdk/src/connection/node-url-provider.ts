/**
 * Which node to connect to. Always start from the entry URL (any node, or a load balancer in
 * front of them): a node that does not serve the room refuses the handshake with `REDIRECT` and
 * the URL of the one that does, wherever the room moved since the last connection.
 */
import { HavenRequestError } from '../errors.ts';
import { obtainToken, type ResolvedOptions } from '../options.ts';
import { Signaling } from '../signaling.ts';

/** Redirects followed per connection: a room moving while the client follows it may need two. */
export const maxRedirects = 3;

/**
 * Opens a connection with `open`, from `entryUrl`, following up to {@link maxRedirects}
 * `REDIRECT` refusals (a `HavenRequestError` carrying `url`); any other failure, or one redirect
 * too many, rejects with that error.
 */
export async function followRedirects<T>(entryUrl: string, open: (url: string) => Promise<T>): Promise<T> {
  let target = entryUrl;
  for (let hop = 0; ; hop++) {
    try {
      return await open(target);
    } catch (error) {
      const redirect = error instanceof HavenRequestError && error.code === 'REDIRECT' ? error.url : undefined;
      if (!redirect || hop >= maxRedirects) throw error;
      target = redirect;
    }
  }
}

/** Fetches a token and opens a connection with it, on the node that serves the room. */
export async function openSignaling(options: ResolvedOptions): Promise<Signaling> {
  const { token, url, socketPath, connectTimeoutMs, requestTimeoutMs } = options;
  const value = await obtainToken(token, connectTimeoutMs);
  return followRedirects(url, (target) =>
    Signaling.open({ url: target, path: socketPath, token: value, connectTimeoutMs, requestTimeoutMs }),
  );
}
