/**
 * README "Production guide", Redis backup and restore: deploy/redis-backup.sh on a running
 * embedded Redis, deploy/redis-restore.sh into a fresh data folder, and a Redis started there
 * has every key back.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { EmbeddedRedis } from '../../server/redis/embedded-redis.ts';
import { rejects } from '../helpers/assert.ts';

const run = promisify(execFile);
const root = join(import.meta.dirname, '..', '..');
const dir = mkdtempSync(join(tmpdir(), 'haven-redis-backup-'));
const liveDir = join(dir, 'data', 'redis');
const backupDir = join(dir, 'backup');
const restoredDir = join(dir, 'restored', 'redis');
const servers: EmbeddedRedis[] = [];
const clients: Redis[] = [];

async function started(dataDir: string): Promise<Redis> {
  const server = await EmbeddedRedis.start({ dataDir });
  servers.push(server);
  const client = new Redis(server.url);
  clients.push(client);
  return client;
}

const script = (name: string, ...args: string[]) => run('bash', [join(root, 'deploy', name), ...args]);

test.after(async () => {
  for (const client of clients) client.disconnect();
  await Promise.all(servers.map((server) => server.stop()));
  rmSync(dir, { recursive: true, force: true });
});

test('an AOF backed up from a running Redis and restored into a fresh folder has every key', async () => {
  const live = await started(liveDir);
  for (let i = 0; i < 500; i++) await live.set(`haven:test:${i}`, `value-${i}`);
  await live.hset('haven:room:grp-42', { status: 'open', createdAt: '2026-12-01T13:00:00Z' });
  for (let i = 0; i < 20; i++) await live.xadd('haven:attendance:grp-42', '*', 'seq', String(i));

  await script('redis-backup.sh', liveDir, backupDir);
  const files = readdirSync(join(backupDir, 'appendonlydir'));
  const manifest = readFileSync(
    join(backupDir, 'appendonlydir', files.find((f) => f.endsWith('.manifest')) ?? ''),
    'utf8',
  );
  assert.match(manifest, / type b\b/, 'a base file, written by the rewrite');
  for (const [, file] of manifest.matchAll(/^file (\S+) /gm)) assert.ok(files.includes(file as string), file);

  // Written after the backup: not in it.
  await live.set('haven:test:after', 'later');
  await script('redis-restore.sh', backupDir, restoredDir);
  await rejects(() => script('redis-restore.sh', backupDir, restoredDir), /restore into a fresh folder/);

  const restored = await started(restoredDir);
  for (let i = 0; i < 500; i++) assert.is(await restored.get(`haven:test:${i}`), `value-${i}`);
  assert.equal(await restored.hgetall('haven:room:grp-42'), { status: 'open', createdAt: '2026-12-01T13:00:00Z' });
  const entries = await restored.xrange('haven:attendance:grp-42', '-', '+');
  assert.equal(
    entries.map(([, fields]) => fields[1]),
    Array.from({ length: 20 }, (_, i) => String(i)),
  );
  assert.is(await restored.exists('haven:test:after'), 0);
});

test.run();
