/** The soak's arithmetic: durations, the fitted rise after the warm-up, the bounds. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { analyse, parseDuration, type SoakSample, slope } from '../../bench/soak.ts';

const mb = 1024 * 1024;

function samples(rss: (t: number) => number, seconds = 600, every = 10): SoakSample[] {
  return Array.from({ length: seconds / every + 1 }, (_, i) => ({
    t: i * every,
    nodeRssBytes: rss(i * every),
    workersRssBytes: 50 * mb,
    nodeFds: 40,
    workersFds: 20,
    errors: 0,
  }));
}

test('durations', () => {
  assert.is(parseDuration('30m'), 1800);
  assert.is(parseDuration('90s'), 90);
  assert.is(parseDuration('1h'), 3600);
  assert.is(parseDuration('45'), 45);
  assert.is(parseDuration('0m'), undefined);
  assert.is(parseDuration('soon'), undefined);
});

test('slope of a line', () => {
  assert.is(
    slope([
      { x: 0, y: 1 },
      { x: 2, y: 5 },
    ]),
    2,
  );
  assert.is(slope([{ x: 0, y: 1 }]), 0);
});

test('a garbage-collector saw-tooth holds; the warm-up is not counted', () => {
  // Climbs 100 MB in the first two minutes, then swings ±8 MB around a flat line.
  const rss = (t: number) => (t < 120 ? t * mb : 120 * mb + ((t / 10) % 2 === 0 ? 8 : -8) * mb);
  const node = analyse(samples(rss), 120).find((s) => s.name === 'nodeRssBytes');
  assert.ok(node?.held, JSON.stringify(node));
  assert.ok(Math.abs(node?.rise ?? 1e12) < 2 * mb);
  assert.is(node?.maxMinusMin, 16 * mb);
});

test('a steady leak past the bound fails, and one within it holds', () => {
  const leak = (bytesPerSecond: number) =>
    analyse(
      samples((t) => 100 * mb + t * bytesPerSecond),
      60,
    );
  const fast = leak(50 * 1024).find((s) => s.name === 'nodeRssBytes'); // about 26 MB over 540 s
  assert.is(fast?.held, false);
  assert.ok(Math.abs((fast?.rise ?? 0) - 540 * 50 * 1024) < 1);
  assert.ok(leak(10 * 1024).every((s) => s.held));
});

test.run();
