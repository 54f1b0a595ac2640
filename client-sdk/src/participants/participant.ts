/**
 * What the app sees of a session's people: read-only views. The state behind them is owned by
 * this client's member record (local-member.ts) and the registry of everyone else
 * (remote-members.ts); the `*State` records are not exported from the package.
 */
import type { Capabilities, ConnectionQuality, Role, TrackSource } from '../protocol/index.ts';
import type { LocalTrack } from './local-track.ts';
import type { RemoteTrack } from './remote-track.ts';

/** @internal What every participant's state holds. */
export interface ParticipantState {
  id: string;
  name: string;
  role: Role;
}

/** What the local and the remote participants share: who they are. */
export abstract class Participant<State extends ParticipantState> {
  protected readonly state: State;

  /** @internal Created by the member records. */
  constructor(state: State) {
    this.state = state;
  }

  /** The pseudonymous id (the token's `sub`). */
  get id(): string {
    return this.state.id;
  }
  /** Display name: the token's, or the alias a facilitator gave (`displayNameChanged`). */
  get name(): string {
    return this.state.name;
  }
  /** Role from the token: `'facilitator'`, `'participant'` or `'observer'`. */
  get role(): Role {
    return this.state.role;
  }
}

/** @internal State behind a {@link LocalParticipant}. */
export interface LocalParticipantState extends ParticipantState {
  capabilities: Capabilities;
  tracks: Map<TrackSource, LocalTrack>;
}

/** This client in the room. */
export class LocalParticipant extends Participant<LocalParticipantState> {
  /** What the token allows this client to publish. */
  get capabilities(): Readonly<Capabilities> {
    return this.state.capabilities;
  }
  /** Published tracks by source. */
  get tracks(): ReadonlyMap<TrackSource, LocalTrack> {
    return this.state.tracks;
  }
}

/** @internal State behind a {@link RemoteParticipant}. */
export interface RemoteParticipantState extends ParticipantState {
  tracks: Map<string, RemoteTrack>;
  /** Their connection quality as this client knows it (network-quality.ts). */
  connectionQuality: () => ConnectionQuality | undefined;
}

/** Someone else in the room. */
export class RemoteParticipant extends Participant<RemoteParticipantState> {
  /** Their tracks this client receives, by producer id. */
  get tracks(): ReadonlyMap<string, RemoteTrack> {
    return this.state.tracks;
  }
  /**
   * How well their connection carries the session, as the server measures it; undefined when this
   * client may not see it (only facilitators see everyone's, unless the room has
   * `shareConnectionQuality`). `connectionQualityChanged` tells of changes.
   */
  get connectionQuality(): ConnectionQuality | undefined {
    return this.state.connectionQuality();
  }
  /** Their received track from `source`, if any. */
  getTrack(source: TrackSource): RemoteTrack | undefined {
    for (const track of this.state.tracks.values()) if (track.source === source) return track;
    return undefined;
  }
}
