/**
 * Renders the configuration reference (the README's table) from the schema, so the README
 * cannot drift from the code: `npm run config:doc` prints it, a test compares it with the README.
 */
import type { z } from 'zod';
import { type ConfigKey, configFileEnv, configSchema, envNames } from './schema.ts';

/** Defaults that depend on the machine or the mode, said in words. */
const defaultsInWords: Partial<Record<ConfigKey, string>> = {
  'media.workers': 'one per core',
  'log.format': '`pretty` (development), `json` (production)',
  'redis.url': 'embedded `redis-server`',
  'auth.secret': 'random per start (development)',
  'rooms.autoCreate': '`true` (development), `false` (production)',
  demo: '`true` (development), `false` (production)',
  'http.trustedProxies': 'none',
  'turn.urls': 'none',
  'webhooks.urls': 'none',
};

type AnySchema = z.ZodType & { def: { type: string; innerType?: AnySchema; shape?: Record<string, AnySchema> } };

function unwrap(schema: AnySchema): AnySchema {
  const inner = schema.def.innerType;
  return inner && ['default', 'optional', 'prefault'].includes(schema.def.type) ? unwrap(inner) : schema;
}

function field(path: string): AnySchema {
  let schema = configSchema as unknown as AnySchema;
  for (const part of path.split('.')) {
    const shape = unwrap(schema).def.shape;
    const next = shape?.[part];
    if (!next) throw new Error(`no config key ${path}`);
    schema = next;
  }
  return schema;
}

function defaultOf(key: ConfigKey, schema: AnySchema): string {
  const words = defaultsInWords[key];
  if (words) return words;
  if (schema.def.type !== 'default') return '–';
  const value = (schema.def as unknown as { defaultValue: unknown }).defaultValue;
  return `\`${String(value)}\``;
}

export function renderConfigTable(): string {
  const rows = Object.entries(envNames).map(([key, env]) => {
    const schema = field(key);
    const inner = unwrap(schema) as AnySchema & { options?: readonly string[] };
    const allowed =
      inner.def.type === 'enum' && inner.options ? ` One of ${inner.options.map((o) => `\`${o}\``).join(', ')}.` : '';
    return `| \`${env}\` | \`${key}\` | ${defaultOf(key as ConfigKey, schema)} | ${schema.description ?? ''}${allowed} |`;
  });
  return [`| Variable | Key in the \`${configFileEnv}\` file | Default | Meaning |`, '|---|---|---|---|', ...rows].join(
    '\n',
  );
}

if (import.meta.url === `file://${process.argv[1]}`) process.stdout.write(`${renderConfigTable()}\n`);
