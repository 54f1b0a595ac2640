/**
 * The SDK's notification router without a server: room notifications dropped unless joined and
 * held (in order) while a join answer is applied; stage notifications kept aside while a stage
 * request is in flight; final ones handled at once; nothing from a connection no longer current.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { NotificationRouter, type NotificationRoutes } from '../../client-sdk/src/notification-router.ts';
import type { SessionState, WaitingInfo } from '../../client-sdk/src/protocol/index.ts';
import { TypedEmitter } from '../../client-sdk/src/protocol/typed-emitter.ts';
import type { Signaling, SignalingEvents } from '../../client-sdk/src/signaling.ts';

/** A connection whose notifications the test sends itself. */
class FakeSignaling extends TypedEmitter<SignalingEvents> {}

function setUp() {
  const seen: string[] = [];
  const client = { joined: false, current: true };
  const router = new NotificationRouter(() => client.joined);
  const signaling = new FakeSignaling();
  const routes = {
    room: {
      roomLocked: ({ locked }: { locked: boolean }) => seen.push(`locked:${locked}`),
      handLowered: ({ participantId }: { participantId: string }) => seen.push(`lowered:${participantId}`),
    },
    stage: {
      waiting: (info: WaitingInfo) => seen.push(`waiting:${info.message ?? ''}`),
      admitted: () => seen.push('admitted'),
    },
    final: { replaced: () => seen.push('replaced') },
  } as unknown as NotificationRoutes;
  router.attach(signaling as unknown as Signaling, () => client.current, routes);
  return { seen, client, router, signaling };
}

const session = {} as SessionState;

test('room notifications: handled only in the room', () => {
  const { seen, client, signaling } = setUp();
  signaling.safeEmit('roomLocked', { locked: true });
  assert.equal(seen, [], 'dropped before the join');
  client.joined = true;
  signaling.safeEmit('roomLocked', { locked: true });
  assert.equal(seen, ['locked:true']);
});

test('held while a join answer is applied: in order, for the caller to replay; released ones are dropped', () => {
  const { seen, client, router, signaling } = setUp();
  const held = router.hold();
  signaling.safeEmit('roomLocked', { locked: true });
  signaling.safeEmit('handLowered', { participantId: 'p-1' });
  signaling.safeEmit('waiting', { facilitatorPresent: true, message: 'held too' });
  assert.equal(seen, [], 'nothing handled while held, even joined or not');
  assert.ok(router.holding(held));
  assert.is(router.keepHolding(), held, 'an admission keeps what is held so far');
  router.release();
  assert.not.ok(router.holding(held));
  for (const run of held) run();
  assert.equal(seen, ['locked:true', 'lowered:p-1', 'waiting:held too']);
  seen.length = 0;
  router.hold();
  signaling.safeEmit('roomLocked', { locked: false });
  router.release();
  client.joined = true;
  signaling.safeEmit('handLowered', { participantId: 'p-2' });
  assert.equal(seen, ['lowered:p-2'], 'what was held and released is gone; new ones are handled');
});

test('stage notifications: kept aside while a stage request is in flight (the latest of each), then handled at once', () => {
  const { seen, router, signaling } = setUp();
  const early = router.startStage();
  signaling.safeEmit('waiting', { facilitatorPresent: false, message: 'first' });
  signaling.safeEmit('waiting', { facilitatorPresent: true, message: 'second' });
  signaling.safeEmit('admitted', session);
  assert.equal(seen, [], 'not handled before the answer');
  assert.equal(early.waiting, { facilitatorPresent: true, message: 'second' });
  assert.is(early.admitted, session);
  const other = router.startStage();
  router.endStage(early);
  signaling.safeEmit('waiting', { facilitatorPresent: true });
  assert.equal(seen, [], 'ending an older stage request leaves the current one');
  assert.equal(other.waiting, { facilitatorPresent: true });
  router.endStage(other);
  signaling.safeEmit('waiting', { facilitatorPresent: true, message: 'now' });
  signaling.safeEmit('admitted', session);
  assert.equal(seen, ['waiting:now', 'admitted'], 'handled whatever the state once no request is in flight');
});

test('final notifications: at once, even while holding; reset() drops every buffer', () => {
  const { seen, router, signaling } = setUp();
  const held = router.hold();
  const early = router.startStage();
  signaling.safeEmit('replaced', {});
  assert.equal(seen, ['replaced']);
  router.reset();
  assert.not.ok(router.holding(held));
  signaling.safeEmit('waiting', { facilitatorPresent: true, message: 'after reset' });
  assert.is(early.waiting, undefined, 'no longer kept aside');
  assert.equal(seen, ['replaced', 'waiting:after reset']);
});

test('a connection that is no longer current (or a closed client) is not listened to', () => {
  const { seen, client, signaling } = setUp();
  client.joined = true;
  client.current = false;
  signaling.safeEmit('roomLocked', { locked: true });
  signaling.safeEmit('waiting', { facilitatorPresent: true });
  signaling.safeEmit('replaced', {});
  assert.equal(seen, []);
});

test.run();
