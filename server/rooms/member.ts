/**
 * Someone in a room: who they are (the token's identity), what they may do, where they stand
 * (consent gate, waiting room, session), the alias a facilitator gave them, the connection that
 * speaks for them, and their media. `close()` ends the grace period and closes their media.
 */
import type { Capabilities, ParticipantInfo, Role, TrackSource } from '../../client-sdk/src/protocol/index.ts';
import { sourceCapability } from '../../client-sdk/src/protocol/index.ts';
import type { VerifiedIdentity } from '../auth/tokens.ts';
import { HavenError } from '../errors.ts';
import type { MemberMedia } from '../media/member-media.ts';
import type { StoredMember } from './room-state.ts';
import type { RoomDefinition } from './room-store.ts';

/** Where someone stands: at the consent gate, in the waiting room, or in the session. */
export type Stage = 'consent' | 'waiting' | 'admitted';

/** What a caller must be for a request: joined (any stage), in the session, or a facilitator in it. */
export type CallerNeed = 'joined' | 'session' | 'facilitator';

export interface MemberInit {
  identity: VerifiedIdentity;
  capabilities: Capabilities;
  stage: Stage;
  waitingSince: number;
  connectionId: string | undefined;
  media: (member: Member) => MemberMedia;
  alias?: string;
  unmuteGranted?: boolean;
  restored?: boolean;
  e2eePublicKey?: string;
  breakout?: string;
}

export class Member {
  identity: VerifiedIdentity;
  capabilities: Capabilities;
  stage: Stage;
  /** When this person entered the waiting room (ms since the epoch). */
  waitingSince: number;
  /** A facilitator-approved alias, shown instead of the token's name. */
  alias: string | undefined;
  /** Controlled audio mode: a facilitator asked this participant to unmute since the last mute. */
  unmuteGranted: boolean;
  /** The connection currently speaking for this participant; undefined while disconnected. */
  connectionId: string | undefined;
  /**
   * Restored from the room's stored state (its node died): the identity holds only what the store
   * keeps (id, role, token id), no display name, until the person rejoins with their token.
   * Meanwhile lists show the alias, or else the participant id, and live attendance `null`.
   */
  restored: boolean;
  /**
   * In an E2EE room, the ECDH public key the member's client sent at join (a rejoin may bring a
   * new one); kept in memory only, never stored. A restored member has none until it rejoins.
   */
  e2eePublicKey: string | undefined;
  /**
   * The breakout group this member is in (its id); undefined in the main room. Members see and
   * receive only those of their own group (`Audience.sameSpace`).
   */
  breakout: string | undefined;
  readonly media: MemberMedia;
  #graceTimer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(init: MemberInit) {
    this.identity = init.identity;
    this.capabilities = init.capabilities;
    this.stage = init.stage;
    this.waitingSince = init.waitingSince;
    this.connectionId = init.connectionId;
    this.alias = init.alias;
    this.unmuteGranted = init.unmuteGranted ?? false;
    this.restored = init.restored ?? false;
    this.e2eePublicKey = init.e2eePublicKey;
    this.breakout = init.breakout;
    this.media = init.media(this);
  }

  get id(): string {
    return this.identity.participantId;
  }

  get role(): Role {
    return this.identity.role;
  }

  /** The name others see: the alias, else the token's name. */
  get name(): string {
    return this.alias ?? this.identity.name;
  }

  get connected(): boolean {
    return this.connectionId !== undefined;
  }

  get admitted(): boolean {
    return this.stage === 'admitted';
  }

  /** A facilitator in the session. */
  get facilitating(): boolean {
    return this.stage === 'admitted' && this.identity.role === 'facilitator';
  }

  get closed(): boolean {
    return this.#closed;
  }

  mayPublish(source: TrackSource): boolean {
    return this.capabilities[sourceCapability[source]];
  }

  /**
   * Throws unless `connectionId` speaks for this member (a replaced connection must not act for
   * them) and the member is what `need` asks.
   */
  check(connectionId: string, need: CallerNeed): void {
    if (this.connectionId !== connectionId) throw new HavenError('INVALID_STATE', 'this connection was replaced');
    if (need === 'joined') return;
    if (this.stage !== 'admitted') throw new HavenError('FORBIDDEN', 'not admitted to the session yet');
    if (need === 'facilitator' && this.identity.role !== 'facilitator') {
      throw new HavenError('FORBIDDEN', 'facilitators only');
    }
  }

  info(): ParticipantInfo {
    return {
      id: this.id,
      name: this.name,
      role: this.identity.role,
      tracks: [...this.media.tracks.values()].map((t) => this.media.trackInfo(t)),
    };
  }

  /** What the room's stored state keeps of this member. */
  stored(): StoredMember {
    const { participantId, role, jti, expiresAtMs } = this.identity;
    return {
      participantId,
      role,
      stage: this.stage,
      waitingSince: this.waitingSince,
      dropped: this.connectionId === undefined,
      ...(jti === undefined ? {} : { jti, expiresAtMs }),
      ...(this.breakout === undefined ? {} : { breakout: this.breakout }),
    };
  }

  /** Starts the reconnection grace: `expired` runs unless the member comes back first. */
  startGrace(ms: number, expired: () => void): void {
    this.#graceTimer = setTimeout(expired, ms);
  }

  endGrace(): void {
    clearTimeout(this.#graceTimer);
    this.#graceTimer = undefined;
  }

  /** Ends the grace period and closes the member's media. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.endGrace();
    this.media.close();
  }
}

/** Education rooms: participants receive only, unless their token grants publishing. */
export function capabilitiesIn(definition: RoomDefinition, identity: VerifiedIdentity): Capabilities {
  if (definition.kind !== 'education' || identity.role !== 'participant') return identity.capabilities;
  const granted = identity.grantedCapabilities ?? {};
  return {
    ...identity.capabilities,
    publishAudio: granted.publishAudio === true,
    publishVideo: granted.publishVideo === true,
    publishScreen: granted.publishScreen === true,
  };
}
