/** What the test files' `before` and `after` hooks are built from. */

/**
 * A stand-in for a value that exists only once `before` has run, so that a test file can name it
 * at the top. Methods are bound to the value itself.
 */
export function lateBound<T extends object>(what: string): { handle: T; get(): T | undefined; set(value: T): void } {
  let value: T | undefined;
  const current = (): T => {
    if (value === undefined) throw new Error(`${what} is not started yet (test.before has not run)`);
    return value;
  };
  const handle = new Proxy({} as T, {
    get(_, key) {
      const target = current();
      const member = Reflect.get(target, key, target);
      return typeof member === 'function' ? member.bind(target) : member;
    },
    set: (_, key, v) => Reflect.set(current(), key, v),
    has: (_, key) => Reflect.has(current(), key),
    getPrototypeOf: () => Reflect.getPrototypeOf(current()),
  });
  return {
    handle,
    get: () => value,
    set: (v) => {
      value = v;
    },
  };
}

/** Runs every clean-up step even when one of them throws; rethrows the first failure. */
export async function runAll(steps: (() => unknown)[]): Promise<void> {
  let failure: unknown;
  for (const step of steps) {
    try {
      await step();
    } catch (err) {
      failure ??= err;
    }
  }
  if (failure !== undefined) throw failure;
}
