/**
 * TURN credentials in coturn's REST API scheme (`use-auth-secret`): the username carries its own
 * expiry, the password is an HMAC of it with the shared secret, so coturn verifies them without
 * asking Haven. The participant id in the username is pseudonymous.
 */
import { createHmac } from 'node:crypto';
import type { IceServer } from '../../client-sdk/src/protocol/index.ts';

export interface TurnSettings {
  urls: string[];
  secret?: string;
  ttlS: number;
}

export function turnIceServers(turn: TurnSettings, participantId: string, nowMs = Date.now()): IceServer[] {
  if (turn.urls.length === 0 || !turn.secret) return [];
  const username = `${Math.floor(nowMs / 1000) + turn.ttlS}:${participantId}`;
  const credential = createHmac('sha1', turn.secret).update(username).digest('base64');
  return [{ urls: turn.urls, username, credential }];
}
