/**
 * Reads the configuration: defaults ← JSON file (`HAVEN_CONFIG`) ← environment variables, then
 * validates it once against the schema. A bad value is a `ConfigError` naming each key, its
 * environment variable, what is allowed and what was given.
 */
import { readFileSync } from 'node:fs';
import { type Config, type ConfigKey, configFileEnv, configSchema, envNames } from './schema.ts';

export interface ConfigProblem {
  key: string;
  env?: string;
  message: string;
  received?: unknown;
}

export class ConfigError extends Error {
  readonly problems: ConfigProblem[];
  constructor(problems: ConfigProblem[]) {
    super(
      `invalid configuration:\n${problems
        .map((p) => {
          const where = p.env ? `${p.key} (${p.env})` : p.key;
          const given = p.received === undefined ? '' : ` (given: ${JSON.stringify(p.received)})`;
          return `  ${where}: ${p.message}${given}`;
        })
        .join('\n')}`,
    );
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

type Raw = Record<string, unknown>;

/** The value at `path`; for an item of a list given as one comma-separated string, that string. */
function getPath(obj: Raw, path: readonly PropertyKey[]): unknown {
  let node: unknown = obj;
  for (const part of path) {
    if (typeof node === 'string') return node;
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Raw)[part as string];
  }
  return node;
}

function setPath(obj: Raw, path: string, value: unknown): void {
  const parts = path.split('.');
  let node = obj;
  for (const part of parts.slice(0, -1)) {
    if (node[part] === null || typeof node[part] !== 'object') node[part] = {};
    node = node[part] as Raw;
  }
  node[parts[parts.length - 1] as string] = value;
}

function readFile(file: string): Raw {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError([{ key: configFileEnv, message: `cannot read ${file}: ${(err as Error).message}` }]);
  }
  try {
    const parsed: unknown = JSON.parse(text);
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not a JSON object');
    return parsed as Raw;
  } catch (err) {
    throw new ConfigError([{ key: configFileEnv, message: `${file} is not a JSON object: ${(err as Error).message}` }]);
  }
}

/** The variable of the key at `path`, or of the key it is an item of (`turn.urls.1`: `HAVEN_TURN_URLS`). */
function envOf(path: readonly PropertyKey[]): string | undefined {
  for (let n = path.length; n > 0; n--) {
    const env = envNames[path.slice(0, n).join('.') as ConfigKey];
    if (env) return env;
  }
  return undefined;
}

/** Loads and validates the configuration; throws `ConfigError` when any value is invalid. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const file = env[configFileEnv];
  const raw: Raw = file ? readFile(file) : {};
  for (const [key, name] of Object.entries(envNames)) {
    const value = env[name];
    if (value !== undefined && value !== '') setPath(raw, key, value);
  }
  const result = configSchema.safeParse(raw);
  if (result.success) return result.data;
  throw new ConfigError(
    result.error.issues.map((issue) => {
      const key = issue.path.join('.');
      const isUnknown = issue.code === 'unrecognized_keys';
      return {
        key: key || '(root)',
        env: envOf(issue.path),
        message: issue.message,
        received: isUnknown ? undefined : getPath(raw, issue.path),
      };
    }),
  );
}
