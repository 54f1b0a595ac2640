/**
 * The protocol's limits and fixed mappings, each defined once: the server validates with them
 * and the SDK checks with them before sending.
 */
import type { Capabilities, MediaKind, TrackSource } from './model.ts';

/** Room, participant and other ids: 1 to 128 of `A-Za-z0-9._:-`, not dots alone. */
export const maxIdLength = 128;
/** The characters an id is made of (a character class, for building other patterns). */
export const idCharacters = 'A-Za-z0-9._:-';
/** `.` and `..` cannot be a URL path segment (clients resolve them away), so no id is dots alone. */
export const idPattern = new RegExp(`^(?!\\.+$)[${idCharacters}]{1,${maxIdLength}}$`);

/** Longest chat message, in characters (after trimming). */
export const maxChatLength = 2_000;

/* ---- End-to-end encryption (E2EE rooms) -------------------------------------------------- */

/** An ECDH P-256 public key as sent at join: the 65-byte uncompressed point (0x04 first), base64. */
export const e2eePublicKeyPattern = /^B[A-Za-z0-9+/]{86}=$/;
/** Longest wrapped epoch key (base64) the server relays. */
export const maxE2eeWrappedKeyLength = 512;
/** Most wrapped keys in one distribution (one per member besides the leader). */
export const maxE2eeRecipients = 512;
/**
 * Chat text in an E2EE room: `e2ee1.<epoch>.<base64 of IV and AES-GCM ciphertext>`; the server
 * stores and relays it as it is, and refuses clear text there.
 */
export const e2eeChatPattern = /^e2ee1\.[0-9]{1,10}\.[A-Za-z0-9+/]+={0,2}$/;
/** Longest encrypted chat text: a message of `maxChatLength` characters of up to 4 UTF-8 bytes each, encrypted. */
export const maxEncryptedChatLength = 11_000;
/** Bytes of a frame left in clear for the SFU: VP8 key frames 10, VP8 delta frames 3, Opus 1. */
export const e2eeClearBytes = { videoKey: 10, videoDelta: 3, audio: 1 } as const;

/** Every track source, in the order publications are listed. */
export const trackSources: readonly TrackSource[] = ['microphone', 'camera', 'screen'];
/** The media kind of each source. */
export const sourceKind: Readonly<Record<TrackSource, MediaKind>> = {
  microphone: 'audio',
  camera: 'video',
  screen: 'video',
};
/** The capability that allows publishing each source. */
export const sourceCapability: Readonly<Record<TrackSource, keyof Capabilities>> = {
  microphone: 'publishAudio',
  camera: 'publishVideo',
  screen: 'publishScreen',
};
