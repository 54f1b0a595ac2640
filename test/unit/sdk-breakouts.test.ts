/**
 * Breakout rooms in the SDK, without a Haven server: a facilitator's calls (the requests sent,
 * arguments checked before anything is), the state kept from the join answer and
 * `breakoutsChanged`; a participant's place and the round's events, in the server's order; a
 * reload into a group and a rejoin after the round ended; and the media around a move (a fake
 * media session): the tracks of those left behind unsubscribed, those of the new place
 * subscribed, nothing of someone gone consumed again.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  type BreakoutPlace,
  type BreakoutsState,
  HavenRequestError,
  type ParticipantInfo,
  type SessionClient,
  type SessionClientEvents,
} from '../../client-sdk/src/index.ts';
import type { MediaSession } from '../../client-sdk/src/media-session.ts';
import { RemoteMembers } from '../../client-sdk/src/participants/remote-members.ts';
import { TypedEmitter } from '../../client-sdk/src/protocol/typed-emitter.ts';
import { throwsAsync } from '../helpers/assert.ts';
import {
  cameraTrackFixture,
  fakeConsumerFixture,
  fakeHaven,
  routerRtpCapabilities,
  sessionStateFixture,
} from '../helpers/sdk-fixtures.ts';
import { createNodeSessionClient } from '../helpers/wrtc-session.ts';

const lee: ParticipantInfo = { id: 'f-1', name: 'Dr. Lee', role: 'facilitator', tracks: [] };
const pat: ParticipantInfo = { id: 'p-1', name: 'Pat', role: 'participant', tracks: [] };
const ann: ParticipantInfo = { id: 'p-2', name: 'Ann', role: 'participant', tracks: [] };
const bo: ParticipantInfo = { id: 'p-3', name: 'Bo', role: 'participant', tracks: [] };
const member = ({ id, name, role }: ParticipantInfo) => ({ participantId: id, name, role });

const none: BreakoutsState = {
  status: 'none',
  groups: [],
  main: [],
  startedAt: null,
  endsAt: null,
  noticeS: 60,
  help: [],
};
const planned: BreakoutsState = {
  ...none,
  status: 'planned',
  groups: [
    { id: 'b1', name: 'Pairs A', members: [member(pat), member(ann)] },
    { id: 'b2', name: 'Pairs B', members: [member(bo)] },
  ],
};
const running: BreakoutsState = { ...planned, status: 'running', startedAt: 1_000, main: [member(lee)] };
const idle: BreakoutPlace = { running: false, group: null, endsAt: null };
const inB1: BreakoutPlace = { running: true, group: { id: 'b1', name: 'Pairs A' }, endsAt: 9_000 };

function nextEvent<K extends keyof SessionClientEvents>(client: SessionClient, event: K): Promise<unknown[]> {
  return new Promise((resolve) => client.once(event, (...args) => resolve(args)));
}

test('a facilitator’s breakouts: one request per call, arguments checked first, the state from the session and breakoutsChanged', async () => {
  const server = await fakeHaven({
    join: () => ({
      stage: 'admitted',
      session: sessionStateFixture(routerRtpCapabilities, { self: lee, participants: [pat], breakouts: none }),
    }),
    // As the server does: facilitators are told before the answer.
    createBreakouts: (_, socket) => {
      socket.emit('breakoutsChanged', { state: planned, change: 'planned' });
      return planned;
    },
    updateBreakouts: () => planned,
    startBreakouts: () => running,
    moveToBreakout: ({ participantId, breakoutId }: { participantId: string; breakoutId: string | null }) => {
      if (participantId === 'f-2') throw { code: 'FORBIDDEN', message: 'facilitators visit' };
      return { breakoutId };
    },
    visitBreakout: ({ breakoutId }: { breakoutId: string | null }) => ({ breakoutId }),
    broadcastToBreakouts: () => ({ sentAt: 4_321 }),
  });
  const session = createNodeSessionClient(server.url, 'f-1');
  const { client } = session;
  const { breakouts } = client.moderation;
  try {
    assert.is(breakouts.state, null, 'nothing before joining');
    const changes: unknown[][] = [];
    client.on('breakoutsChanged', (...args) => changes.push(args));
    await client.connect();
    await client.join();
    assert.equal(breakouts.state, none);

    for (const bad of [
      () => breakouts.create({} as never),
      () => breakouts.create({ count: 0 }),
      () => breakouts.create({ count: 2, perGroup: 3 } as never),
      () => breakouts.create({ groups: [{ name: '  ', members: [] }] }),
      () => breakouts.create({ groups: [{ name: 'A', members: [''] }] }),
      () => breakouts.update('b1' as never),
      () => breakouts.start({ durationS: 5 }),
      () => breakouts.start({ durationS: 60, noticeS: 1.5 }),
      () => breakouts.move('', 'b1'),
      () => breakouts.move('p-1', ''),
      () => breakouts.visit(undefined as never),
      () => breakouts.broadcast('   '),
      () => breakouts.broadcast('x'.repeat(501)),
    ]) {
      await throwsAsync(async () => bad(), TypeError);
    }
    assert.equal(server.names(1), ['join'], 'nothing sent for a bad argument');

    assert.equal(await breakouts.create({ groups: [{ name: ' Pairs A ', members: ['p-1'] }] }), planned);
    assert.equal(breakouts.state, planned, 'current once the call resolves');
    assert.ok(Object.isFrozen(breakouts.state));
    assert.equal(changes, [[planned, 'planned', undefined]]);
    await breakouts.create({ count: 2 });
    await breakouts.create({ perGroup: 3 });
    await breakouts.update([{ name: 'Pairs B', members: [] }]);
    await breakouts.start();
    await breakouts.start({ durationS: 600, noticeS: 30 });
    await breakouts.move('p-1', 'b2');
    await breakouts.move('p-1', null);
    const refused = await breakouts.move('f-2', 'b1').catch((error) => error);
    assert.instance(refused, HavenRequestError);
    assert.is(refused.code, 'FORBIDDEN');
    await breakouts.visit('b2');
    await breakouts.visit(null);
    assert.is(await breakouts.broadcast('  Two minutes left '), 4_321);
    await breakouts.recall();
    assert.equal(
      server.received.slice(1).map(({ name, payload }) => [name, payload]),
      [
        ['createBreakouts', { groups: [{ name: 'Pairs A', members: ['p-1'] }] }],
        ['createBreakouts', { count: 2 }],
        ['createBreakouts', { perGroup: 3 }],
        ['updateBreakouts', { groups: [{ name: 'Pairs B', members: [] }] }],
        ['startBreakouts', {}],
        ['startBreakouts', { durationS: 600, noticeS: 30 }],
        ['moveToBreakout', { participantId: 'p-1', breakoutId: 'b2' }],
        ['moveToBreakout', { participantId: 'p-1', breakoutId: null }],
        ['moveToBreakout', { participantId: 'f-2', breakoutId: 'b1' }],
        ['visitBreakout', { breakoutId: 'b2' }],
        ['visitBreakout', { breakoutId: null }],
        ['broadcastToBreakouts', { text: 'Two minutes left' }],
        ['recallBreakouts', {}],
      ],
    );

    const socket = server.socket();
    const help = { breakoutId: 'b2', participantId: 'p-3', at: 2_000 };
    const asked = nextEvent(client, 'breakoutHelpRequested');
    socket.emit('breakoutHelpRequested', help);
    assert.equal(await asked, [help]);
    const withHelp = { ...running, help: [help] };
    const changed = nextEvent(client, 'breakoutsChanged');
    socket.emit('breakoutsChanged', { state: withHelp, change: 'help', participantId: 'p-3' });
    assert.equal(await changed, [withHelp, 'help', 'p-3']);
    assert.equal(breakouts.state, withHelp);
    // Someone of another group writes to everyone: a facilitator gets it, though not in view.
    const chat = nextEvent(client, 'chatMessage');
    socket.emit('chatMessage', { id: 'm1', from: 'p-3', to: 'everyone', text: 'hello', sentAt: 3_000 });
    const [message] = (await chat) as [{ from: string }];
    assert.is(message.from, 'p-3');
    assert.not.ok(client.participants.has('p-3'));
  } finally {
    await session.close();
    await server.close();
  }
});

test('a participant through a round: started, moved (those left behind go first), ending, broadcast, help, recalled, ended', async () => {
  const server = await fakeHaven({
    join: () => ({
      stage: 'admitted',
      session: sessionStateFixture(routerRtpCapabilities, { participants: [lee, ann, bo] }),
    }),
  });
  const session = createNodeSessionClient(server.url, 'p-1');
  const { client } = session;
  try {
    const log: string[] = [];
    const places: [BreakoutPlace, boolean][] = [];
    client.on('participantJoined', (p) => log.push(`joined ${p.id}`));
    client.on('participantLeft', (p, reason) => log.push(`left ${p.id} ${reason}`));
    client.on('activeSpeakerChanged', (id) => log.push(`speaker ${id}`));
    client.on('breakoutStarted', (endsAt) => log.push(`started ${endsAt}`));
    client.on('movedToBreakout', (place) => {
      log.push(`moved ${place.group?.id ?? 'main'} ${place.endsAt}`);
      places.push([place, place === client.breakout]);
    });
    client.on('breakoutEnding', (endsAt, secondsLeft) => log.push(`ending ${endsAt} ${secondsLeft}`));
    client.on('broadcastReceived', ({ from, name, text, sentAt }) =>
      log.push(`broadcast ${from} ${name} ${text} ${sentAt}`),
    );
    client.on('chatMessage', (message) => log.push(`chat ${message.from}`));
    client.on('breakoutEnded', () => log.push('ended'));
    client.on('breakoutsChanged', () => log.push('breakoutsChanged'));
    await client.connect();
    await client.join();
    log.splice(0);
    assert.equal(client.breakout, idle);
    assert.is(client.moderation.breakouts.state, null, 'a participant has no view of the whole');

    const socket = server.socket();
    socket.emit('activeSpeaker', { participantId: 'f-1' });
    socket.emit('breakoutStarted', { endsAt: 9_000 });
    socket.emit('participantLeft', { participantId: 'f-1', reason: 'movedToBreakout' });
    socket.emit('participantLeft', { participantId: 'p-3', reason: 'movedToBreakout' });
    socket.emit('movedToBreakout', inB1);
    socket.emit('breakoutEnding', { endsAt: 9_000, secondsLeft: 60 });
    socket.emit('broadcastReceived', { from: 'f-1', name: 'Dr. Lee', text: 'One minute', sentAt: 8_000 });
    // The facilitator, no longer in view, still writes to the group.
    socket.emit('chatMessage', { id: 'm1', from: 'f-1', to: 'everyone', text: 'hi', sentAt: 8_001 });
    await nextEvent(client, 'chatMessage');
    assert.equal(client.breakout, inB1);
    assert.ok(Object.isFrozen(client.breakout) && Object.isFrozen(client.breakout.group));
    assert.is(client.activeSpeakerId, null, 'the loudest speaker left the view');
    assert.equal([...client.participants.keys()], ['p-2']);
    await client.askForHelp();
    assert.equal(server.names(1).slice(1), ['askForHelp']);

    socket.emit('participantLeft', { participantId: 'p-2', reason: 'movedToBreakout' });
    socket.emit('movedToBreakout', idle);
    socket.emit('participantJoined', lee);
    socket.emit('participantJoined', bo);
    socket.emit('participantJoined', ann);
    const ended = nextEvent(client, 'breakoutEnded');
    socket.emit('breakoutEnded', {});
    await ended;
    assert.equal(log, [
      'speaker f-1',
      'started 9000',
      'left f-1 movedToBreakout',
      'speaker null',
      'left p-3 movedToBreakout',
      'moved b1 9000',
      'ending 9000 60',
      'broadcast f-1 Dr. Lee One minute 8000',
      'chat f-1',
      'left p-2 movedToBreakout',
      'moved main null',
      'joined f-1',
      'joined p-3',
      'joined p-2',
      'ended',
    ]);
    assert.equal(
      places.map(([place, same]) => [place.group?.id ?? null, same]),
      [
        ['b1', true],
        [null, true],
      ],
      'client.breakout is the object emitted',
    );
    assert.equal(client.breakout, idle);
    assert.equal([...client.participants.keys()].sort(), ['f-1', 'p-2', 'p-3']);
  } finally {
    await session.close();
    await server.close();
  }
});

test('a reload lands in one’s group (movedToBreakout on admission); a rejoin after the round ended is told the main room', async () => {
  const server = await fakeHaven({
    join: (_, _socket, connection) => ({
      stage: 'admitted',
      session: sessionStateFixture(routerRtpCapabilities, {
        participants: connection === 1 ? [ann] : [lee, ann, bo],
        breakout: connection === 1 ? inB1 : idle,
        resumed: connection > 1,
      }),
    }),
  });
  const session = createNodeSessionClient(server.url, 'p-1', { reconnect: { baseDelayMs: 10, maxDelayMs: 20 } });
  const { client } = session;
  try {
    const moves: BreakoutPlace[] = [];
    client.on('movedToBreakout', (place) => moves.push(place));
    await client.connect();
    await client.join();
    assert.equal(moves, [inB1]);
    assert.equal(client.breakout, inB1);
    assert.equal([...client.participants.keys()], ['p-2'], 'only the group');

    const back = nextEvent(client, 'movedToBreakout');
    server.socket().conn.close();
    assert.equal(await back, [idle], 'the move back was missed while the connection was down');
    assert.equal(client.breakout, idle);
    assert.equal(moves.length, 2);
  } finally {
    await session.close();
    await server.close();
  }
});

/* ---- The media around a move: a fake media session ----------------------------------------- */

/** A media session whose consumes the test sees, and may hold until it settles them. */
function heldMedia() {
  const consumed: string[] = [];
  const consumers = new Map<string, ReturnType<typeof fakeConsumerFixture>>();
  const held = new Map<string, { resolve: () => void; reject: (error: Error) => void }>();
  const media = {
    closed: false,
    hold: new Set<string>(),
    async consume(producerId: string) {
      consumed.push(producerId);
      const consumer = fakeConsumerFixture(producerId);
      consumers.set(producerId, consumer);
      if (media.hold.has(producerId))
        await new Promise<void>((resolve, reject) => held.set(producerId, { resolve, reject }));
      return { consumer, response: { kind: 'video', source: 'camera' } };
    },
  };
  return { media, consumed, consumers, held };
}

const withCamera = (info: ParticipantInfo): ParticipantInfo => ({ ...info, tracks: [cameraTrackFixture(info.id)] });

test('a move: the tracks of those left behind end (consumers closed), the new place’s are received, nothing of someone gone is consumed again', async () => {
  const events = new TypedEmitter<SessionClientEvents>();
  const log: string[] = [];
  events.on('trackSubscribed', (track, p) => log.push(`subscribed ${track.producerId} ${p.id}`));
  events.on('trackUnsubscribed', (track, p) => log.push(`unsubscribed ${track.producerId} ${p.id}`));
  events.on('participantLeft', (p, reason) => log.push(`left ${p.id} ${reason}`));
  events.on('error', (error) => log.push(`error ${error.message}`));
  const { media, consumed, consumers, held } = heldMedia();
  const host = { events, media: () => media as unknown as MediaSession, state: () => 'joined' as const };
  const others = new RemoteMembers({ ...host, receiving: () => true }, () => 'p-1');
  const on = others.handlers();
  const subscribed = (count: number) =>
    new Promise<void>((resolve) => {
      const seen = () => log.filter((line) => line.startsWith('subscribed')).length >= count && resolve();
      events.on('trackSubscribed', seen);
      seen();
    });

  on.participantJoined(withCamera(ann));
  on.participantJoined(withCamera(bo));
  await subscribed(2);
  // To group b1 with Ann; Bo stays behind: the server closes the consumer, then says he left.
  on.consumerClosed({ consumerId: 'cons-cam-p-3' });
  others.remove('p-3', 'movedToBreakout');
  assert.ok(consumers.get('cam-p-3')?.closed);
  assert.not.ok(consumers.get('cam-p-2')?.closed, 'the one still in view keeps her track');
  on.participantJoined(withCamera({ id: 'p-4', name: 'Cy', role: 'participant', tracks: [] }));
  await subscribed(3);

  // A consume in flight for someone who moves away: the server's consumerClosed comes before the
  // consumer is up here, then the leave; the consumer is closed when it comes, never a track.
  media.hold.add('cam-p-5').add('cam-p-6');
  on.participantJoined(withCamera({ id: 'p-5', name: 'Dee', role: 'participant', tracks: [] }));
  on.participantJoined(withCamera({ id: 'p-6', name: 'Eve', role: 'participant', tracks: [] }));
  on.consumerClosed({ consumerId: 'cons-cam-p-5' });
  others.remove('p-5', 'movedToBreakout');
  others.remove('p-6', 'movedToBreakout');
  held.get('cam-p-5')?.resolve();
  // Consuming across groups is refused: after the leave, that is expected, not an error.
  held.get('cam-p-6')?.reject(new HavenRequestError('FORBIDDEN', 'not in your breakout group', 'consume'));
  await new Promise((resolve) => setTimeout(resolve, 10));
  assert.ok(consumers.get('cam-p-5')?.closed);

  // Recalled: Bo is back, with his camera, received anew.
  on.participantJoined(withCamera(bo));
  await subscribed(4);
  assert.equal(log, [
    'subscribed cam-p-2 p-2',
    'subscribed cam-p-3 p-3',
    'unsubscribed cam-p-3 p-3',
    'left p-3 movedToBreakout',
    'subscribed cam-p-4 p-4',
    'left p-5 movedToBreakout',
    'left p-6 movedToBreakout',
    'subscribed cam-p-3 p-3',
  ]);
  assert.equal(consumed, ['cam-p-2', 'cam-p-3', 'cam-p-4', 'cam-p-5', 'cam-p-6', 'cam-p-3']);
  assert.equal([...others.participants.keys()], ['p-2', 'p-4', 'p-3']);
});

test.run();
