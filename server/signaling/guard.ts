/**
 * Containment for socket.io entry points. Whatever a listener throws or rejects with stays in
 * that listener: it is logged with an `errorId` and the connection (and the node) goes on. An
 * exception that escaped a socket.io listener would otherwise end the process, and every session
 * on it, for one client's frame.
 */
import { answerFailure } from '../errors.ts';
import type { Logger } from '../logger.ts';

/**
 * The largest socket.io frame (or long-polling body) the transport takes: a 1 MiB payload plus
 * framing. Below it, everything gets a coded answer (a token over 8 KiB, a chat text over 2,000
 * characters…); above it, only closing the connection is possible (WebSocket close code 1009).
 */
export const maxFrameBytes = 1024 * 1024 + 64 * 1024;

/** `listener`, made unable to throw or reject past itself. */
export function guarded<A extends unknown[]>(
  log: Logger,
  listenerName: string,
  listener: (...args: A) => unknown,
): (...args: A) => void {
  const contain = (err: unknown) => void answerFailure(err, log, { listener: listenerName });
  return (...args: A) => {
    try {
      const result = listener(...args);
      if (result instanceof Promise) result.catch(contain);
    } catch (err) {
      contain(err);
    }
  };
}

/** Names that look like protocol names are logged as they are; anything else by type and size only. */
export function loggableEventName(name: unknown): string {
  if (typeof name === 'string' && /^[A-Za-z][A-Za-z0-9_]{0,63}$/.test(name)) return name;
  const size = typeof name === 'string' ? name.length : String(name).length;
  return `<${typeof name}, ${size} characters>`;
}
