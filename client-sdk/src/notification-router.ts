/**
 * Where each server notification goes, and when. Three kinds:
 * - about the room (someone joined, a track, a hand, …): held while a join answer is being
 *   applied, then replayed in order once in the room; dropped unless in the room;
 * - about this client's place (`waiting`, `admitted`): kept aside while a stage request (join,
 *   acceptConsent) is in flight, to be applied after its answer (the server may send them before
 *   it); held like room ones while a join answer is applied; otherwise handled whatever the state;
 * - final (`denied`, `removed`, `sessionEnded`, `replaced`): handled at once, whatever the state.
 * Only the current connection's notifications count, and none once the client is closed.
 */
import type { NotificationName, ServerNotifications } from './protocol/index.ts';
import type { Signaling } from './signaling.ts';

/** A handler per notification. */
export type NotificationHandlers<K extends NotificationName> = {
  [N in K]: (...args: ServerNotifications[N]) => void;
};

/** Notifications about this client's place (the join's stages). */
export type StageNotification = 'waiting' | 'admitted';

/** Notifications that end the session. */
export type FinalNotification = 'denied' | 'removed' | 'sessionEnded' | 'replaced';

/** Notifications about the room. */
export type RoomNotification = Exclude<NotificationName, StageNotification | FinalNotification | 'moved'>;

export interface NotificationRoutes {
  room: NotificationHandlers<RoomNotification>;
  stage: NotificationHandlers<StageNotification>;
  final: NotificationHandlers<FinalNotification>;
}

/** Stage notifications that arrived while a stage request was in flight (the latest of each). */
export type EarlyStage = { -readonly [N in StageNotification]: ServerNotifications[N][0] | undefined };

/** Notifications held while a join answer is applied, in arrival order. */
export type HeldNotifications = (() => void)[];

export class NotificationRouter {
  readonly #joined: () => boolean;
  #held: HeldNotifications | undefined;
  #early: EarlyStage | undefined;

  /** @param joined - whether the client is in the room (room notifications are handled only then). */
  constructor(joined: () => boolean) {
    this.#joined = joined;
  }

  /** Routes `signaling`'s notifications to `routes` while `current()` (it is the connection, not closed). */
  attach(signaling: Signaling, current: () => boolean, routes: NotificationRoutes): void {
    const on = <N extends NotificationName>(name: N, listener: (...args: ServerNotifications[N]) => void) =>
      signaling.on(name, (...args) => {
        if (current()) listener(...(args as ServerNotifications[N]));
      });
    for (const name of Object.keys(routes.room) as RoomNotification[]) {
      const handler = routes.room[name] as (...args: unknown[]) => void;
      on(name, (...args) => {
        const run = () => handler(...args);
        if (this.#held) this.#held.push(run);
        else if (this.#joined()) run();
      });
    }
    for (const name of Object.keys(routes.stage) as StageNotification[]) {
      const handler = routes.stage[name] as (...args: unknown[]) => void;
      on(name, (...args) => {
        const run = () => handler(...args);
        if (this.#early) this.#early[name] = args[0] as never;
        else if (this.#held) this.#held.push(run);
        else run();
      });
    }
    for (const name of Object.keys(routes.final) as FinalNotification[]) {
      on(name, routes.final[name] as (...args: ServerNotifications[typeof name]) => void);
    }
  }

  /** Starts holding room notifications afresh (a stage request is about to be sent). */
  hold(): HeldNotifications {
    const held: HeldNotifications = [];
    this.#held = held;
    return held;
  }

  /** What is held so far, holding from now if nothing was (an admission from the waiting room). */
  keepHolding(): HeldNotifications {
    this.#held ??= [];
    return this.#held;
  }

  /** Whether `held` is what is being held now. */
  holding(held: HeldNotifications): boolean {
    return this.#held === held;
  }

  /** Stops holding: what was held is dropped, unless the caller replays the list it has. */
  release(): void {
    this.#held = undefined;
  }

  /** Keeps stage notifications aside from now until {@link NotificationRouter.endStage}. */
  startStage(): EarlyStage {
    const early: EarlyStage = { waiting: undefined, admitted: undefined };
    this.#early = early;
    return early;
  }

  /** The stage request got its answer (or failed): stage notifications are handled again. */
  endStage(early: EarlyStage): void {
    if (this.#early === early) this.#early = undefined;
  }

  /** A new connection, or the client closed: nothing held, nothing kept aside. */
  reset(): void {
    this.#held = undefined;
    this.#early = undefined;
  }
}
