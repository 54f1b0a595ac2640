/**
 * The load generator: its own process (so its CPU is measured apart from the SFU's), driven by
 * `bench/main.ts` over IPC. It runs the synthetic participants, sends their media every 10 ms and
 * counts what comes back. Against Haven they go through the front door (`HavenClient`); against
 * the baseline the bench sets up bare mediasoup transports and hands their addresses over.
 */

import { HavenClient, type HavenTarget } from './haven-client.ts';
import type { Command, Reply, RoomPlan } from './loadgen-protocol.ts';
import { epochMs, ReceiverStats } from './media.ts';
import { MediaPeer } from './peer.ts';
import { percentiles } from './result.ts';
import { missingTracks } from './track-check.ts';

const tickMs = 10;
let stats = new ReceiverStats();
const peers = new Map<string, MediaPeer>();
const clients: HavenClient[] = [];
const noPause: ReadonlySet<number> = new Set();
let sent = 0;
let errors = 0;
let windowStartedAt = epochMs();
let sentAtWindowStart = 0;
let videoBitrate = 800_000;

function reply(message: Reply): void {
  process.send?.(message);
}

function fail(what: string, err: unknown): void {
  errors++;
  if (errors <= 5) process.stderr.write(`loadgen: ${what}: ${(err as Error).message}\n`);
}

setInterval(() => {
  const now = epochMs();
  const pausedOf = new Map(clients.map((c) => [c.peer, c.paused]));
  for (const peer of peers.values()) sent += peer.tick(now, pausedOf.get(peer) ?? noPause);
}, tickMs);

/** Progress for the bench's live line, every second. */
setInterval(() => {
  const totals = stats.snapshot();
  reply({
    type: 'progress',
    received: totals.received,
    expected: totals.expected,
    sent,
    producers: [...peers.values()].reduce((n, p) => n + p.sources.length, 0),
    consumers: stats.streams().length,
    errors,
  });
}, 1_000).unref();

function newPeer(id: string, publishing: RoomPlan['publishing'], e2ee = false): MediaPeer {
  const peer = new MediaPeer(id, stats, publishing, videoBitrate, e2ee);
  peers.set(id, peer);
  return peer;
}

/** Who joins a room, in order: its facilitators first, then the participants. */
function members(
  room: RoomPlan,
): { id: string; role: 'facilitator' | 'participant'; publishing: RoomPlan['publishing'] }[] {
  return Array.from({ length: room.size }, (_, i) => ({
    id: `${room.id}-${i < room.facilitators ? 'f' : 'p'}${i}`,
    role: i < room.facilitators ? 'facilitator' : 'participant',
    publishing: i < room.facilitators ? room.facilitatorPublishing : room.publishing,
  }));
}

/** Joins rooms through Haven: facilitators first (they admit), then everyone else at once. */
async function joinHaven(target: HavenTarget, rooms: RoomPlan[]): Promise<Reply> {
  const joined: HavenClient[] = [];
  const join = async (room: RoomPlan, m: ReturnType<typeof members>[number]) => {
    const client = new HavenClient(target, room.id, m.role, newPeer(m.id, m.publishing, room.e2ee), fail);
    // One facilitator admits (two clicking "admit" for the same person is a race, not load).
    client.autoAdmit = m.id.endsWith('-f0');
    clients.push(client);
    try {
      await client.join();
      joined.push(client);
    } catch (err) {
      fail(`join ${m.id}`, err);
    }
  };
  const all = rooms.map((room) => ({ room, members: members(room) }));
  await Promise.all(
    all.flatMap(({ room, members }) => members.filter((m) => m.role === 'facilitator').map((m) => join(room, m))),
  );
  await Promise.all(
    all.flatMap(({ room, members }) => members.filter((m) => m.role !== 'facilitator').map((m) => join(room, m))),
  );
  // Media flows once everyone receives packets of every track due to them (a video consumer waits
  // for a key frame); after 30 s it is measured as it is, and the window's track check names who
  // still misses what.
  const deadline = Date.now() + 30_000;
  const settling = () =>
    joined.some((c) => c.times.firstPacketAt === undefined && expectsMedia(c, rooms)) ||
    missingTracks(trackViews(), (ssrc) => stats.stream(ssrc)?.received ?? 0).length > 0;
  while (Date.now() < deadline && settling()) await new Promise((r) => setTimeout(r, 100));
  const participants = joined.filter((c) => c.role !== 'facilitator');
  return {
    type: 'joined',
    admitted: participants.map((c) => (c.times.admittedAt ?? 0) - c.times.connectAt),
    firstPacket: participants.flatMap((c) =>
      c.times.firstPacketAt === undefined ? [] : [c.times.firstPacketAt - c.times.connectAt],
    ),
    failed: all.reduce((n, r) => n + r.members.length, 0) - joined.length,
  };
}

/** Everyone in a session, as the track check sees them. */
function trackViews() {
  return clients.filter((c) => c.session && !c.closed).map((c) => ({ ...c.trackView(), id: c.id }));
}

/** Whether someone else in the client's room publishes (else no packet will come). */
function expectsMedia(client: HavenClient, rooms: RoomPlan[]): boolean {
  const room = rooms.find((r) => r.id === client.room);
  if (!room) return false;
  const others = room.size - 1;
  return room.publishing !== 'none'
    ? others > 0
    : room.facilitatorPublishing !== 'none' && client.role !== 'facilitator';
}

/**
 * Facilitator actions under load, `rounds` times in every room, each timed from the request to
 * the moment every target was told: mute all (then everyone unmutes), admit all (two latecomers
 * wait first), remove (one latecomer).
 */
async function moderate(target: HavenTarget, rounds: number): Promise<Reply> {
  const samples: Record<'muteAll' | 'admitAll' | 'remove', number[]> = { muteAll: [], admitAll: [], remove: [] };
  const byRoom = new Map<string, HavenClient[]>();
  for (const c of clients) if (c.session) byRoom.set(c.room, [...(byRoom.get(c.room) ?? []), c]);
  await Promise.all(
    [...byRoom].map(async ([room, inRoom]) => {
      const facilitator = inRoom.find((c) => c.role === 'facilitator');
      const others = inRoom.filter((c) => c.role !== 'facilitator' && c.peer.source('audio'));
      if (!facilitator) return;
      for (let round = 0; round < rounds; round++) {
        try {
          const muted = others.map((c) => c.next('mutedByFacilitator'));
          const t0 = epochMs();
          await facilitator.request('muteAll', {});
          await Promise.all(muted);
          samples.muteAll.push(epochMs() - t0);
          await Promise.all(others.map((c) => c.unmute()));

          facilitator.autoAdmit = false;
          const late = [0, 1].map(
            (i) => new HavenClient(target, room, 'participant', newPeer(`${room}-late${round}-${i}`, 'none'), fail),
          );
          for (const c of late) c.media = false;
          clients.push(...late);
          const waiting = late.map((c) => c.join());
          await waitUntil(() => late.every((c) => facilitator.waiting.has(c.id)));
          const t1 = epochMs();
          await facilitator.request('admitAll', {});
          await Promise.all(waiting);
          samples.admitAll.push(Math.max(...late.map((c) => (c.times.admittedAt ?? t1) - t1)));
          facilitator.autoAdmit = true;

          const leaving = late[0] as HavenClient;
          const left = (c: HavenClient) => c.next('participantLeft', (p) => p.participantId === leaving.id);
          const told = [leaving.next('removed'), ...inRoom.map(left)];
          const t2 = epochMs();
          await facilitator.request('remove', { participantId: leaving.id });
          await Promise.all(told);
          samples.remove.push(epochMs() - t2);
          await (late[1] as HavenClient).request('leave', {});
          for (const c of late) {
            c.close();
            peers.delete(c.id);
          }
        } catch (err) {
          fail(`moderation in ${room}`, err);
        }
      }
    }),
  );
  return {
    type: 'moderated',
    muteAll: percentiles(samples.muteAll),
    admitAll: percentiles(samples.admitAll),
    remove: percentiles(samples.remove),
  };
}

async function waitUntil(check: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function handle(command: Command): Promise<Reply> {
  switch (command.type) {
    case 'configure':
      videoBitrate = command.videoBitrate;
      return { type: 'ok' };
    case 'join-haven':
      return joinHaven(command.target, command.rooms);
    case 'baseline-peers': {
      const endpoints = [];
      for (const room of command.rooms) {
        for (const m of members(room)) {
          const peer = newPeer(m.id, m.publishing);
          const ports = await peer.bind();
          endpoints.push({
            room: room.id,
            id: m.id,
            ...ports,
            sendKey: peer.sendKey,
            sources: peer.sources.map((s) => ({ kind: s.kind, ssrc: s.ssrc })),
          });
        }
      }
      return { type: 'baseline-endpoints', endpoints };
    }
    case 'baseline-wire':
      for (const w of command.wiring) {
        const peer = peers.get(w.id);
        if (!peer) continue;
        if (w.send) peer.connectSend(w.send.ip, w.send.port, w.send.key);
        peer.connectRecv(w.recvKey);
      }
      return { type: 'ok' };
    case 'window-start':
      stats.reset();
      sentAtWindowStart = sent;
      windowStartedAt = epochMs();
      return { type: 'ok' };
    case 'window-end': {
      const seconds = (epochMs() - windowStartedAt) / 1000;
      const missing = missingTracks(trackViews(), (ssrc) => stats.stream(ssrc)?.received ?? 0);
      return {
        type: 'window',
        seconds,
        totals: stats.snapshot(),
        sentPackets: sent - sentAtWindowStart,
        errors,
        missing,
      };
    }
    case 'moderate':
      return moderate(command.target, command.rounds);
    case 'close-all':
      for (const c of clients) c.close();
      clients.length = 0;
      for (const p of peers.values()) p.close();
      peers.clear();
      stats = new ReceiverStats(); // the next target's streams only
      return { type: 'ok' };
  }
}

process.on('message', (message: { seq: number; command: Command }) => {
  handle(message.command).then(
    (answer) => process.send?.({ seq: message.seq, answer }),
    (err: Error) => process.send?.({ seq: message.seq, answer: { type: 'error', message: err.message } }),
  );
});
process.on('disconnect', () => process.exit(0));
