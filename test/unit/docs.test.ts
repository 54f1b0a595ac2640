/**
 * The documents the README points to say what the code does: every path they name exists, the
 * SDK's README names every option, method and event of the SDK, the server package's README every
 * export and admin method, and the bench's README names only flags the bench takes, and all its
 * scenarios. (The OpenAPI file, the alert rules and `deploy/`
 * have tests of their own.)
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Moderation } from '../../client-sdk/src/moderation.ts';
import { SessionClient } from '../../client-sdk/src/session-client.ts';
import * as serverSdk from '../../server-sdk/src/index.ts';

const root = join(import.meta.dirname, '..', '..');
const read = (path: string) => readFileSync(join(root, path), 'utf8');
const documents = ['README.md', 'client-sdk/README.md', 'bench/README.md', 'server-sdk/README.md'].filter((d) =>
  existsSync(join(root, d)),
);
const sdkReadme = read('client-sdk/README.md');

/** The names a document mentions as code: `name`, `name(…)`, `obj.name`. */
function codeNames(text: string): Set<string> {
  const names = new Set<string>();
  for (const [, span] of text.matchAll(/`([^`\n]+)`/g)) {
    for (const [name] of (span as string).matchAll(/[A-Za-z_$][\w$]*/g)) names.add(name);
  }
  return names;
}

/** The member names of `export type|interface <name> … { … }` in a source file (one level deep). */
function memberNames(source: string, declaration: RegExp): string[] {
  const start = source.search(declaration);
  assert.ok(start >= 0, `${declaration} not found`);
  const open = source.indexOf('{', start);
  let depth = 0;
  let end = open;
  for (; end < source.length; end++) {
    if (source[end] === '{') depth++;
    if (source[end] === '}' && --depth === 0) break;
  }
  const body = source.slice(open + 1, end);
  const names: string[] = [];
  let level = 0;
  for (const line of body.split('\n')) {
    const member = /^\s*(?:readonly\s+)?([A-Za-z_$][\w$]*)\??\s*[:(]/.exec(line);
    if (level === 0 && member) names.push(member[1] as string);
    level += (line.match(/[{(]/g) ?? []).length - (line.match(/[})]/g) ?? []).length;
  }
  return names;
}

const publicMembers = (prototype: object) =>
  Object.getOwnPropertyNames(prototype).filter((name) => name !== 'constructor');

test('every repository path the documents name exists', () => {
  const topLevel = [
    'app',
    'bench',
    'bin',
    'client-sdk',
    'config',
    'deploy',
    'docs',
    'scripts',
    'server',
    'server-sdk',
    'test',
    'workers',
  ];
  const pathPattern = new RegExp(`\`((?:${topLevel.join('|')})/[\\w./-]*)\``, 'g');
  const missing: string[] = [];
  for (const document of documents) {
    const base = document.includes('/') ? join(root, document, '..') : root;
    for (const [, path] of read(document).matchAll(pathPattern)) {
      const clean = (path as string).replace(/[.,:;]+$/, '');
      if (clean.includes('<') || clean.includes('*')) continue;
      // Build outputs and bench results exist once the set-up or the bench ran.
      if (/\/(dist|results)(\/|$)/.test(clean)) continue;
      if (!existsSync(join(root, clean)) && !existsSync(join(base, clean))) missing.push(`${document}: ${clean}`);
    }
  }
  assert.equal(missing, []);
});

test('the SDK README names every SessionClient option', () => {
  const options = memberNames(read('client-sdk/src/options.ts'), /export interface SessionClientOptions\b/);
  assert.ok(options.includes('token') && options.includes('reconnect'), options.join());
  const named = codeNames(sdkReadme);
  assert.equal(
    options.filter((o) => !named.has(o)),
    [],
  );
});

test('the SDK README names every public method and property of SessionClient and its moderation', () => {
  const named = codeNames(sdkReadme);
  const members = [...publicMembers(SessionClient.prototype), ...publicMembers(Moderation.prototype)];
  assert.ok(members.includes('join') && members.includes('admit'), members.join());
  assert.equal(
    members.filter((m) => !named.has(m)),
    [],
  );
});

test('the SDK README names every event of SessionClient', () => {
  const events = memberNames(read('client-sdk/src/session-events.ts'), /export type SessionClientEvents\b/);
  assert.ok(events.length > 20 && events.includes('trackSubscribed'), events.join());
  const named = codeNames(sdkReadme);
  assert.equal(
    events.filter((e) => !named.has(e)),
    [],
  );
});

test('the server package README names every export and every admin client method', () => {
  const named = codeNames(read('server-sdk/README.md'));
  const exported = [
    ...Object.keys(serverSdk),
    ...[...read('server-sdk/src/index.ts').matchAll(/export type \{([^}]+)\}/g)].flatMap((m) =>
      (m[1] as string).split(',').map((name) => name.trim()),
    ),
  ];
  const methods = publicMembers(serverSdk.HavenAdmin.prototype);
  assert.ok(
    exported.includes('verifyWebhook') && exported.includes('RoomWithLive') && methods.includes('createRoom'),
    [...exported, ...methods].join(),
  );
  assert.equal(
    [...exported, ...methods].filter((name) => name && !named.has(name)),
    [],
  );
});

test('the bench README names only flags the bench takes, and every scenario', () => {
  const usage =
    read('bench/main.ts') + read('bench/signaling.ts') + read('bench/browser-e2ee.ts') + read('bench/network.ts');
  const flags = new Set([...usage.matchAll(/^\s+(--[a-z][a-z-]*)/gm)].map((m) => m[1]));
  assert.ok(flags.has('--rooms') && flags.has('--knee'), [...flags].join());
  const benchReadme = read('bench/README.md');
  const mentioned = [...new Set([...benchReadme.matchAll(/(?<![\w-])(--[a-z][a-z-]*)/g)].map((m) => m[1] as string))];
  // Node's own flag, which the README explains rather than passes.
  const unknown = mentioned.filter((f) => !flags.has(f) && f !== '--max-semi-space-size');
  assert.equal(unknown, []);
  const scenarios = /const scenarios = \[([^\]]+)\]/.exec(read('bench/main.ts'))?.[1] ?? '';
  for (const [, scenario] of scenarios.matchAll(/'([a-z]+)'/g)) {
    assert.match(benchReadme, new RegExp(`\\b${scenario}\\b`), `scenario ${scenario}`);
  }
  assert.match(benchReadme, /\bsignaling\b/);
  assert.match(benchReadme, /\bbrowser-e2ee\b/);
  assert.match(benchReadme, /npm run bench -- network\b/);
});

test.run();
