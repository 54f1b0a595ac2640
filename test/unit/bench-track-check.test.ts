/** The bench's track check: who should receive what, and how a miss is named. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { describeMissing, missingTracks, type Receiver } from '../../bench/track-check.ts';

function member(id: string, room: string, produces: [string, 'audio' | 'video'][], consumes: [string, number][]) {
  return { id, room, produces: new Map(produces), consumes: new Map(consumes), receives: true } satisfies Receiver;
}

test('everyone receiving everyone else in the room: nothing missing', () => {
  const members = [
    member('a', 'r1', [['pa', 'audio']], [['pb', 2]]),
    member('b', 'r1', [['pb', 'video']], [['pa', 1]]),
    member('c', 'r2', [['pc', 'audio']], []),
  ];
  assert.equal(
    missingTracks(members, () => 10),
    [],
  );
});

test('a track never consumed and one consumed without packets are both named', () => {
  const members = [
    member(
      'a',
      'r1',
      [['pa', 'audio']],
      [
        ['pb1', 7],
        ['pb2', 8],
      ],
    ),
    member(
      'b',
      'r1',
      [
        ['pb1', 'audio'],
        ['pb2', 'video'],
      ],
      [],
    ),
  ];
  const missing = missingTracks(members, (ssrc) => (ssrc === 8 ? 0 : 5));
  assert.equal(missing, [
    { participant: 'a', producerId: 'pb2', owner: 'b', kind: 'video', reason: 'no packets' },
    { participant: 'b', producerId: 'pa', owner: 'a', kind: 'audio', reason: 'not consumed' },
  ]);
  assert.match(
    describeMissing(missing),
    /^2 tracks missing: a lacks b's video pb2 \(no packets\); b lacks a's audio pa/,
  );
});

test('someone who receives no media (a latecomer) is not expected to', () => {
  const late = { ...member('late', 'r1', [], []), receives: false };
  assert.equal(
    missingTracks([member('a', 'r1', [['pa', 'audio']], []), late], () => 0),
    [],
  );
});

test('a long list is cut, with the total', () => {
  const many = Array.from({ length: 3 }, (_, i) => ({
    participant: `p${i}`,
    producerId: `x${i}`,
    owner: 'o',
    kind: 'audio' as const,
    reason: 'not consumed' as const,
  }));
  assert.match(describeMissing(many, 40, 2), /^40 tracks missing: .*; and 38 more$/);
});

test.run();
