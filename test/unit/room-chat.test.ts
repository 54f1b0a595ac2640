/** Chat routing, over a fake media layer (test/helpers/fake-room.ts). */

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { ChatMessage } from '../../client-sdk/src/protocol/index.ts';
import type { HavenError } from '../../server/errors.ts';
import { closeFakeRooms, fakeRoom } from '../helpers/fake-room.ts';

test.after.each(closeFakeRooms);

const code = (err: unknown) => (err as HavenError).code;

function chatTo(f: Awaited<ReturnType<typeof fakeRoom>>, text: string): string[] {
  return f.told.filter((t) => t.name === 'chatMessage' && (t.args[0] as ChatMessage).text === text).map((t) => t.to);
}

/** A room with a facilitator (f1) and two participants (p1, p2). */
async function facilitatorAndTwo(overrides: Parameters<typeof fakeRoom>[0] = {}) {
  const f = await fakeRoom(overrides);
  await f.join('f1', 'facilitator');
  const p1 = await f.join('p1', 'participant');
  await f.join('p2', 'participant');
  return { f, p1 };
}

test('to everyone: everyone in the session who may see the sender, not those waiting', async () => {
  const f = await fakeRoom({ waitingRoom: true });
  const f1 = await f.join('f1', 'facilitator');
  const p1 = await f.join('p1', 'participant');
  await f.room.moderation.admit(f1, 'p1');
  await f.join('p2', 'participant');
  const o1 = await f.join('o1', 'observer', { chat: true });
  f.room.chat.send(p1, 'hello', 'everyone');
  assert.equal(chatTo(f, 'hello').sort(), ['f1', 'o1', 'p1']);
  f.room.chat.send(o1, 'from a hidden observer', 'everyone');
  assert.equal(chatTo(f, 'from a hidden observer').sort(), ['f1', 'o1'], 'hidden from participants');
});

test('to the facilitators: them and the sender', async () => {
  const { f, p1 } = await facilitatorAndTwo();
  f.room.chat.send(p1, 'a question', 'facilitators');
  assert.equal(chatTo(f, 'a question').sort(), ['f1', 'p1']);
});

test('privately: to or from a facilitator always; between participants only where the room allows it', async () => {
  const { f, p1 } = await facilitatorAndTwo();
  f.room.chat.send(p1, 'just you', 'f1');
  assert.equal(chatTo(f, 'just you'), ['p1', 'f1']);
  assert.throws(
    () => f.room.chat.send(p1, 'psst', 'p2'),
    (err: HavenError) => err.code === 'FORBIDDEN',
  );
  assert.throws(
    () => f.room.chat.send(p1, 'anyone?', 'nobody'),
    (err: HavenError) => err.code === 'NOT_FOUND',
  );
  const open = await fakeRoom({ privateChat: true });
  const q1 = await open.join('p1', 'participant');
  await open.join('p2', 'participant');
  open.room.chat.send(q1, 'psst', 'p2');
  assert.equal(chatTo(open, 'psst'), ['p1', 'p2']);
});

test('without the chat capability nothing is sent', async () => {
  const f = await fakeRoom();
  const o1 = await f.join('o1', 'observer');
  assert.throws(
    () => f.room.chat.send(o1, 'hi', 'everyone'),
    (err: HavenError) => err.code === 'FORBIDDEN',
  );
});

test('a deleted message is withdrawn from everyone who received it, and from the archive', async () => {
  const kept: string[] = [];
  const forgotten: string[] = [];
  const f = await fakeRoom(
    { keepChat: true },
    { chatArchive: { keep: (_room, m) => kept.push(m.id), forget: (_room, id) => forgotten.push(id) } },
  );
  const f1 = await f.join('f1', 'facilitator');
  const p1 = await f.join('p1', 'participant');
  await f.join('p2', 'participant');
  const { messageId } = f.room.chat.send(p1, 'oops', 'facilitators');
  assert.equal(kept, [messageId]);
  await f.room.moderation.deleteChatMessage(f1, messageId);
  assert.equal(forgotten, [messageId]);
  assert.equal(
    f.told
      .filter((t) => t.name === 'chatMessageDeleted')
      .map((t) => t.to)
      .sort(),
    ['f1', 'p1'],
  );
  assert.is(code(await f.room.moderation.deleteChatMessage(f1, messageId).catch((e) => e)), 'NOT_FOUND');
});

test.run();
