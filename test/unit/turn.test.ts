import { createHmac } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { turnIceServers } from '../../server/media/turn.ts';

test('no TURN configured: no ICE servers', () => {
  assert.equal(turnIceServers({ urls: [], ttlS: 60 }, 'pt-1'), []);
});

test('coturn REST credentials: expiry:id username, HMAC-SHA1 password in base64', () => {
  const now = Date.UTC(2026, 10, 26, 12, 0, 0);
  const [server] = turnIceServers(
    { urls: ['turn:turn.example.org:3478'], secret: 's3cret-s3cret-s3', ttlS: 3600 },
    'pt-1',
    now,
  );
  const expiry = now / 1000 + 3600;
  assert.is(server?.username, `${expiry}:pt-1`);
  assert.is(server?.credential, createHmac('sha1', 's3cret-s3cret-s3').update(`${expiry}:pt-1`).digest('base64'));
  assert.equal(server?.urls, ['turn:turn.example.org:3478']);
});

test.run();
