/**
 * The SDK's room view and moderation state without a server: what an admission says, then each
 * notification applied and emitted as the client's event; raised hands oldest first; the newest
 * live attendance kept.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ModerationState } from '../../client-sdk/src/moderation.ts';
import type { AttendanceSnapshot, ChatMessage, SessionState } from '../../client-sdk/src/protocol/index.ts';
import { TypedEmitter } from '../../client-sdk/src/protocol/typed-emitter.ts';
import { RoomView } from '../../client-sdk/src/room-view.ts';
import type { ReceivedChatMessage, SessionClientEvents } from '../../client-sdk/src/session-events.ts';

/** Records every event the parts emit, as `name` and arguments. */
function recorder() {
  const events = new TypedEmitter<SessionClientEvents>();
  const emitted: [string, ...unknown[]][] = [];
  const original = events.safeEmit.bind(events);
  events.safeEmit = ((name: keyof SessionClientEvents, ...args: unknown[]) => {
    emitted.push([name, ...args]);
    return original(name, ...(args as never));
  }) as typeof events.safeEmit;
  return { events, emitted };
}

function admission(overrides: Partial<SessionState> = {}): SessionState {
  return {
    room: { id: 'grp-1', kind: 'group', title: 'Tuesday group', e2ee: false, shareConnectionQuality: false },
    self: { id: 'me', name: 'Me', role: 'facilitator', tracks: [] },
    capabilities: { publishAudio: true, publishVideo: true, publishScreen: true, chat: true },
    participants: [],
    routerRtpCapabilities: {},
    iceServers: [],
    resumed: false,
    reconnectGraceMs: 30_000,
    audioMode: 'controlled',
    locked: true,
    spotlight: 'p-2',
    hands: [
      { participantId: 'late', raisedAt: 300 },
      { participantId: 'early', raisedAt: 100 },
    ],
    waiting: [{ participantId: 'w-1', name: 'Waiting one', waitingSince: 50 }],
    connectionQuality: [],
    audioOnly: { enabled: false, reason: null },
    breakout: { running: false, group: null, endsAt: null },
    breakouts: null,
    ...overrides,
  };
}

test('room view: an admission sets it without events; hands oldest first, frozen', () => {
  const { events, emitted } = recorder();
  const view = new RoomView(events);
  assert.is(view.room, undefined);
  assert.is(view.audioMode, 'open');
  assert.is(view.locked, false);
  view.applySession(admission());
  assert.is(view.room?.title, 'Tuesday group');
  assert.is(view.audioMode, 'controlled');
  assert.is(view.locked, true);
  assert.is(view.spotlight, 'p-2');
  assert.equal(
    view.hands.map((hand) => hand.participantId),
    ['early', 'late'],
  );
  assert.ok(Object.isFrozen(view.hands));
  assert.equal(emitted, []);
});

test('room view: notifications applied and emitted; hands replaced and lowered; leave() clears the speaker and hands', () => {
  const { events, emitted } = recorder();
  const view = new RoomView(events);
  view.applySession(admission());
  const on = view.handlers();
  on.roomLocked({ locked: false });
  on.audioModeChanged({ mode: 'open' });
  on.spotlightChanged({ participantId: null });
  on.activeSpeaker({ participantId: 'p-3' });
  on.activeSpeaker({ participantId: 'p-3' });
  on.handRaised({ participantId: 'early', raisedAt: 400 });
  on.handLowered({ participantId: 'late' });
  on.chatMessage({ id: 'm-1', from: 'p-3', to: 'everyone', text: 'hello', sentAt: 1 });
  on.chatMessageDeleted({ messageId: 'm-1' });
  assert.is(view.locked, false);
  assert.is(view.audioMode, 'open');
  assert.is(view.spotlight, null);
  assert.is(view.activeSpeakerId, 'p-3');
  assert.equal(view.hands, [{ participantId: 'early', raisedAt: 400 }], 'a raised hand replaces the same person’s');
  assert.equal(
    emitted.map(([name]) => name),
    [
      'roomLocked',
      'audioModeChanged',
      'spotlightChanged',
      'activeSpeakerChanged',
      'handRaised',
      'handLowered',
      'chatMessage',
      'chatMessageDeleted',
    ],
    'the same speaker twice is one event',
  );
  view.leave();
  assert.is(view.activeSpeakerId, null);
  assert.equal(view.hands, []);
});

test('room view, E2EE chat: each message opened, emitted in arrival order with the deletions; none after leave()', async () => {
  const { events, emitted } = recorder();
  const pending = new Map<string, (message: ReceivedChatMessage) => void>();
  const opener = {
    enabled: true,
    openChat: (message: ChatMessage) => new Promise<ReceivedChatMessage>((resolve) => pending.set(message.id, resolve)),
  };
  const view = new RoomView(events, opener);
  view.applySession(admission());
  const on = view.handlers();
  const message = (id: string): ChatMessage => ({ id, from: 'p-3', to: 'everyone', text: `e2ee1.1.${id}`, sentAt: 1 });
  on.chatMessage(message('m-1'));
  on.chatMessage(message('m-2'));
  on.chatMessageDeleted({ messageId: 'm-1' });
  assert.equal(emitted, [], 'nothing before the first is opened');
  // The second opens first: it still comes after the first.
  pending.get('m-2')?.({ ...message('m-2'), text: 'second' });
  pending.get('m-1')?.({ ...message('m-1'), text: '', undecryptable: true });
  const settled = () => new Promise<void>((resolve) => setImmediate(resolve));
  await settled();
  assert.equal(emitted, [
    ['chatMessage', { ...message('m-1'), text: '', undecryptable: true }],
    ['chatMessage', { ...message('m-2'), text: 'second' }],
    ['chatMessageDeleted', 'm-1'],
  ]);
  on.chatMessage(message('m-3'));
  view.leave();
  pending.get('m-3')?.({ ...message('m-3'), text: 'late' });
  await settled();
  assert.is(emitted.length, 3, 'a message still being opened when the room is left is dropped');
});

test('moderation state: the waiting room from an admission and its updates; the newest attendance kept', () => {
  const { events, emitted } = recorder();
  const state = new ModerationState(events);
  state.applySession(admission());
  assert.equal(
    state.waiting.map((entry) => entry.participantId),
    ['w-1'],
  );
  const on = state.handlers();
  on.waitingRoomChanged({ waiting: [] });
  assert.equal(state.waiting, []);
  assert.ok(Object.isFrozen(state.waiting));
  const snapshot = (asOf: number): AttendanceSnapshot => ({ asOf, participants: [] });
  const first = state.applyAttendance(snapshot(2_000), 2_000);
  assert.is(state.applyAttendance(snapshot(1_000), 2_100), first, 'an older view does not replace a newer one');
  on.attendanceUpdated(snapshot(3_000));
  assert.is(state.attendance?.asOf, 3_000);
  assert.equal(
    emitted.map(([name]) => name),
    ['waitingRoomChanged', 'attendanceUpdated', 'attendanceUpdated'],
  );
  assert.not.ok(state.sessionEnded);
  state.markSessionEnded();
  assert.ok(state.sessionEnded);
  state.applySession(admission());
  state.leave();
  assert.equal(state.waiting, [], 'out of the room, the waiting room is out of view');
});

test.run();
