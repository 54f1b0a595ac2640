/**
 * The cap on signaling connections open at once from one client address, so that one client
 * (a script, a looping tab) cannot use up a node's connections while patients elsewhere are
 * unaffected. Addresses are kept in memory only, as counting keys; what is logged says the cap
 * was hit, never by whom.
 */
import type { Socket } from 'socket.io';
import { HavenError } from '../errors.ts';
import { addressGroup, canonicalAddress, clientAddress, type TrustedProxies } from '../http/client-address.ts';
import type { Logger } from '../logger.ts';

export interface PerAddressOptions {
  /** Connections open at once from one address (an IPv6 /64). */
  max: number;
  /** The proxies whose `X-Forwarded-For` names the client. */
  trustedProxies: TrustedProxies;
}

/** At most one "cap reached" line per this many ms (a flood would otherwise flood the log too). */
const logEveryMs = 10_000;

export class AddressCap {
  readonly #max: number;
  readonly #log: Logger;
  readonly #open = new Map<string, number>();
  #refusedUnlogged = 0;
  /** A refused connection since the last log line came through a peer that forwards, untrusted. */
  #untrustedForwarding = false;
  #loggedAt = Number.NEGATIVE_INFINITY;

  readonly #trusted: TrustedProxies;

  constructor(options: PerAddressOptions, log: Logger) {
    this.#max = options.max;
    this.#trusted = options.trustedProxies;
    this.#log = log;
  }

  /**
   * Holds a place for the connection of `socket` (at its handshake) under its client address,
   * given back when the connection closes; throws `TOO_MANY_CONNECTIONS` when there is none left.
   * Returns the way to give it back sooner (a handshake refused for another reason).
   */
  hold(socket: Pick<Socket, 'conn' | 'handshake' | 'once'>): () => void {
    const forwardedFor = socket.handshake.headers['x-forwarded-for'];
    const address = clientAddress(socket.conn.remoteAddress, forwardedFor, this.#trusted);
    // A proxy left out of http.trustedProxies makes all its clients one address: the log says so.
    const peer = canonicalAddress(socket.conn.remoteAddress ?? '');
    const untrustedForwarding = forwardedFor !== undefined && peer !== undefined && !this.#trusted.has(peer);
    const release = this.take(address === undefined ? 'unknown' : addressGroup(address), untrustedForwarding);
    if (!release) {
      throw new HavenError('TOO_MANY_CONNECTIONS', 'too many connections from this address; close one or try later');
    }
    // The engine connection's close covers a handshake that never completes; `disconnect`, a socket that ends alone.
    if (socket.conn.readyState === 'closed') release();
    else socket.conn.once('close', release);
    socket.once('disconnect', release);
    return release;
  }

  /**
   * Takes one of `group`'s places: a function giving it back (once, however often called), or
   * `undefined` when the group has `max` open already (`untrustedForwarding`: the refused
   * connection's peer, not a trusted proxy, sent `X-Forwarded-For`).
   */
  take(group: string, untrustedForwarding = false): (() => void) | undefined {
    const open = this.#open.get(group) ?? 0;
    if (open >= this.#max) {
      this.#untrustedForwarding ||= untrustedForwarding;
      this.#refused();
      return undefined;
    }
    this.#open.set(group, open + 1);
    let given = false;
    return () => {
      if (given) return;
      given = true;
      const left = (this.#open.get(group) ?? 1) - 1;
      if (left > 0) this.#open.set(group, left);
      else this.#open.delete(group);
    };
  }

  /** Connections counted for `group` now. */
  openFor(group: string): number {
    return this.#open.get(group) ?? 0;
  }

  #refused(): void {
    this.#refusedUnlogged++;
    const now = Date.now();
    if (now - this.#loggedAt < logEveryMs) return;
    this.#log.warn(
      {
        max: this.#max,
        refused: this.#refusedUnlogged,
        ...(this.#untrustedForwarding && {
          hint: 'refused connections carried X-Forwarded-For from a peer not in HAVEN_TRUSTED_PROXIES: if it is your proxy, list it there',
        }),
      },
      'signaling connections refused: per-address cap reached',
    );
    this.#untrustedForwarding = false;
    this.#loggedAt = now;
    this.#refusedUnlogged = 0;
  }
}
