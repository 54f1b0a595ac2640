/**
 * The one typed event emitter of Haven, for the SDK (browsers) and the server alike. Events are
 * declared as a map of argument tuples; `safeEmit` calls every listener and cannot be broken by
 * one that throws (the error is reported to `onListenerError`, by default `console.error`).
 */
/** An event map: each event's name to the tuple of its listener's arguments (a type or an interface). */
export type EventMap<T> = { [K in keyof T]: unknown[] };
type Listener<Args extends unknown[]> = (...args: Args) => void;
type StoredListener = (...args: unknown[]) => void;

export class TypedEmitter<Events extends EventMap<Events>> {
  #listeners = new Map<keyof Events, StoredListener[]>();

  /** Called with an error thrown by a listener; the other listeners still run. */
  onListenerError: (error: unknown, event: keyof Events) => void = (error, event) =>
    console.error(`listener of "${String(event)}" threw`, error);

  on<E extends keyof Events>(event: E, listener: Listener<Events[E]>): this {
    const list = this.#listeners.get(event) ?? [];
    list.push(listener as unknown as StoredListener);
    this.#listeners.set(event, list);
    return this;
  }

  once<E extends keyof Events>(event: E, listener: Listener<Events[E]>): this {
    const wrapper = (...args: Events[E]) => {
      this.off(event, wrapper);
      listener(...args);
    };
    return this.on(event, wrapper);
  }

  off<E extends keyof Events>(event: E, listener: Listener<Events[E]>): this {
    const list = this.#listeners.get(event);
    const at = list?.indexOf(listener as unknown as StoredListener) ?? -1;
    if (list && at >= 0) list.splice(at, 1);
    return this;
  }

  removeAllListeners(event?: keyof Events): this {
    if (event === undefined) this.#listeners.clear();
    else this.#listeners.delete(event);
    return this;
  }

  listenerCount(event: keyof Events): number {
    return this.#listeners.get(event)?.length ?? 0;
  }

  /** Calls each listener of `event` in order; returns whether there was any. */
  safeEmit<E extends keyof Events>(event: E, ...args: Events[E]): boolean {
    const list = this.#listeners.get(event);
    if (!list || list.length === 0) return false;
    for (const listener of [...list]) {
      try {
        listener(...args);
      } catch (error) {
        this.onListenerError(error, event);
      }
    }
    return true;
  }
}
