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
