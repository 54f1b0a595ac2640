/**
 * The SDK on a poor network, without a Haven server: connection quality and audio-only over a
 * bare socket.io server that plays the server's part (the person's choice asked for again after
 * a rejoin, the server's bandwidth reason not), the audio-only choice on its own (made while
 * offline, refused, lost with the connection), remote tracks held back by the server
 * (`pausedReason`), dynacast's layers on the matching producer, and the screen share's sender
 * preference (fake media sessions).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ClientState } from '../../client-sdk/src/client-state.ts';
import {
  HavenRequestError,
  InvalidStateError,
  type SessionClient,
  type SessionClientEvents,
  type SessionState,
} from '../../client-sdk/src/index.ts';
import type { MediaSession } from '../../client-sdk/src/media-session.ts';
import { NetworkQuality } from '../../client-sdk/src/network-quality.ts';
import { LocalMember } from '../../client-sdk/src/participants/local-member.ts';
import { RemoteMembers } from '../../client-sdk/src/participants/remote-members.ts';
import { TypedEmitter } from '../../client-sdk/src/protocol/typed-emitter.ts';
import { publishPresets } from '../../client-sdk/src/publish-presets.ts';
import { applySenderPreferences } from '../../client-sdk/src/sender-preferences.ts';
import type { Signaling } from '../../client-sdk/src/signaling.ts';
import { throwsAsync } from '../helpers/assert.ts';
import {
  cameraTrackFixture as camera,
  fakeHaven,
  fakeProducerFixture,
  routerRtpCapabilities,
  sessionStateFixture,
} from '../helpers/sdk-fixtures.ts';
import { createNodeSessionClient } from '../helpers/wrtc-session.ts';

/** An admission of Pat (`p-1`) into a room that shares quality, with a facilitator, Dr. Lee (`f-1`). */
function admission(overrides: Partial<SessionState> = {}): SessionState {
  return sessionStateFixture(routerRtpCapabilities, {
    room: { id: 'grp-1', kind: 'group', title: 'Tuesday group', e2ee: false, shareConnectionQuality: true },
    capabilities: { publishAudio: true, publishVideo: true, publishScreen: true, chat: true },
    ...overrides,
  });
}

/** Records the client's network events (and who joined) as short strings, in order. */
function networkLog(client: SessionClient): string[] {
  const log: string[] = [];
  client.on('participantJoined', (participant) => log.push(`joined ${participant.id}`));
  client.on('connectionQualityChanged', (id, quality, reason) => log.push(`quality ${id} ${quality} ${reason}`));
  client.on('audioOnlyChanged', ({ enabled, reason }) => log.push(`audioOnly ${enabled} ${reason}`));
  client.on('audioOnlySuggested', ({ by }) => log.push(`suggested by ${by}`));
  return log;
}

function nextEvent<K extends keyof SessionClientEvents>(client: SessionClient, event: K): Promise<unknown> {
  return new Promise((resolve) => client.once(event, (...args) => resolve(args)));
}

test('connection quality and audio-only from the admission and the notifications; the switch and the suggestion are requests', async () => {
  const server = await fakeHaven({
    join: () => ({
      stage: 'admitted',
      session: admission({
        connectionQuality: [
          { participantId: 'p-1', quality: 'poor', reason: 'upload' },
          { participantId: 'f-1', quality: 'good', reason: 'download' },
        ],
        audioOnly: { enabled: true, reason: 'bandwidth' },
      }),
    }),
    setAudioOnly: ({ enabled }: { enabled: boolean }, socket) => {
      socket.emit('audioOnlyChanged', { enabled, reason: 'self' });
    },
  });
  const session = createNodeSessionClient(server.url, 'p-1');
  const { client } = session;
  try {
    assert.is(client.connectionQuality, 'excellent', 'excellent until told');
    assert.equal(client.audioOnly, { enabled: false, reason: null });
    const log = networkLog(client);
    await client.connect();
    await client.join();
    const lee = client.participants.get('f-1');
    assert.is(client.connectionQuality, 'poor');
    assert.is(lee?.connectionQuality, 'good');
    assert.equal(client.audioOnly, { enabled: true, reason: 'bandwidth' });
    assert.equal(log, [
      'joined f-1',
      'quality p-1 poor upload',
      'quality f-1 good download',
      'audioOnly true bandwidth',
    ]);

    const socket = server.socket();
    socket.emit('connectionQualityChanged', { participantId: 'f-1', quality: 'poor', reason: 'both' });
    socket.emit('connectionQualityChanged', { participantId: 'f-1', quality: 'poor', reason: 'both' });
    socket.emit('connectionQualityChanged', { participantId: 'p-1', quality: 'excellent', reason: null });
    socket.emit('connectionQualityChanged', { participantId: 'hidden-1', quality: 'lost', reason: 'both' });
    socket.emit('audioOnlyChanged', { enabled: false, reason: 'bandwidth' });
    const suggested = nextEvent(client, 'audioOnlySuggested');
    socket.emit('audioOnlySuggested', { by: 'f-1' });
    assert.equal(await suggested, [{ by: 'f-1' }]);
    assert.equal(log.slice(4), [
      'quality f-1 poor both',
      'quality p-1 excellent null',
      'quality hidden-1 lost both',
      'audioOnly false bandwidth',
      'suggested by f-1',
    ]);
    assert.is(lee?.connectionQuality, 'poor');
    assert.is(client.connectionQuality, 'excellent');

    await throwsAsync(() => client.setAudioOnly('yes' as unknown as boolean), TypeError);
    await client.setAudioOnly(true);
    assert.equal(client.audioOnly, { enabled: true, reason: 'self' }, 'the server notified before its answer');
    assert.ok(Object.isFrozen(client.audioOnly));
    await throwsAsync(() => client.moderation.suggestAudioOnly(''), TypeError);
    await client.moderation.suggestAudioOnly('f-1');
    assert.equal(
      server.received.slice(1).map(({ name, payload }) => [name, payload]),
      [
        ['setAudioOnly', { enabled: true }],
        ['suggestAudioOnly', { participantId: 'f-1' }],
      ],
    );

    const left = nextEvent(client, 'participantLeft');
    socket.emit('participantLeft', { participantId: 'f-1', reason: 'left' });
    await left;
    assert.is(lee?.connectionQuality, undefined, 'someone gone is no longer in view');
  } finally {
    await session.close();
    await server.close();
  }
});

test('after a drop the person’s audio-only is asked for again; one the server turned on for bandwidth is not', async () => {
  const server = await fakeHaven({
    // The server forgot everything: a new place each time (not resumed), audio-only off.
    join: () => ({ stage: 'admitted', session: admission() }),
    setAudioOnly: ({ enabled }: { enabled: boolean }, socket) => {
      socket.emit('audioOnlyChanged', { enabled, reason: 'self' });
    },
  });
  const session = createNodeSessionClient(server.url, 'p-1', { reconnect: { baseDelayMs: 10, maxDelayMs: 20 } });
  const { client } = session;
  try {
    await client.connect();
    await client.join();
    await client.setAudioOnly(true);
    server.socket().conn.close();
    assert.equal(await server.request('setAudioOnly', 2), { enabled: true }, 'asked again on the new connection');
    assert.is(client.connectionState, 'joined', 'asked once in the room');
    assert.equal(server.names(2), ['join', 'setAudioOnly']);

    // The person turns video back on; later the server turns audio-only on for the weak downlink.
    await client.setAudioOnly(false);
    const bandwidth = nextEvent(client, 'audioOnlyChanged');
    server.socket().emit('audioOnlyChanged', { enabled: true, reason: 'bandwidth' });
    await bandwidth;
    const back = nextEvent(client, 'admitted');
    server.socket().conn.close();
    await back;
    // Anything the rejoin asked for went before this on the same connection.
    await client.raiseHand();
    assert.equal(server.names(3), ['join', 'raiseHand'], 'the server decides bandwidth audio-only again itself');
    assert.equal(client.audioOnly, { enabled: false, reason: null }, 'as the rejoin said');
  } finally {
    await session.close();
    await server.close();
  }
});

/* ---- The audio-only choice on its own ---------------------------------------------------- */

/** A NetworkQuality in a client whose state the test sets, and a connection whose requests it sees. */
function networkQuality(refuse?: string) {
  const events = new TypedEmitter<SessionClientEvents>();
  const state = new ClientState(events);
  const requests: [string, unknown][] = [];
  const signaling = {
    async request(name: string, payload: unknown) {
      requests.push([name, payload]);
      if (refuse) throw new HavenRequestError(refuse as never, 'refused', name);
      return {};
    },
  } as unknown as Signaling;
  const network = new NetworkQuality({ events, ...state.accessors(), signaling: () => signaling }, () => 'p-1');
  return { network, state, signaling, requests, events };
}

test('audio-only chosen while reconnecting is sent once admitted; turned off while away, it is turned off', () => {
  const { network, state, signaling, requests } = networkQuality();
  state.set('reconnecting');
  void network.setAudioOnly(true);
  assert.equal(requests, [], 'nothing sent while away');
  network.applySession(admission());
  network.restoreChoice(signaling);
  assert.equal(requests, [['setAudioOnly', { enabled: true }]]);

  network.applySession(admission({ audioOnly: { enabled: true, reason: 'self' } }));
  network.restoreChoice(signaling);
  assert.is(requests.length, 1, 'the server has it: nothing to ask');
  void network.setAudioOnly(false);
  network.applySession(admission({ resumed: true, audioOnly: { enabled: true, reason: 'self' } }));
  network.restoreChoice(signaling);
  assert.equal(requests.at(-1), ['setAudioOnly', { enabled: false }]);

  network.applySession(admission({ audioOnly: { enabled: true, reason: 'bandwidth' } }));
  network.restoreChoice(signaling);
  assert.is(requests.length, 2, 'off by choice leaves the bandwidth audio-only to the server');
});

test('setAudioOnly: refused, the choice is as before; lost with the connection, it is kept for the rejoin', async () => {
  const refused = networkQuality('FORBIDDEN');
  refused.state.set('joined');
  const error = (await throwsAsync(() => refused.network.setAudioOnly(true), HavenRequestError)) as HavenRequestError;
  assert.is(error.code, 'FORBIDDEN');
  refused.network.applySession(admission());
  refused.network.restoreChoice(refused.signaling);
  assert.equal(refused.requests.length, 1, 'no choice to ask for again');

  const dropped = networkQuality('DISCONNECTED');
  dropped.state.set('joined');
  await dropped.network.setAudioOnly(true);
  dropped.network.applySession(admission());
  dropped.network.restoreChoice(dropped.signaling);
  assert.equal(dropped.requests.length, 2, 'asked for again after the rejoin');

  for (const outside of ['disconnected', 'connected', 'closed'] as const) {
    const { network, state } = networkQuality();
    state.set(outside);
    await throwsAsync(() => network.setAudioOnly(true), InvalidStateError);
  }
});

test('a reload that took the place back with audio-only on by the person: kept as their choice', () => {
  const { network, state, signaling, requests } = networkQuality();
  state.set('joined');
  network.applySession(admission({ resumed: true, audioOnly: { enabled: true, reason: 'self' } }));
  network.applySession(admission());
  network.restoreChoice(signaling);
  assert.equal(requests, [['setAudioOnly', { enabled: true }]]);
});

test('connection quality: a change once, someone gone forgotten, nobody else in view out of the room', () => {
  const { network, events } = networkQuality();
  const changes: string[] = [];
  events.on('connectionQualityChanged', (id, quality, reason) => changes.push(`${id} ${quality} ${reason}`));
  network.applySession(
    admission({
      connectionQuality: [
        { participantId: 'f-1', quality: 'good', reason: 'upload' },
        { participantId: 'p-2', quality: 'lost', reason: 'both' },
      ],
    }),
  );
  assert.equal(changes, ['f-1 good upload', 'p-2 lost both'], 'own excellent as before: no event');
  network.handlers().connectionQualityChanged({ participantId: 'f-1', quality: 'good', reason: 'download' });
  assert.equal(changes.at(-1), 'f-1 good download', 'another reason is a change');
  network.forget('p-2');
  assert.is(network.qualityOf('p-2'), undefined);
  network.applySession(
    admission({ connectionQuality: [{ participantId: 'p-1', quality: 'poor', reason: 'download' }] }),
  );
  assert.is(network.qualityOf('f-1'), undefined, 'not listed on this admission: no longer visible');
  assert.is(network.quality, 'poor');
  network.leave();
  assert.is(network.quality, 'poor', 'one’s own is kept out of the room');
});

/* ---- Media: held back remote tracks, dynacast, the screen's sender ----------------------- */

function fakeProducer(id: string, kind: 'audio' | 'video', sender?: Partial<RTCRtpSender>) {
  return fakeProducerFixture(id, {
    kind,
    rtpSender: sender,
    maxSpatialLayers: [] as number[],
    async setMaxSpatialLayer(layer: number) {
      this.maxSpatialLayers.push(layer);
    },
  });
}

/** A media session that makes fake producers (`prod-1`, … after `prefix`) and consumers, which it may hold back. */
function fakeMedia(sender?: () => Partial<RTCRtpSender>, prefix = '') {
  const producers: ReturnType<typeof fakeProducer>[] = [];
  let open: () => void = () => {};
  const gate = new Promise<void>((resolve) => {
    open = resolve;
  });
  const media = {
    closed: false,
    holdConsumes: false,
    async produce(_track: unknown, _source: string, preset: { kind: 'audio' | 'video' }) {
      const producer = fakeProducer(`${prefix}prod-${producers.length + 1}`, preset.kind, sender?.());
      producers.push(producer);
      return producer;
    },
    async consume(producerId: string) {
      if (media.holdConsumes) await gate;
      const consumer = { id: `cons-${producerId}`, closed: false, track: {}, close() {} };
      return { consumer, response: { kind: 'video', source: 'camera' } };
    },
    signaling: { request: async () => ({}) },
  };
  return { media, producers, releaseConsumes: () => open() };
}

function remoteMembers() {
  const events = new TypedEmitter<SessionClientEvents>();
  const { media, releaseConsumes } = fakeMedia();
  const updates: (string | null)[] = [];
  events.on('trackUpdated', (track) => updates.push(track.pausedReason));
  const qualities = new Map([['p-2', 'poor' as const]]);
  const others = new RemoteMembers(
    { events, media: () => media as unknown as MediaSession, state: () => 'joined', receiving: () => true },
    () => 'me',
    { qualityOf: (id) => qualities.get(id) },
  );
  return { others, events, media, releaseConsumes, updates };
}

test('consumerPaused: the remote track’s pausedReason, trackUpdated once per change', async () => {
  const { others, events, updates } = remoteMembers();
  const subscribed = new Promise((resolve) => events.once('trackSubscribed', resolve));
  others.join({ id: 'p-2', name: 'Ann', role: 'participant', tracks: [camera('p-2')] });
  await subscribed;
  const ann = others.participants.get('p-2');
  assert.is(ann?.connectionQuality, 'poor');
  const remote = ann?.getTrack('camera');
  assert.is(remote?.pausedReason, null);
  const on = others.handlers();
  on.consumerPaused({ consumerId: 'cons-cam-p-2', reason: 'bandwidth' });
  on.consumerPaused({ consumerId: 'cons-cam-p-2', reason: 'bandwidth' });
  assert.is(remote?.pausedReason, 'bandwidth');
  on.consumerPaused({ consumerId: 'cons-cam-p-2', reason: 'audioOnly' });
  on.consumerPaused({ consumerId: 'someone-elses', reason: 'bandwidth' });
  on.consumerPaused({ consumerId: 'cons-cam-p-2', reason: null });
  assert.is(remote?.pausedReason, null);
  assert.equal(updates, ['bandwidth', 'audioOnly', null]);
});

test('consumerPaused before the consumer is up here: the track arrives held back', async () => {
  const { others, events, media, releaseConsumes, updates } = remoteMembers();
  media.holdConsumes = true;
  const subscribed = new Promise<unknown[]>((resolve) => events.once('trackSubscribed', (...args) => resolve(args)));
  others.join({ id: 'p-3', name: 'Bo', role: 'participant', tracks: [camera('p-3')] });
  others.consumerPaused('cons-cam-p-3', 'bandwidth');
  releaseConsumes();
  const [remote] = (await subscribed) as [{ pausedReason: string | null }];
  assert.is(remote.pausedReason, 'bandwidth');
  assert.equal(updates, [], 'received so: no update');
  assert.is(others.participants.get('p-3')?.connectionQuality, undefined, 'not visible to this client');
});

function localMember(sender?: () => Partial<RTCRtpSender>) {
  const events = new TypedEmitter<SessionClientEvents>();
  let current = fakeMedia(sender);
  const member = new LocalMember({
    events,
    media: () => current.media as unknown as MediaSession,
    assertState: () => {},
  });
  member.applySelf(
    { id: 'me', name: 'Me', role: 'participant', tracks: [] },
    { publishAudio: true, publishVideo: true, publishScreen: true, chat: true },
  );
  return {
    member,
    producers: () => current.producers,
    /** A new media session (a rejoin): what restoreAll() produces on. */
    newMedia() {
      current = fakeMedia(sender, 'new-');
    },
  };
}

function fakeTrack(kind: 'audio' | 'video') {
  return { kind, readyState: 'live', enabled: true, stop() {} } as unknown as MediaStreamTrack;
}

test('dynacast: publisherLayers sets the max spatial layer of the matching producer only, never again after a re-produce', async () => {
  const { member, producers, newMedia } = localMember();
  await member.publish('microphone', fakeTrack('audio'));
  await member.publish('camera', fakeTrack('video'));
  const [microphone, cameraProducer] = producers();
  const on = member.handlers();
  on.publisherLayers({ producerId: 'prod-2', maxSpatialLayer: 1 });
  on.publisherLayers({ producerId: 'unknown', maxSpatialLayer: 0 });
  on.publisherLayers({ producerId: 'prod-1', maxSpatialLayer: 0 });
  on.publisherLayers({ producerId: 'prod-2', maxSpatialLayer: -1 });
  on.publisherLayers({ producerId: 'prod-2', maxSpatialLayer: 2 });
  assert.equal(cameraProducer?.maxSpatialLayers, [1, 2]);
  assert.equal(microphone?.maxSpatialLayers, [], 'audio has no layers');

  newMedia();
  await member.restoreAll();
  const [, newCamera] = producers();
  assert.is(newCamera?.id, 'new-prod-2', 'produced again on the new media session');
  assert.equal(newCamera?.maxSpatialLayers, [], 'nothing reapplied: every layer on until the server says');
  on.publisherLayers({ producerId: 'prod-2', maxSpatialLayer: 0 });
  assert.equal(newCamera?.maxSpatialLayers, [], 'the old producer’s id is nobody’s now');
  assert.equal(cameraProducer?.maxSpatialLayers, [1, 2]);
  on.publisherLayers({ producerId: 'new-prod-2', maxSpatialLayer: 0 });
  assert.equal(newCamera?.maxSpatialLayers, [0]);
});

test('a screen share’s sender keeps its resolution (maintain-resolution); a browser that refuses it still shares', async () => {
  const set: (RTCDegradationPreference | undefined)[] = [];
  const sender = (): Partial<RTCRtpSender> => ({
    getParameters: () => ({ encodings: [{}], transactionId: 't', codecs: [], headerExtensions: [], rtcp: {} }),
    setParameters: async (parameters: RTCRtpSendParameters) => {
      set.push(parameters.degradationPreference);
    },
  });
  const { member } = localMember(sender);
  await member.publish('camera', fakeTrack('video'));
  assert.equal(set, [], 'the camera keeps the browser’s balance');
  await member.publish('screen', fakeTrack('video'));
  assert.equal(set, ['maintain-resolution']);

  const refusing = localMember(() => ({
    getParameters: () => ({ encodings: [{}], transactionId: 't', codecs: [], headerExtensions: [], rtcp: {} }),
    setParameters: async () => {
      throw new DOMException('degradationPreference is not supported', 'InvalidModificationError');
    },
  }));
  const screen = await refusing.member.publish('screen', fakeTrack('video'));
  assert.is(screen.producerId, 'prod-1');

  const screenPreset = publishPresets.screen;
  assert.is(await applySenderPreferences({ rtpSender: undefined }, screenPreset), false, 'no sender: nothing');
  const throwing = { getParameters: () => ({}) as never, setParameters: () => Promise.reject(new Error('no')) };
  assert.is(await applySenderPreferences({ rtpSender: throwing as never }, screenPreset), false);
  const already = {
    getParameters: () => ({ degradationPreference: 'maintain-resolution' }) as never,
    setParameters: () => Promise.reject(new Error('not called')),
  };
  assert.is(await applySenderPreferences({ rtpSender: already as never }, screenPreset), true);
});

test('presets: the microphone keeps Opus DTX, in-band FEC and NACK; only the screen asks for maintain-resolution', () => {
  assert.equal(publishPresets.microphone.codecOptions, {
    opusStereo: false,
    opusDtx: true,
    opusFec: true,
    opusNack: true,
  });
  assert.is(publishPresets.screen.degradationPreference, 'maintain-resolution');
  assert.is(publishPresets.camera.degradationPreference, undefined);
});

test.run();
