import { createHmac } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { turnIceServers } from '../../server/media/turn.ts';

test('no TURN configured: no ICE servers', () => {
  assert.equal(turnIceServers({ urls: [], ttlS: 60 }, 'pt-1'), []);
});

test('coturn REST credentials: expiry:tag username, HMAC-SHA1 password in base64', () => {
  const now = Date.UTC(2026, 10, 26, 12, 0, 0);
  const [server] = turnIceServers(
    { urls: ['turn:turn.example.org:3478'], secret: 's3cret-s3cret-s3', ttlS: 3600 },
    'pt-1',
    now,
  );
  const expiry = now / 1000 + 3600;
  assert.match(String(server?.username), new RegExp(`^${expiry}:[A-Za-z0-9_-]{22}$`));
  assert.is(
    server?.credential,
    createHmac('sha1', 's3cret-s3cret-s3').update(String(server?.username)).digest('base64'),
  );
  assert.equal(server?.urls, ['turn:turn.example.org:3478']);
});

test('the username never carries the participant id (it travels in clear over turn: and reaches coturn’s log)', () => {
  const turn = { urls: ['turn:turn.example.org:3478'], secret: 's3cret-s3cret-s3', ttlS: 3600 };
  const tag = (id: string, settings = turn) => String(String(turnIceServers(settings, id)[0]?.username).split(':')[1]);
  assert.not.ok(tag('patient-4711').includes('patient-4711'));
  // One tag per participant (coturn's user-quota counts per tag), another for anyone else, and
  // another under another secret: nobody without the secret links it to the participant.
  assert.is(tag('patient-4711'), tag('patient-4711'));
  assert.is.not(tag('patient-4711'), tag('patient-4712'));
  assert.is.not(tag('patient-4711'), tag('patient-4711', { ...turn, secret: 'another-secret-16' }));
});

test.run();
