/**
 * `verifyWebhook` against `signWebhook`, the signer Haven's webhook worker uses: a signed delivery
 * verifies (from node:http headers, a Fetch `Headers`, a string or a Buffer body), and each way a
 * delivery can be wrong is refused with its own code.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { HavenWebhookError } from '../../server-sdk/src/errors.ts';
import { signWebhook, verifyWebhook } from '../../server-sdk/src/webhooks.ts';

const secret = 'a-webhook-secret-0123456789';
const event = { id: 'evt-1', type: 'session.started', room: 'grp-42', occurredAt: '2026-12-01T17:00:00.000Z' };
const body = JSON.stringify(event);
const now = Math.floor(Date.now() / 1000);
const signed = (at = now, text: string = body, key = secret) => ({
  'haven-timestamp': String(at),
  'haven-signature': signWebhook(key, at, text),
});

function refusal(options: Parameters<typeof verifyWebhook>[0]): string {
  try {
    verifyWebhook(options);
  } catch (err) {
    assert.instance(err, HavenWebhookError);
    return (err as HavenWebhookError).code;
  }
  throw new Error('the delivery verified');
}

test('a signed delivery verifies, whatever form its headers and body come in', () => {
  assert.equal(verifyWebhook({ headers: signed(), rawBody: body, secret }), event);
  assert.equal(verifyWebhook({ headers: new Headers(signed()), rawBody: Buffer.from(body), secret }), event);
  // The signature's format is the documented one: v1= and the hex HMAC-SHA256 of "<timestamp>.<body>".
  assert.match(signed()['haven-signature'], /^v1=[0-9a-f]{64}$/);
});

test('each wrong delivery is refused with its code', () => {
  assert.is(refusal({ headers: signed(now, body, 'another-secret'), rawBody: body, secret }), 'INVALID_SIGNATURE');
  assert.is(refusal({ headers: signed(), rawBody: body.replace('grp-42', 'grp-43'), secret }), 'INVALID_SIGNATURE');
  assert.is(
    refusal({ headers: { ...signed(), 'haven-timestamp': String(now + 1) }, rawBody: body, secret }),
    'INVALID_SIGNATURE',
  );
  assert.is(refusal({ headers: {}, rawBody: body, secret }), 'MISSING_SIGNATURE');
  assert.is(
    refusal({ headers: { 'haven-signature': 'sha256=abc', 'haven-timestamp': String(now) }, rawBody: body, secret }),
    'MISSING_SIGNATURE',
  );
  assert.is(
    refusal({ headers: { ...signed(), 'haven-timestamp': ['1', '2'] }, rawBody: body, secret }),
    'MISSING_SIGNATURE',
  );
  // At the edge the clock is the test's (a loaded machine may take seconds to get here).
  const nowMs = now * 1000;
  assert.is(refusal({ headers: signed(now - 301), rawBody: body, secret, nowMs }), 'STALE_TIMESTAMP');
  assert.is(refusal({ headers: signed(now + 301), rawBody: body, secret, nowMs }), 'STALE_TIMESTAMP');
  assert.equal(verifyWebhook({ headers: signed(now - 300), rawBody: body, secret, nowMs }), event, '300 s is within');
  assert.equal(verifyWebhook({ headers: signed(now - 301), rawBody: body, secret, nowMs, toleranceS: 600 }), event);
  // A type this package does not know yet is still a signed Haven event.
  const newer = JSON.stringify({ ...event, type: 'session.paused' });
  assert.is(verifyWebhook({ headers: signed(now, newer), rawBody: newer, secret }).type, 'session.paused');
  const notAnEvent = JSON.stringify({ id: 'x', occurredAt: 'now' });
  assert.is(refusal({ headers: signed(now, notAnEvent), rawBody: notAnEvent, secret }), 'INVALID_PAYLOAD');
  assert.is(refusal({ headers: signed(now, 'not json'), rawBody: 'not json', secret }), 'INVALID_PAYLOAD');
});

test('wrong options are a TypeError, not a refused delivery', () => {
  assert.throws(() => verifyWebhook({ headers: signed(), rawBody: body, secret: '' }), TypeError);
  assert.throws(() => verifyWebhook({ headers: signed(), rawBody: event as unknown as string, secret }), TypeError);
  assert.throws(() => verifyWebhook({ headers: signed(), rawBody: body, secret, toleranceS: 0 }), TypeError);
});

test.run();
