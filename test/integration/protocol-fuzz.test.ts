/**
 * Protocol fuzz: thousands of seeded random frames against a real node process, from a
 * connection at every stage (not joined, at the consent gate, waiting, admitted, observer,
 * facilitator, banned after `remove`), over every request name of the protocol plus unknown,
 * numeric and reserved names, with hostile payloads (null, numbers, 1 MB strings, 1,000-deep
 * nesting, `__proto__`/`constructor` keys, binary attachments) and acknowledgements that are functions, missing or
 * not functions. Afterwards: the node is up, every frame with an acknowledgement got a coded
 * answer in time (and none was INTERNAL), its RSS stayed bounded, and a legitimate
 * facilitator's next actions work.
 *
 * The seed is printed; `HAVEN_FUZZ_SEED=<seed>` replays the same frames.
 */
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { isAlive } from '../../bench/processes.ts';
import { errorCodes, protocolVersion } from '../../client-sdk/src/protocol/index.ts';
import { requestNames, requestSchemas } from '../../server/signaling/schemas.ts';
import { sessionNode } from '../helpers/session-node.ts';
import {
  admin,
  connect,
  connectOutcome,
  joinAs as join,
  next,
  ok,
  request,
  sendRawPacket,
  type TestSocket,
  token,
} from '../helpers/signaling-client.ts';

const seed = Number(process.env.HAVEN_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
process.stdout.write(`protocol fuzz seed ${seed} (HAVEN_FUZZ_SEED=${seed} replays it)\n`);

/** Frames per fuzzing connection: with 7 connections and the raw ones, about 5,600 frames in all. */
const framesPerSocket = 800;
/** Connections written to with names socket.io itself refuses (each one is closed by the server). */
const rawFrames = 40;
/** Ample on a loaded two-core machine: an answer later than this counts as none. */
const answerTimeoutMs = 10_000;
/**
 * RSS growth allowed over the whole run. Each connection has at most one frame in flight (1.1 MB
 * at most), and about 5 % of the payloads are 1 MB strings that V8 collects as it goes (measured:
 * about 37 MB of growth for 5,640 frames); a valid `createTransport` may leave a few transports.
 * 200 MB is five times what was measured, and far below what a per-frame leak would reach.
 */
const rssBoundBytes = 200 * 1024 * 1024;

const haven = sessionNode(test, {
  env: {
    // High enough that most frames reach validation; RATE_LIMITED is a coded answer too.
    HAVEN_SIGNALING_RATE_LIMIT: '2000',
    HAVEN_SIGNALING_RATE_BURST: '2000',
  },
});
const { node, client, sockets } = haven;
const room = `fuzz-${process.pid}`;
const facilitatorRoom = `fuzz-fac-${process.pid}`;
const consentText = 'What is said in group stays in group.';

function rssOf(pid: number): number {
  const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return Number(kb) * 1024;
}

/* ---- frames ---- */

/** Ids the fuzz may aim at: people in the rooms (never the legitimate facilitator), and junk. */
const targets = ['p-consent', 'p-waiting', 'p-admitted', 'o-admitted', 'p-banned', 'p-target', 'f-fuzz', 'stranger'];
const idArb = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...targets) },
  { weight: 1, arbitrary: fc.string({ maxLength: 12 }) },
  { weight: 1, arbitrary: fc.constantFrom('', 'x'.repeat(129), '__proto__', 'constructor') },
);
const megaString = 'm'.repeat(1_000_000);
let deep: unknown = 'bottom';
for (let i = 0; i < 1_000; i++) deep = { a: deep };
/** An object whose own keys are `__proto__` and `constructor`, as JSON.parse makes them. */
const hostileObject = fc
  .jsonValue({ maxDepth: 2 })
  .map((v) =>
    JSON.parse(
      `{"__proto__":{"polluted":${JSON.stringify(v)}},"constructor":{"prototype":{"polluted":true}},"participantId":"p-target"}`,
    ),
  );
/** Values for the fields of real requests, some valid, some mangled. */
const fields: Record<string, fc.Arbitrary<unknown>> = {
  protocolVersion: fc.constantFrom(protocolVersion, protocolVersion, 0, -1, 1.5, '1'),
  version: fc.integer({ min: -1, max: 3 }),
  participantId: idArb,
  transportId: idArb,
  producerId: idArb,
  consumerId: idArb,
  messageId: idArb,
  direction: fc.constantFrom('send', 'recv', 'sideways'),
  locked: fc.boolean(),
  ban: fc.boolean(),
  mode: fc.constantFrom('open', 'controlled', 'loud'),
  text: fc.string({ minLength: 1, maxLength: 40 }),
  to: fc.oneof(fc.constantFrom('everyone', 'facilitators'), idArb),
  reason: fc.string({ minLength: 1, maxLength: 20 }),
  name: fc.string({ minLength: 1, maxLength: 20 }),
  width: fc.integer({ min: -10, max: 20_000 }),
  height: fc.integer({ min: -10, max: 20_000 }),
  kind: fc.constantFrom('audio', 'video', 'data'),
  source: fc.constantFrom('microphone', 'camera', 'screen', 'tv'),
  ip: fc.constantFrom('127.0.0.1', '::1', 'not an ip', '10.0.0.1'),
  port: fc.integer({ min: -1, max: 70_000 }),
};
/** A payload shaped like `name`'s request (its own fields, all or some), so that many frames get past validation. */
function shapedLike(name: string): fc.Arbitrary<unknown> {
  const schema = requestSchemas[name as keyof typeof requestSchemas] as unknown as { shape?: object } | undefined;
  const keys = Object.keys(schema?.shape ?? {});
  const record = Object.fromEntries(keys.map((k) => [k, fields[k] ?? fc.jsonValue({ maxDepth: 2 })]));
  return fc.oneof(
    { weight: 3, arbitrary: fc.record(record) },
    { weight: 1, arbitrary: fc.record(record, { requiredKeys: [] }) },
  );
}
const binaryPayloads = (bytes: Uint8Array) =>
  fc.constantFrom(
    Buffer.from(bytes),
    { text: Buffer.from(bytes), to: 'everyone' },
    { dtlsParameters: Buffer.from(bytes) },
  );
/** `undefined` stands for "no payload argument at all". */
const payloadFor = (name: string | number): fc.Arbitrary<unknown> =>
  fc.oneof(
    { weight: 12, arbitrary: shapedLike(String(name)) },
    { weight: 2, arbitrary: fc.constantFrom(undefined, null, 0, -1, 2 ** 53, true, '', 'text', []) },
    { weight: 3, arbitrary: fc.jsonValue({ maxDepth: 4 }) },
    { weight: 2, arbitrary: hostileObject },
    { weight: 1, arbitrary: fc.constantFrom(megaString, { text: megaString, to: 'everyone' }) },
    { weight: 1, arbitrary: fc.constantFrom(deep, { transportId: 't', dtlsParameters: deep }, [deep]) },
    // Binary data, which socket.io carries as attachments.
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }).chain(binaryPayloads) },
  );
/** Names the client library sends as they are: every request, unknown strings, numbers. */
const nameArb: fc.Arbitrary<string | number> = fc.oneof(
  { weight: 10, arbitrary: fc.constantFrom(...requestNames) },
  { weight: 1, arbitrary: fc.string({ maxLength: 30 }) },
  { weight: 1, arbitrary: fc.oneof(fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true })) },
  {
    weight: 1,
    arbitrary: fc.constantFrom('error', '__proto__', 'constructor', 'toString', 'hasOwnProperty', 'x'.repeat(5_000)),
  },
);
const ackArb = fc.constantFrom('function', 'function', 'function', 'function', 'function', 'none', 'not a function');

interface Frame {
  name: string | number;
  payload: unknown;
  ack: 'function' | 'none' | 'not a function';
}
const frameArb: fc.Arbitrary<Frame> = nameArb.chain((name) =>
  fc.record({ name: fc.constant(name), payload: payloadFor(name), ack: ackArb }),
);

/** Requests left out for one connection, and why. */
type Exclusions = ReadonlySet<string>;

interface Finding {
  socket: string;
  frame: number;
  name: string;
  problem: string;
}

/** How the acknowledged frames were answered: `ok` or the error code. */
const answers = new Map<string, number>();

const describeName = (name: unknown) => (typeof name === 'string' ? name.slice(0, 40) : `${typeof name} ${name}`);

/** Sends `frames` one after another on `socket`; returns what went wrong. */
async function fuzz(label: string, socket: TestSocket, frames: Frame[], excluded: Exclusions): Promise<Finding[]> {
  const findings: Finding[] = [];
  const untyped = socket as unknown as {
    emit(...args: unknown[]): void;
    timeout(ms: number): { emitWithAck(...args: unknown[]): Promise<unknown> };
  };
  for (const [index, frame] of frames.entries()) {
    if (typeof frame.name === 'string' && excluded.has(frame.name)) continue;
    const args = frame.payload === undefined ? [] : [frame.payload];
    if (!socket.connected) {
      findings.push({ socket: label, frame: index, name: describeName(frame.name), problem: 'connection closed' });
      break;
    }
    if (frame.ack !== 'function') {
      untyped.emit(frame.name, ...args, ...(frame.ack === 'none' ? [] : [42]));
      continue;
    }
    try {
      const answer = (await untyped.timeout(answerTimeoutMs).emitWithAck(frame.name, ...args)) as {
        ok?: unknown;
        error?: { code?: unknown };
      };
      const code = answer?.error?.code;
      const outcome = answer?.ok === true ? 'ok' : String(code);
      answers.set(outcome, (answers.get(outcome) ?? 0) + 1);
      if (answer?.ok === true) continue;
      if (answer?.ok !== false || !errorCodes.includes(code as never)) {
        findings.push({ socket: label, frame: index, name: describeName(frame.name), problem: JSON.stringify(answer) });
      } else if (code === 'INTERNAL') {
        findings.push({ socket: label, frame: index, name: describeName(frame.name), problem: JSON.stringify(answer) });
      }
    } catch (err) {
      findings.push({ socket: label, frame: index, name: describeName(frame.name), problem: (err as Error).message });
    }
  }
  return findings;
}

/** Names socket.io's client refuses to send, and names that are not strings: written raw, each on its own connection. */
const rawNameArb = fc.constantFrom(
  'connect',
  'connect_error',
  'disconnect',
  'disconnecting',
  'newListener',
  'removeListener',
  null,
  true,
  { name: 'join' },
  ['join'],
);

async function fuzzRaw(): Promise<Finding[]> {
  const findings: Finding[] = [];
  const frames = fc.sample(fc.record({ name: rawNameArb, payload: fc.jsonValue({ maxDepth: 3 }) }), {
    seed: seed + 1,
    numRuns: rawFrames,
  });
  for (const [index, frame] of frames.entries()) {
    const outcome = await connectOutcome(node.url, { token: token('nowhere', `raw-${index}`) });
    if (outcome.outcome !== 'connected') {
      findings.push({ socket: 'raw', frame: index, name: 'connect', problem: JSON.stringify(outcome) });
      continue;
    }
    const s = outcome.socket;
    sockets.push(s);
    const closed = new Promise<void>((r) => s.once('disconnect', () => r()));
    sendRawPacket(s, `2${index}${JSON.stringify([frame.name, frame.payload])}`);
    // A packet socket.io cannot accept closes the sender's connection: that is the answer here.
    await closed;
  }
  return findings;
}

test('thousands of random frames at every stage leave the node serving, every request answered with a code', async () => {
  // Room of the legitimate facilitator: a consent gate and a waiting room.
  assert.is((await admin(node.url, 'POST', '/v1/rooms', { id: room, title: 'Group', consentText })).status, 201);
  // Room of the fuzzing facilitator (and the participant it may aim at).
  const created = await admin(node.url, 'POST', '/v1/rooms', {
    id: facilitatorRoom,
    title: 'Group',
    waitingRoom: false,
  });
  assert.is(created.status, 201);

  const legit = await client(room, 'f-legit', 'facilitator');
  await join(legit);
  let legitDropped = '';
  legit.once('disconnect', (reason, description) => {
    legitDropped = `${reason} ${JSON.stringify((description as { context?: unknown })?.context ?? description ?? '')}`;
  });
  const atConsent = await client(room, 'p-consent');
  assert.is((await join(atConsent)).stage, 'consent');
  const waiting = await client(room, 'p-waiting');
  await join(waiting);
  assert.is((await ok(waiting, 'acceptConsent', { version: 1 })).stage, 'waiting');
  const admitted = await client(room, 'p-admitted');
  await join(admitted);
  await ok(admitted, 'acceptConsent', { version: 1 });
  const entering = next(admitted, 'admitted');
  await ok(legit, 'admit', { participantId: 'p-admitted' });
  await entering;
  const observer = await client(room, 'o-admitted', 'observer');
  await join(observer);
  // Removed and banned: the old token is revoked; a fresh token for the same person connects but may not join.
  const banToken = token(room, 'p-banned');
  const toBan = await connect(node.url, banToken);
  sockets.push(toBan);
  await join(toBan);
  await ok(toBan, 'acceptConsent', { version: 1 });
  await ok(legit, 'admit', { participantId: 'p-banned' });
  const gone = new Promise<void>((r) => toBan.once('disconnect', () => r()));
  await ok(legit, 'remove', { participantId: 'p-banned', ban: true });
  await gone;
  const refused = await connectOutcome(node.url, { token: banToken });
  assert.is(refused.outcome === 'refused' && refused.error?.code, 'UNAUTHORIZED');
  const banned = await client(room, 'p-banned');
  assert.is((await request(banned, 'join', { protocolVersion })).ok, false);
  const fuzzFacilitator = await client(facilitatorRoom, 'f-fuzz', 'facilitator');
  await join(fuzzFacilitator);
  const target = await client(facilitatorRoom, 'p-target');
  await join(target);
  const stranger = await client(`nowhere-${process.pid}`, 'stranger');

  const baseRss = rssOf(node.child.pid as number);
  const none: Exclusions = new Set();
  // The fuzzing facilitator keeps its stage while it fuzzes: ending its own session would close
  // its connection. It sends endSession last, below; it is alone with its target in its room.
  const facilitatorExclusions: Exclusions = new Set(['endSession']);
  const fuzzed: [string, TestSocket, Exclusions][] = [
    ['not joined', stranger, none],
    ['consent gate', atConsent, none],
    ['waiting', waiting, none],
    ['admitted', admitted, none],
    ['observer', observer, none],
    ['banned', banned, none],
    ['facilitator', fuzzFacilitator, facilitatorExclusions],
  ];
  const started = Date.now();
  const findings = (
    await Promise.all([
      ...fuzzed.map(([label, socket, excluded], i) =>
        fuzz(label, socket, fc.sample(frameArb, { seed: seed + 10 + i, numRuns: framesPerSocket }), excluded),
      ),
      fuzzRaw(),
    ])
  ).flat();
  const frames = fuzzed.length * framesPerSocket + rawFrames;
  process.stdout.write(`protocol fuzz: ${frames} frames in ${Date.now() - started} ms\n`);
  process.stdout.write(`protocol fuzz: answers ${JSON.stringify(Object.fromEntries(answers))}\n`);

  assert.equal(findings.slice(0, 10), [], `seed ${seed}: ${findings.length} frames badly answered`);
  // Frames without an acknowledgement cannot show a fault in an answer: the log would.
  const faults = node.logs.filter((l) => l.msg === 'unexpected failure' || l.msg === 'unhandled rejection');
  assert.equal(faults.slice(0, 3), [], `seed ${seed}: faults in the node's log`);
  assert.ok(isAlive(node.child.pid as number), `the node died (seed ${seed}):\n${node.output().slice(-3_000)}`);
  assert.is((await fetch(`${node.url}/healthz`)).status, 200);
  const grownBy = rssOf(node.child.pid as number) - baseRss;
  process.stdout.write(`protocol fuzz: node RSS grew by ${(grownBy / 2 ** 20).toFixed(1)} MB\n`);
  assert.ok(grownBy < rssBoundBytes, `RSS grew by ${grownBy} bytes (seed ${seed})`);

  // Last, the name left out: endSession from the fuzzing facilitator, until one is valid and ends its session.
  for (const payload of fc.sample(payloadFor('endSession'), { seed: seed + 2, numRuns: 50 })) {
    const answer = await request(fuzzFacilitator, 'endSession', payload);
    assert.ok(answer.ok || errorCodes.includes(answer.error.code), JSON.stringify(answer));
    assert.is.not(!answer.ok && answer.error.code, 'INTERNAL');
    if (answer.ok) break;
  }

  // The legitimate facilitator's next actions work: lock and unlock, admit a newcomer.
  assert.ok(legit.connected, `the legitimate facilitator's connection was closed (seed ${seed}): ${legitDropped}`);
  await ok(legit, 'lockRoom', { locked: true });
  await ok(legit, 'lockRoom', { locked: false });
  const newcomer = await client(room, 'p-newcomer');
  await join(newcomer);
  assert.is((await ok(newcomer, 'acceptConsent', { version: 1 })).stage, 'waiting');
  const welcomed = next(newcomer, 'admitted');
  await ok(legit, 'admit', { participantId: 'p-newcomer' });
  await welcomed;
});

test.run();
