/**
 * The two packages a portal installs: versions in step with Haven's, the admin client covering
 * every route of docs/openapi.json, tarballs holding only what a portal runs (no sources, tests or
 * paths of this machine), and once installed from them, exports that resolve in Node and types
 * that compile strictly in a TypeScript file importing both.
 */
import { execFile } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { foreignImports } from '../../scripts/build-server-sdk.ts';
import { adminRoutes, HavenAdmin } from '../../server-sdk/src/admin.ts';
import { installHavenPackages, packHavenPackages } from '../helpers/portal-app.ts';

const root = join(import.meta.dirname, '..', '..');
const run = promisify(execFile);
const manifest = (dir: string) => JSON.parse(readFileSync(join(root, dir, 'package.json'), 'utf8'));
const havenPackage = manifest('.');

test('both packages have Haven’s version, and the server package Haven’s versions of its dependencies', () => {
  for (const dir of ['client-sdk', 'server-sdk']) assert.is(manifest(dir).version, havenPackage.version, dir);
  assert.equal(manifest('client-sdk').dependencies, undefined, 'the client bundle has its dependencies inside');
  for (const [name, version] of Object.entries(manifest('server-sdk').dependencies)) {
    assert.is(version, havenPackage.dependencies[name], name);
  }
});

test('the admin client has a method for every route of docs/openapi.json, and no other', () => {
  const spec = JSON.parse(readFileSync(join(root, 'docs', 'openapi.json'), 'utf8'));
  const documented = Object.entries(spec.paths as Record<string, object>).flatMap(([path, item]) =>
    Object.keys(item)
      .filter((key) => ['get', 'put', 'post', 'delete', 'patch'].includes(key))
      .map((method) => `${method.toUpperCase()} ${path}`),
  );
  assert.equal([...new Set(Object.values(adminRoutes))].sort(), documented.sort());
  const methods = Object.getOwnPropertyNames(HavenAdmin.prototype).filter((name) => name !== 'constructor');
  assert.equal(methods.sort(), Object.keys(adminRoutes).sort());
});

/** `npm pack --dry-run` of a package folder: the paths its tarball would hold. */
async function packedFiles(dir: string): Promise<string[]> {
  const { stdout } = await run('npm', ['pack', '--dry-run', '--json'], { cwd: join(root, dir) });
  return (JSON.parse(stdout) as { files: { path: string }[] }[])[0]?.files.map((f) => f.path) ?? [];
}

for (const dir of ['client-sdk', 'server-sdk']) {
  test(`${dir}'s tarball holds its package.json, README and built dist only`, async () => {
    const files = await packedFiles(dir);
    const pkg = manifest(dir);
    for (const file of files) {
      assert.ok(file === 'package.json' || file === 'README.md' || file.startsWith('dist/'), `${file} is packed`);
      assert.not.ok(/\.(ts|tsx)$/.test(file) && !file.endsWith('.d.ts'), `${file}: a source`);
      const text = readFileSync(join(root, dir, file), 'utf8');
      assert.not.ok(text.includes(root), `${file} names this machine's folder ${root}`);
    }
    const entry = pkg.exports['.'];
    for (const target of [entry.types, entry.import, pkg.types]) assert.ok(files.includes(target.slice(2)), target);
    assert.ok(files.includes('README.md'));
  });
}

test('the server bundle imports nothing but Node’s modules and its dependencies', () => {
  const code = readFileSync(join(root, 'server-sdk', 'dist', 'index.js'), 'utf8');
  assert.equal(foreignImports(code, Object.keys(manifest('server-sdk').dependencies)), []);
});

const typeCheck = `
import { SessionClient } from '@haven/client';
import {
  HavenAdmin, HavenApiError, HavenWebhookError, mintAccessToken, verifyWebhook,
  type RoomWithLive, type WebhookEvent,
} from '@haven/server-sdk';

export const token: string = mintAccessToken({
  secret: 'a-portal-secret-of-enough-length-0123', issuer: 'haven', audience: 'haven',
  sub: 'p-1', name: 'Sam', room: 'grp-42', role: 'participant', ttlS: 600,
});
export const client = new SessionClient({ url: 'https://haven.example-clinic.org', token: async () => token });
const admin = new HavenAdmin({ url: 'https://haven.example-clinic.org', apiKey: 'key' });
export async function waiting(id: string): Promise<number> {
  const room: RoomWithLive = await admin.getRoom(id);
  return room.live?.stages.waiting ?? 0;
}
export const weeks = async (id: string) =>
  (await admin.participantAttendance(id, { from: '2026-11-30T00:00:00Z', to: '2026-12-07T00:00:00Z' })).weeks.map(
    (w) => [w.week, w.meetsThreshold] as const,
  );
export function received(headers: Record<string, string>, rawBody: string): WebhookEvent['type'] {
  return verifyWebhook({ headers, rawBody, secret: 'webhook-secret' }).type;
}
export const codeOf = (err: unknown): string | undefined =>
  err instanceof HavenApiError || err instanceof HavenWebhookError ? err.code : undefined;
// @ts-expect-error: not a room kind of the description
export const party = () => admin.createRoom({ title: 'x', kind: 'party' });
`;

test('installed from the tarballs: the exports resolve in Node, and the types compile strictly', async () => {
  const dir = await installHavenPackages(await packHavenPackages(), 'haven-packages-check-');
  try {
    const resolved = await run(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `const m = await import('@haven/server-sdk');
         console.log(JSON.stringify({ client: import.meta.resolve('@haven/client'),
           manifest: import.meta.resolve('@haven/client/package.json'), server: Object.keys(m).sort() }));`,
      ],
      { cwd: dir },
    );
    const { client, manifest: clientManifest, server } = JSON.parse(resolved.stdout);
    assert.ok(client.endsWith('/node_modules/@haven/client/dist/haven-sdk.js'), client);
    assert.ok(clientManifest.endsWith('/node_modules/@haven/client/package.json'), clientManifest);
    assert.equal(server, [
      'HavenAdmin',
      'HavenApiError',
      'HavenWebhookError',
      'mintAccessToken',
      'signWebhook',
      'verifyWebhook',
    ]);

    writeFileSync(join(dir, 'check.ts'), typeCheck);
    const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
    const flags = ['--noEmit', '--strict', '--skipLibCheck', 'false', '--target', 'es2022'];
    const options = [...flags, '--module', 'nodenext', '--moduleResolution', 'nodenext', '--lib', 'es2022,dom'];
    const checked = await run(process.execPath, [tsc, ...options, 'check.ts'], { cwd: dir }).catch(
      (err: { stdout: string }) => ({ stdout: `tsc failed:\n${err.stdout}` }),
    );
    assert.is(checked.stdout, '');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
