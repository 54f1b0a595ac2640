/**
 * A load generator process of the `signaling` scenario: synthetic participants with no media,
 * driven by `bench/signaling.ts` over IPC. Against Haven each goes through the front door (token,
 * consent, waiting room, admission by the room's facilitator); against the bare socket.io server
 * (`signaling-bare-server.ts`) it joins a socket.io room. Then both send the same pattern: one
 * request a second (hands; a chat to the room in turn, about one broadcast a second per room;
 * every fifth second of a facilitator a moderation action), each timed from emit to ack.
 */
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import type { Socket } from 'socket.io-client';
import { protocolVersion, socketPath } from '../client-sdk/src/protocol/index.ts';
import { mintAccessToken } from '../server-sdk/src/mint.ts';
import { openSocket as connect } from './haven-client.ts';

export type SignalingTarget = { kind: 'haven'; url: string; secret: string } | { kind: 'bare'; url: string };
export interface SignalingRoom {
  id: string;
  size: number;
}
export type GenCommand =
  | { type: 'join'; target: SignalingTarget; rooms: SignalingRoom[] }
  | { type: 'window-start' }
  | { type: 'window-end' }
  | { type: 'close' };
export type GenReply =
  | { type: 'joined'; joined: number; failed: number; firstError?: string }
  | { type: 'ok' }
  | {
      type: 'window';
      rtts: number[];
      /** The same RTTs by request name. */
      byRequest: Record<string, number[]>;
      errors: Record<string, number>;
      loopDelayP99Ms: number;
    }
  | { type: 'error'; message: string };

const requestTimeoutMs = 10_000;
const joinConcurrency = 40;
const moderationEvery = 5;

interface Member {
  id: string;
  room: string;
  index: number;
  size: number;
  socket: Socket;
  tick: number;
  timer?: NodeJS.Timeout;
}

const members: Member[] = [];
/** The generator's own event-loop delay: a starved generator inflates every RTT it measures. */
const loopDelay = monitorEventLoopDelay({ resolution: 10 });
let measuring = false;
let rtts: number[] = [];
let byRequest: Record<string, number[]> = {};
let errors: Record<string, number> = {};

function countError(code: string): void {
  errors[code] = (errors[code] ?? 0) + 1;
}

/** Emits a request; resolves with the ack's data, rejects with its code (TIMEOUT when none came). */
function request(socket: Socket, name: string, payload: unknown): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    socket.timeout(requestTimeoutMs).emit(name, payload, (err: Error | null, ack?: AckLike) => {
      if (measuring) {
        const rtt = Math.round((performance.now() - started) * 1000) / 1000;
        rtts.push(rtt);
        const list = byRequest[name] ?? [];
        byRequest[name] = list;
        list.push(rtt);
      }
      if (err) reject(new CodedError('TIMEOUT', `${name}: no answer in ${requestTimeoutMs} ms`));
      else if (!ack?.ok) reject(new CodedError(ack?.error?.code ?? 'BAD_ACK', `${name}: ${ack?.error?.message ?? ''}`));
      else resolve(ack.data);
    });
  });
}

type AckLike = { ok: boolean; data?: unknown; error?: { code?: string; message?: string } };

class CodedError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Through Haven's front door: consent, then the waiting room until the facilitator admits. */
async function joinHaven(target: Extract<SignalingTarget, { kind: 'haven' }>, m: Omit<Member, 'socket' | 'tick'>) {
  const role = m.index === 0 ? 'facilitator' : 'participant';
  const token = mintAccessToken({
    secret: target.secret,
    issuer: 'haven',
    audience: 'haven',
    sub: m.id,
    name: `Synthetic ${m.id}`,
    room: m.room,
    role,
    ttlS: 4 * 3600,
  });
  const socket = await connect(target.url, socketPath, { token });
  if (role === 'facilitator') {
    const admitting = new Set<string>();
    socket.on('waitingRoomChanged', ({ waiting }: { waiting: { participantId: string }[] }) => {
      for (const { participantId } of waiting) {
        if (admitting.has(participantId)) continue;
        admitting.add(participantId);
        request(socket, 'admit', { participantId }).catch((err: CodedError) => countError(err.code ?? 'ADMIT'));
      }
    });
  }
  const admitted = new Promise<void>((resolve) => socket.once('admitted', () => resolve()));
  let answer = (await request(socket, 'join', { protocolVersion })) as { stage: string; consent?: { version: number } };
  if (answer.stage === 'consent') {
    answer = (await request(socket, 'acceptConsent', { version: answer.consent?.version })) as { stage: string };
  }
  if (answer.stage === 'waiting') await withTimeout(admitted, 60_000, 'not admitted in 60 s');
  return socket;
}

async function joinBare(target: Extract<SignalingTarget, { kind: 'bare' }>, m: Omit<Member, 'socket' | 'tick'>) {
  const socket = await connect(target.url, '/socket.io', {});
  await request(socket, 'join', { room: m.room, id: m.id, facilitator: m.index === 0 });
  return socket;
}

function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** What member `m` sends at its `tick`-th second: the same pattern against Haven and bare socket.io. */
export function nextRequest(
  m: { index: number; size: number; room: string },
  tick: number,
): { haven: [string, unknown]; bare: [string, unknown] } {
  const chat = { text: `message ${tick}`, to: 'everyone' };
  const hand = tick % 2 === 0 ? 'raiseHand' : 'lowerHand';
  if (m.index === 0 && tick % moderationEvery === moderationEvery - 1) {
    const target = `${m.room}-p${1 + (((tick / moderationEvery) % (m.size - 1)) | 0)}`;
    const cycle = Math.floor(tick / moderationEvery) % 4;
    const haven: [string, unknown][] = [
      ['mute', { participantId: target }],
      ['requestUnmute', { participantId: target }],
      ['lockRoom', { locked: Math.floor(tick / (moderationEvery * 4)) % 2 === 0 }],
      ['messageWaitingRoom', { text: 'The group starts in a minute.' }],
    ];
    const fanout = ['target', 'target', 'room', 'none'][cycle];
    return { haven: haven[cycle] as [string, unknown], bare: ['moderate', { target, fanout }] };
  }
  if (m.index > 0 && tick % m.size === m.index) return { haven: ['sendChat', chat], bare: ['chat', chat] };
  return { haven: [hand, {}], bare: ['hand', { raised: hand === 'raiseHand' }] };
}

function startLoad(m: Member, kind: SignalingTarget['kind']): void {
  const fire = () => {
    const next = nextRequest(m, m.tick++);
    const [name, payload] = kind === 'haven' ? next.haven : next.bare;
    request(m.socket, name, payload).catch((err: CodedError) => {
      if (measuring) countError(err.code ?? 'ERROR');
    });
  };
  // A random phase, so that requests spread over the second as real people's do.
  m.timer = setTimeout(() => {
    fire();
    m.timer = setInterval(fire, 1_000);
  }, Math.random() * 1_000);
}

async function join(target: SignalingTarget, rooms: SignalingRoom[]): Promise<GenReply> {
  const plans = rooms.flatMap((room) =>
    Array.from({ length: room.size }, (_, index) => ({
      id: `${room.id}-${index === 0 ? 'f' : 'p'}${index}`,
      room: room.id,
      index,
      size: room.size,
    })),
  );
  let failed = 0;
  let firstError: string | undefined;
  const joinAll = async (list: typeof plans) => {
    let next = 0;
    await Promise.all(
      Array.from({ length: joinConcurrency }, async () => {
        while (next < list.length) {
          const plan = list[next++] as (typeof plans)[number];
          try {
            const socket = target.kind === 'haven' ? await joinHaven(target, plan) : await joinBare(target, plan);
            members.push({ ...plan, socket, tick: 0 });
          } catch (err) {
            failed++;
            firstError ??= (err as Error).message;
          }
        }
      }),
    );
  };
  // Facilitators first: they admit the others.
  await joinAll(plans.filter((p) => p.index === 0));
  await joinAll(plans.filter((p) => p.index > 0));
  for (const m of members) startLoad(m, target.kind);
  return { type: 'joined', joined: members.length, failed, ...(firstError ? { firstError } : {}) };
}

async function handle(command: GenCommand): Promise<GenReply> {
  switch (command.type) {
    case 'join':
      return join(command.target, command.rooms);
    case 'window-start':
      rtts = [];
      byRequest = {};
      errors = {};
      measuring = true;
      loopDelay.reset();
      loopDelay.enable();
      return { type: 'ok' };
    case 'window-end':
      measuring = false;
      loopDelay.disable();
      return { type: 'window', rtts, byRequest, errors, loopDelayP99Ms: loopDelay.percentile(99) / 1e6 };
    case 'close':
      for (const m of members) {
        clearTimeout(m.timer);
        clearInterval(m.timer);
        m.socket.close();
      }
      members.length = 0;
      return { type: 'ok' };
  }
}

if (process.send) {
  process.on('message', (message: { seq: number; command: GenCommand }) => {
    handle(message.command).then(
      (answer) => process.send?.({ seq: message.seq, answer }),
      (err: Error) => process.send?.({ seq: message.seq, answer: { type: 'error', message: err.message } }),
    );
  });
  process.on('disconnect', () => process.exit(0));
}
