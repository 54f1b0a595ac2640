/** The signaling scenario's message pattern: the same against Haven and bare socket.io. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { nextRequest } from '../../bench/signaling-gen.ts';

const size = 8;
const room = 'sig-0';
const members = Array.from({ length: size }, (_, index) => ({ index, size, room }));

test('one request a second each: about one chat a second per room, moderation every fifth second', () => {
  const seconds = 40;
  let chats = 0;
  let moderation = 0;
  for (let tick = 0; tick < seconds; tick++) {
    for (const m of members) {
      const { haven, bare } = nextRequest(m, tick);
      if (haven[0] === 'sendChat') {
        chats++;
        assert.is(bare[0], 'chat');
      } else if (['raiseHand', 'lowerHand'].includes(haven[0])) assert.is(bare[0], 'hand');
      else {
        moderation++;
        assert.is(m.index, 0, 'only the facilitator moderates');
        assert.is(bare[0], 'moderate');
      }
    }
  }
  assert.is(chats, ((size - 1) * seconds) / size);
  assert.is(moderation, seconds / 5);
});

test('moderation cycles through mute, unmute request, lock and a waiting-room message, at participants', () => {
  const actions = [4, 9, 14, 19, 24].map((tick) => nextRequest({ index: 0, size, room }, tick).haven);
  assert.equal(
    actions.map(([name]) => name),
    ['mute', 'requestUnmute', 'lockRoom', 'messageWaitingRoom', 'mute'],
  );
  for (const [name, payload] of actions) {
    if (name === 'mute' || name === 'requestUnmute')
      assert.match((payload as { participantId: string }).participantId, /^sig-0-p[1-7]$/);
  }
});

test.run();
