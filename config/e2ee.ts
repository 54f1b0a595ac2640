/**
 * End-to-end encrypted rooms: whether new rooms are encrypted unless the clinic says otherwise,
 * how often the key leader starts a new epoch, and how long the server waits for every member to
 * have an epoch's key before it tells everyone to send with it.
 */
import { z } from 'zod';
import { flag, positiveInt } from './primitives.ts';

export const e2eeSection = z
  .strictObject({
    /** Rooms are end-to-end encrypted unless created with `e2ee: false`. Default false. */
    default: flag
      .default(false)
      .describe(
        'Rooms are end-to-end encrypted unless created with `e2ee: false` (admin API and facilitator-opened rooms alike); clients that cannot encrypt are refused `E2EE_UNSUPPORTED`.',
      ),
    /** Seconds between the key leader's new epochs when nothing else changed. Default 900. */
    rotationIntervalS: positiveInt
      .max(86_400)
      .default(900)
      .describe('Seconds after which the key leader of an E2EE room starts a new epoch even when nobody came or went.'),
    /** Longest wait, in ms, for every member to have a new epoch's key before it becomes active. Default 2000. */
    keyAckTimeoutMs: positiveInt
      .max(60_000)
      .default(2_000)
      .describe(
        'Longest wait, in ms, for every member of an E2EE room to confirm a new epoch’s key before everyone is told to send with it.',
      ),
  })
  .prefault({});
