/**
 * @internal A SessionClient's connection over its life: the first one (`connect()`), which one is
 * current, and what losing it means. The drop ends the client after `leave()` or when the server
 * disconnected it (unless the node said `moved` first: it hands the room over, so that drop is one
 * to recover from); before there is a place to get back, the state is `disconnected` again; in the
 * room, at the consent gate or in the waiting room, the {@link Reconnection} loop gets the place
 * back (or, with `reconnect: false`, the client closes).
 */
import type { ClientContext } from '../client-context.ts';
import { HavenRequestError, InvalidStateError } from '../errors.ts';
import type { JoinFlow } from '../join-flow.ts';
import type { NotificationRouter, NotificationRoutes } from '../notification-router.ts';
import type { ResolvedOptions } from '../options.ts';
import type { Signaling } from '../signaling.ts';
import { openSignaling } from './node-url-provider.ts';
import type { ReconnectPolicy } from './reconnect-policy.ts';
import { Reconnection } from './reconnection.ts';

/** What a {@link ConnectionLifecycle} needs of the client it belongs to. */
export interface ConnectionLifecycleHost extends Pick<ClientContext, 'state' | 'setState' | 'assertState' | 'close'> {
  /** The client's options: where to connect, the token, the reconnect policy. */
  options(): ResolvedOptions;
  /** The join's stages: whether there is a place to get back, the server's grace, the rejoin. */
  join: Pick<JoinFlow, 'placed' | 'graceMs' | 'rejoin'>;
  /** Routes each connection's notifications; nothing held once a drop leaves no place to get back. */
  router: Pick<NotificationRouter, 'attach' | 'release' | 'reset'>;
  /** Where `signaling`'s notifications go (session-routes.ts). */
  routes(signaling: Signaling): NotificationRoutes;
}

export class ConnectionLifecycle {
  readonly #host: ConnectionLifecycleHost;
  #signaling: Signaling | undefined;
  #leaving = false;
  /** The node said it hands the room over (`moved`): its disconnect is a drop, not an eviction. */
  #moved = false;
  /** The reconnection in progress, if any (closing the client stops it). */
  #reconnection: Reconnection | undefined;

  constructor(host: ConnectionLifecycleHost) {
    this.#host = host;
  }

  /** The current connection, if any. */
  get current(): Signaling | undefined {
    return this.#signaling;
  }

  /** Opens the first connection (see `SessionClient.connect()`). */
  async connect(): Promise<void> {
    const host = this.#host;
    host.assertState('connect()', 'disconnected');
    host.setState('connecting');
    const signaling = await openSignaling(host.options()).catch((error) => {
      if (host.state() === 'connecting') host.setState('disconnected');
      throw error;
    });
    if (host.state() !== 'connecting') {
      signaling.close();
      throw new InvalidStateError('the client was closed while connecting');
    }
    this.#attach(signaling);
    host.setState('connected');
  }

  /** `leave()` was called: the disconnect that may follow ends the client (`left`). */
  markLeaving(): void {
    this.#leaving = true;
  }

  /** The client closes: no more reconnection; the current connection, no longer the client's, is returned to close. */
  detach(): Signaling | undefined {
    this.#reconnection?.stop();
    const signaling = this.#signaling;
    this.#signaling = undefined;
    return signaling;
  }

  /** Makes `signaling` the current connection and routes its notifications. */
  #attach(signaling: Signaling): void {
    this.#signaling = signaling;
    signaling.on('disconnected', (reason) => this.#onDisconnected(signaling, reason));
    // The node hands the room over: the disconnect that follows is a drop to recover from.
    signaling.on('moved', () => {
      if (signaling === this.#signaling) this.#moved = true;
    });
    const current = () => signaling === this.#signaling && this.#host.state() !== 'closed';
    this.#host.router.attach(signaling, current, this.#host.routes(signaling));
  }

  #onDisconnected(signaling: Signaling, reason: string): void {
    if (signaling !== this.#signaling) return;
    this.#signaling = undefined;
    const host = this.#host;
    if (host.state() === 'closed') return;
    const moved = this.#moved;
    this.#moved = false;
    if (this.#leaving || (reason === 'io server disconnect' && !moved)) {
      host.close(this.#leaving ? 'left' : 'serverDisconnect');
      return;
    }
    const state = host.state();
    if (state === 'reconnecting') return; // The attempt in flight fails and the loop goes on.
    if (state === 'connected' || (state === 'joining' && !host.join.placed)) {
      // Nothing to get back: a join() in flight fails with DISCONNECTED.
      host.router.release();
      host.setState('disconnected');
      return;
    }
    // In the room, at the consent gate, in the waiting room, or on the way between them.
    const { reconnect } = host.options();
    if (reconnect) void this.#reconnect(reconnect);
    else host.close('connectionLost', new HavenRequestError('DISCONNECTED', 'the connection dropped', 'join'));
  }

  /** Gets the place back (see reconnection.ts). */
  async #reconnect(policy: ReconnectPolicy): Promise<void> {
    const host = this.#host;
    host.router.reset();
    host.setState('reconnecting');
    // A finished reconnection is kept until the next one: stopping it then does nothing.
    this.#reconnection = new Reconnection(policy, host.join.graceMs, {
      reconnecting: () => host.state() === 'reconnecting',
      tokenRefreshes: typeof host.options().token === 'function',
      open: () => openSignaling(host.options()),
      attach: (signaling) => this.#attach(signaling),
      rejoin: (signaling, answered) => host.join.rejoin(signaling, answered),
      forget: (signaling) => {
        if (this.#signaling !== signaling) return;
        this.#signaling = undefined;
        signaling.close();
      },
      fail: (error) => host.close('reconnectFailed', error),
    });
    return this.#reconnection.run();
  }
}
