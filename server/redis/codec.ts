/**
 * What the codec of every Redis key and stream (one module each, next to its writer) shares:
 * a stream entry's fields as a record, and JSON text read through a zod schema.
 */
import { z } from 'zod';

/** `[name, value, name, value, …]` (XRANGE's fields) as a record; a repeated name keeps its last value. */
export function fieldsOf(fields: readonly string[]): Record<string, string> {
  const record: Record<string, string> = Object.create(null);
  for (let i = 0; i + 1 < fields.length; i += 2) record[fields[i] as string] = fields[i + 1] as string;
  return record;
}

/** A string holding JSON that `schema` accepts; `message` says it is not JSON. */
export function jsonText<T extends z.ZodType>(schema: T, message = 'not JSON') {
  return z
    .string()
    .transform((text, ctx) => {
      try {
        return JSON.parse(text) as unknown;
      } catch {
        ctx.addIssue({ code: 'custom', message });
        return z.NEVER;
      }
    })
    .pipe(schema);
}

/** Parses `text` as JSON `schema` accepts; undefined when it is not. */
export function parseJson<T extends z.ZodType>(schema: T, text: string): z.output<T> | undefined {
  const parsed = jsonText(schema).safeParse(text);
  return parsed.success ? parsed.data : undefined;
}
