/**
 * The room's connection quality feed: every `intervalMs` it samples each admitted member's media
 * (server/media/connection-quality.ts), runs the verdict through the member's hysteresis, and on
 * a change tells `connectionQualityChanged` to whoever may see it: the person, the facilitators,
 * and everyone admitted when the room has `shareConnectionQuality` (a hidden observer's quality
 * goes to facilitators only). A member whose signaling connection is down is `lost` at once.
 */
import type { ConnectionQuality, ConnectionQualityInfo } from '../../client-sdk/src/protocol/index.ts';
import type { Logger } from '../logger.ts';
import {
  classify,
  excellent,
  lostConnection,
  MediaQualitySampler,
  QualityTracker,
  type QualityVerdict,
  type TrackRateSource,
} from '../media/connection-quality.ts';
import type { Audience } from './audience.ts';
import type { Member } from './member.ts';
import type { RoomDefinition } from './room-store.ts';

export interface ConnectionQualityFeedOptions {
  /** Everyone in the room (the feed looks at those admitted). */
  members: () => Iterable<Member>;
  definition: RoomDefinition;
  audience: Audience;
  /** What each producer of the room sends, read once a second for the room (`RoomRouters.rates`). */
  rates: TrackRateSource;
  logger: Logger;
  /** How often each member is sampled (1 s in production). */
  intervalMs: number;
}

interface Entry {
  member: Member;
  tracker: QualityTracker;
  sampler: MediaQualitySampler;
  /** Shown `lost` because the connection dropped (not from a measurement): back at once when it returns. */
  dropped: boolean;
}

export class ConnectionQualityFeed {
  readonly #options: ConnectionQualityFeedOptions;
  readonly #logger: Logger;
  readonly #entries = new Map<string, Entry>();
  #timer: NodeJS.Timeout | undefined;
  #sampling = false;
  #closed = false;

  constructor(options: ConnectionQualityFeedOptions) {
    this.#options = options;
    this.#logger = options.logger.child({ component: 'connection-quality' });
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Starts sampling. Idempotent. */
  start(): void {
    if (this.#closed || this.#timer) return;
    this.#timer = setInterval(() => void this.sample(), this.#options.intervalMs);
    this.#timer.unref();
  }

  /** Stops for good. Idempotent. */
  close(): void {
    this.#closed = true;
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#entries.clear();
  }

  /**
   * Someone entered the session: those who may see their quality learn it now, `excellent` until
   * measured, with the `participantJoined` they were told. The newcomer has its own in its
   * session state. Told here and not at the next round, so that it follows the admission alone.
   */
  admitted(member: Member): void {
    if (!this.#entry(member).fresh) return;
    const info = this.#info(member.id, excellent);
    const { audience } = this.#options;
    for (const viewer of audience.admitted()) {
      if (viewer !== member && this.mayView(viewer, member)) audience.tell(viewer, 'connectionQualityChanged', [info]);
    }
  }

  /** The member left: its quality is forgotten (a later member with its id starts afresh). */
  forget(participantId: string): void {
    this.#entries.delete(participantId);
  }

  /** Whether `viewer` may know `subject`'s quality. */
  mayView(viewer: Member, subject: Member): boolean {
    if (viewer === subject || viewer.role === 'facilitator') return true;
    const { audience, definition } = this.#options;
    return (
      definition.shareConnectionQuality === true &&
      audience.visibleToAll(subject) &&
      audience.sameSpace(viewer, subject)
    );
  }

  /** A member's quality as shown now (`excellent` until measured otherwise). */
  qualityOf(participantId: string): ConnectionQuality {
    return (this.#entries.get(participantId)?.tracker.shown ?? excellent).quality;
  }

  /** The qualities `viewer` may see, of everyone admitted (`excellent` until measured otherwise). */
  visibleTo(viewer: Member): ConnectionQualityInfo[] {
    return this.#options.audience
      .admitted()
      .filter((subject) => this.mayView(viewer, subject))
      .map((subject) => this.#info(subject.id, this.#entries.get(subject.id)?.tracker.shown ?? excellent));
  }

  /** One round over every admitted member (the timer's tick; tests may call it). Skipped while one runs. */
  async sample(): Promise<void> {
    if (this.#sampling || this.#closed) return;
    this.#sampling = true;
    try {
      const admitted = [...this.#options.members()].filter((m) => m.admitted && !m.closed);
      const ids = new Set(admitted.map((m) => m.id));
      // Out of the session (moved to the waiting room, gone): measured afresh if they come back.
      for (const id of this.#entries.keys()) if (!ids.has(id)) this.#entries.delete(id);
      await Promise.all(admitted.map((member) => this.#sampleOne(member)));
    } catch (err) {
      this.#logger.warn({ err }, 'connection quality sampling failed');
    } finally {
      this.#sampling = false;
    }
  }

  async #sampleOne(member: Member): Promise<void> {
    const { entry } = this.#entry(member);
    if (!member.connected) {
      entry.dropped = true;
      entry.sampler = new MediaQualitySampler();
      this.#changed(entry, entry.tracker.force(lostConnection));
      return;
    }
    const sample = await entry.sampler.sample(member.media, this.#options.rates);
    // The same reading tells the downlink allocator whether the link drops packets (congestion).
    member.media.downlink.observeLoss(sample.download?.loss ?? 0);
    const measured = classify(sample);
    if (this.#closed || this.#entries.get(member.id) !== entry) return;
    const wasDropped = entry.dropped;
    entry.dropped = false;
    this.#changed(entry, wasDropped ? entry.tracker.force(measured) : entry.tracker.update(measured));
  }

  /** The member's entry, made afresh for a member not measured yet (`fresh`). */
  #entry(member: Member): { entry: Entry; fresh: boolean } {
    const known = this.#entries.get(member.id);
    if (known?.member === member) return { entry: known, fresh: false };
    const entry = { member, tracker: new QualityTracker(), sampler: new MediaQualitySampler(), dropped: false };
    this.#entries.set(member.id, entry);
    return { entry, fresh: true };
  }

  #changed(entry: Entry, shown: QualityVerdict | undefined): void {
    if (!shown) return;
    const { member } = entry;
    const info = this.#info(member.id, shown);
    this.#logger.debug({ participant: member.id, quality: shown.quality, reason: shown.reason }, 'quality changed');
    const { audience } = this.#options;
    for (const viewer of audience.admitted()) {
      if (this.mayView(viewer, member)) audience.tell(viewer, 'connectionQualityChanged', [info]);
    }
  }

  #info(participantId: string, verdict: QualityVerdict): ConnectionQualityInfo {
    return { participantId, quality: verdict.quality, reason: verdict.reason };
  }
}
