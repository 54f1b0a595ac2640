/**
 * Media through a real node, with WebRTC peers running in Node (@roamhq/wrtc and the SDK):
 * synthetic audio and video published by one participant reach the others; a room spreads over
 * two workers through pipeToRouter; a killed media worker costs a second of media, not the session.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { commandOf, descendants, isAlive, waitFor } from '../../bench/processes.ts';
import type { RemoteTrack } from '../../client-sdk/src/index.ts';
import type { Role } from '../../client-sdk/src/protocol/index.ts';
import { sessionNode } from '../helpers/session-node.ts';
import { admin, token } from '../helpers/signaling-client.ts';
import {
  createNodeSessionClient,
  type NodeSession,
  type Reception,
  receiveFrom,
  startSignalingProxy,
} from '../helpers/wrtc-session.ts';

const haven = sessionNode(test, {
  env: {
    HAVEN_MEDIA_WORKERS: '2',
    // Small enough that a room of four spreads over both workers.
    HAVEN_MEDIA_MAX_CONSUMERS_PER_ROUTER: '4',
  },
  roomPrefix: 'media',
  room: { title: 'Media test', waitingRoom: false },
});
const { node } = haven;
const sessions: NodeSession[] = [];
haven.atEnd(() => Promise.all(sessions.map((s) => s.close())));

const newRoom = (kind: string): Promise<string> => haven.newRoom({ kind });

async function joined(room: string, sub: string, role: Role = 'participant'): Promise<NodeSession> {
  const session = createNodeSessionClient(node.url, token(room, sub, role));
  sessions.push(session);
  await session.client.connect();
  await session.client.join();
  return session;
}

async function flowing(rx: Reception, what: string): Promise<void> {
  const frames = rx.frames();
  const audible = rx.audible();
  await waitFor(() => rx.frames() > frames + 5 && rx.audible() > audible + 4_800, 15_000, what);
}

test('audio and video published by one participant reach another (real RTP, decoded)', async () => {
  const room = await newRoom('group');
  const facilitator = await joined(room, 'fac-m', 'facilitator');
  const participant = await joined(room, 'pt-m');
  const rx = receiveFrom(participant, 'fac-m');
  const speakers: (string | null)[] = [];
  participant.client.on('activeSpeakerChanged', (id) => speakers.push(id));
  await facilitator.client.publishMicrophone(facilitator.audioTrack());
  await facilitator.client.publishCamera(facilitator.videoTrack());
  await flowing(rx, 'media from the facilitator');
  await waitFor(() => speakers.includes('fac-m'), 5_000, 'the one speaking to be the active speaker');
});

test('a room that outgrows a router spreads to the other worker; piped media arrives', async () => {
  const room = await newRoom('education');
  const teacher = await joined(room, 'teacher', 'facilitator');
  await teacher.client.publishMicrophone(teacher.audioTrack());
  await teacher.client.publishCamera(teacher.videoTrack());
  const students: { student: NodeSession; rx: Reception }[] = [];
  for (const sub of ['st-1', 'st-2', 'st-3']) {
    const student = await joined(room, sub);
    assert.is(student.client.localParticipant?.capabilities.publishAudio, false, 'education: receive only');
    students.push({ student, rx: receiveFrom(student, 'teacher') });
    await waitFor(() => students.at(-1)?.rx.frames(), 15_000, `${sub} to receive`);
  }
  const live = (await admin(node.url, 'GET', `/v1/rooms/${room}`)).body.data.live;
  assert.is(live.routers, 2, 'the room uses a router on each worker');
  for (const { rx } of students) await flowing(rx, 'media on both routers');
});

test('the receiver’s size hint picks the simulcast layer', async () => {
  const room = await newRoom('group');
  const sender = await joined(room, 'pt-sim1');
  const viewer = await joined(room, 'pt-sim2');
  const subscribed = new Promise<RemoteTrack>((resolve) =>
    viewer.client.on('trackSubscribed', (t) => t.kind === 'video' && resolve(t)),
  );
  // libwebrtc sends all three layers only from 960×540 up.
  await sender.client.publishCamera(sender.videoTrack({ width: 1280, height: 720, fps: 10 }));
  const remote = await subscribed;
  const frames = await new Promise<ReturnType<NodeSession['countVideoFrames']>>((resolve) =>
    setImmediate(() => resolve(viewer.countVideoFrames(remote.track))),
  );
  await remote.setPreferredSize(160, 90);
  await waitFor(() => frames.height > 0 && frames.height <= 180, 10_000, 'a low layer for a small tile');
  const small = frames.height;
  await remote.setPreferredSize(1280, 720);
  await waitFor(() => frames.height > small, 10_000, 'a higher layer for a big tile');
  console.log(`    layers seen: ${small}p for a 90p tile, ${frames.height}p for a 720p tile`);
});

test('signaling cut mid-session: the SDK reconnects and restores media; nobody sees a leave', async () => {
  const room = await newRoom('group');
  const proxy = await startSignalingProxy(node.url);
  try {
    const listener = await joined(room, 'pt-rc1');
    const leaves: string[] = [];
    listener.client.on('participantLeft', (p) => leaves.push(p.id));
    const rx = receiveFrom(listener, 'pt-rc2');
    const dropper = createNodeSessionClient(proxy.url, token(room, 'pt-rc2'));
    sessions.push(dropper);
    await dropper.client.connect();
    await dropper.client.join();
    await dropper.client.publishMicrophone(dropper.audioTrack());
    await dropper.client.publishCamera(dropper.videoTrack());
    await flowing(rx, 'media before the cut');
    const states: string[] = [];
    dropper.client.on('connectionStateChanged', (state) => states.push(state));
    proxy.drop();
    await waitFor(() => states.at(-1) === 'joined' && states.includes('reconnecting'), 10_000, 'the SDK to rejoin');
    await flowing(rx, 'media after the reconnection');
    assert.equal(leaves, []);
  } finally {
    await proxy.close();
  }
});

test('the media worker of a room killed: media comes back, nobody leaves', async () => {
  const room = await newRoom('group');
  const a = await joined(room, 'pt-k1');
  const b = await joined(room, 'pt-k2');
  const leaves: string[] = [];
  b.client.on('participantLeft', (p) => leaves.push(p.id));
  const rx = receiveFrom(b, 'pt-k1');
  await a.client.publishMicrophone(a.audioTrack());
  await a.client.publishCamera(a.videoTrack());
  await flowing(rx, 'media before the crash');
  const workers = descendants(node.child.pid as number).filter((pid) => commandOf(pid).includes('mediasoup-worker'));
  assert.is(workers.length, 2);
  // Kill both: whichever carries the room, media must come back on a replacement.
  for (const pid of workers) process.kill(pid, 'SIGKILL');
  const killedAt = Date.now();
  await flowing(rx, 'media after the crash');
  console.log(`    media back ${Date.now() - killedAt} ms after both workers were killed`);
  assert.ok(workers.every((pid) => !isAlive(pid)));
  assert.equal(leaves, []);
  assert.is(a.client.connectionState, 'joined');
});

test.run();
