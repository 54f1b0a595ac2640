/**
 * The SDK's participants without a server (a fake media session): this client's publications
 * applying a server pause (a facilitator's mute, a refused unmute) in one way, a stopped screen
 * share unpublished; everyone else's tracks received, updated and ended with their owner.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { HavenRequestError } from '../../client-sdk/src/index.ts';
import type { MediaSession } from '../../client-sdk/src/media-session.ts';
import { LocalMember } from '../../client-sdk/src/participants/local-member.ts';
import { RemoteMembers } from '../../client-sdk/src/participants/remote-members.ts';
import type { TrackInfo } from '../../client-sdk/src/protocol/index.ts';
import { TypedEmitter } from '../../client-sdk/src/protocol/typed-emitter.ts';
import type { SessionClientEvents } from '../../client-sdk/src/session-events.ts';
import { throwsAsync } from '../helpers/assert.ts';
import { cameraTrackFixture as camera, fakeConsumerFixture, fakeProducerFixture } from '../helpers/sdk-fixtures.ts';

const capabilities = { publishAudio: true, publishVideo: true, publishScreen: true, chat: true };

/** The events emitted, by name, in order. */
function recorder() {
  const events = new TypedEmitter<SessionClientEvents>();
  const emitted: string[] = [];
  const original = events.safeEmit.bind(events);
  events.safeEmit = ((name: keyof SessionClientEvents, ...args: unknown[]) => {
    emitted.push(name);
    return original(name, ...(args as never));
  }) as typeof events.safeEmit;
  return { events, emitted };
}

function fakeTrack(kind: 'audio' | 'video') {
  return {
    kind,
    readyState: 'live',
    enabled: true,
    stopped: false,
    stop() {
      this.stopped = true;
    },
  };
}

const fakeProducer = (id: string) => fakeProducerFixture(id);

/** A media session whose producers and requests the test sees; `refuse` answers a request with a refusal. */
function fakeMedia() {
  const requests: string[] = [];
  const producers: ReturnType<typeof fakeProducer>[] = [];
  const media = {
    closed: false,
    refuse: undefined as string | undefined,
    async produce() {
      const producer = fakeProducer(`prod-${producers.length + 1}`);
      producers.push(producer);
      return producer;
    },
    async consume(producerId: string) {
      return { consumer: fakeConsumerFixture(producerId), response: { kind: 'video', source: 'camera' } };
    },
    signaling: {
      async request(name: string) {
        requests.push(name);
        if (media.refuse === name) throw new HavenRequestError('FORBIDDEN', 'not asked to unmute', name);
        return {};
      },
    },
  };
  return { media, requests, producers };
}

/** What the server says of this client's microphone producer. */
const microphone = (paused: boolean): TrackInfo => ({
  producerId: 'prod-1',
  participantId: 'me',
  kind: 'audio',
  source: 'microphone',
  paused,
});

function localMember() {
  const { events, emitted } = recorder();
  const { media, requests, producers } = fakeMedia();
  const member = new LocalMember({ events, media: () => media as unknown as MediaSession, assertState: () => {} });
  member.applySelf({ id: 'me', name: 'Me', role: 'participant', tracks: [] }, capabilities);
  return { member, emitted, media, requests, producers };
}

test('a facilitator’s mute: the track disabled at once, one localTrackUpdated, then mutedByFacilitator', async () => {
  const { member, emitted, producers } = localMember();
  const track = fakeTrack('audio');
  const local = await member.publish('microphone', track as unknown as MediaStreamTrack);
  assert.is(local.producerId, 'prod-1');
  const on = member.handlers();
  on.mutedByFacilitator({ source: 'microphone', producerId: 'someone-else' });
  assert.ok(local.enabled, 'a mute of another producer is not this one');
  on.mutedByFacilitator({ source: 'microphone', producerId: 'prod-1' });
  assert.not.ok(local.enabled);
  assert.not.ok(track.enabled);
  assert.ok(producers[0]?.paused);
  member.applyServerTrackUpdate(microphone(true));
  assert.equal(
    emitted,
    ['localTrackPublished', 'localTrackUpdated', 'mutedByFacilitator'],
    'the paused update that follows changes nothing',
  );
  member.applyServerTrackUpdate(microphone(false));
  assert.not.ok(local.enabled, 'a resume is only recorded: the SDK never turns a microphone on by itself');
});

test('an unmute the server refuses (audio mode controlled): muted again, the refusal rethrown', async () => {
  const { member, emitted, media, requests } = localMember();
  const track = fakeTrack('audio');
  const local = await member.publish('microphone', track as unknown as MediaStreamTrack);
  member.applyServerTrackUpdate(microphone(true));
  media.refuse = 'resumeProducer';
  await throwsAsync(() => member.setEnabled('microphone', true), HavenRequestError, /not asked to unmute/);
  assert.not.ok(local.enabled);
  assert.not.ok(track.enabled);
  assert.equal(requests, ['resumeProducer']);
  assert.equal(
    emitted,
    ['localTrackPublished', 'localTrackUpdated', 'localTrackUpdated', 'localTrackUpdated'],
    'muted, unmuted at once, muted again',
  );
  media.refuse = undefined;
  await member.setEnabled('microphone', false);
  assert.equal(requests, ['resumeProducer'], 'the server still has it paused: nothing to send');
});

test('a facilitator stops the screen share: unpublished without a request; a track the app passed in keeps running', async () => {
  const { member, emitted, requests, producers } = localMember();
  const track = fakeTrack('video');
  await member.publish('screen', track as unknown as MediaStreamTrack);
  assert.ok(member.participant?.tracks.has('screen'));
  member.handlers().mutedByFacilitator({ source: 'screen', producerId: 'prod-1' });
  assert.not.ok(member.participant?.tracks.has('screen'));
  assert.ok(producers[0]?.closed);
  assert.not.ok(track.stopped);
  assert.equal(requests, []);
  assert.equal(emitted, ['localTrackPublished', 'localTrackUnpublished', 'mutedByFacilitator']);
});

function remoteMembers() {
  const recorded = recorder();
  const { media } = fakeMedia();
  const others = new RemoteMembers(
    {
      events: recorded.events,
      media: () => media as unknown as MediaSession,
      state: () => 'joined',
      receiving: () => true,
    },
    () => 'me',
  );
  return { others, ...recorded };
}

test('remote tracks: received once their participant is known, muted by their publisher, ended with their owner', async () => {
  const { others, events, emitted } = remoteMembers();
  const subscribed = new Promise((resolve) => events.once('trackSubscribed', resolve));
  others.subscribe(camera('p-1'));
  others.join({ id: 'me', name: 'Me', role: 'participant', tracks: [] });
  others.join({ id: 'p-1', name: 'Ann', role: 'participant', tracks: [] });
  await subscribed;
  const ann = others.participants.get('p-1');
  const remote = ann?.getTrack('camera');
  assert.ok(remote, 'a track announced before its participant is received once they are known');
  assert.is(others.participants.size, 1, 'this client is never among the others');
  others.updated(camera('p-1', true));
  others.updated(camera('p-1', true));
  assert.ok(remote?.paused);
  assert.ok(others.rename('p-1', 'Alias'));
  assert.is(ann?.name, 'Alias');
  others.remove('p-1', 'left');
  assert.ok(remote?.ended);
  assert.equal(emitted, [
    'participantJoined',
    'trackSubscribed',
    'trackUpdated',
    'trackUnsubscribed',
    'participantLeft',
  ]);
  assert.is(others.participants.size, 0);
});

test.run();
