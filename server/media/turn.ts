/**
 * TURN credentials in coturn's REST API scheme (`use-auth-secret`): the username carries its own
 * expiry, the password is an HMAC of it with the shared secret, so coturn verifies them without
 * asking Haven. The username names the participant by a tag derived from the secret, never by
 * its id: STUN sends usernames in clear (over `turn:`), and coturn logs them.
 */
import { createHmac } from 'node:crypto';
import type { IceServer } from '../../client-sdk/src/protocol/index.ts';

export interface TurnSettings {
  urls: string[];
  secret?: string;
  ttlS: number;
}

/**
 * The same participant always gets the same tag (coturn's `user-quota` counts per tag, after
 * the expiry), which only the holder of the secret can link to the participant id.
 */
function participantTag(secret: string, participantId: string): string {
  return createHmac('sha256', secret).update(`turn-user:${participantId}`).digest('base64url').slice(0, 22);
}

export function turnIceServers(turn: TurnSettings, participantId: string, nowMs = Date.now()): IceServer[] {
  if (turn.urls.length === 0 || !turn.secret) return [];
  const username = `${Math.floor(nowMs / 1000) + turn.ttlS}:${participantTag(turn.secret, participantId)}`;
  const credential = createHmac('sha1', turn.secret).update(username).digest('base64');
  return [{ urls: turn.urls, username, credential }];
}
