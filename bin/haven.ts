/**
 * Haven's command line.
 * - `haven token` mints an access token (for development, tests and ops checks; a clinic's backend
 *   mints its own with @haven/server-sdk). Prints only the token on stdout, so
 *   `TOKEN=$(haven token …)` works; errors go to stderr, exit 2.
 * - `haven audit verify|show` checks or prints a room's audit log (server/audit/audit-log.ts).
 *
 * Run as: node --import tsx bin/haven.ts token --room R --role participant --sub S --name N
 */
import { readFileSync } from 'node:fs';
import { type ParseArgsConfig, parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { type Capabilities, idPattern, type Role } from '../client-sdk/src/protocol/index.ts';
import { loadConfig } from '../config/load.ts';
import { AuditLog, type AuditVerification } from '../server/audit/audit-log.ts';
import { type AuditCheckpoint, checkpointsInLines, parseCheckpoint } from '../server/audit/checkpoint.ts';
import { AuditKeys, readKeyFile } from '../server/audit/keys.ts';
import { type RedisConnection, redisConnectionOf, redisOptions } from '../server/redis/connection.ts';
import type { TokenAlgorithm } from '../server-sdk/src/keys.ts';
import { mintAccessToken } from '../server-sdk/src/mint.ts';

const usage = `Usage: haven <command> [options]

Commands:
  token    Mint an access token (haven token --help)
  audit    Verify or print a room's audit log (haven audit --help)

Options:
  -h, --help    Show this help
`;

const tokenUsage = `Usage: haven token --room ROOM --role ROLE --sub ID --name NAME [options]

Mints a Haven access token and prints it (only it) on stdout.

Required:
  --room ROOM        Room id (letters, digits, . _ : -; at most 128 characters)
  --role ROLE        facilitator, participant or observer
  --sub ID           Pseudonymous participant id (same alphabet as --room); never a real name
  --name NAME        Display name shown to the others in the room

Options:
  --ttl SECONDS      Lifetime (default 3600; the server refuses more than auth.maxTokenLifetimeS)
  --caps LIST        Capability overrides, e.g. publishScreen=true,chat=false
                     (publishAudio, publishVideo, publishScreen, chat)
  --issuer ISS       iss claim (default $HAVEN_AUTH_ISSUER, else "haven")
  --audience AUD     aud claim (default $HAVEN_AUTH_AUDIENCE, else "haven")
  --jti ID           Token id, for revocation (default: a random UUID)
  --key FILE         PEM private key (RSA or EC P-256) instead of the HS256 secret
  --alg ALG          HS256, RS256 or ES256 (default: HS256 with the secret, from the key otherwise)
  -h, --help         Show this help

Environment:
  HAVEN_AUTH_SECRET  HS256 secret (32+ characters) when --key is not given
`;

const auditUsage = `Usage: haven audit verify --room ROOM [--redis URL] [--key FILE]
                          [--checkpoint JSON]... [--checkpoints FILE]
       haven audit show --room ROOM [--from SEQ] [--count N] [--redis URL]

verify  Walks the room's audit chain (hashes, prev links, seq 1, 2, 3…), from its retention
        anchor once retention removed its oldest entries; with the audit key, every entry's
        and the anchor's HMAC; with checkpoints, that the chain reaches each one.
        Prints "ok: N entries…" and what it could not check, exits 0; or
        "BROKEN at seq S: reason" (e.g. "truncated (checkpoint seq S, chain ends at T)"),
        exits 1.
show    Prints the room's entries as JSON lines, in chain order.

Options:
  --room ROOM        Room id
  --redis URL        Redis holding the audit log (redis://[:password@]host:port[/db]);
                     default $REDIS_URL, else the Sentinel set in $HAVEN_REDIS_SENTINELS
                     (with $HAVEN_REDIS_SENTINEL_NAME, $HAVEN_REDIS_PASSWORD…). Required one way
                     or another: a node's embedded Redis generates a new password at each
                     start, so give its URL explicitly.
  --prefix PREFIX    Redis key prefix (default "haven:")
  --key FILE         verify: the audit secrets, one a line (the node's audit.hmacKeyFile);
                     default $HAVEN_AUDIT_HMAC_KEY_FILE, else $HAVEN_AUDIT_HMAC_KEY. Without
                     it, HMACs are not checked: a Redis writer could rewrite the whole chain.
  --checkpoint JSON  verify: an audit checkpoint (the object, its audit log line, or the
                     audit.checkpoint webhook body); repeatable; needs the key
  --checkpoints FILE verify: JSON lines holding checkpoints (shipped audit log lines or
                     webhook bodies); those of other rooms are skipped
  --from SEQ         show: first seq to print (default 1)
  --count N          show: most entries to print (default 50)
  -h, --help         Show this help

Exit status: 0 ok, 1 broken chain, 2 bad usage or Redis unreachable.
`;

const roles: readonly Role[] = ['facilitator', 'participant', 'observer'];
const algorithms: readonly TokenAlgorithm[] = ['HS256', 'RS256', 'ES256'];
const capNames: readonly (keyof Capabilities)[] = ['publishAudio', 'publishVideo', 'publishScreen', 'chat'];

class UsageError extends Error {}

function parseCaps(list: string): Partial<Capabilities> {
  const caps: Partial<Capabilities> = {};
  for (const item of list.split(',').filter((s) => s.trim() !== '')) {
    const [name = '', value, ...extra] = item.trim().split('=');
    if (!capNames.includes(name as keyof Capabilities)) {
      throw new UsageError(`--caps: unknown capability "${name}" (one of ${capNames.join(', ')})`);
    }
    if (extra.length > 0 || (value !== 'true' && value !== 'false')) {
      throw new UsageError(`--caps: expected ${name}=true or ${name}=false`);
    }
    caps[name as keyof Capabilities] = value === 'true';
  }
  return caps;
}

/** Returns the text for stdout; throws a UsageError for anything the caller must fix. */
function run(argv: string[], env: NodeJS.ProcessEnv): string {
  let parsed: ReturnType<typeof parseCommand<typeof tokenOptions>>;
  try {
    parsed = parseCommand(argv, tokenOptions);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const { values, positionals } = parsed;
  const [command, ...extra] = positionals;
  if (command === undefined) {
    if (values.help) return usage;
    throw new UsageError('missing command');
  }
  if (command !== 'token') throw new UsageError(`unknown command "${command}"`);
  if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`);
  if (values.help) return tokenUsage;

  for (const option of ['room', 'role', 'sub', 'name'] as const) {
    if (values[option] === undefined) throw new UsageError(`missing --${option}`);
  }
  const role = values.role as Role;
  if (!roles.includes(role)) throw new UsageError(`--role must be one of ${roles.join(', ')}`);
  if (values.ttl !== undefined && !/^[1-9]\d*$/.test(values.ttl)) {
    throw new UsageError('--ttl must be a positive whole number of seconds');
  }
  const algorithm = values.alg as TokenAlgorithm | undefined;
  if (algorithm !== undefined && !algorithms.includes(algorithm)) {
    throw new UsageError(`--alg must be one of ${algorithms.join(', ')}`);
  }

  let privateKeyPem: string | undefined;
  let secret: string | undefined;
  if (values.key !== undefined) {
    try {
      privateKeyPem = readFileSync(values.key, 'utf8');
    } catch (err) {
      throw new UsageError(`cannot read --key ${values.key}: ${(err as NodeJS.ErrnoException).code ?? err}`);
    }
  } else {
    secret = env.HAVEN_AUTH_SECRET;
    if (!secret) throw new UsageError('HAVEN_AUTH_SECRET is not set (or give --key private.pem)');
  }

  try {
    const token = mintAccessToken({
      secret,
      privateKeyPem,
      algorithm,
      issuer: values.issuer ?? (env.HAVEN_AUTH_ISSUER || 'haven'),
      audience: values.audience ?? (env.HAVEN_AUTH_AUDIENCE || 'haven'),
      sub: values.sub as string,
      name: values.name as string,
      room: values.room as string,
      role,
      caps: values.caps === undefined ? undefined : parseCaps(values.caps),
      ttlS: values.ttl === undefined ? undefined : Number(values.ttl),
      jti: values.jti,
    });
    return `${token}\n`;
  } catch (err) {
    // mintAccessToken reports bad options as TypeErrors (e.g. "invalid room: …").
    if (err instanceof TypeError || err instanceof UsageError) throw new UsageError(err.message);
    throw err;
  }
}

const helpOption = { type: 'boolean', short: 'h' } as const;

const tokenOptions = {
  room: { type: 'string' },
  role: { type: 'string' },
  sub: { type: 'string' },
  name: { type: 'string' },
  ttl: { type: 'string' },
  caps: { type: 'string' },
  issuer: { type: 'string' },
  audience: { type: 'string' },
  jti: { type: 'string' },
  key: { type: 'string' },
  alg: { type: 'string' },
} as const;

/* ---- haven audit -------------------------------------------------------------------------- */

function wholeNumber(option: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!/^[1-9]\d{0,14}$/.test(value)) throw new UsageError(`--${option} must be a positive whole number`);
  return Number(value);
}

/** `haven audit …`: writes its output itself; returns the exit status. */
async function runAudit(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  let parsed: ReturnType<typeof parseCommand<typeof auditOptions>>;
  try {
    parsed = parseCommand(argv, auditOptions);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const { values, positionals } = parsed;
  const [, subcommand, ...extra] = positionals;
  if (values.help) {
    process.stdout.write(auditUsage);
    return 0;
  }
  if (subcommand !== 'verify' && subcommand !== 'show') {
    throw new UsageError(subcommand === undefined ? 'missing verify or show' : `unknown audit command "${subcommand}"`);
  }
  if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`);
  const room = values.room;
  if (room === undefined) throw new UsageError('missing --room');
  if (!idPattern.test(room)) throw new UsageError('--room must be a room id');
  const connection = auditConnection(values.redis, env);
  const from = wholeNumber('from', values.from, 1);
  const count = wholeNumber('count', values.count, 50);
  const keys = auditKeys(values.key, env);
  const checkpoints = givenCheckpoints(room, values.checkpoint ?? [], values.checkpoints);
  if (checkpoints.length > 0 && !keys) throw new UsageError('checking checkpoints needs the audit key (--key FILE)');

  // A command line fails fast: no waiting for Redis (or a failover) to come back.
  const redis = new Redis(
    redisOptions(connection, {
      lazyConnect: true,
      maxRetriesPerRequest: 1,
      retryStrategy: () => null,
      sentinelRetryStrategy: () => null,
      failoverDetector: false,
    }),
  );
  redis.on('error', () => {}); // reported below, through the command that fails
  try {
    try {
      await redis.connect();
    } catch (err) {
      // ioredis' messages name host and port, never the password.
      throw new UsageError(`cannot reach Redis: ${(err as Error).message}`);
    }
    const log = new AuditLog(redis, pino({ level: 'silent' }), { prefix: values.prefix, keys });
    if (subcommand === 'show') {
      for (const entry of await log.entries(room, { from, count })) {
        process.stdout.write(`${JSON.stringify(entry)}\n`);
      }
      return 0;
    }
    const result = await log.verify(room, { checkpoints });
    if (result.ok) {
      process.stdout.write(`${verifiedLine(result)}\n`);
      return 0;
    }
    process.stdout.write(`BROKEN at seq ${result.brokenAt}: ${result.reason}\n`);
    return 1;
  } finally {
    redis.disconnect();
  }
}

/** What an intact chain was checked for, and what could not be checked. */
function verifiedLine(result: AuditVerification & { ok: true }): string {
  const trimmed = result.trimmed ? ` (after ${result.trimmed} removed by retention)` : '';
  const keyed = result.keyed
    ? ', HMACs checked'
    : '; HMACs NOT checked (no --key): a Redis writer could have rewritten the whole chain';
  const tail =
    result.checkpoint === undefined
      ? '; tail truncation after the last checkpoint cannot be detected without one (--checkpoint)'
      : `, reaches checkpoint seq ${result.checkpoint}; entries after it could be cut undetected`;
  return `ok: ${result.entries} entries${trimmed}${keyed}${tail}`;
}

/** `--key` files, else the node's `HAVEN_AUDIT_HMAC_KEY_FILE` or `HAVEN_AUDIT_HMAC_KEY`; undefined when none. */
function auditKeys(files: string[] | undefined, env: NodeJS.ProcessEnv): AuditKeys | undefined {
  const paths = files ?? (env.HAVEN_AUDIT_HMAC_KEY_FILE ? [env.HAVEN_AUDIT_HMAC_KEY_FILE] : []);
  const secrets: string[] = [];
  for (const file of paths) {
    try {
      secrets.push(...readKeyFile(file));
    } catch (err) {
      throw new UsageError(`cannot read --key ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`);
    }
  }
  if (paths.length === 0 && env.HAVEN_AUDIT_HMAC_KEY) secrets.push(env.HAVEN_AUDIT_HMAC_KEY);
  if (paths.length === 0 && secrets.length === 0) return undefined;
  try {
    return new AuditKeys(secrets);
  } catch (err) {
    throw new UsageError(`--key: ${(err as Error).message}`);
  }
}

/** `--checkpoint` values and the room's checkpoints in the `--checkpoints` file. */
function givenCheckpoints(room: string, values: string[], file: string | undefined): AuditCheckpoint[] {
  const found: AuditCheckpoint[] = [];
  for (const text of values) {
    let cp: AuditCheckpoint | string;
    try {
      cp = parseCheckpoint(JSON.parse(text));
    } catch {
      cp = 'not JSON';
    }
    if (typeof cp === 'string') throw new UsageError(`--checkpoint: ${cp}`);
    if (cp.room !== room) throw new UsageError(`--checkpoint is of room ${cp.room}, not ${room}`);
    found.push(cp);
  }
  if (file !== undefined) {
    try {
      found.push(...checkpointsInLines(readFileSync(file, 'utf8'), room));
    } catch (err) {
      throw new UsageError(`cannot read --checkpoints ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`);
    }
  }
  return found;
}

/** `--redis`, else `REDIS_URL`, else the Sentinel set the nodes use (`HAVEN_REDIS_SENTINELS`…). */
function auditConnection(url: string | undefined, env: NodeJS.ProcessEnv): RedisConnection {
  url ??= env.REDIS_URL;
  if (url) {
    if (!/^rediss?:\/\//.test(url)) throw new UsageError('--redis must be a redis:// or rediss:// URL');
    return { url };
  }
  if (env.HAVEN_REDIS_SENTINELS) {
    try {
      const connection = redisConnectionOf(loadConfig(env).redis);
      if (connection) return connection;
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
  }
  throw new UsageError(
    'give --redis redis://…, or set REDIS_URL or HAVEN_REDIS_SENTINELS (the embedded Redis has no fixed password)',
  );
}

const auditOptions = {
  room: { type: 'string' },
  redis: { type: 'string' },
  prefix: { type: 'string' },
  from: { type: 'string' },
  count: { type: 'string' },
  key: { type: 'string', multiple: true },
  checkpoint: { type: 'string', multiple: true },
  checkpoints: { type: 'string' },
} as const;

/** A subcommand's arguments: strict, positionals allowed, and `-h`/`--help` for every one. */
function parseCommand<O extends NonNullable<ParseArgsConfig['options']>>(args: string[], options: O) {
  return parseArgs({ args, allowPositionals: true, strict: true, options: { help: helpOption, ...options } });
}

const argv = process.argv.slice(2);
const isAudit = argv.find((arg) => !arg.startsWith('-')) === 'audit';
try {
  if (isAudit) process.exitCode = await runAudit(argv, process.env);
  else process.stdout.write(run(argv, process.env));
} catch (err) {
  if (!(err instanceof UsageError)) throw err;
  const command = isAudit ? 'haven audit' : argv.includes('token') ? 'haven token' : 'haven';
  process.stderr.write(`${command}: ${err.message}\nRun "${command} --help" for usage.\n`);
  process.exitCode = 2;
}
