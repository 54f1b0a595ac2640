/**
 * Audio-only through a real node, with WebRTC peers in Node (@roamhq/wrtc and the SDK): the
 * person's switch holds back every video it receives on the server (its tracks say why) and
 * never its audio; off again, video comes back; a facilitator's suggestion reaches the person,
 * who decides; the choice survives a reconnection.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { waitFor } from '../../bench/processes.ts';
import type { AudioOnlyState, RemoteTrack } from '../../client-sdk/src/index.ts';
import type { Role } from '../../client-sdk/src/protocol/index.ts';
import { sessionNode } from '../helpers/session-node.ts';
import { token } from '../helpers/signaling-client.ts';
import {
  createNodeSessionClient,
  type NodeSession,
  type Reception,
  receiveFrom,
  startSignalingProxy,
} from '../helpers/wrtc-session.ts';

const haven = sessionNode(test, { roomPrefix: 'audio-only', room: { title: 'Audio only', waitingRoom: false } });
const { node } = haven;
const sessions: NodeSession[] = [];
haven.atEnd(() => Promise.all(sessions.map((s) => s.close())));

async function joined(room: string, sub: string, role: Role = 'participant', url = node.url): Promise<NodeSession> {
  const session = createNodeSessionClient(url, token(room, sub, role));
  sessions.push(session);
  await session.client.connect();
  await session.client.join();
  return session;
}

/** Waits for more frames and audible samples than now. */
async function flowing(rx: Reception, what: string, video = true): Promise<void> {
  const frames = rx.frames();
  const audible = rx.audible();
  await waitFor(() => (!video || rx.frames() > frames + 5) && rx.audible() > audible + 4_800, 15_000, what);
}

function videoOf(session: NodeSession, from: string): RemoteTrack | undefined {
  return session.client.participants.get(from)?.getTrack('camera');
}

/** A facilitator publishing a camera and a microphone, and a participant receiving both. */
async function pair(url = node.url) {
  const room = await haven.newRoom();
  const facilitator = await joined(room, 'fac-ao', 'facilitator');
  const participant = await joined(room, 'pt-ao', 'participant', url);
  const rx = receiveFrom(participant, 'fac-ao');
  await facilitator.client.publishMicrophone(facilitator.audioTrack());
  await facilitator.client.publishCamera(facilitator.videoTrack());
  await flowing(rx, 'media before audio-only');
  return { facilitator, participant, rx };
}

test('audio-only: every video held back on the server (pausedReason audioOnly), audio goes on; off, video again', async () => {
  const { participant, rx } = await pair();
  const states: AudioOnlyState[] = [];
  participant.client.on('audioOnlyChanged', (state) => states.push({ ...state }));
  await participant.client.setAudioOnly(true);
  await waitFor(() => videoOf(participant, 'fac-ao')?.pausedReason === 'audioOnly', 10_000, 'video held back');
  assert.equal(states, [{ enabled: true, reason: 'self' }]);
  assert.equal({ ...participant.client.audioOnly }, { enabled: true, reason: 'self' });
  // What was in flight has arrived: from now on no frame, while the voice goes on.
  await flowing(rx, 'audio while audio-only', false);
  const frames = rx.frames();
  await flowing(rx, 'more audio while audio-only', false);
  assert.is(rx.frames(), frames, 'no video frame arrives while audio-only');
  await participant.client.setAudioOnly(false);
  await waitFor(() => videoOf(participant, 'fac-ao')?.pausedReason === null, 10_000, 'video sent again');
  await flowing(rx, 'video after audio-only');
  assert.equal(states.at(-1), { enabled: false, reason: 'self' });
});

test('a facilitator’s suggestion reaches the person, who decides; nothing changes by itself', async () => {
  const { facilitator, participant, rx } = await pair();
  const suggested = new Promise<{ by: string }>((resolve) => participant.client.once('audioOnlySuggested', resolve));
  await facilitator.client.moderation.suggestAudioOnly('pt-ao');
  assert.equal(await suggested, { by: 'fac-ao' });
  assert.is(participant.client.audioOnly.enabled, false);
  await flowing(rx, 'video still flows after the suggestion');
});

test('the person’s audio-only survives a dropped connection: asked for again on the rejoin', async () => {
  const proxy = await startSignalingProxy(node.url);
  try {
    const { participant } = await pair(proxy.url);
    await participant.client.setAudioOnly(true);
    await waitFor(() => videoOf(participant, 'fac-ao')?.pausedReason === 'audioOnly', 10_000, 'video held back');
    const states: string[] = [];
    participant.client.on('connectionStateChanged', (state) => states.push(state));
    proxy.drop();
    await waitFor(() => states.at(-1) === 'joined' && states.includes('reconnecting'), 15_000, 'the SDK to rejoin');
    await waitFor(
      () => videoOf(participant, 'fac-ao')?.pausedReason === 'audioOnly',
      15_000,
      'video held back again after the rejoin',
    );
    assert.equal({ ...participant.client.audioOnly }, { enabled: true, reason: 'self' });
  } finally {
    await proxy.close();
  }
});

test.run();
