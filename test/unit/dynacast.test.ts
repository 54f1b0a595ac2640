/**
 * Dynacast (server/media/dynacast.ts): a publisher is told to send only the simulcast layers its
 * consumers are sent at, at once when one more is needed, a few seconds after one is not.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Dynacast } from '../../server/media/dynacast.ts';
import type { MemberMedia } from '../../server/media/member-media.ts';

interface FakeConsumer {
  producerId: string;
  type: string;
  paused: boolean;
  closed: boolean;
  rtpParameters: { encodings: object[] };
  preferredLayers: { spatialLayer: number } | undefined;
}

function media(id: string, producers: string[] = []) {
  const consumers = new Map<string, FakeConsumer>();
  const tracks = new Map(
    producers.map((producerId) => [
      producerId,
      { producer: { id: producerId, type: 'simulcast', closed: false, rtpParameters: { encodings: [{}, {}, {}] } } },
    ]),
  );
  return {
    participantId: id,
    consumers,
    tracks,
    consume(producerId: string, layer: number | undefined, paused = false) {
      const consumer: FakeConsumer = {
        producerId,
        type: 'simulcast',
        paused,
        closed: false,
        rtpParameters: { encodings: [{}] },
        preferredLayers: layer === undefined ? undefined : { spatialLayer: layer },
      };
      consumers.set(`${id}>${producerId}`, consumer);
      return consumer;
    },
  };
}

function setting() {
  const told: [string, string, number][] = [];
  const dynacast = new Dynacast((owner, producerId, max) => told.push([owner.participantId, producerId, max]));
  const publisher = media('pub', ['cam']);
  const viewers = [media('v1'), media('v2')];
  const placed = [publisher, ...viewers] as unknown as MemberMedia[];
  return {
    dynacast,
    told,
    publisher,
    viewers,
    tick: (n = 1) => Array.from({ length: n }, () => dynacast.tick(placed)),
  };
}

test('a new camera sends every layer until told otherwise', () => {
  const s = setting();
  s.viewers[0]?.consume('cam', 2);
  s.tick(5);
  assert.equal(s.told, []);
  assert.is(s.dynacast.maxSpatialLayer('cam'), 2);
});

test('layers nobody is sent at are turned off after 3 s; the lowest always stays', () => {
  const s = setting();
  s.viewers[0]?.consume('cam', 0);
  s.viewers[1]?.consume('cam', 1);
  s.tick(2);
  assert.equal(s.told, [], 'not before three plans');
  s.tick(1);
  assert.equal(s.told, [['pub', 'cam', 1]]);
  const other = s.viewers[1]?.consumers.get('v2>cam');
  if (other) other.paused = true;
  s.tick(3);
  assert.equal(s.told.at(-1), ['pub', 'cam', 0], 'a paused consumer (held back, or audio-only) needs nothing');
});

test('a layer someone needs is turned on again at once', () => {
  const s = setting();
  const consumer = s.viewers[0]?.consume('cam', 0);
  s.tick(3);
  assert.equal(s.told, [['pub', 'cam', 0]]);
  if (consumer) consumer.preferredLayers = { spatialLayer: 2 };
  s.tick(1);
  assert.equal(s.told.at(-1), ['pub', 'cam', 2]);
});

test('no consumer at all: only the lowest layer, so that a newcomer sees the publisher at once', () => {
  const s = setting();
  s.tick(3);
  assert.equal(s.told, [['pub', 'cam', 0]]);
  s.viewers[0]?.consume('cam', undefined);
  s.tick(1);
  assert.equal(s.told.at(-1), ['pub', 'cam', 2], 'a consumer with no preference yet gets the top layer');
});

test.run();
