/**
 * Breakout rooms, enforced by the server, through raw signaling as any client (or a modified one)
 * would speak it: plans by hand and shuffled, the start (each person sees only their group), no
 * consumer across groups, chat, broadcast, help, visits, moves, the timer and its notice, the
 * recall, a reconnection returning to its group, a newcomer landing in the main room, and every
 * action in the audit log and every move in the attendance events (ids only).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { waitFor } from '../../bench/processes.ts';
import type { BreakoutsState, ParticipantInfo } from '../../client-sdk/src/protocol/index.ts';
import { opusAudioParameters } from '../helpers/rtp.ts';
import { sessionNode } from '../helpers/session-node.ts';
import {
  admitted,
  codeOf,
  collect,
  connect,
  joinAs,
  next,
  ok,
  request,
  type TestSocket,
  token,
} from '../helpers/signaling-client.ts';

const haven = sessionNode(test, {
  redis: true,
  env: { HAVEN_SIGNALING_RATE_BURST: '500' },
  roomPrefix: 'bo',
  room: { title: 'Skills group', waitingRoom: false },
});
const { node, client } = haven;
const redis = haven.redisClient();

/** Who each socket sees in the session, kept from its notifications like an SDK would. */
const views = new Map<TestSocket, Set<string>>();

function follow(socket: TestSocket, participants: ParticipantInfo[]): void {
  const seen = new Set(participants.map((p) => p.id));
  views.set(socket, seen);
  socket.on('participantJoined', (p) => seen.add(p.id));
  socket.on('participantLeft', ({ participantId }) => seen.delete(participantId));
}

/** A round trip: every notification sent to `socket` before it is answered has arrived. */
async function settled(...sockets: TestSocket[]): Promise<void> {
  for (const s of sockets) assert.is((await request(s, 'join', {})).ok, false);
}

const viewOf = (socket: TestSocket) => [...(views.get(socket) ?? [])].sort();

interface Group {
  room: string;
  facilitator: TestSocket;
  people: Map<string, TestSocket>;
}

/** A facilitator and `n` participants (p1…pn), all in the session (the room has no waiting room). */
async function group(n = 5): Promise<Group> {
  const room = await haven.newRoom();
  const facilitator = await client(room, 'f1', 'facilitator');
  follow(facilitator, admitted(await joinAs(facilitator)).participants);
  const people = new Map<string, TestSocket>();
  for (let i = 1; i <= n; i++) {
    const socket = await client(room, `p${i}`);
    follow(socket, admitted(await joinAs(socket)).participants);
    people.set(`p${i}`, socket);
  }
  await settled(facilitator, ...people.values());
  return { room, facilitator, people };
}

const person = (g: Group, id: string) => g.people.get(id) as TestSocket;

/** Pairs (p1, p2) and threes (p3, p4, p5), started. */
async function started(g: Group): Promise<BreakoutsState> {
  await ok(g.facilitator, 'createBreakouts', {
    groups: [
      { name: 'Pairs', members: ['p1', 'p2'] },
      { name: 'Threes', members: ['p3', 'p4', 'p5'] },
    ],
  });
  const state = await ok(g.facilitator, 'startBreakouts', {});
  await settled(g.facilitator, ...g.people.values());
  return state;
}

const opusAudio = opusAudioParameters(12121212, 'haven-breakouts');

async function publishMicrophone(socket: TestSocket): Promise<string> {
  const send = await ok(socket, 'createTransport', { direction: 'send' });
  const produced = await ok(socket, 'produce', {
    transportId: send.id,
    kind: 'audio',
    source: 'microphone',
    rtpParameters: opusAudio,
  });
  return produced.producerId;
}

/** A receive transport and the router's capabilities, to consume with. */
async function receiver(socket: TestSocket, session: { routerRtpCapabilities: unknown }) {
  const recv = await ok(socket, 'createTransport', { direction: 'recv' });
  return (producerId: string) =>
    request(socket, 'consume', { transportId: recv.id, producerId, rtpCapabilities: session.routerRtpCapabilities });
}

test('a plan by hand is checked, changed until it starts, and keeps its group ids', async () => {
  const g = await group(3);
  const f = g.facilitator;
  const plan = (groups: { name: string; members: string[] }[]) => request(f, 'createBreakouts', { groups });
  const refused = async (answer: ReturnType<typeof plan>) => {
    const a = await answer;
    return a.ok ? 'ok' : a.error.code;
  };
  assert.is(await refused(plan([{ name: 'A', members: ['nobody'] }])), 'NOT_FOUND');
  assert.is(await refused(plan([{ name: 'A', members: ['f1'] }])), 'INVALID_REQUEST', 'facilitators visit');
  assert.is(
    await refused(
      plan([
        { name: 'A', members: ['p1'] },
        { name: 'B', members: ['p1'] },
      ]),
    ),
    'INVALID_REQUEST',
    'one group each',
  );
  assert.is(
    await codeOf(f, 'updateBreakouts', { groups: [{ name: 'A', members: [] }] }),
    'INVALID_STATE',
    'no plan yet',
  );
  assert.is(await codeOf(f, 'startBreakouts', {}), 'INVALID_STATE', 'nothing to start');

  const changes = collect(f, 'breakoutsChanged');
  const planned = await ok(f, 'createBreakouts', {
    groups: [
      { name: 'A', members: ['p1', 'p2'] },
      { name: 'B', members: [] },
    ],
  });
  assert.is(planned.status, 'planned');
  assert.equal(
    planned.groups.map((x) => [x.id, x.name, x.members.map((m) => [m.participantId, m.name, m.role])]),
    [
      [
        'b1',
        'A',
        [
          ['p1', 'Name of p1', 'participant'],
          ['p2', 'Name of p2', 'participant'],
        ],
      ],
      ['b2', 'B', []],
    ],
  );
  const updated = await ok(f, 'updateBreakouts', {
    groups: [
      { name: 'Pairs', members: ['p1'] },
      { name: 'Threes', members: ['p2', 'p3'] },
      { name: 'Solo', members: [] },
    ],
  });
  assert.equal(
    updated.groups.map((x) => [x.id, x.name, x.members.map((m) => m.participantId)]),
    [
      ['b1', 'Pairs', ['p1']],
      ['b2', 'Threes', ['p2', 'p3']],
      ['b3', 'Solo', []],
    ],
  );
  await settled(f);
  assert.equal(
    changes.map(([c]) => c.change),
    ['planned', 'planned'],
    'facilitators are told each change of the plan',
  );
  // Nobody moved while planned.
  assert.equal(viewOf(person(g, 'p1')), ['f1', 'p2', 'p3']);
  await ok(f, 'recallBreakouts', {});
  assert.is(await codeOf(f, 'recallBreakouts', {}), 'INVALID_STATE', 'the plan was discarded');
  const again = await ok(f, 'createBreakouts', { count: 2 });
  assert.equal(
    again.groups.map((x) => x.id),
    ['b4', 'b5'],
    'a group id is never reused in the session',
  );
});

test('a shuffled plan: N groups, or K people each, participants only', async () => {
  const g = await group(5);
  const byCount = await ok(g.facilitator, 'createBreakouts', { count: 2 });
  const sizes = (s: BreakoutsState) => s.groups.map((x) => x.members.length);
  assert.equal(sizes(byCount), [3, 2]);
  const everyone = byCount.groups.flatMap((x) => x.members.map((m) => m.participantId)).sort();
  assert.equal(everyone, ['p1', 'p2', 'p3', 'p4', 'p5'], 'each participant once, the facilitator in none');
  const bySize = await ok(g.facilitator, 'createBreakouts', { perGroup: 2 });
  assert.equal(sizes(bySize), [2, 2, 1]);
  assert.equal(
    bySize.groups.map((x) => x.name),
    ['Group 1', 'Group 2', 'Group 3'],
  );
});

test('start: each person sees only their group; the facilitator stays in the main room', async () => {
  const g = await group(5);
  const moved = collect(person(g, 'p1'), 'movedToBreakout');
  const startedNote = next(person(g, 'p4'), 'breakoutStarted');
  const state = await started(g);
  assert.is(state.status, 'running');
  assert.equal(
    state.groups.map((x) => x.members.map((m) => m.participantId)),
    [
      ['p1', 'p2'],
      ['p3', 'p4', 'p5'],
    ],
  );
  assert.equal(
    state.main.map((m) => m.participantId),
    ['f1'],
  );
  assert.equal((await startedNote)[0], { endsAt: null });
  assert.equal(moved, [[{ running: true, group: { id: 'b1', name: 'Pairs' }, endsAt: null }]]);
  assert.equal(viewOf(person(g, 'p1')), ['p2']);
  assert.equal(viewOf(person(g, 'p2')), ['p1']);
  assert.equal(viewOf(person(g, 'p4')), ['p3', 'p5']);
  assert.equal(viewOf(g.facilitator), [], 'nobody left in the main room');
  assert.is(await codeOf(g.facilitator, 'createBreakouts', { count: 2 }), 'INVALID_STATE', 'recall first');
  assert.is(await codeOf(g.facilitator, 'startBreakouts', {}), 'INVALID_STATE', 'running already');
});

test('no consumer crosses groups: refused across, closed when someone moves', async () => {
  const room = await haven.newRoom();
  const f = await client(room, 'f1', 'facilitator');
  const fSession = admitted(await joinAs(f));
  const sockets = new Map<string, TestSocket>();
  const sessions = new Map<string, { routerRtpCapabilities: unknown }>();
  for (const id of ['p1', 'p2', 'p3']) {
    const s = await client(room, id);
    sockets.set(id, s);
    sessions.set(id, admitted(await joinAs(s)));
  }
  const p = (id: string) => sockets.get(id) as TestSocket;
  const microphone = await publishMicrophone(p('p1'));
  await ok(f, 'createBreakouts', {
    groups: [
      { name: 'A', members: ['p1', 'p2'] },
      { name: 'B', members: ['p3'] },
    ],
  });
  await ok(f, 'startBreakouts', {});

  const consumeAsP2 = await receiver(p('p2'), sessions.get('p2') as never);
  const consumeAsP3 = await receiver(p('p3'), sessions.get('p3') as never);
  const consumeAsF = await receiver(f, fSession);
  const inGroup = await consumeAsP2(microphone);
  assert.ok(inGroup.ok, 'the same group receives');
  const across = await consumeAsP3(microphone);
  assert.is(across.ok ? 'ok' : across.error.code, 'FORBIDDEN', 'another group does not');
  const fromMain = await consumeAsF(microphone);
  assert.is(fromMain.ok ? 'ok' : fromMain.error.code, 'FORBIDDEN', 'nor the main room');

  // p2 goes to B: its consumer of p1's microphone is closed by the server.
  const closed = next(p('p2'), 'consumerClosed');
  await ok(f, 'moveToBreakout', { participantId: 'p2', breakoutId: 'b2' });
  assert.equal((await closed)[0], { consumerId: inGroup.ok ? inGroup.data.id : '' });
  const again = await consumeAsP2(microphone);
  assert.is(again.ok ? 'ok' : again.error.code, 'FORBIDDEN');

  // The facilitator visits A and receives there; back in the main room, no longer.
  await ok(f, 'visitBreakout', { breakoutId: 'b1' });
  const visiting = await consumeAsF(microphone);
  assert.ok(visiting.ok, 'a visiting facilitator receives the group');
  const fClosed = next(f, 'consumerClosed');
  await ok(f, 'visitBreakout', { breakoutId: null });
  assert.equal((await fClosed)[0], { consumerId: visiting.ok ? visiting.data.id : '' });
});

test('chat reaches one’s group and the facilitators; a broadcast reaches everyone', async () => {
  const g = await group(5);
  await started(g);
  const chats = new Map([...g.people].map(([id, s]) => [id, collect(s, 'chatMessage')]));
  const facilitatorChats = collect(g.facilitator, 'chatMessage');
  await ok(person(g, 'p1'), 'sendChat', { text: 'hello pairs', to: 'everyone' });
  // p1 may write privately to the facilitator in the main room, and be answered.
  await ok(person(g, 'p1'), 'sendChat', { text: 'a word', to: 'f1' });
  await ok(g.facilitator, 'sendChat', { text: 'yes?', to: 'p1' });
  assert.is(
    await codeOf(person(g, 'p1'), 'sendChat', { text: 'psst', to: 'p3' }),
    'NOT_FOUND',
    'nobody of another group is reachable',
  );
  await settled(g.facilitator, ...g.people.values());
  const texts = (id: string) => (chats.get(id) ?? []).map(([m]) => m.text);
  assert.equal(texts('p2'), ['hello pairs']);
  assert.equal(texts('p1'), ['hello pairs', 'a word', 'yes?']);
  for (const id of ['p3', 'p4', 'p5']) assert.equal(texts(id), [], `${id} of the other group`);
  assert.equal(
    facilitatorChats.map(([m]) => m.text),
    ['hello pairs', 'a word', 'yes?'],
  );

  const places: [string, TestSocket, string | null][] = [
    ...[...g.people].map(([id, s]): [string, TestSocket, string | null] => [
      id,
      s,
      ['p1', 'p2'].includes(id) ? 'b1' : 'b2',
    ]),
    ['f1', g.facilitator, null],
  ];
  const broadcasts = places.map(([, s]) => next(s, 'broadcastReceived'));
  const { sentAt } = await ok(g.facilitator, 'broadcastToBreakouts', { text: 'Two minutes left' });
  for (const [i, b] of (await Promise.all(broadcasts)).entries()) {
    const [id, , breakoutId] = places[i] as (typeof places)[number];
    assert.equal(b[0], { from: 'f1', name: 'Name of f1', text: 'Two minutes left', sentAt, breakoutId }, id);
  }
  assert.is(await codeOf(person(g, 'p1'), 'broadcastToBreakouts', { text: 'me too' }), 'FORBIDDEN');
});

test('help: facilitators are told which group asks; a visit answers it', async () => {
  const g = await group(5);
  await started(g);
  const asked = next(g.facilitator, 'breakoutHelpRequested');
  await ok(person(g, 'p4'), 'askForHelp', {});
  const [request0] = await asked;
  assert.is(request0.breakoutId, 'b2');
  assert.is(request0.participantId, 'p4');
  await ok(person(g, 'p5'), 'askForHelp', {}); // the group has asked already: one request
  const changes = collect(g.facilitator, 'breakoutsChanged');
  await ok(g.facilitator, 'visitBreakout', { breakoutId: 'b2' });
  await settled(g.facilitator);
  const last = changes.at(-1)?.[0];
  assert.is(last?.change, 'moved');
  assert.equal(last?.state.help, [], 'the visit answered it');
  assert.equal(viewOf(g.facilitator), ['p3', 'p4', 'p5'], 'the facilitator sees the group it visits');
  assert.equal(viewOf(person(g, 'p3')), ['f1', 'p4', 'p5']);
  assert.equal(viewOf(person(g, 'p1')), ['p2'], 'the other group does not see the visit');
});

test('participants cannot move themselves or join a group by raw signaling', async () => {
  const g = await group(3);
  await ok(g.facilitator, 'createBreakouts', {
    groups: [
      { name: 'A', members: ['p1'] },
      { name: 'B', members: ['p2'] },
    ],
  });
  await ok(g.facilitator, 'startBreakouts', {});
  const p1 = person(g, 'p1');
  assert.is(await codeOf(p1, 'moveToBreakout', { participantId: 'p1', breakoutId: 'b2' }), 'FORBIDDEN');
  assert.is(await codeOf(p1, 'visitBreakout', { breakoutId: 'b2' }), 'FORBIDDEN');
  assert.is(await codeOf(p1, 'recallBreakouts', {}), 'FORBIDDEN');
  assert.is(await codeOf(person(g, 'p3'), 'askForHelp', {}), 'INVALID_STATE', 'p3 is in the main room');
  const f = g.facilitator;
  assert.is(await codeOf(f, 'moveToBreakout', { participantId: 'p1', breakoutId: 'b9' }), 'NOT_FOUND');
  assert.is(await codeOf(f, 'moveToBreakout', { participantId: 'ghost', breakoutId: 'b1' }), 'NOT_FOUND');
  assert.is(
    await codeOf(f, 'moveToBreakout', { participantId: 'f1', breakoutId: 'b1' }),
    'FORBIDDEN',
    'facilitators visit',
  );
  await settled(f, p1);
  assert.equal(viewOf(p1), [], 'p1 is still alone in A');
});

test('a timed round: a notice before the end, then everyone back and seeing everyone', async () => {
  const g = await group(3);
  await ok(g.facilitator, 'createBreakouts', { count: 3 });
  assert.is(await codeOf(g.facilitator, 'startBreakouts', { durationS: 10, noticeS: 10 }), 'INVALID_REQUEST');
  assert.is(await codeOf(g.facilitator, 'startBreakouts', { noticeS: 5 }), 'INVALID_REQUEST');
  const ending = next(person(g, 'p1'), 'breakoutEnding', 15_000);
  const ended = next(person(g, 'p1'), 'breakoutEnded', 20_000);
  const state = await ok(g.facilitator, 'startBreakouts', { durationS: 10, noticeS: 8 });
  assert.ok(state.endsAt !== null && state.startedAt !== null && state.endsAt - state.startedAt === 10_000);
  const [notice] = await ending;
  assert.is(notice.endsAt, state.endsAt);
  assert.ok(notice.secondsLeft <= 8 && notice.secondsLeft >= 0, `${notice.secondsLeft} s left`);
  await ended;
  await settled(g.facilitator, ...g.people.values());
  assert.equal(viewOf(person(g, 'p1')), ['f1', 'p2', 'p3']);
  assert.equal(viewOf(g.facilitator), ['p1', 'p2', 'p3']);
  const audit = await redis.xrange(`haven:audit:${g.room}`, '-', '+');
  assert.ok(
    audit.some(([, fields]) => fields.includes('recallBreakouts') && fields.includes('timer')),
    'the timer’s recall is audited',
  );
});

test('a reconnection returns to its group; a newcomer lands in the main room and facilitators are told', async () => {
  const g = await group(3);
  await ok(g.facilitator, 'createBreakouts', { groups: [{ name: 'A', members: ['p1', 'p2'] }] });
  await ok(g.facilitator, 'startBreakouts', {});
  const p1Token = token(g.room, 'p1', 'participant');
  person(g, 'p1').disconnect();
  const back = await connect(node.url, p1Token);
  haven.sockets.push(back);
  const session = admitted(await joinAs(back));
  assert.is(session.resumed, true);
  assert.equal(session.breakout, { running: true, group: { id: 'b1', name: 'A' }, endsAt: null });
  assert.equal(
    session.participants.map((p) => p.id),
    ['p2'],
  );

  const told = next(g.facilitator, 'breakoutsChanged');
  const newcomer = await client(g.room, 'p9');
  const joined = admitted(await joinAs(newcomer));
  assert.equal(joined.breakout, { running: true, group: null, endsAt: null });
  assert.equal(joined.participants.map((p) => p.id).sort(), ['f1', 'p3']);
  const [{ change, participantId, state }] = await told;
  assert.is(change, 'newcomer');
  assert.is(participantId, 'p9');
  assert.equal(state.main.map((m) => m.participantId).sort(), ['f1', 'p3', 'p9']);
});

test('every breakout action is audited and every move is an attendance event, ids only', async () => {
  const g = await group(3);
  await ok(g.facilitator, 'createBreakouts', {
    groups: [
      { name: 'Secret topic', members: ['p1'] },
      { name: 'B', members: ['p2'] },
    ],
  });
  await ok(g.facilitator, 'startBreakouts', {});
  await ok(g.facilitator, 'moveToBreakout', { participantId: 'p1', breakoutId: 'b2' });
  await ok(person(g, 'p2'), 'askForHelp', {});
  await ok(g.facilitator, 'visitBreakout', { breakoutId: 'b1' });
  await ok(g.facilitator, 'broadcastToBreakouts', { text: 'Private words' });
  await ok(g.facilitator, 'recallBreakouts', {});
  const audit = await waitFor(
    async () => {
      const entries = await redis.xrange(`haven:audit:${g.room}`, '-', '+');
      return entries.length >= 7 ? entries : undefined;
    },
    5_000,
    'the audit entries',
  );
  const actions = audit.map(([, fields]) => fields[fields.indexOf('action') + 1]);
  for (const action of [
    'createBreakouts',
    'startBreakouts',
    'moveToBreakout',
    'visitBreakout',
    'broadcastToBreakouts',
    'recallBreakouts',
    'askForHelp',
  ]) {
    assert.ok(actions.includes(action), `${action} audited`);
  }
  const help = audit.find(([, fields]) => fields.includes('askForHelp'));
  assert.match(JSON.stringify(help), /"breakout\\?":\\?"b2/, 'the help request names its group');
  assert.not.match(JSON.stringify(audit), /Secret topic|Private words|Name of/, 'no names or text in the audit log');

  const events = await waitFor(
    async () => {
      const entries = await redis.xrange(`haven:attendance:${g.room}`, '-', '+');
      const moves = entries.filter(([, fields]) => fields.includes('movedToBreakout'));
      return moves.length >= 6 ? moves : undefined;
    },
    5_000,
    'the attendance events',
  );
  const moves = events.map(([, fields]) => {
    const participant = fields[fields.indexOf('participant') + 1];
    const details = JSON.parse(fields[fields.indexOf('details') + 1] as string) as { breakout: string };
    return `${participant}>${details.breakout}`;
  });
  // The start, a move, a visit, then the recall (everyone in the session, in its order).
  assert.equal(moves.slice(0, 4), ['p1>b1', 'p2>b2', 'p1>b2', 'f1>b1']);
  assert.equal(moves.slice(4).sort(), ['f1>main', 'p1>main', 'p2>main']);
  assert.not.match(JSON.stringify(events), /Secret topic|Name of/);
});

test.run();
