import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { TokenBucket } from '../../server/signaling/rate-limit.ts';

test('a full bucket serves its burst, then refuses', () => {
  const now = 0;
  const bucket = new TokenBucket(10, 5, () => now);
  const taken = Array.from({ length: 8 }, () => bucket.take());
  assert.equal(taken, [true, true, true, true, true, false, false, false]);
});

test('tokens come back at the rate, never above the burst', () => {
  let now = 0;
  const bucket = new TokenBucket(10, 5, () => now);
  for (let i = 0; i < 5; i++) bucket.take();
  now += 250; // 2.5 tokens
  assert.ok(bucket.take());
  assert.ok(bucket.take());
  assert.not.ok(bucket.take());
  now += 60_000;
  assert.is(Array.from({ length: 10 }, () => bucket.take()).filter(Boolean).length, 5);
});

test.run();
