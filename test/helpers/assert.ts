/** Assertions uvu does not have. */
import * as assert from 'uvu/assert';

/** Asserts that `fn` rejects with an error whose message matches `pattern`; returns the error. */
export async function rejects(fn: () => Promise<unknown>, pattern: RegExp): Promise<Error> {
  try {
    await fn();
  } catch (err) {
    assert.match(String((err as Error)?.message ?? err), pattern);
    return err as Error;
  }
  assert.unreachable(`expected a rejection matching ${pattern}`);
  throw new Error('unreachable');
}

/** Asserts that `fn` rejects with an instance of `type` (whose message matches `pattern`, if given); returns it. */
export async function throwsAsync(fn: () => Promise<unknown>, type: new (...args: never[]) => Error, pattern?: RegExp) {
  try {
    await fn();
  } catch (error) {
    assert.instance(error, type);
    if (pattern) assert.match((error as Error).message, pattern);
    return error as Error;
  }
  assert.unreachable(`expected a ${type.name}`);
  throw new Error('unreachable');
}
