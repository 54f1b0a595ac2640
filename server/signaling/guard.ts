/**
 * Containment for socket.io entry points. Whatever a listener throws or rejects with stays in
 * that listener: it is logged with an `errorId` and the connection (and the node) goes on. An
 * exception that escaped a socket.io listener would otherwise end the process, and every session
 * on it, for one client's frame.
 */
import { createHash } from 'node:crypto';
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

/**
 * An unknown event name as a log line may show it: its type, its length and a short hash. The
 * name itself is whatever a client chose to send and could be anything (a person's name, say);
 * the hash still lets someone who suspects a name (an SDK newer than the node) check it.
 */
export function loggableEventName(name: unknown): string {
  const text = typeof name === 'string' ? name : String(name);
  const hash = createHash('sha256').update(text).digest('hex').slice(0, 12);
  return `${typeof name}:${text.length}:${hash}`;
}
