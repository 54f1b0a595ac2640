/**
 * The routers one room's media is on. A room starts on one router, on the least-loaded worker.
 * When a router carries `maxConsumersPerRouter` consumers, newcomers go to a new router on another
 * worker, and producers are piped (`pipeToRouter`) to the routers whose people consume them. A
 * router that closes under the room (its worker died) is replaced on a live worker and the media
 * that was on it moves there. It knows members' media only (`MemberMedia`), never the room.
 */
import type { ActiveSpeakerObserver, Router } from 'mediasoup/node/lib/types.js';
import { TypedEmitter } from '../../client-sdk/src/protocol/typed-emitter.ts';
import type { Logger } from '../logger.ts';
import { mediaCodecs } from './codecs.ts';
import type { DownlinkRoomView } from './downlink-allocator.ts';
import { Dynacast } from './dynacast.ts';
import type { MemberMedia, PublishedTrack } from './member-media.ts';
import { TrackRates } from './track-rates.ts';
import type { PoolWorker, WorkerPool } from './worker-pool.ts';

export interface RoomRouter {
  router: Router;
  worker: PoolWorker;
  /**
   * Who is loudest, one observer per place of the room with audio on this router (`''`: the main
   * room; else a breakout group's id): each group has its own speaker.
   */
  speakers: Map<string, Promise<ActiveSpeakerObserver>>;
  consumers: number;
}

export interface RoomRoutersOptions {
  pool: WorkerPool;
  logger: Logger;
  maxConsumersPerRouter: number;
  /** A receiver whose downlink estimate stays below this (bps) gets audio only until it recovers. */
  audioOnlyBelowBps: number;
  /** The media of the people in the session (whose consumers count towards their router). */
  placed: () => MemberMedia[];
}

/** How often the room's media is looked at: track rates read, downlinks and dynacast planned. */
const mediaTickMs = 1_000;

export type RoomRoutersEvents = {
  /** The loudest speaker changed. */
  dominantSpeaker: [participantId: string];
  /** A router was lost and the media on it now lives on another one: its people set it up again. */
  rehomed: [moved: MemberMedia[]];
  /** No live worker to move to within the time allowed: the room cannot go on. */
  unavailable: [];
};

/** How long a room whose worker died waits for a replacement before giving up. */
const workerReplacementTimeoutMs = 10_000;

export class RoomRouters extends TypedEmitter<RoomRoutersEvents> {
  readonly #options: RoomRoutersOptions;
  readonly #routers: RoomRouter[] = [];
  /** `${producerId}>${routerId}` → the pipe being or already set up. */
  readonly #pipes = new Map<string, Promise<unknown>>();
  /** Tracks published in the room, by producer id, with whose media published them. */
  readonly #tracks = new Map<string, { owner: MemberMedia; track: PublishedTrack }>();
  /** A router being added on another worker, while people are placed. */
  #spreading: Promise<RoomRouter> | undefined;
  #closed = false;
  /** What each published track sends now. */
  readonly rates = new TrackRates();
  readonly dynacast = new Dynacast((owner, producerId, maxSpatialLayer) => {
    const track = owner.tracks.get(producerId);
    if (track) track.producer.appData.maxSpatialLayer = maxSpatialLayer;
    owner.safeEmit('publisherLayers', producerId, maxSpatialLayer);
  });
  /** Each audio track's latest change of speakers (`listen`), so that changes apply in order. */
  readonly #listening = new WeakMap<PublishedTrack, Promise<void>>();
  /** The loudest participant now, and when each was last. */
  #speaker: string | null = null;
  readonly #spoke = new Map<string, number>();
  readonly #tick: NodeJS.Timeout;
  #ticking = false;
  /** What a member's downlink allocator reads of the room. */
  readonly downlinkView: DownlinkRoomView = {
    rates: this.rates,
    speaker: () => this.#speaker,
    lastSpoke: (participantId) => this.#spoke.get(participantId) ?? 0,
    track: (producerId) => {
      const found = this.#tracks.get(producerId);
      return (
        found && {
          participantId: found.owner.participantId,
          source: found.track.source,
          layers: found.track.producer.rtpParameters.encodings?.length ?? 1,
        }
      );
    },
  };

  constructor(options: RoomRoutersOptions) {
    super();
    this.#options = options;
    this.#tick = setInterval(() => void this.#mediaTick(), mediaTickMs);
    this.#tick.unref();
  }

  get audioOnlyBelowBps(): number {
    return this.#options.audioOnlyBelowBps;
  }

  /** Once a second: what every track sends, then each downlink's plan, then the layers publishers send. */
  async #mediaTick(): Promise<void> {
    if (this.#ticking || this.#closed) return;
    this.#ticking = true;
    try {
      await this.rates.sample([...this.#tracks.values()].map(({ track }) => track.producer));
      const placed = this.#options.placed();
      for (const media of placed) media.downlink.tick();
      this.dynacast.tick(placed);
    } catch (err) {
      this.#options.logger.warn({ err }, 'room media tick failed');
    } finally {
      this.#ticking = false;
    }
  }

  get closed(): boolean {
    return this.#closed;
  }

  get count(): number {
    return this.#routers.length;
  }

  /** The room's first router (where media starts until placed). */
  get first(): RoomRouter {
    return this.#routers[0] as RoomRouter;
  }

  async add(): Promise<RoomRouter> {
    const avoid = new Set(this.#routers.map((r) => r.worker));
    const { router, worker } = await this.#options.pool.createRouter({ mediaCodecs }, avoid);
    const entry: RoomRouter = { router, worker, speakers: new Map(), consumers: 0 };
    await this.#speakersOf(entry, '');
    router.observer.once('close', () => {
      if (!this.#closed) void this.#rehome(entry);
    });
    this.#routers.push(entry);
    if (this.#routers.length > 1) {
      this.#options.logger.info({ routers: this.#routers.length }, 'room spread to another worker');
    }
    return entry;
  }

  /**
   * The router a newcomer's media goes on: the first with room for more consumers, found at once
   * (no await), or a new one on another worker.
   */
  forNewcomer(): RoomRouter | Promise<RoomRouter> {
    const roomy = this.#routers.find(
      (r) => !r.router.closed && this.#expectedConsumers(r) < this.#options.maxConsumersPerRouter,
    );
    if (roomy) return roomy;
    const usedWorkers = new Set(this.#routers.map((r) => r.worker));
    if (this.#options.pool.workers.some((w) => !usedWorkers.has(w))) {
      // One new router however many people are placed meanwhile: two on one worker would pipe
      // the same producer into that worker twice.
      this.#spreading ??= this.add().finally(() => {
        this.#spreading = undefined;
      });
      return this.#spreading;
    }
    // Every worker already carries this room: the least busy of its routers.
    return [...this.#routers].sort((a, b) => a.consumers - b.consumers)[0] as RoomRouter;
  }

  /**
   * The consumers a router carries, or what its people will soon ask for (every published track
   * but their own) if that is more: people admitted at once are placed before they consume.
   */
  #expectedConsumers(router: RoomRouter): number {
    const placed = this.#options.placed();
    const published = placed.reduce((n, m) => n + m.tracks.size, 0);
    const expected = placed.filter((m) => m.home === router).reduce((n, m) => n + published - m.tracks.size, 0);
    return Math.max(router.consumers, expected);
  }

  /** A track published in the room, until its producer closes. */
  published(owner: MemberMedia, track: PublishedTrack): void {
    this.#tracks.set(track.producer.id, { owner, track });
    track.producer.observer.once('close', () => this.#tracks.delete(track.producer.id));
  }

  track(producerId: string): { owner: MemberMedia; track: PublishedTrack } | undefined {
    return this.#tracks.get(producerId);
  }

  /** The observer of who is loudest in one place of the room, on one router (made once, when first needed). */
  #speakersOf(entry: RoomRouter, place: string): Promise<ActiveSpeakerObserver> {
    let observer = entry.speakers.get(place);
    if (!observer) {
      observer = entry.router.createActiveSpeakerObserver({ interval: 300 }).then((speakers) => {
        speakers.on('dominantspeaker', ({ producer }) => {
          const participantId = String(producer.appData.participantId);
          this.#speaker = participantId;
          this.#spoke.set(participantId, Date.now());
          this.safeEmit('dominantSpeaker', participantId);
        });
        return speakers;
      });
      entry.speakers.set(place, observer);
    }
    return observer;
  }

  /**
   * An audio track counts among the speakers of `place` (a breakout group's id, or undefined for
   * the main room), and no longer among those of the place it was in. Idempotent.
   */
  listen(track: PublishedTrack, place: string | undefined): Promise<void> {
    if (track.producer.kind !== 'audio') return Promise.resolve();
    // One change at a time per track: moves in quick succession apply in their order.
    const previous = this.#listening.get(track) ?? Promise.resolve();
    const next = previous.then(() => this.#moveListening(track, place ?? ''));
    this.#listening.set(
      track,
      next.catch(() => {}),
    );
    return next;
  }

  async #moveListening(track: PublishedTrack, to: string): Promise<void> {
    const from = track.speakersPlace;
    if (track.producer.closed || from === to) return;
    const producerId = track.producer.id;
    if (from !== undefined) await (await this.#speakersOf(track.home, from)).removeProducer({ producerId });
    track.speakersPlace = to;
    if (!track.producer.closed) await (await this.#speakersOf(track.home, to)).addProducer({ producerId });
  }

  /** Makes `track` available on `target` (once, however many consumers ask at the same time). */
  async pipe(track: PublishedTrack, target: RoomRouter): Promise<void> {
    if (track.home === target) return;
    const key = `${track.producer.id}>${target.router.id}`;
    let piping = this.#pipes.get(key);
    if (!piping) {
      piping = track.home.router.pipeToRouter({ producerId: track.producer.id, router: target.router });
      this.#pipes.set(key, piping);
      track.producer.observer.once('close', () => this.#pipes.delete(key));
    }
    await piping;
  }

  /**
   * A router closed under the room (its worker died): the media on it went with it. Its people
   * move to a router on a live worker (`rehomed`), or the room cannot go on (`unavailable`).
   */
  async #rehome(lost: RoomRouter): Promise<void> {
    this.#routers.splice(this.#routers.indexOf(lost), 1);
    const movers = this.#options.placed().filter((m) => m.home === lost);
    const { logger, pool } = this.#options;
    logger.error({ worker: lost.worker.index, participants: movers.length }, 'media worker lost; moving the room');
    const deadline = Date.now() + workerReplacementTimeoutMs;
    for (;;) {
      try {
        // With a single worker, its replacement is a moment away.
        await pool.whenAlive(Math.max(0, deadline - Date.now()));
        if (this.#closed) return;
        const home = this.#routers.find((r) => !r.router.closed) ?? (await this.add());
        for (const media of movers) media.home = home;
        this.safeEmit('rehomed', movers);
        return;
      } catch (err) {
        // The worker chosen may have died too, before the pool noticed: try again while there is time.
        if (Date.now() < deadline && !this.#closed) {
          await new Promise((r) => setTimeout(r, 200));
          continue;
        }
        logger.error({ err }, 'no media worker to move the room to; ending it');
        this.safeEmit('unavailable');
        return;
      }
    }
  }

  /** Closes every router (and so all media on them). Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#tick);
    for (const { router } of this.#routers) router.close();
  }
}
