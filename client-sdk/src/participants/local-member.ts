/**
 * This client as a member of the room: who it is (the state behind its {@link LocalParticipant})
 * and what it publishes. Publications outlive a media session: after a reconnection, a media
 * reset or a readmission they are produced again, with the same track in the same muted state.
 */
import type { ClientContext } from '../client-context.ts';
import { HavenRequestError, InvalidStateError, isConnectionLoss } from '../errors.ts';
import type { NotificationHandlers } from '../notification-router.ts';
import {
  type Capabilities,
  type MediaKind,
  type ParticipantInfo,
  sourceCapability,
  type TrackInfo,
  type TrackSource,
  trackSources,
} from '../protocol/index.ts';
import { captureTrack, publishPresets } from '../publish-presets.ts';
import { applySenderPreferences } from '../sender-preferences.ts';
import { reportError } from '../session-events.ts';
import { LocalPublication } from './local-publication.ts';
import type { LocalTrack } from './local-track.ts';
import { LocalParticipant, type LocalParticipantState } from './participant.ts';

/** What a {@link LocalMember} needs of the client it belongs to. */
export type LocalMemberHost = Pick<ClientContext, 'events' | 'media' | 'assertState'>;

function assertTrack(track: unknown, kind: MediaKind, source: TrackSource): asserts track is MediaStreamTrack {
  const candidate = track as Partial<MediaStreamTrack> | null;
  if (typeof candidate !== 'object' || candidate === null || typeof candidate.stop !== 'function') {
    throw new TypeError(`the ${source} track must be a MediaStreamTrack`);
  }
  if (candidate.kind !== kind)
    throw new TypeError(`the ${source} track must be an ${kind} track, not ${candidate.kind}`);
  if (candidate.readyState === 'ended') throw new InvalidStateError(`the ${source} track has ended`);
}

export class LocalMember {
  readonly #host: LocalMemberHost;
  #state: LocalParticipantState | undefined;
  #participant: LocalParticipant | undefined;
  readonly #publications = new Map<TrackSource, LocalPublication>();
  /** Sources whose `publish*()` call is in progress. */
  readonly #publishing = new Set<TrackSource>();

  constructor(host: LocalMemberHost) {
    this.#host = host;
  }

  /** The app's view, once joined. */
  get participant(): LocalParticipant | undefined {
    return this.#participant;
  }

  get id(): string | undefined {
    return this.#state?.id;
  }

  get isFacilitator(): boolean {
    return this.#state?.role === 'facilitator';
  }

  /** The handlers of the notifications about this client's own tracks. */
  handlers(): NotificationHandlers<'mutedByFacilitator' | 'unmuteRequested' | 'publisherLayers'> {
    const { events } = this.#host;
    return {
      mutedByFacilitator: ({ source, producerId }) => {
        if (this.#applyFacilitatorMute(source, producerId)) events.safeEmit('mutedByFacilitator', source);
      },
      unmuteRequested: ({ by }) => events.safeEmit('unmuteRequested', by),
      // Dynacast: an unknown (or replaced) producer's layers are nobody's business here.
      publisherLayers: ({ producerId, maxSpatialLayer }) => {
        for (const publication of this.#publications.values()) publication.limitLayers(producerId, maxSpatialLayer);
      },
    };
  }

  /** Who the server says this client is: the same person keeps the same view across rejoins. */
  applySelf(self: ParticipantInfo, capabilities: Capabilities): void {
    if (this.#state && this.#state.id === self.id) {
      Object.assign(this.#state, { name: self.name, role: self.role, capabilities: { ...capabilities } });
      return;
    }
    this.#state = { ...self, capabilities: { ...capabilities }, tracks: new Map() };
    this.#participant = new LocalParticipant(this.#state);
  }

  /** A facilitator gave this client another display name. */
  rename(name: string): void {
    if (this.#state) this.#state.name = name;
  }

  /** Publishes `source`: `track`, or one captured by the SDK. */
  async publish(source: TrackSource, track: MediaStreamTrack | undefined): Promise<LocalTrack> {
    const preset = publishPresets[source];
    if (track !== undefined) assertTrack(track, preset.kind, source);
    this.#host.assertState(`publishing the ${source}`, 'joined');
    if (this.#publications.has(source) || this.#publishing.has(source)) {
      throw new InvalidStateError(`a ${source} track is already published; unpublish('${source}') first`);
    }
    const self = this.#state;
    if (!self) throw new InvalidStateError('not joined');
    if (!self.capabilities[sourceCapability[source]])
      throw new HavenRequestError('FORBIDDEN', `this token does not allow publishing the ${source}`, 'produce');
    this.#publishing.add(source);
    let captured: MediaStreamTrack | undefined;
    try {
      if (!track) captured = await captureTrack(source);
      const sent = track ?? captured;
      if (!sent) throw new TypeError(`no ${source} track`);
      this.#host.assertState(`publishing the ${source}`, 'joined', 'reconnecting');
      const publication = new LocalPublication(sent, source, preset, captured !== undefined, this.#host.events);
      this.#publications.set(source, publication);
      self.tracks.set(source, publication.local);
      try {
        await publication.enqueue(() => this.#ensureProduced(publication));
      } catch (error) {
        // Connection lost meanwhile: the reconnection publishes it.
        if (!isConnectionLoss(error)) {
          this.#forget(publication);
          throw error;
        }
      }
      if (publication.removed) throw new InvalidStateError(`the ${source} was unpublished while publishing`);
      this.#host.events.safeEmit('localTrackPublished', publication.local);
      return publication.local;
    } catch (error) {
      captured?.stop();
      throw error;
    } finally {
      this.#publishing.delete(source);
    }
  }

  /** Mutes or unmutes `source`: locally at once, then on the server. */
  async setEnabled(source: TrackSource, enabled: boolean): Promise<void> {
    if (typeof enabled !== 'boolean') throw new TypeError('enabled must be a boolean');
    this.#host.assertState(`setting the ${source} on or off`, 'joined', 'reconnecting', 'waiting', 'joining');
    const publication = this.#publications.get(source);
    if (!publication) throw new InvalidStateError(`no ${source} track is published`);
    // At once: a mute never waits for the network.
    publication.setEnabled(enabled);
    try {
      await publication.enqueue(() => publication.syncPaused());
    } catch (error) {
      // Applied when the reconnection re-publishes the track.
      if (isConnectionLoss(error)) return;
      // Audio mode `controlled` without a facilitator's request: stay muted.
      if (enabled && error instanceof HavenRequestError && error.code === 'FORBIDDEN') publication.applyServerPause();
      throw error;
    }
  }

  /** Stops publishing `source`, if it is published. */
  async unpublish(source: TrackSource): Promise<void> {
    if (!trackSources.includes(source)) throw new TypeError(`source must be one of ${trackSources.join(', ')}`);
    const publication = this.#publications.get(source);
    if (publication) await this.#unpublish(publication);
  }

  /** On a new media session (rejoin, media reset): every track produced again, one after another. */
  async restoreAll(): Promise<void> {
    for (const publication of [...this.#publications.values()]) await this.#restore(publication);
  }

  /**
   * A facilitator muted one of this client's tracks: the server paused the microphone or camera
   * or closed the screen (unpublished here, without a request). False if that track is not
   * (or no longer) published here.
   */
  #applyFacilitatorMute(source: TrackSource, producerId: string): boolean {
    const publication = this.#publications.get(source);
    if (!publication || publication.producerId !== producerId) return false;
    if (source === 'screen') {
      publication.dropProducer();
      this.#forget(publication);
      this.#host.events.safeEmit('localTrackUnpublished', publication.local);
      publication.stopOwnedTrack();
    } else {
      publication.applyServerPause();
    }
    return true;
  }

  /** The server paused or resumed one of this client's producers (a facilitator's mute). */
  applyServerTrackUpdate(info: TrackInfo): void {
    for (const publication of this.#publications.values()) {
      if (publication.producerId !== info.producerId) continue;
      if (info.paused) publication.applyServerPause();
      else publication.applyServerResume();
    }
  }

  /** Out of the room (the server closed every producer): tracks kept, to be produced again on admission. */
  dropProducers(): void {
    for (const publication of this.#publications.values()) publication.dropProducer();
  }

  /** The client closed: every publication ends (`localTrackUnpublished`), captured tracks stop. */
  close(): void {
    for (const publication of [...this.#publications.values()]) {
      this.#forget(publication);
      publication.detach();
      publication.stopOwnedTrack();
      this.#host.events.safeEmit('localTrackUnpublished', publication.local);
    }
  }

  /** Creates the publication's producer on the current media session, if it has none there. */
  async #ensureProduced(publication: LocalPublication): Promise<void> {
    const media = this.#host.media();
    if (publication.removed || !media || media.closed) return;
    if (publication.producesOn(media)) return;
    publication.detach();
    if (publication.track.readyState === 'ended') {
      // Ended while offline (e.g. a camera unplugged): nothing to send, no producer to close.
      this.#forget(publication);
      this.#host.events.safeEmit('localTrackUnpublished', publication.local);
      publication.stopOwnedTrack();
      return;
    }
    const producer = await media.produce(publication.track, publication.source, publication.preset);
    if (publication.removed || media !== this.#host.media() || media.closed) {
      producer.close();
      if (publication.removed && !media.closed) {
        await media.signaling.request('closeProducer', { producerId: producer.id }).catch(() => {});
      }
      return;
    }
    publication.attach(producer, media);
    producer.on('trackended', () => {
      if (publication.producer === producer)
        this.#unpublish(publication).catch((error) => reportError(this.#host.events, error));
    });
    await applySenderPreferences(producer, publication.preset);
    await publication.syncPaused();
  }

  /** Produce again (same track, same muted state); a track that cannot be is unpublished. */
  async #restore(publication: LocalPublication): Promise<void> {
    try {
      await publication.enqueue(() => this.#ensureProduced(publication));
    } catch (error) {
      if (isConnectionLoss(error)) throw error;
      reportError(this.#host.events, error);
      await this.#unpublish(publication).catch(() => {});
    }
  }

  /** Removes the publication from the records (no request, no event). */
  #forget(publication: LocalPublication): void {
    publication.markRemoved();
    if (this.#publications.get(publication.source) === publication) {
      this.#publications.delete(publication.source);
      this.#state?.tracks.delete(publication.source);
    }
  }

  async #unpublish(publication: LocalPublication): Promise<void> {
    if (publication.removed) return;
    this.#forget(publication);
    this.#host.events.safeEmit('localTrackUnpublished', publication.local);
    try {
      await publication.enqueue(async () => {
        const { producer, media } = publication.detach();
        if (!producer) return;
        producer.close();
        if (!media || media.closed) return;
        try {
          await media.signaling.request('closeProducer', { producerId: producer.id });
        } catch (error) {
          const gone = error instanceof HavenRequestError && error.code === 'NOT_FOUND';
          if (!gone && !isConnectionLoss(error)) throw error;
        }
      });
    } finally {
      publication.stopOwnedTrack();
    }
  }
}
