/**
 * What a refused payload is told (`INVALID_REQUEST`): the fields at fault, never their values,
 * also for requests whose payload may take several shapes, described by the shape it came
 * closest to (before, those were all "payload: Invalid input").
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { describeIssues } from '../../server/errors.ts';
import { requestSchemas } from '../../server/signaling/schemas.ts';

function described(name: keyof typeof requestSchemas, payload: unknown): string {
  const parsed = requestSchemas[name].safeParse(payload);
  assert.not.ok(parsed.success, `${JSON.stringify(payload)} is refused`);
  return describeIssues(parsed.error as never);
}

test('a union’s refusal names the field of the shape the payload came closest to', () => {
  for (const [name, payload, field] of [
    ['createBreakouts', { count: '2' }, /^count: /],
    ['createBreakouts', { count: 1.5 }, /^count: /],
    [
      'createBreakouts',
      { groups: Array.from({ length: 51 }, (_, i) => ({ name: `g${i}`, members: [] })) },
      /^groups: /,
    ],
    ['createBreakouts', { groups: [{ name: 'A', members: [null] }] }, /^groups\.0\.members\.0: /],
    ['createBreakouts', { groups: [{ name: 'A' }] }, /^groups\.0\.members: /],
    ['broadcastToBreakouts', { text: 12 }, /^text: /],
    ['broadcastToBreakouts', { texts: [{ breakoutId: 'b1', text: 7 }] }, /^texts\.0\.text: /],
  ] as const) {
    const message = described(name, payload);
    assert.match(message, field, `${name} ${JSON.stringify(payload).slice(0, 60)}: ${message}`);
    assert.not.match(message, /Invalid input$/, message);
  }
});

test('the values themselves are never echoed', () => {
  const secret = 'Pat Example, 555-0100';
  for (const message of [
    described('createBreakouts', { count: secret }),
    described('broadcastToBreakouts', { text: secret, texts: [] }),
    described('createBreakouts', { groups: [{ name: 'A', members: [secret, 5] }] }),
  ]) {
    assert.not.ok(message.includes('555'), message);
  }
});

test.run();
