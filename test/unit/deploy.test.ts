/**
 * README "Production guide": the files in deploy/ it shows are valid where they can be checked
 * here (systemd-analyze, /proc/sys, config/schema.ts), and say what the README and package.json
 * say.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadConfig } from '../../config/load.ts';
import { type ConfigKey, envNames } from '../../config/schema.ts';
import { createLogger } from '../../server/logger.ts';

const root = join(import.meta.dirname, '..', '..');
const deploy = join(root, 'deploy');
const readme = readFileSync(join(root, 'README.md'), 'utf8');
const guide = readme.slice(readme.indexOf('## Production guide'), readme.indexOf('\n## Configuration'));
const scripts = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).scripts;
const unitFiles = readdirSync(join(deploy, 'systemd'));
const unit = (name: string) => readFileSync(join(deploy, 'systemd', name), 'utf8');

/** The values of `key=` in a unit, in order. */
function directives(text: string, key: string): string[] {
  return [...text.matchAll(new RegExp(`^${key}=(.*)$`, 'gm'))].map((m) => m[1] as string);
}

/** `NAME=value` pairs of an environment file or of a unit's `Environment=` lines. */
function assignments(lines: string[]): Record<string, string> {
  const pairs = lines.flatMap((line) => line.trim().split(/\s+/)).filter((p) => /^[A-Z_]+=/.test(p));
  return Object.fromEntries(pairs.map((p) => [p.slice(0, p.indexOf('=')), p.slice(p.indexOf('=') + 1)]));
}

const exampleLines = readFileSync(join(deploy, 'haven.env.example'), 'utf8').split('\n');

/** The configuration a node gets from the environment example and its unit's `Environment=`. */
function nodeConfig() {
  return loadConfig({
    ...assignments(exampleLines.filter((line) => !line.startsWith('#'))),
    ...assignments(directives(unit('haven-node.service'), 'Environment')),
  });
}

test('systemd-analyze verify accepts the units, rendered with this checkout and this Node', () => {
  const dir = mkdtempSync(join(tmpdir(), 'haven-units-'));
  try {
    for (const name of unitFiles) {
      const rendered = unit(name).replaceAll('/opt/haven', root).replaceAll('/usr/bin/node', process.execPath);
      writeFileSync(join(dir, name), rendered);
    }
    const verify = spawnSync('systemd-analyze', ['verify', ...unitFiles.map((name) => join(dir, name))], {
      encoding: 'utf8',
    });
    assert.is(verify.status, 0, verify.stderr);
    assert.is(verify.stderr.trim(), '', 'no warning');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the units run the node and the workers as npm start and npm run workers do', () => {
  const [node = ''] = directives(unit('haven-node.service'), 'ExecStart');
  const [workers = ''] = directives(unit('haven-workers.service'), 'ExecStart');
  assert.ok(node.startsWith('/usr/bin/node ') && workers.startsWith('/usr/bin/node '));
  const nodeArgs = node.slice('/usr/bin/'.length);
  assert.ok(scripts.start.endsWith(`&& ${nodeArgs}`), `${scripts.start} vs ${node}`);
  assert.is(scripts.workers, workers.slice('/usr/bin/'.length));
  for (const name of ['haven-node.service', 'haven-workers.service']) {
    const text = unit(name);
    assert.equal(directives(text, 'User'), ['haven'], name);
    assert.equal(directives(text, 'WorkingDirectory'), ['/opt/haven'], name);
    assert.equal(directives(text, 'Restart'), ['on-failure'], name);
    assert.equal(directives(text, 'RestartPreventExitStatus'), ['2'], `${name}: a configuration error`);
    assert.equal(directives(text, 'KillSignal'), ['SIGTERM'], name);
    assert.equal(directives(text, 'NoNewPrivileges'), ['yes'], name);
    assert.equal(directives(text, 'ProtectSystem'), ['strict'], name);
    assert.ok(Number(directives(text, 'LimitNOFILE')[0]) >= 65536, name);
  }
});

test('systemd waits longer than the node’s own shutdown timeout, and lets it write its data folder', () => {
  const text = unit('haven-node.service');
  const config = nodeConfig();
  assert.ok(Number(directives(text, 'TimeoutStopSec')[0]) * 1000 > config.shutdownTimeoutMs);
  assert.equal(directives(text, 'ReadWritePaths'), [config.dataDir]);
  assert.equal(directives(text, 'KillMode'), ['mixed'], 'the node stops its children itself');
  assert.is(config.env, 'production');
});

test('the README shows the node unit as it is', () => {
  const shown = /```ini\n([\s\S]*?)```/.exec(guide)?.[1] ?? '';
  const lines = shown.trim().split('\n');
  assert.ok(lines.length > 5);
  const text = unit('haven-node.service').split('\n');
  for (const line of lines) assert.ok(text.includes(line), line);
});

test('the environment example and the units set only configuration variables, and together they load', () => {
  const known = new Set<string>(Object.values(envNames));
  for (const name of unitFiles) {
    for (const env of Object.keys(assignments(directives(unit(name), 'Environment')))) assert.ok(known.has(env), env);
  }
  // The commented-out ones too.
  const example = assignments(exampleLines.map((line) => line.replace(/^# /, '')));
  assert.ok(Object.keys(example).length >= 10);
  for (const env of Object.keys(example)) assert.ok(known.has(env), env);
  const config = nodeConfig();
  assert.is(config.http.port, 7880);
});

test('every sysctl key exists on this kernel, with an integer value, and the README names it', () => {
  const lines = readFileSync(join(deploy, 'sysctl', '90-haven.conf'), 'utf8')
    .split('\n')
    .filter((line) => line.trim() && !line.startsWith('#'));
  assert.ok(lines.length >= 4);
  for (const line of lines) {
    const [, key, value] = /^([a-z0-9_.]+) = (\S+)$/.exec(line) ?? [];
    assert.ok(key && value, line);
    assert.ok(existsSync(join('/proc/sys', ...key.split('.'))), key);
    assert.match(value, /^\d+$/, key);
    assert.ok(guide.includes(key.split('.').at(-1) as string), `README names ${key}`);
  }
});

test('the ports table names configuration keys with their defaults', () => {
  const table = guide.slice(guide.indexOf('### Ports and firewall'), guide.indexOf('### Redis'));
  const rows = table.split('\n').filter((line) => line.startsWith('| ') && !line.startsWith('| Port'));
  const config = loadConfig({}) as unknown as Record<string, Record<string, unknown>>;
  let checked = 0;
  for (const row of rows) {
    const [, , , keys = '', defaults = ''] = row.split('|').map((cell) => cell.trim());
    const names = [...keys.matchAll(/`([a-zA-Z.]+)`/g)].map((m) => m[1] as string);
    const values = defaults === '–' ? ['–'] : [...defaults.matchAll(/`([^`]+)`/g)].map((m) => m[1]);
    for (const [i, key] of names.entries()) {
      assert.ok(key in envNames, `${key} is a configuration key`);
      const [section, field] = key.split('.') as [string, string];
      const value = config[section]?.[field];
      assert.is(values[i], value === undefined ? '–' : String(value), key);
      checked++;
    }
  }
  assert.ok(checked >= 4);
  assert.ok(Object.keys(envNames).includes('media.webRtcPort' satisfies ConfigKey));
});

test('every deploy/ file is shown by the README, and every one it names exists', () => {
  const named = new Set([...guide.matchAll(/deploy\/[\w./-]+[\w]/g)].map((m) => m[0]));
  for (const path of named) assert.ok(existsSync(join(root, path)), path);
  const files = readdirSync(deploy, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath, entry.name).slice(root.length + 1));
  for (const file of files) assert.ok(named.has(file), `README names ${file}`);
});

test('log lines are the JSON objects the README describes, audit stream and redaction included', () => {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      lines.push(...String(chunk).trim().split('\n'));
      done();
    },
  });
  const logger = createLogger({ env: 'production', log: { level: 'info' } }, sink);
  logger
    .child({ stream: 'audit' })
    .info({ room: 'grp-42', actor: 'p-1', action: 'admit', token: 'secret-token' }, 'audit');
  const line = JSON.parse(lines[0] as string);
  assert.is(line.level, 30);
  assert.type(line.time, 'number');
  assert.is(line.pid, process.pid);
  assert.is(line.msg, 'audit');
  assert.is(line.stream, 'audit');
  assert.is(line.token, '[redacted]');
  for (const field of ['level', 'time', 'pid', 'msg', 'stream: "audit"', '"[redacted]"']) {
    assert.ok(guide.includes(`\`${field}\``), field);
  }
});

test.run();
