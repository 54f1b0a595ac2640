import { createCipheriv, createHmac } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AesCm, deriveSrtpKey, generateSrtpKeyBase64, SrtpSession } from '../../bench/srtp.ts';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

// RFC 3711 B.3 (and libsrtp's srtp_validate, which uses the same master key and salt).
const masterKey = hex('E1F97A0D3E018BE0D64FA32C06DE4139');
const masterSalt = hex('0EC675AD498AFEEBB6960B3AABE6');
const keyBase64 = Buffer.concat([masterKey, masterSalt]).toString('base64');

function rtp(seq: number, ssrc: number, payload: Buffer, timestamp = 0): Buffer {
  const header = Buffer.alloc(12);
  header[0] = 0x80;
  header[1] = 100;
  header.writeUInt16BE(seq & 0xffff, 2);
  header.writeUInt32BE(timestamp >>> 0, 4);
  header.writeUInt32BE(ssrc >>> 0, 8);
  return Buffer.concat([header, payload]);
}

test('RFC 3711 B.2: AES-CM keystream', () => {
  const aes = new AesCm(hex('2B7E151628AED2A6ABF7158809CF4F3C'));
  const iv = hex('F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000');
  assert.equal(
    aes.keystream(iv, 48),
    hex('E03EAD0935C95E80E166B16DD92B4EB4 D23513162B02D0F72A43A2FE4A5F97AB 41E95B3BB0A2E8DD477901E4FCA894C0'),
  );
  // Counters F0…FCFDFEFF to F0…FCFDFF01: blocks 0xFEFF to 0xFF01 of the same IV.
  const far = aes.keystream(iv, 0xff02 * 16);
  assert.equal(
    far.subarray(0xfeff * 16),
    hex('EC8CDF7398607CB0F2D21675EA9EA1E4 362B7C3C6773516318A077D7FC5073AE 6A2CC3787889374FBEB4C81B17BA6C44'),
  );
});

test('RFC 3711 B.3: key derivation', () => {
  assert.equal(deriveSrtpKey(masterKey, masterSalt, 0, 16), hex('C61E7A93744F39EE10734AFE3FF7A087'));
  assert.equal(deriveSrtpKey(masterKey, masterSalt, 2, 14), hex('30CBBC08863D8C85D49DB34A9AE1'));
  assert.equal(
    deriveSrtpKey(masterKey, masterSalt, 1, 94),
    hex(`CEBE321F6FF7716B6FD4AB49AF256A15 6D38BAA48F0A0ACF3C34E2359E6CDBCE E049646C43D9327AD175578EF7227098
         6371C10C9A369AC2F94A8C5FBCDDDC25 6D6E919A48B610EF17C2041E47403576 6B68642C59BBFC2F34DB60DBDFB2`),
  );
});

test("libsrtp's reference SRTP and SRTCP packets (srtp_validate)", () => {
  const plainRtp = hex('800f1234decafbadcafebabe abababababababababababababababab');
  const plainRtcp = hex('81c8000bcafebabe abababababababababababababababab');
  const session = new SrtpSession(keyBase64);
  assert.equal(
    session.protectRtp(plainRtp),
    hex('800f1234decafbadcafebabe 4e55dc4ce79978d88ca4d215949d2402 b78d6acc99ea179b8dbb'),
  );
  // libsrtp numbers SRTCP packets from 1; RFC 3711 from 0: its vector is our second packet.
  session.protectRtcp(plainRtcp);
  const srtcp = hex('81c8000bcafebabe 7128035be487b9bdbef89041f977a5a8 80000001 993e08cd54d6c1230798');
  assert.equal(session.protectRtcp(plainRtcp), srtcp);
  assert.equal(new SrtpSession(keyBase64).unprotectRtcp(Buffer.from(srtcp)), plainRtcp);
});

test('protectRtp matches a plain AES-CTR + HMAC-SHA1 computation, with CSRCs and a header extension', () => {
  const keyB64 = generateSrtpKeyBase64();
  const master = Buffer.from(keyB64, 'base64');
  assert.is(master.length, 30);
  const [key, salt] = [master.subarray(0, 16), master.subarray(16)];
  const ssrc = 0x1234abcd;
  // 1 CSRC, a one-word header extension, a 1,187-byte payload (not a multiple of 4 or 16).
  const header = hex('9164fffe 00000001 1234abcd 0000beef bede0001 10ff0000');
  const packet = Buffer.concat([header, Buffer.alloc(1187, 7)]);
  const out = new SrtpSession(keyB64).protectRtp(packet);
  const iv = Buffer.concat([deriveSrtpKey(key, salt, 2, 14), Buffer.alloc(2)]);
  iv.writeUInt32BE((iv.readUInt32BE(4) ^ ssrc) >>> 0, 4);
  iv.writeUInt16BE(iv.readUInt16BE(12) ^ 0xfffe, 12);
  const cipher = createCipheriv('aes-128-ctr', deriveSrtpKey(key, salt, 0, 16), iv);
  const body = Buffer.concat([header, cipher.update(packet.subarray(header.length))]);
  const tag = createHmac('sha1', deriveSrtpKey(key, salt, 1, 20))
    .update(body)
    .update(Buffer.alloc(4))
    .digest()
    .subarray(0, 10);
  assert.equal(out, Buffer.concat([body, tag]));
  assert.equal(packet.subarray(header.length), Buffer.alloc(1187, 7), 'the input is untouched');
});

test('RTP round trip through a fresh receiver, over many sizes', () => {
  const keyB64 = generateSrtpKeyBase64();
  const sender = new SrtpSession(keyB64);
  const receiver = new SrtpSession(keyB64);
  for (let size = 0; size <= 1300; size += 37) {
    const payload = Buffer.alloc(size);
    for (let i = 0; i < size; i++) payload[i] = (i * 31 + size) & 0xff;
    const packet = rtp(size, 42, payload, size * 960);
    const srtp = sender.protectRtp(packet);
    assert.is(srtp.length, packet.length + 10);
    if (size >= 16) assert.not.equal(srtp.subarray(12, 28), packet.subarray(12, 28), 'the payload is encrypted');
    assert.equal(receiver.unprotectRtp(Buffer.from(srtp)), packet);
  }
});

test('RTCP round trip, encrypted after the first 8 bytes', () => {
  const keyB64 = generateSrtpKeyBase64();
  const sender = new SrtpSession(keyB64);
  const receiver = new SrtpSession(keyB64);
  // A compound RR + PLI.
  const rtcp = hex(
    '81c90007 00000001 11111111 00000000 00000000 00000000 00000000 00000000 81ce0002 00000001 22222222',
  );
  for (let i = 0; i < 3; i++) {
    const srtcp = sender.protectRtcp(rtcp);
    assert.is(srtcp.length, rtcp.length + 14);
    assert.equal(srtcp.subarray(0, 8), rtcp.subarray(0, 8));
    assert.not.equal(srtcp.subarray(8, rtcp.length), rtcp.subarray(8));
    assert.is(srtcp.readUInt32BE(rtcp.length), (0x80000000 | i) >>> 0, 'E flag and index');
    assert.equal(receiver.unprotectRtcp(srtcp), rtcp);
  }
});

test('tampered or foreign packets fail authentication and are left as they were', () => {
  const keyB64 = generateSrtpKeyBase64();
  const sender = new SrtpSession(keyB64);
  const receiver = new SrtpSession(keyB64);
  const srtp = sender.protectRtp(rtp(1, 7, Buffer.alloc(100, 1)));
  for (const at of [1, 3, 11, 12, 60, srtp.length - 1]) {
    const copy = Buffer.from(srtp);
    copy[at] = (copy[at] ?? 0) ^ 0x01;
    assert.is(receiver.unprotectRtp(copy), undefined, `byte ${at}`);
    copy[at] = (copy[at] ?? 0) ^ 0x01;
    assert.equal(copy, srtp);
  }
  assert.is(new SrtpSession(generateSrtpKeyBase64()).unprotectRtp(Buffer.from(srtp)), undefined, 'other key');
  assert.is(receiver.unprotectRtp(Buffer.alloc(21)), undefined, 'too short');
  assert.ok(receiver.unprotectRtp(Buffer.from(srtp)), 'the genuine packet still passes');
  const srtcp = sender.protectRtcp(hex('81c90001 00000007'));
  const bad = Buffer.from(srtcp);
  bad[9] = (bad[9] ?? 0) ^ 0x80;
  assert.is(receiver.unprotectRtcp(bad), undefined);
  assert.is(receiver.unprotectRtcp(Buffer.alloc(21)), undefined, 'too short');
  assert.throws(() => new SrtpSession(Buffer.alloc(16).toString('base64')), /30 bytes/);
});

test('sequence numbers wrap: both ends advance the rollover counter, reordering across the wrap included', () => {
  const keyB64 = generateSrtpKeyBase64();
  const sender = new SrtpSession(keyB64);
  const receiver = new SrtpSession(keyB64);
  const ssrc = 0xdeadbeef;
  const sent: Buffer[] = [];
  // Two wraps: 65,000 … 65,535, 0 … 65,535, 0 … 600.
  for (let extended = 65000; extended <= 2 * 65536 + 600; extended++) {
    const seq = extended & 0xffff;
    if (seq > 700 && seq < 64900 && extended % 97 !== 0) continue; // every packet near the wraps only
    sent.push(sender.protectRtp(rtp(seq, ssrc, Buffer.from(`packet ${extended}`))));
  }
  assert.is(sender.rolloverCounter(ssrc, 'sent'), 2);
  // Swap neighbours around each wrap: a late packet from before the wrap must still decrypt.
  for (let i = 1; i < sent.length; i += 2) [sent[i - 1], sent[i]] = [sent[i] as Buffer, sent[i - 1] as Buffer];
  const seen = new Set<string>();
  for (const packet of sent) {
    const plain = receiver.unprotectRtp(packet);
    assert.ok(plain, `packet seq ${packet.readUInt16BE(2)}`);
    seen.add(plain.subarray(12).toString());
  }
  assert.is(seen.size, sent.length);
  assert.is(receiver.rolloverCounter(ssrc, 'received'), 2);
});

test.run();
