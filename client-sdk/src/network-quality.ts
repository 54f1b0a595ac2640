/**
 * How the network carries the session, as this client is told: connection quality (its own, and
 * others' where it may see them: facilitators see everyone's, others only their own unless the
 * room has `shareConnectionQuality`), and audio-only (receiving no video: the person's choice,
 * or the server's when the downlink is too weak). The person's own choice outlives a
 * reconnection: after a rejoin it is asked for again when the server no longer has it; the
 * server's bandwidth reason is never asked for (the server decides it again on the new link).
 */
import type { ClientContext } from './client-context.ts';
import { isConnectionLoss } from './errors.ts';
import type { NotificationHandlers } from './notification-router.ts';
import type {
  AudioOnlyState,
  ConnectionQuality,
  ConnectionQualityInfo,
  ConnectionQualityReason,
  SessionState,
} from './protocol/index.ts';
import { reportError } from './session-events.ts';
import type { Signaling } from './signaling.ts';

/** What a {@link NetworkQuality} needs of the client it belongs to. */
export type NetworkQualityHost = Pick<ClientContext, 'events' | 'state' | 'signaling' | 'assertState'>;

/** The notifications a {@link NetworkQuality} applies. */
export type NetworkQualityNotification = 'connectionQualityChanged' | 'audioOnlyChanged' | 'audioOnlySuggested';

interface QualityEntry {
  quality: ConnectionQuality;
  reason: ConnectionQualityReason | null;
}

const unknownQuality: QualityEntry = Object.freeze({ quality: 'excellent', reason: null });

export class NetworkQuality {
  readonly #host: NetworkQualityHost;
  readonly #selfId: () => string | undefined;
  #own: QualityEntry = unknownQuality;
  /** Everyone else's this client may see, by participant id. */
  readonly #others = new Map<string, QualityEntry>();
  #audioOnly: Readonly<AudioOnlyState> = Object.freeze({ enabled: false, reason: null });
  /** What the person last asked with `setAudioOnly()` (undefined: never asked). */
  #choice: boolean | undefined;

  constructor(host: NetworkQualityHost, selfId: () => string | undefined) {
    this.#host = host;
    this.#selfId = selfId;
  }

  /** This client's own quality; `'excellent'` until the server says otherwise. */
  get quality(): ConnectionQuality {
    return this.#own.quality;
  }

  /** Someone else's quality, if this client may see it. */
  qualityOf(participantId: string): ConnectionQuality | undefined {
    return this.#others.get(participantId)?.quality;
  }

  /** Whether this client receives audio only, and what turned it on (a frozen object, new on each change). */
  get audioOnly(): Readonly<AudioOnlyState> {
    return this.#audioOnly;
  }

  handlers(): NotificationHandlers<NetworkQualityNotification> {
    const { events } = this.#host;
    return {
      connectionQualityChanged: (info) => this.#setQuality(info),
      audioOnlyChanged: (state) => this.#setAudioOnly(state),
      audioOnlySuggested: ({ by }) => events.safeEmit('audioOnlySuggested', { by }),
    };
  }

  /**
   * Receives audio only (`true`) or video again. Recorded at once as the person's choice; sent
   * now when in the room, else on the next admission. `audioOnlyChanged` follows from the server.
   */
  async setAudioOnly(enabled: boolean): Promise<void> {
    if (typeof enabled !== 'boolean') throw new TypeError('enabled must be a boolean');
    this.#host.assertState('setAudioOnly()', 'joined', 'reconnecting', 'joining', 'consent', 'waiting');
    const previous = this.#choice;
    this.#choice = enabled;
    const signaling = this.#host.signaling();
    if (this.#host.state() !== 'joined' || !signaling) return;
    try {
      await signaling.request('setAudioOnly', { enabled });
    } catch (error) {
      // A drop: asked again after the rejoin.
      if (isConnectionLoss(error)) return;
      if (this.#choice === enabled) this.#choice = previous;
      throw error;
    }
  }

  /**
   * What an admission says: this client's quality and the others' it may see (a change emitted
   * as `connectionQualityChanged`, once everyone is in view), and its audio-only state.
   */
  applySession(session: SessionState): void {
    const selfId = session.self.id;
    const listed = new Map(session.connectionQuality.map((info) => [info.participantId, info]));
    this.#setQuality(listed.get(selfId) ?? { participantId: selfId, ...unknownQuality }, selfId);
    for (const id of [...this.#others.keys()]) if (!listed.has(id)) this.#others.delete(id);
    for (const info of listed.values()) if (info.participantId !== selfId) this.#setQuality(info, selfId);
    this.#setAudioOnly(session.audioOnly);
  }

  /**
   * Once in the room after an admission on `signaling`: the person's own choice asked for again
   * if the server does not have it (a rejoin after a drop, a choice made while offline).
   */
  restoreChoice(signaling: Signaling): void {
    const choice = this.#choice;
    const { enabled, reason } = this.#audioOnly;
    const lost = choice === true ? !enabled : choice === false && enabled && reason === 'self';
    if (!lost || choice === undefined) return;
    signaling.request('setAudioOnly', { enabled: choice }).catch((error) => {
      if (!isConnectionLoss(error)) reportError(this.#host.events, error);
    });
  }

  /** Someone left: their quality is no longer in view. */
  forget(participantId: string): void {
    this.#others.delete(participantId);
  }

  /** Out of the room: nobody else's quality in view. */
  leave(): void {
    this.#others.clear();
  }

  #setQuality(info: ConnectionQualityInfo, selfId = this.#selfId()): void {
    const { participantId, quality, reason } = info;
    const own = participantId === selfId;
    const known = own ? this.#own : this.#others.get(participantId);
    if (known && known.quality === quality && known.reason === reason) return;
    const entry = Object.freeze({ quality, reason });
    if (own) this.#own = entry;
    else this.#others.set(participantId, entry);
    this.#host.events.safeEmit('connectionQualityChanged', participantId, quality, reason);
  }

  #setAudioOnly(state: AudioOnlyState): void {
    const { enabled, reason } = state;
    if (this.#audioOnly.enabled === enabled && this.#audioOnly.reason === reason) return;
    // On by the person's choice before this client knew of one (a reload that took the place back).
    if (this.#choice === undefined && enabled && reason === 'self') this.#choice = true;
    this.#audioOnly = Object.freeze({ enabled, reason });
    this.#host.events.safeEmit('audioOnlyChanged', this.#audioOnly);
  }
}
