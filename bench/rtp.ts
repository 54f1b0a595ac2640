/** The few RTP header reads the bench's SRTP and media code share. */

/** The RTP header's length: where the payload starts (after CSRCs and a header extension). */
export function rtpHeaderLength(packet: Uint8Array): number {
  const b0 = packet[0] ?? 0;
  let length = 12 + 4 * (b0 & 0x0f);
  if (b0 & 0x10) length += 4 + 4 * (((packet[length + 2] ?? 0) << 8) | (packet[length + 3] ?? 0));
  return length;
}

/** A big-endian unsigned 32-bit number at `offset` (0 past the end). */
export function readUint32(packet: Uint8Array, offset: number): number {
  return (
    (((packet[offset] ?? 0) << 24) |
      ((packet[offset + 1] ?? 0) << 16) |
      ((packet[offset + 2] ?? 0) << 8) |
      (packet[offset + 3] ?? 0)) >>>
    0
  );
}
