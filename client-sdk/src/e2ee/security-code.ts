/**
 * The security code people compare aloud to know nobody else holds the keys: SHA-256 over the
 * leader's public key and every member's (sorted), as 3 groups of 4 digits. Everyone in the room
 * computes the same code from the same roster; a key added or swapped changes it.
 */
import type { E2eeRoster } from '../protocol/index.ts';
import { utf8 } from './encoding.ts';

/** The code of `roster`, e.g. `'4821 0937 5512'`; null without a leader whose key is known. */
export async function securityCode(roster: E2eeRoster): Promise<string | null> {
  const leader = roster.members.find(
    (member) => member.participantId !== null && member.participantId === roster.leader,
  );
  if (!leader) return null;
  const keys = roster.members.map((member) => member.publicKey).sort();
  const digest = new DataView(
    await crypto.subtle.digest('SHA-256', utf8([leader.publicKey, ...keys].join('\n')) as BufferSource),
  );
  const groups: string[] = [];
  for (let i = 0; i < 3; i++) groups.push(String(digest.getUint32(i * 4) % 10_000).padStart(4, '0'));
  return groups.join(' ');
}
