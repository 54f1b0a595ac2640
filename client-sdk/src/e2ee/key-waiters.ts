/** Those waiting for an epoch's key to arrive (chat sealed with a key that is not here yet). */
export class KeyWaiters {
  readonly #waiting = new Set<{ epoch: number; done: () => void }>();

  /** Resolves once epoch `epoch`'s key arrived, `timeoutMs` passed, or the wait was ended. */
  wait(epoch: number, timeoutMs: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const waiter = {
        epoch,
        done: () => {
          clearTimeout(timer);
          this.#waiting.delete(waiter);
          resolve();
        },
      };
      const timer = setTimeout(waiter.done, timeoutMs);
      this.#waiting.add(waiter);
    });
  }

  /** Epoch `epoch`'s key is here: its waiters stop waiting. */
  arrived(epoch: number): void {
    for (const waiter of [...this.#waiting]) if (waiter.epoch === epoch) waiter.done();
  }

  /** Every waiter stops waiting (the keys were forgotten). */
  endAll(): void {
    for (const waiter of [...this.#waiting]) waiter.done();
  }
}
