/** The value types configuration keys are built from, read alike from JSON and from the environment. */
import { z } from 'zod';

export const port = z.coerce.number().int().min(0).max(65535);
export const positiveInt = z.coerce.number().int().positive();
/** A boolean from JSON, or from an environment variable (`true`/`false`, `1`/`0`, `yes`/`no`). */
export const flag = z.union([z.boolean(), z.stringbool()]);
/** A list from JSON, or a comma-separated environment variable. */
export const list = <T extends z.ZodType>(item: T) =>
  z.preprocess(
    (v) =>
      typeof v === 'string'
        ? v
            .split(',')
            .map((s) => s.trim())
            .filter(Boolean)
        : v,
    z.array(item),
  );
