/**
 * The SDK's end-to-end encryption primitives in Node (WebCrypto): frames keep their clear bytes
 * and open only with their key and untouched; epoch secrets wrapped for one member open for that
 * member only (another key pair, recipient, epoch or room: nothing); the key pair's private half
 * cannot be read out; the security code is the same for the same roster and changes with any key;
 * the key ring keeps the last epochs and switches only on activation.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { newEpochSecret, unwrapEpochSecret, wrapEpochSecret } from '../../client-sdk/src/e2ee/epoch-secret.ts';
import { decryptFrame, deriveFrameKey, encryptFrame, frameEpoch } from '../../client-sdk/src/e2ee/frame-crypto.ts';
import { E2eeKeyPair, importPublicKey } from '../../client-sdk/src/e2ee/key-pair.ts';
import { KeyRing, retainedEpochs } from '../../client-sdk/src/e2ee/key-ring.ts';
import { securityCode } from '../../client-sdk/src/e2ee/security-code.ts';
import { type E2eeRoster, e2eeClearBytes, e2eePublicKeyPattern } from '../../client-sdk/src/protocol/index.ts';

/** A VP8-like frame of `length` bytes, deterministic. */
function frameOf(length: number): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => (i * 7 + 3) & 0xff);
}

const flipped = (bytes: Uint8Array, at: number) => {
  const copy = bytes.slice();
  copy[at] = (copy[at] as number) ^ 0x01;
  return copy;
};

test('frames: clear bytes kept, epoch readable, round trip; a fresh IV each time', async () => {
  const key = await deriveFrameKey(newEpochSecret());
  for (const [clear, length] of [
    [e2eeClearBytes.videoKey, 1200],
    [e2eeClearBytes.videoDelta, 300],
    [e2eeClearBytes.audio, 80],
    [e2eeClearBytes.videoKey, 4],
    [e2eeClearBytes.audio, 0],
  ] as const) {
    const frame = frameOf(length);
    const sealed = await encryptFrame(key, 7, frame, clear);
    const kept = Math.min(clear, length);
    assert.is(sealed.length, length + 16 + 12 + 5, 'tag, IV, epoch and trailer added');
    assert.equal([...sealed.subarray(0, kept)], [...frame.subarray(0, kept)], 'clear bytes as they were');
    if (length > kept + 8) assert.not.equal([...sealed.subarray(kept, length)], [...frame.subarray(kept)]);
    assert.is(frameEpoch(sealed), 7);
    assert.equal([...((await decryptFrame(key, sealed, clear)) ?? [])], [...frame], `round trip of ${length} bytes`);
  }
  const frame = frameOf(500);
  const [a, b] = [await encryptFrame(key, 1, frame, 3), await encryptFrame(key, 1, frame, 3)];
  assert.not.equal([...a], [...b], 'a random IV per frame');
  assert.is(frameEpoch(await encryptFrame(key, 0xfffffffe, frame, 3)), 0xfffffffe);
});

test('frames: anything tampered with, another key, or a clear frame does not open (null)', async () => {
  const secret = newEpochSecret();
  const key = await deriveFrameKey(secret);
  const frame = frameOf(600);
  const sealed = await encryptFrame(key, 3, frame, e2eeClearBytes.videoKey);
  assert.ok(await decryptFrame(await deriveFrameKey(secret), sealed, e2eeClearBytes.videoKey), 'same secret, same key');
  const end = sealed.length;
  for (const [what, at] of [
    ['a clear byte', 2],
    ['the ciphertext', 100],
    ['the tag', end - 5 - 12 - 1],
    ['the IV', end - 5 - 3],
    ['the epoch', end - 3],
  ] as const) {
    assert.is(await decryptFrame(key, flipped(sealed, at), e2eeClearBytes.videoKey), null, what);
  }
  assert.is(await decryptFrame(key, sealed.subarray(0, end - 1), e2eeClearBytes.videoKey), null, 'no trailer');
  assert.is(await decryptFrame(key, sealed, e2eeClearBytes.videoDelta), null, 'other clear bytes');
  assert.is(await decryptFrame(await deriveFrameKey(newEpochSecret()), sealed, 10), null, 'another key');
  assert.is(frameEpoch(frame), undefined, 'a clear frame names no epoch');
  assert.is(await decryptFrame(key, frame, 10), null, 'a clear frame');
  assert.is(await decryptFrame(key, new Uint8Array(0), 1), null, 'nothing');
});

test('key pair: public key as the protocol wants it, private key not extractable; bad keys do not import', async () => {
  const pair = await E2eeKeyPair.generate();
  assert.match(pair.publicKey, e2eePublicKeyPattern);
  assert.is(pair.privateKey.extractable, false);
  let exported = false;
  await crypto.subtle.exportKey('pkcs8', pair.privateKey).then(
    () => (exported = true),
    () => {},
  );
  assert.not.ok(exported, 'the private key cannot be exported');
  assert.ok(await importPublicKey(pair.publicKey));
  assert.is(await importPublicKey(`B${'A'.repeat(86)}=`), undefined, 'not a point on P-256');
  assert.is(await importPublicKey('not base64!'), undefined);
  assert.is(await importPublicKey(btoa('short')), undefined);
});

test('epoch secrets: wrapped for one member, they open for that member only', async () => {
  const [leader, ann, ben] = await Promise.all([
    E2eeKeyPair.generate(),
    E2eeKeyPair.generate(),
    E2eeKeyPair.generate(),
  ]);
  const pub = async (pair: E2eeKeyPair) => (await importPublicKey(pair.publicKey)) as CryptoKey;
  const secret = newEpochSecret();
  const forAnn = { roomId: 'grp-1', epoch: 4, recipientId: 'ann' };
  const wrapped = await wrapEpochSecret(secret, leader.privateKey, await pub(ann), forAnn);
  assert.ok(wrapped.length <= 512, 'within maxE2eeWrappedKeyLength');
  const opened = await unwrapEpochSecret(wrapped, ann.privateKey, await pub(leader), forAnn);
  assert.equal([...(opened ?? [])], [...secret], 'Ann opens it with the leader’s public key');
  // Ben cannot, whether he claims to be Ann or himself.
  assert.is(await unwrapEpochSecret(wrapped, ben.privateKey, await pub(leader), forAnn), null);
  assert.is(
    await unwrapEpochSecret(wrapped, ben.privateKey, await pub(leader), { ...forAnn, recipientId: 'ben' }),
    null,
  );
  // Bound to the recipient, the epoch and the room: the server cannot redirect or replay it.
  for (const binding of [
    { ...forAnn, recipientId: 'ben' },
    { ...forAnn, epoch: 5 },
    { ...forAnn, roomId: 'grp-2' },
  ]) {
    assert.is(
      await unwrapEpochSecret(wrapped, ann.privateKey, await pub(leader), binding),
      null,
      JSON.stringify(binding),
    );
  }
  // Only the leader's key: someone else's public key as the sender opens nothing.
  assert.is(await unwrapEpochSecret(wrapped, ann.privateKey, await pub(ben), forAnn), null);
  const tampered = btoa(
    String.fromCharCode(
      ...flipped(
        Uint8Array.from(atob(wrapped), (c) => c.charCodeAt(0)),
        20,
      ),
    ),
  );
  assert.is(await unwrapEpochSecret(tampered, ann.privateKey, await pub(leader), forAnn), null, 'tampered');
  assert.is(await unwrapEpochSecret('%%%', ann.privateKey, await pub(leader), forAnn), null, 'not base64');
});

test('security code: the same for the same roster in any order; another for a key added or changed', async () => {
  const keys = await Promise.all([1, 2, 3, 4].map(async () => (await E2eeKeyPair.generate()).publicKey));
  const [k1, k2, k3, k4] = keys as [string, string, string, string];
  const roster = (members: [string | null, string][], leader: string | null = 'f-1'): E2eeRoster => ({
    breakoutId: null,
    leader,
    members: members.map(([participantId, publicKey]) => ({ participantId, publicKey })),
    revision: 1,
    epoch: 0,
    rotationIntervalMs: 900_000,
  });
  const base = await securityCode(
    roster([
      ['f-1', k1],
      ['p-1', k2],
      [null, k3],
    ]),
  );
  assert.match(base ?? '', /^\d{4} \d{4} \d{4}$/);
  const reordered = await securityCode(
    roster([
      [null, k3],
      ['p-1', k2],
      ['f-1', k1],
    ]),
  );
  assert.is(reordered, base, 'order does not matter; a hidden member counts by key');
  const added = await securityCode(
    roster([
      ['f-1', k1],
      ['p-1', k2],
      [null, k3],
      ['p-2', k4],
    ]),
  );
  const changed = await securityCode(
    roster([
      ['f-1', k1],
      ['p-1', k4],
      [null, k3],
    ]),
  );
  const otherLeader = await securityCode(
    roster(
      [
        ['f-1', k1],
        ['p-1', k2],
        [null, k3],
      ],
      'p-1',
    ),
  );
  assert.is(new Set([base, added, changed, otherLeader]).size, 4, 'a key added, a key changed, another leader');
  assert.is(await securityCode(roster([['f-1', k1]], null)), null, 'no leader, no code');
  assert.is(await securityCode(roster([['p-1', k2]], 'f-1')), null, 'the leader’s key unknown, no code');
});

test('key ring: the last epochs kept, the send epoch only once activated and held', async () => {
  const ring = new KeyRing();
  assert.is(ring.sendEpoch, null);
  const first = newEpochSecret();
  assert.is(ring.install(1, first), 'added');
  assert.is(ring.install(1, first), 'same', 'the same secret again changes nothing');
  // The leader's secret for an epoch replaces one drawn in a race (a distribution refused).
  const leaders = newEpochSecret();
  assert.is(ring.install(1, leaders), 'replaced');
  assert.not.ok(ring.forget(1, first), 'a refused distribution does not take the leader’s secret away');
  assert.ok(ring.has(1));
  assert.is(ring.sendEpoch, null, 'held is not active');
  assert.ok(ring.activate(1));
  assert.is(ring.sendEpoch, 1);
  assert.not.ok(ring.activate(1), 'activation only moves forward');
  assert.ok(ring.activate(2));
  assert.is(ring.activeEpoch, 2);
  assert.is(ring.sendEpoch, null, 'activated without its key: nothing to send with');
  for (let epoch = 2; epoch <= 7; epoch++) ring.install(epoch, newEpochSecret());
  assert.equal(ring.epochs(), [2, 4, 5, 6, 7], `the newest ${retainedEpochs}, and the active one`);
  assert.is(ring.install(3, newEpochSecret()), 'stale', 'older than every epoch kept');
  const own = newEpochSecret();
  ring.install(8, own);
  assert.ok(ring.forget(8, own), 'a refused distribution forgets its own secret');
  assert.not.ok(ring.has(8));
  assert.is(ring.chatKey(1), undefined);
  assert.ok(await ring.chatKey(7));
  const waiting = ring.awaitChatKey(9, 60_000);
  ring.install(9, newEpochSecret());
  assert.ok(await waiting, 'a chat key on its way is waited for');
  assert.is(await ring.awaitChatKey(1, 60_000), undefined, 'an old epoch is not waited for');
  const pending = ring.awaitChatKey(20, 60_000);
  ring.clear();
  assert.is(await pending, undefined, 'clearing ends the wait');
  assert.equal(ring.epochs(), []);
  assert.is(ring.activeEpoch, null);
});

test.run();
