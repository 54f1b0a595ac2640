/**
 * What the bench's commands share on their command line: a usage error (the command exits 2),
 * whole-number options within bounds, and reading the options or printing why not.
 */
export class UsageError extends Error {}

/** `value` as a whole number from `min` to `max`; else a UsageError naming `--name` (and `usage`, if given). */
export function wholeNumber(name: string, value: string | undefined, min: number, max: number, usage?: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new UsageError(`--${name}: a whole number from ${min} to ${max}${usage ? `\n${usage}` : ''}`);
  }
  return n;
}

/** The options `read` returns, or undefined once a UsageError's message is printed (exit 2 then). */
export function optionsOrUsage<T>(read: () => T): T | undefined {
  try {
    return read();
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    console.error(err.message);
    return undefined;
  }
}
