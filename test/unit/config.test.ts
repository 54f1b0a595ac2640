import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError, loadConfig } from '../../config/load.ts';
import { isDemoEnabled, isRoomAutoCreateEnabled } from '../../config/schema.ts';
import { redisConnectionOf, redisOptions } from '../../server/redis/connection.ts';

const root = join(import.meta.dirname, '..', '..');

function problemsOf(env: Record<string, string>): ConfigError['problems'] {
  try {
    loadConfig(env);
  } catch (err) {
    assert.instance(err, ConfigError);
    return (err as ConfigError).problems;
  }
  assert.unreachable('expected a ConfigError');
  return [];
}

function jsonFile(content: string): string {
  const file = join(mkdtempSync(join(tmpdir(), 'haven-config-')), 'haven.json');
  writeFileSync(file, content);
  return file;
}

test('defaults when nothing is set', () => {
  const config = loadConfig({});
  assert.is(config.env, 'development');
  assert.is(config.http.host, '127.0.0.1');
  assert.is(config.http.port, 7880);
  assert.is(config.dataDir, './data');
  assert.is(config.redis.url, undefined);
  assert.is(config.redis.serverBin, 'redis-server');
  assert.is(config.log.level, 'info');
  assert.is(config.log.format, undefined);
  assert.is(config.media.workers, availableParallelism());
  assert.is(config.media.logLevel, 'warn');
  assert.is(config.media.rtcMinPort, 40000);
  assert.is(config.media.rtcMaxPort, 49999);
  assert.is(config.shutdownTimeoutMs, 10000);
});

test('environment variables set typed values', () => {
  const config = loadConfig({
    HAVEN_ENV: 'production',
    HAVEN_HTTP_HOST: '0.0.0.0',
    HAVEN_HTTP_PORT: '8443',
    REDIS_URL: 'redis://:pw@10.0.0.5:6380/2',
    HAVEN_LOG_LEVEL: 'debug',
    HAVEN_LOG_FORMAT: 'json',
    HAVEN_MEDIA_WORKERS: '3',
    HAVEN_MEDIA_RTC_MIN_PORT: '20000',
    HAVEN_MEDIA_RTC_MAX_PORT: '20100',
    HAVEN_SHUTDOWN_TIMEOUT_MS: '5000',
    HAVEN_AUTH_SECRET: 'a-production-secret-of-32-characters!',
    HAVEN_AUDIT_HMAC_KEY: 'a-production-audit-key-of-32-characters',
    HAVEN_ROOMS_AUTO_CREATE: 'yes',
    HAVEN_DEMO: 'false',
    HAVEN_TURN_URLS: 'turn:turn.example.org:3478?transport=udp, turns:turn.example.org:5349',
    HAVEN_TURN_SECRET: 'coturn-static-secret',
  });
  assert.is(config.env, 'production');
  assert.is(config.http.port, 8443);
  assert.is(config.redis.url, 'redis://:pw@10.0.0.5:6380/2');
  assert.is(config.media.workers, 3);
  assert.is(config.media.rtcMinPort, 20000);
  assert.is(config.shutdownTimeoutMs, 5000);
  assert.is(config.rooms.autoCreate, true);
  assert.is(config.demo, false);
  assert.equal(config.turn.urls, ['turn:turn.example.org:3478?transport=udp', 'turns:turn.example.org:5349']);
});

test('mode-dependent defaults: conveniences in development, closed in production', () => {
  const dev = loadConfig({});
  assert.is(isDemoEnabled(dev), true);
  assert.is(isRoomAutoCreateEnabled(dev), true);
  const prod = loadConfig({
    HAVEN_ENV: 'production',
    HAVEN_AUTH_SECRET: 'x'.repeat(32),
    HAVEN_AUDIT_HMAC_KEY: 'k'.repeat(32),
    HAVEN_DEMO: 'true',
  });
  assert.is(isDemoEnabled(prod), false, 'the demo is never served in production');
  assert.is(isRoomAutoCreateEnabled(prod), false);
});

test('production refuses to start without a way to verify tokens', () => {
  const [problem] = problemsOf({ HAVEN_ENV: 'production', HAVEN_AUDIT_HMAC_KEY: 'k'.repeat(32) });
  assert.is(problem?.env, 'HAVEN_AUTH_SECRET');
  assert.match(problem?.message ?? '', /production needs/);
});

test('production refuses to start without an audit key kept out of Redis', () => {
  const [problem, ...others] = problemsOf({ HAVEN_ENV: 'production', HAVEN_AUTH_SECRET: 'x'.repeat(32) });
  assert.is(problem?.env, 'HAVEN_AUDIT_HMAC_KEY');
  assert.match(problem?.message ?? '', /production needs audit\.hmacKey/);
  assert.is(others.length, 0);
});

test('a short secret, a bad boolean, a TURN URL without a secret are refused', () => {
  assert.match(problemsOf({ HAVEN_AUTH_SECRET: 'short' })[0]?.message ?? '', />=32/);
  assert.is(problemsOf({ HAVEN_DEMO: 'maybe' })[0]?.env, 'HAVEN_DEMO');
  assert.is(problemsOf({ HAVEN_TURN_URLS: 'turn:t.example.org' })[0]?.env, 'HAVEN_TURN_SECRET');
  assert.is(
    problemsOf({ HAVEN_TURN_URLS: 'http://t.example.org', HAVEN_TURN_SECRET: 'x'.repeat(16) })[0]?.key,
    'turn.urls.0',
  );
});

test('a JSON file sets values and the environment overrides it', () => {
  const file = jsonFile(JSON.stringify({ http: { port: 9000, host: '::1' }, media: { workers: 2 } }));
  const config = loadConfig({ HAVEN_CONFIG: file, HAVEN_HTTP_PORT: '9001' });
  assert.is(config.http.port, 9001);
  assert.is(config.http.host, '::1');
  assert.is(config.media.workers, 2);
  assert.is(config.media.logLevel, 'warn');
});

test('an empty environment variable counts as unset', () => {
  assert.is(loadConfig({ HAVEN_HTTP_PORT: '' }).http.port, 7880);
});

test('not a number: names the key, its variable and the value', () => {
  const [problem, ...rest] = problemsOf({ HAVEN_HTTP_PORT: 'eighty' });
  assert.is(rest.length, 0);
  assert.is(problem?.key, 'http.port');
  assert.is(problem?.env, 'HAVEN_HTTP_PORT');
  assert.is(problem?.received, 'eighty');
  assert.match(problem?.message ?? '', /number/);
});

test('out of range and not an integer', () => {
  assert.match(problemsOf({ HAVEN_HTTP_PORT: '70000' })[0]?.message ?? '', /65535/);
  assert.match(problemsOf({ HAVEN_MEDIA_WORKERS: '0' })[0]?.message ?? '', />0/);
  assert.match(problemsOf({ HAVEN_MEDIA_WORKERS: '1.5' })[0]?.message ?? '', /int/);
});

test('a value outside an enumeration lists the allowed values', () => {
  const [problem] = problemsOf({ HAVEN_LOG_LEVEL: 'loud' });
  assert.is(problem?.env, 'HAVEN_LOG_LEVEL');
  assert.match(problem?.message ?? '', /"fatal"\|"error"\|"warn"\|"info"\|"debug"\|"trace"\|"silent"/);
});

test('a REDIS_URL that is not redis:// is refused', () => {
  const [problem] = problemsOf({ REDIS_URL: 'http://localhost:6379' });
  assert.is(problem?.env, 'REDIS_URL');
  assert.match(problem?.message ?? '', /redis:\/\//);
});

test('Redis through Sentinel: the sentinels, the master group name (default mymaster) and passwords', () => {
  const config = loadConfig({
    HAVEN_REDIS_SENTINELS: '10.0.0.1:26379, 10.0.0.2:26379,[fd00::3]:26380',
    HAVEN_REDIS_PASSWORD: 'master-pw',
    HAVEN_REDIS_SENTINEL_PASSWORD: 'sentinel-pw',
  });
  assert.equal(config.redis.sentinels, ['10.0.0.1:26379', '10.0.0.2:26379', '[fd00::3]:26380']);
  assert.is(config.redis.sentinelName, 'mymaster');
  assert.is(config.redis.url, undefined);
  assert.equal(redisConnectionOf(config.redis), {
    sentinels: [
      { host: '10.0.0.1', port: 26379 },
      { host: '10.0.0.2', port: 26379 },
      { host: 'fd00::3', port: 26380 },
    ],
    name: 'mymaster',
    password: 'master-pw',
    sentinelPassword: 'sentinel-pw',
  });
  const named = loadConfig({ HAVEN_REDIS_SENTINELS: 's1:26379', HAVEN_REDIS_SENTINEL_NAME: 'haven' });
  assert.is(named.redis.sentinelName, 'haven');
  assert.is(redisConnectionOf(loadConfig({}).redis), undefined, 'neither: the embedded Redis');
  // A URL, as ioredis reads it.
  const options = redisOptions({ url: 'rediss://user:p%40ss@[::1]:6380/2?family=6' });
  assert.equal(
    [options.host, options.port, options.username, options.password, options.db, options.tls, options.family],
    ['::1', 6380, 'user', 'p@ss', 2, {}, 6],
  );
});

test('redis.url and redis.sentinels together, a password without sentinels, a bad sentinel are refused', () => {
  const [both] = problemsOf({ REDIS_URL: 'redis://localhost:6379', HAVEN_REDIS_SENTINELS: 's1:26379' });
  assert.is(both?.env, 'HAVEN_REDIS_SENTINELS');
  assert.match(both?.message ?? '', /not both/);
  const [password] = problemsOf({ REDIS_URL: 'redis://localhost:6379', HAVEN_REDIS_PASSWORD: 'pw' });
  assert.is(password?.env, 'HAVEN_REDIS_PASSWORD');
  assert.match(password?.message ?? '', /in the URL/);
  const [sentinelPassword] = problemsOf({ HAVEN_REDIS_SENTINEL_PASSWORD: 'pw' });
  assert.is(sentinelPassword?.key, 'redis.sentinelPassword');
  for (const bad of ['s1', 's1:port', 's1:70000', '::1:26379']) {
    const [problem] = problemsOf({ HAVEN_REDIS_SENTINELS: bad });
    assert.match(problem?.key ?? '', /^redis\.sentinels/, bad);
  }
});

test('several bad values are all reported at once', () => {
  const problems = problemsOf({ HAVEN_HTTP_PORT: '-1', HAVEN_ENV: 'staging' });
  assert.equal(problems.map((p) => p.env).sort(), ['HAVEN_ENV', 'HAVEN_HTTP_PORT']);
});

test('a media port range upside down is refused', () => {
  const [problem] = problemsOf({ HAVEN_MEDIA_RTC_MIN_PORT: '50000', HAVEN_MEDIA_RTC_MAX_PORT: '40000' });
  assert.is(problem?.key, 'media.rtcMinPort');
  assert.match(problem?.message ?? '', /rtcMaxPort/);
});

test('an unknown key in the file is refused, not ignored', () => {
  const problems = problemsOf({ HAVEN_CONFIG: jsonFile('{"http": {"prot": 80}}') });
  assert.is(problems[0]?.key, 'http');
  assert.match(problems[0]?.message ?? '', /prot/);
});

test('a file that is missing or not a JSON object is refused', () => {
  assert.match(problemsOf({ HAVEN_CONFIG: '/nonexistent/haven.json' })[0]?.message ?? '', /cannot read/);
  assert.match(problemsOf({ HAVEN_CONFIG: jsonFile('{ nope') })[0]?.message ?? '', /not a JSON object/);
  assert.match(problemsOf({ HAVEN_CONFIG: jsonFile('[1, 2]') })[0]?.message ?? '', /not a JSON object/);
});

test('the server exits 2 on a bad value, naming the key and what is allowed', () => {
  const result = spawnSync(process.execPath, ['--import', 'tsx', 'app/main.ts'], {
    cwd: root,
    env: { ...process.env, HAVEN_MEDIA_LOG_LEVEL: 'chatty' },
    encoding: 'utf8',
    timeout: 30_000,
  });
  assert.is(result.status, 2);
  assert.match(result.stderr, /media\.logLevel \(HAVEN_MEDIA_LOG_LEVEL\)/);
  assert.match(result.stderr, /"debug"\|"warn"\|"error"\|"none"/);
  assert.match(result.stderr, /given: "chatty"/);
});

test('trusted proxies: addresses and CIDR ranges of both families, none by default', () => {
  assert.equal(loadConfig({}).http.trustedProxies, []);
  const config = loadConfig({ HAVEN_TRUSTED_PROXIES: '127.0.0.1, 10.0.0.0/8,::1, fd00::/8' });
  assert.equal(config.http.trustedProxies, ['127.0.0.1', '10.0.0.0/8', '::1', 'fd00::/8']);
  const fromFile = loadConfig({ HAVEN_CONFIG: jsonFile('{"http": {"trustedProxies": ["192.0.2.10"]}}') });
  assert.equal(fromFile.http.trustedProxies, ['192.0.2.10']);
});

test('a trusted proxy that is not an address or a range is refused, naming the variable and the entry', () => {
  for (const bad of ['nginx.internal', '10.0.0.0/33', '10.0.0.1:8080', 'fd00::/200']) {
    const [problem] = problemsOf({ HAVEN_TRUSTED_PROXIES: `127.0.0.1,${bad}` });
    assert.is(problem?.key, 'http.trustedProxies.1', bad);
    assert.is(problem?.env, 'HAVEN_TRUSTED_PROXIES');
    assert.match(problem?.message ?? '', /IP address or a CIDR range/);
    assert.is(problem?.received, `127.0.0.1,${bad}`);
  }
});

test('the per-address connection cap: 50 by default, a positive integer', () => {
  assert.is(loadConfig({}).signaling.maxConnectionsPerAddress, 50);
  assert.is(loadConfig({ HAVEN_SIGNALING_MAX_CONNECTIONS_PER_ADDRESS: '3' }).signaling.maxConnectionsPerAddress, 3);
  for (const bad of ['0', '-1', '2.5', 'many'])
    assert.is(
      problemsOf({ HAVEN_SIGNALING_MAX_CONNECTIONS_PER_ADDRESS: bad })[0]?.key,
      'signaling.maxConnectionsPerAddress',
    );
});

test('E2EE: rooms not encrypted by default, a 900 s rotation, a 2 s acknowledgement wait; bounds refused', () => {
  assert.equal(loadConfig({}).e2ee, { default: false, rotationIntervalS: 900, keyAckTimeoutMs: 2_000 });
  const set = loadConfig({
    HAVEN_E2EE_DEFAULT: 'true',
    HAVEN_E2EE_ROTATION_INTERVAL_S: '60',
    HAVEN_E2EE_KEY_ACK_TIMEOUT_MS: '500',
  });
  assert.equal(set.e2ee, { default: true, rotationIntervalS: 60, keyAckTimeoutMs: 500 });
  for (const [env, value, key] of [
    ['HAVEN_E2EE_DEFAULT', 'maybe', 'e2ee.default'],
    ['HAVEN_E2EE_ROTATION_INTERVAL_S', '0', 'e2ee.rotationIntervalS'],
    ['HAVEN_E2EE_ROTATION_INTERVAL_S', '1.5', 'e2ee.rotationIntervalS'],
    ['HAVEN_E2EE_KEY_ACK_TIMEOUT_MS', '0', 'e2ee.keyAckTimeoutMs'],
    ['HAVEN_E2EE_KEY_ACK_TIMEOUT_MS', '60001', 'e2ee.keyAckTimeoutMs'],
  ] as const) {
    assert.is(problemsOf({ [env]: value })[0]?.key, key, `${env}=${value}`);
  }
});

test.run();
