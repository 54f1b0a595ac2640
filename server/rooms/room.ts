/**
 * A live room on this node: who is in it, their media (transports, producers, consumers on the
 * room's routers), and the rules of joining. It knows nothing of sockets: it answers requests
 * and emits `notify` events addressed to participants, which signaling delivers.
 *
 * Media: a room starts on one router, on the least-loaded worker. When a router carries
 * `maxConsumersPerRouter` consumers, newcomers go to a new router on another worker, and
 * producers are piped (`pipeToRouter`) to the routers whose participants consume them.
 */
import type {
  ActiveSpeakerObserver,
  Consumer,
  PlainTransport,
  Producer,
  Router,
  Transport,
  WebRtcTransport,
} from 'mediasoup/node/lib/types.js';
import type {
  AdmitAllResponse,
  AttendanceSnapshot,
  AudioMode,
  Capabilities,
  ChatAudience,
  ChatMessage,
  ConnectPlainTransportRequest,
  ConsumeRequest,
  ConsumeResponse,
  JoinResponse,
  LeaveReason,
  NotificationName,
  ParticipantInfo,
  PlainTransportOptions,
  ProduceRequest,
  ServerNotifications,
  SessionState,
  TrackInfo,
  TrackSource,
  TransportDirection,
  TransportOptions,
  WaitingEntry,
  WaitingInfo,
} from '../../client-sdk/src/protocol/index.ts';
import { idCharacters, sourceCapability, sourceKind } from '../../client-sdk/src/protocol/index.ts';
import { TypedEmitter } from '../../client-sdk/src/protocol/typed-emitter.ts';
import type { LiveFigures } from '../attendance/live.ts';
import type { AttendanceEventType, NewAttendanceEvent } from '../attendance/recorder.ts';
import { defaultCapabilities, type VerifiedIdentity } from '../auth/tokens.ts';
import { HavenError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { mediaCodecs } from '../media/codecs.ts';
import type { TurnSettings } from '../media/turn.ts';
import { turnIceServers } from '../media/turn.ts';
import type { PoolWorker, WorkerPool } from '../media/worker-pool.ts';
import { ChatLog } from './chat.ts';
import type {
  ConsentRecord,
  Fence,
  RoomStateSnapshot,
  RoomStateStore,
  RoomStateWriter,
  StoredMember,
} from './room-state.ts';
import type { RoomDefinition } from './room-store.ts';

/** What the room asks the audit log to record (ids only). */
export interface AuditRecord {
  room: string;
  actor: string;
  action: string;
  target?: string;
  result?: string;
  details?: Record<string, string | number | boolean>;
}

export interface RoomSettings {
  pool: WorkerPool;
  logger: Logger;
  reconnectGraceMs: number;
  emptyTimeoutMs: number;
  maxConsumersPerRouter: number;
  turn: TurnSettings;
  /** Records a moderation action or a consent (fire and forget: the audit log reports its own failures). */
  audit: (record: AuditRecord) => void;
  /** Revokes a removed participant's token (its `jti`). */
  revoke: (identity: VerifiedIdentity) => Promise<void>;
  /** Keeps (or forgets) a chat message after the session, for rooms with `keepChat`. */
  chatArchive: { keep(room: string, message: ChatMessage): void; forget(room: string, messageId: string): void };
  /** Records a presence change for attendance (ids only; the recorder never blocks). */
  attendance: (event: NewAttendanceEvent) => void;
  /**
   * Plain RTP transports (SRTP, no ICE/DTLS) on this address, for the bench's load generator;
   * absent: refused.
   */
  plainTransports?: { listenIp: string; announcedIp?: string };
  /** This room's live attendance figures (ids only), as billing computes them; throws a HavenError. */
  liveAttendance: (room: RoomDefinition) => Promise<LiveFigures>;
  /**
   * Where rooms write their facilitation state through, and are restored from when they open
   * again after their node died (absent: memory only). `fence` is this node's lease on the room
   * (the cluster's): a write is applied only while Redis still names it, else skipped.
   */
  roomState?: { store: RoomStateStore; fence?: (room: string) => Fence | null };
}

/** A notification for one participant. */
export type Notification = { [K in NotificationName]: { name: K; args: ServerNotifications[K] } }[NotificationName];

export type RoomEvents = {
  notify: [participantId: string, notification: Notification];
  /** The participant's connection must close (denied, removed): signaling closes it after the notification. */
  evict: [participantId: string];
  closed: [];
};

/** Where someone stands: at the consent gate, in the waiting room, or in the session. */
export type Stage = 'consent' | 'waiting' | 'admitted';

interface RoomRouter {
  router: Router;
  worker: PoolWorker;
  speakers: ActiveSpeakerObserver;
  consumers: number;
}

interface PublishedTrack {
  producer: Producer;
  source: TrackSource;
  home: RoomRouter;
}

interface Member {
  identity: VerifiedIdentity;
  capabilities: Capabilities;
  stage: Stage;
  /** When this person entered the waiting room (ms since the epoch). */
  waitingSince: number;
  /** A facilitator-approved alias, shown instead of the token's name. */
  alias?: string;
  /** Controlled audio mode: a facilitator asked this participant to unmute since the last mute. */
  unmuteGranted: boolean;
  /** The connection currently speaking for this participant; undefined while disconnected. */
  connectionId: string | undefined;
  /** The router this member's media is on (set when admitted). */
  home: RoomRouter;
  transports: Map<string, Transport>;
  tracks: Map<string, PublishedTrack>;
  consumers: Map<string, Consumer>;
  graceTimer?: NodeJS.Timeout;
  /**
   * Restored from the room's stored state (its node died): the identity holds only what the store
   * keeps (id, role, token id), no display name, until the person rejoins with their token.
   * Meanwhile lists show the alias, or else the participant id, and live attendance `null`.
   */
  restored?: boolean;
}

export interface JoinResult {
  response: JoinResponse;
  /** An older connection of the same participant, now replaced: signaling closes it. */
  replacedConnectionId?: string;
}

/** How long after a failed state write the room writes its whole state again (and between tries). */
const stateResyncDelayMs = 1_000;

/** How long a room whose worker died waits for a replacement before the session ends. */
const workerReplacementTimeoutMs = 10_000;

/** Facilitators' live attendance is pushed this long after a presence change (later changes join it). */
const attendancePushDelayMs = 1_000;
/** Events that change what the live attendance view shows (consent and media do not). */
const attendanceViewEvents: ReadonlySet<AttendanceEventType> = new Set([
  'waiting',
  'admitted',
  'denied',
  'disconnected',
  'reconnected',
  'movedToWaitingRoom',
  'removed',
  'left',
]);

export class Room extends TypedEmitter<RoomEvents> {
  readonly definition: RoomDefinition;
  readonly #settings: RoomSettings;
  readonly #logger: Logger;
  readonly #routers: RoomRouter[] = [];
  readonly #members = new Map<string, Member>();
  /** `${producerId}>${routerId}` → the pipe being or already set up. */
  readonly #pipes = new Map<string, Promise<unknown>>();
  /** A router being added for the room on another worker, while people are placed. */
  #spreading: Promise<RoomRouter> | undefined;
  readonly #chat = new ChatLog();
  /** Raised hands: participant id → when (insertion order is the queue). */
  readonly #hands = new Map<string, number>();
  /** Removed with a ban: refused for the rest of the session. */
  readonly #banned = new Set<string>();
  /** Who accepted which consent version in this session: they are not asked again for it. */
  readonly #consents = new Map<string, ConsentRecord>();
  /** Write-through of the facilitation state (undefined: memory only). */
  readonly #stateWriter: RoomStateWriter | undefined;
  /** The whole state is to be written again (after a failed write). */
  #stateResync: NodeJS.Timeout | undefined;
  /** Failed write-throughs so far: one during a rewrite calls for another. */
  #stateFailures = 0;
  #stateRewriting = false;
  #locked = false;
  #audioMode: AudioMode = 'open';
  #spotlight: string | null = null;
  #waitingMessage: string | undefined;
  #emptyTimer: NodeJS.Timeout | undefined;
  #attendancePush: NodeJS.Timeout | undefined;
  /** Facilitators who asked for live attendance: pushes go to them (rooms nobody watches read nothing). */
  readonly #attendanceWatchers = new Set<string>();
  #closed = false;

  private constructor(definition: RoomDefinition, settings: RoomSettings) {
    super();
    this.definition = definition;
    this.#settings = settings;
    this.#logger = settings.logger.child({ room: definition.id });
    const fence = settings.roomState?.fence;
    this.#stateWriter = settings.roomState?.store.writer(definition.id, {
      fence: fence && (() => fence(definition.id)),
      onFailure: () => this.#stateLost(),
    });
  }

  /**
   * Opens a room on its first router. With `saved` (the session's state, stored by a node that
   * died while running it), the session goes on: its state is restored and everyone it held is a
   * dropped member within the reconnection grace; no second `sessionStarted` is recorded.
   */
  static async open(definition: RoomDefinition, settings: RoomSettings, saved?: RoomStateSnapshot): Promise<Room> {
    const room = new Room(definition, settings);
    await room.#addRouter();
    if (saved) room.#restore(saved);
    else room.#presence('sessionStarted');
    room.#logger.info({ kind: definition.kind, restored: saved !== undefined }, 'room opened');
    room.#armEmptyTimer();
    return room;
  }

  /** The write-through handle while the room is open: a closed room writes nothing more. */
  get #state(): RoomStateWriter | undefined {
    return this.#closed ? undefined : this.#stateWriter;
  }

  /**
   * Takes back a session whose node died. Everyone it held (consent gate, waiting, admitted)
   * comes back as after a dropped connection: no connection, the grace timer running. One
   * `restored` event carries when the old node last served the room: attendance dates everyone's
   * disconnection there (compute.ts), not now. Rejoining within the grace gives them their place
   * as any reconnection does; otherwise they leave as usual.
   */
  #restore(saved: RoomStateSnapshot): void {
    this.#presence('restored', undefined, saved.lastServedAt === undefined ? {} : { lastServedAt: saved.lastServedAt });
    this.#locked = saved.locked;
    this.#audioMode = saved.audioMode;
    for (const id of saved.bans) this.#banned.add(id);
    for (const [id, record] of saved.consents) this.#consents.set(id, record);
    const granted = new Set(saved.unmuteGranted);
    for (const stored of saved.members) {
      const id = stored.participantId;
      // A ban written just before its member's removal was.
      if (this.#banned.has(id)) continue;
      const identity: VerifiedIdentity = {
        participantId: id,
        name: id,
        roomId: this.id,
        role: stored.role,
        capabilities: defaultCapabilities(stored.role),
        expiresAtMs: stored.expiresAtMs ?? 0,
        tokenHash: '',
        ...(stored.jti === undefined ? {} : { jti: stored.jti }),
      };
      const member: Member = {
        identity,
        capabilities: this.#capabilitiesOf(identity),
        stage: stored.stage,
        waitingSince: stored.waitingSince,
        alias: saved.aliases.get(id),
        unmuteGranted: granted.has(id),
        connectionId: undefined,
        home: this.#routers[0] as RoomRouter,
        transports: new Map(),
        tracks: new Map(),
        consumers: new Map(),
        restored: true,
      };
      this.#members.set(id, member);
      member.graceTimer = setTimeout(() => this.leave(id, 'disconnected'), this.#settings.reconnectGraceMs);
    }
    for (const { participantId, raisedAt } of saved.hands) {
      if (this.#members.get(participantId)?.stage === 'admitted') this.#hands.set(participantId, raisedAt);
    }
    const spotlit = saved.spotlight && this.#members.get(saved.spotlight);
    this.#spotlight = spotlit && spotlit.stage === 'admitted' ? spotlit.identity.participantId : null;
    this.#logger.info(
      {
        members: this.#members.size,
        waiting: this.#waitingList().length,
        hands: this.#hands.size,
        bans: this.#banned.size,
        locked: this.#locked,
        audioMode: this.#audioMode,
      },
      'room state restored',
    );
    // Stored again as restored: everyone dropped (so a further restore records no second
    // disconnection), and nothing of what was left out (hands or a spotlight of people gone).
    void this.#rewriteState();
  }

  /**
   * A write-through failed (Redis unreachable, a failover): what is stored lags behind. The whole
   * state is written again shortly, and again until Redis takes it (writes after it build on it).
   */
  #stateLost(): void {
    this.#stateFailures++;
    this.#scheduleStateRewrite();
  }

  #scheduleStateRewrite(): void {
    if (this.#stateResync || this.#stateRewriting || this.#closed) return;
    this.#stateResync = setTimeout(() => {
      this.#stateResync = undefined;
      void this.#rewriteState();
    }, stateResyncDelayMs);
  }

  /** Writes the whole state at once (replacing what is stored); tried again until Redis takes it. */
  async #rewriteState(): Promise<void> {
    const writer = this.#state;
    if (!writer || this.#stateRewriting) return;
    this.#stateRewriting = true;
    const failures = this.#stateFailures;
    const written = await writer.replace(this.#snapshot()).then(
      () => true,
      () => false,
    );
    this.#stateRewriting = false;
    // A write that failed meanwhile may hold a change made after this snapshot: once more.
    if (!written || failures !== this.#stateFailures) this.#scheduleStateRewrite();
    else if (failures > 0) this.#logger.info('room state written again after failed writes');
  }

  /** The facilitation state as the store keeps it. */
  #snapshot(): RoomStateSnapshot {
    const aliases = new Map<string, string>();
    for (const [id, m] of this.#members) if (m.alias !== undefined) aliases.set(id, m.alias);
    return {
      locked: this.#locked,
      audioMode: this.#audioMode,
      spotlight: this.#spotlight,
      members: [...this.#members.values()].map((m) => this.#stored(m)),
      hands: [...this.#hands].map(([participantId, raisedAt]) => ({ participantId, raisedAt })),
      bans: [...this.#banned],
      unmuteGranted: [...this.#members].filter(([, m]) => m.unmuteGranted).map(([id]) => id),
      aliases,
      consents: new Map(this.#consents),
    };
  }

  #stored(member: Member): StoredMember {
    const { participantId, role, jti, expiresAtMs } = member.identity;
    return {
      participantId,
      role,
      stage: member.stage,
      waitingSince: member.waitingSince,
      dropped: member.connectionId === undefined,
      ...(jti === undefined ? {} : { jti, expiresAtMs }),
    };
  }

  /** Writes a member's stage through (fire and forget). */
  #saveMember(member: Member): void {
    this.#state?.member(this.#stored(member));
  }

  /** The current consent text was accepted by this participant earlier in the session. */
  #acceptedConsent(participantId: string): boolean {
    const consent = this.definition.consent;
    const record = this.#consents.get(participantId);
    return consent !== undefined && record?.version === consent.version && record.hash === consent.hash;
  }

  get id(): string {
    return this.definition.id;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Participants present or within their reconnection grace. */
  get size(): number {
    return this.#members.size;
  }

  /** Routers the room uses (more than one when it spreads over workers). */
  get routerCount(): number {
    return this.#routers.length;
  }

  has(participantId: string): boolean {
    return this.#members.has(participantId);
  }

  /** Where the participant stands in this room; undefined when not in it. */
  stageOf(participantId: string): Stage | undefined {
    return this.#members.get(participantId)?.stage;
  }

  async #addRouter(): Promise<RoomRouter> {
    const avoid = new Set(this.#routers.map((r) => r.worker));
    const { router, worker } = await this.#settings.pool.createRouter({ mediaCodecs }, avoid);
    const speakers = await router.createActiveSpeakerObserver({ interval: 300 });
    const entry: RoomRouter = { router, worker, speakers, consumers: 0 };
    speakers.on('dominantspeaker', ({ producer }) => {
      const participantId = String(producer.appData.participantId);
      this.#broadcast('activeSpeaker', [{ participantId }], undefined, this.#members.get(participantId));
    });
    router.observer.once('close', () => {
      if (!this.#closed) void this.#rehome(entry);
    });
    this.#routers.push(entry);
    if (this.#routers.length > 1) this.#logger.info({ routers: this.#routers.length }, 'room spread to another worker');
    return entry;
  }

  /**
   * A router closed under the room (its worker died): its members' media went with it. They move
   * to a router on a live worker and are told to set up their media again; presence is untouched.
   */
  async #rehome(lost: RoomRouter): Promise<void> {
    this.#routers.splice(this.#routers.indexOf(lost), 1);
    const movers = this.#admittedMembers().filter((m) => m.home === lost);
    this.#logger.error(
      { worker: lost.worker.index, participants: movers.length },
      'media worker lost; moving the room',
    );
    const deadline = Date.now() + workerReplacementTimeoutMs;
    for (;;) {
      try {
        // With a single worker, its replacement is a moment away.
        await this.#settings.pool.whenAlive(Math.max(0, deadline - Date.now()));
        if (this.#closed) return;
        const home = this.#routers.find((r) => !r.router.closed) ?? (await this.#addRouter());
        for (const member of movers) {
          member.home = home;
          if (member.connectionId) {
            this.#notify(member.identity.participantId, 'mediaReset', [{ reason: 'media-worker-lost' }]);
          }
        }
        return;
      } catch (err) {
        // The worker chosen may have died too, before the pool noticed: try again while there is time.
        if (Date.now() < deadline && !this.#closed) {
          await new Promise((r) => setTimeout(r, 200));
          continue;
        }
        this.#logger.error({ err }, 'no media worker to move the room to; ending it');
        this.end('media unavailable');
        return;
      }
    }
  }

  /**
   * The router a newcomer's media goes on: the first with room for more consumers, found at once
   * (no await), or a new one on another worker.
   */
  #routerForNewcomer(): RoomRouter | Promise<RoomRouter> {
    const roomy = this.#routers.find(
      (r) => !r.router.closed && this.#expectedConsumers(r) < this.#settings.maxConsumersPerRouter,
    );
    if (roomy) return roomy;
    const usedWorkers = new Set(this.#routers.map((r) => r.worker));
    if (this.#settings.pool.workers.some((w) => !usedWorkers.has(w))) {
      // One new router however many people are placed meanwhile: two on one worker would pipe
      // the same producer into that worker twice.
      this.#spreading ??= this.#addRouter().finally(() => {
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
    const admitted = this.#admittedMembers();
    const published = admitted.reduce((n, m) => n + m.tracks.size, 0);
    const expected = admitted.filter((m) => m.home === router).reduce((n, m) => n + published - m.tracks.size, 0);
    return Math.max(router.consumers, expected);
  }

  #member(participantId: string): Member {
    const member = this.#members.get(participantId);
    if (!member) throw new HavenError('INVALID_STATE', 'not joined to this room');
    return member;
  }

  #count(role: string, stage: Stage = 'admitted'): number {
    return [...this.#members.values()].filter((m) => m.identity.role === role && m.stage === stage).length;
  }

  /** ROOM_FULL when admitting `member` now would go over the room's capacity. */
  #capacityRefusal(member: Member): HavenError | undefined {
    const { role } = member.identity;
    if (role === 'participant' && this.#count('participant') >= this.definition.capacity) {
      return new HavenError('ROOM_FULL', `the room admits ${this.definition.capacity} participant(s)`);
    }
    if (role === 'facilitator' && this.definition.kind === 'individual' && this.#count('facilitator') >= 1) {
      return new HavenError('ROOM_FULL', 'an individual session has one facilitator');
    }
    return undefined;
  }

  #capacityCheck(member: Member): void {
    const refusal = this.#capacityRefusal(member);
    if (refusal) throw refusal;
  }

  /** Education rooms: participants receive only, unless their token grants publishing. */
  #capabilitiesOf(identity: VerifiedIdentity): Capabilities {
    if (this.definition.kind !== 'education' || identity.role !== 'participant') return identity.capabilities;
    const granted = identity.grantedCapabilities ?? {};
    return {
      ...identity.capabilities,
      publishAudio: granted.publishAudio === true,
      publishVideo: granted.publishVideo === true,
      publishScreen: granted.publishScreen === true,
    };
  }

  /**
   * Joins `identity` through `connectionId`. A participant meets the consent gate (if the room has
   * a consent text), then the waiting room (if the room has one); facilitators and observers go
   * straight in. The same participant joining again (a reconnection within the grace window, or a
   * second tab) takes back its place and stage: others see no leave, its old media is closed,
   * the older connection is reported for signaling to close.
   */
  async join(identity: VerifiedIdentity, connectionId: string): Promise<JoinResult> {
    if (this.#closed || this.definition.endedAt) throw new HavenError('INVALID_STATE', 'the session has ended');
    if (this.#banned.has(identity.participantId)) throw new HavenError('FORBIDDEN', 'removed from this session');
    const existing = this.#members.get(identity.participantId);
    if (existing) {
      clearTimeout(existing.graceTimer);
      existing.graceTimer = undefined;
      const replaced = existing.connectionId !== connectionId ? existing.connectionId : undefined;
      this.#closeMedia(existing);
      if (!existing.connectionId) this.#presence('reconnected', identity.participantId, { stage: existing.stage });
      existing.connectionId = connectionId;
      existing.identity = identity;
      const named = existing.restored === true;
      if (named) {
        existing.restored = false;
        existing.capabilities = this.#capabilitiesOf(identity);
      }
      this.#saveMember(existing);
      this.#cancelEmptyTimer();
      if (named) this.#nameKnown(existing);
      if (existing.stage === 'admitted' && existing.identity.role === 'facilitator') this.#waitingRoomUpdated();
      return { replacedConnectionId: replaced, response: this.#stageResponse(existing, true) };
    }
    if (this.#locked && identity.role !== 'facilitator') throw new HavenError('ROOM_LOCKED', 'the room is locked');
    const member: Member = {
      identity,
      capabilities: this.#capabilitiesOf(identity),
      stage: 'admitted',
      waitingSince: Date.now(),
      unmuteGranted: false,
      connectionId,
      home: this.#routers[0] as RoomRouter,
      transports: new Map(),
      tracks: new Map(),
      consumers: new Map(),
    };
    this.#capacityCheck(member);
    const isParticipant = identity.role === 'participant';
    const consentAsked = this.definition.consent && !this.#acceptedConsent(identity.participantId);
    if (isParticipant && consentAsked) member.stage = 'consent';
    else if (isParticipant && this.definition.waitingRoom) member.stage = 'waiting';
    this.#members.set(identity.participantId, member);
    if (member.stage === 'consent') this.#saveMember(member);
    this.#cancelEmptyTimer();
    this.#logger.info(
      { participant: identity.participantId, role: identity.role, stage: member.stage },
      'participant joined',
    );
    if (member.stage === 'admitted') await this.#admit(member, false);
    else if (member.stage === 'waiting') this.#enteredWaitingRoom(member);
    return { response: this.#stageResponse(member, false) };
  }

  /** A restored member rejoined with their token: those who see them learn their name. */
  #nameKnown(member: Member): void {
    if (member.alias !== undefined) return;
    const participantId = member.identity.participantId;
    if (member.stage === 'admitted')
      this.#broadcast('displayNameChanged', [{ participantId, name: member.identity.name }], participantId, member);
    else if (member.stage === 'waiting') this.#waitingRoomChanged();
  }

  #stageResponse(member: Member, resumed: boolean): JoinResponse {
    const { reconnectGraceMs } = this.#settings;
    if (member.stage === 'consent' && this.definition.consent)
      return { stage: 'consent', consent: this.definition.consent, reconnectGraceMs };
    if (member.stage === 'waiting') return { stage: 'waiting', waiting: this.#waitingInfo(), reconnectGraceMs };
    return { stage: 'admitted', session: this.#sessionState(member, resumed) };
  }

  #sessionState(member: Member, resumed: boolean): SessionState {
    const isFacilitator = member.identity.role === 'facilitator';
    return {
      room: { id: this.id, kind: this.definition.kind, title: this.definition.title },
      self: this.#info(member),
      capabilities: member.capabilities,
      participants: this.#admittedMembers()
        .filter((m) => m !== member && this.#visibleTo(member, m))
        .map((m) => this.#info(m)),
      routerRtpCapabilities: member.home.router.rtpCapabilities,
      iceServers: turnIceServers(this.#settings.turn, member.identity.participantId),
      resumed,
      reconnectGraceMs: this.#settings.reconnectGraceMs,
      audioMode: this.#audioMode,
      locked: this.#locked,
      spotlight: this.#spotlight,
      hands: [...this.#hands]
        .filter(([id]) => isFacilitator || id === member.identity.participantId)
        .map(([participantId, raisedAt]) => ({ participantId, raisedAt })),
      waiting: isFacilitator ? this.#waitingList() : [],
    };
  }

  #enteredWaitingRoom(member: Member): void {
    this.#presence('waiting', member.identity.participantId);
    this.#saveMember(member);
    this.#waitingRoomChanged();
  }

  /** Puts a member in the session: a router for its media, and everyone who may see it is told. */
  async #admit(member: Member, notify: boolean): Promise<void> {
    // Placed in the same tick when a router has room, so that the next person admitted in that
    // tick (several admits in one read) counts this one.
    const home = this.#routerForNewcomer();
    member.home = home instanceof Promise ? await home : home;
    member.stage = 'admitted';
    const id = member.identity.participantId;
    this.#presence('admitted', id, { role: member.identity.role });
    this.#saveMember(member);
    this.#broadcast('participantJoined', [this.#info(member)], id, member);
    if (notify && member.connectionId) this.#notify(id, 'admitted', [this.#sessionState(member, false)]);
    if (member.identity.role === 'facilitator') this.#waitingRoomUpdated();
  }

  /** Acknowledges the room's consent text (its current version); then waiting room or session. */
  async acceptConsent(participantId: string, connectionId: string, version: number): Promise<JoinResponse> {
    const member = this.#connectedMember(participantId, connectionId);
    const consent = this.definition.consent;
    if (member.stage !== 'consent' || !consent) throw new HavenError('INVALID_STATE', 'no consent is asked of you');
    // Only the text in force can be accepted: the refusal carries it, to show and accept instead.
    if (version !== consent.version) {
      throw new HavenError('INVALID_REQUEST', `consent version ${consent.version} is in force, not ${version}`, {
        consent,
      });
    }
    const accepted = { version: consent.version, hash: consent.hash };
    this.#settings.audit({ room: this.id, actor: participantId, action: 'consent.accept', details: accepted });
    this.#presence('consented', participantId, accepted);
    this.#consents.set(participantId, accepted);
    this.#state?.consent(participantId, accepted);
    if (this.definition.waitingRoom) {
      member.stage = 'waiting';
      member.waitingSince = Date.now();
      this.#enteredWaitingRoom(member);
    } else {
      this.#capacityCheck(member);
      await this.#admit(member, false);
    }
    return this.#stageResponse(member, false);
  }

  /** The room's consent text changed (admin API): who has not accepted this version must. */
  setConsent(consent: RoomDefinition['consent']): void {
    this.definition.consent = consent;
  }

  #info(member: Member): ParticipantInfo {
    return {
      id: member.identity.participantId,
      name: member.alias ?? member.identity.name,
      role: member.identity.role,
      tracks: [...member.tracks.values()].map((t) => this.#trackInfo(member, t)),
    };
  }

  #trackInfo(member: Member, track: PublishedTrack): TrackInfo {
    return {
      producerId: track.producer.id,
      participantId: member.identity.participantId,
      kind: track.producer.kind,
      source: track.source,
      paused: track.producer.paused,
    };
  }

  #connectedMember(participantId: string, connectionId: string): Member {
    const member = this.#member(participantId);
    if (member.connectionId !== connectionId) throw new HavenError('INVALID_STATE', 'this connection was replaced');
    return member;
  }

  /** The caller, in the session: someone waiting has no media, no chat, no hands. */
  #connected(participantId: string, connectionId: string): Member {
    const member = this.#connectedMember(participantId, connectionId);
    if (member.stage !== 'admitted') throw new HavenError('FORBIDDEN', 'not admitted to the session yet');
    return member;
  }

  /** The caller, a facilitator in the session. */
  #facilitator(participantId: string, connectionId: string): Member {
    const member = this.#connected(participantId, connectionId);
    if (member.identity.role !== 'facilitator') throw new HavenError('FORBIDDEN', 'facilitators only');
    return member;
  }

  #admittedMembers(): Member[] {
    return [...this.#members.values()].filter((m) => m.stage === 'admitted');
  }

  /** Observers are hidden from participants unless the room shows them. */
  #visibleTo(viewer: Member, subject: Member): boolean {
    return !(
      subject.identity.role === 'observer' &&
      viewer.identity.role === 'participant' &&
      !this.definition.observersVisible
    );
  }

  async createTransport(
    participantId: string,
    connectionId: string,
    direction: TransportDirection,
  ): Promise<TransportOptions> {
    const member = this.#memberForTransport(participantId, connectionId, direction);
    const { webRtcServer } = member.home.worker;
    if (!webRtcServer) throw new HavenError('INTERNAL', 'no WebRTC server on this worker');
    const transport = await member.home.router.createWebRtcTransport({
      webRtcServer,
      enableUdp: true,
      enableTcp: true,
      preferUdp: true,
      initialAvailableOutgoingBitrate: 1_000_000,
      appData: { participantId, direction, kind: 'webrtc' },
    });
    this.#keepTransport(member, transport);
    transport.on('dtlsstatechange', (dtlsState) => {
      if (dtlsState === 'connected') this.#presence('mediaConnected', participantId, { direction });
    });
    return {
      id: transport.id,
      iceParameters: transport.iceParameters,
      iceCandidates: transport.iceCandidates,
      dtlsParameters: transport.dtlsParameters,
    };
  }

  /**
   * A plain RTP transport with SRTP (AES_CM_128_HMAC_SHA1_80), where the node allows them: what
   * the bench's load generator sends synthetic media through (no ICE, no DTLS, no browser).
   */
  async createPlainTransport(
    participantId: string,
    connectionId: string,
    direction: TransportDirection,
  ): Promise<PlainTransportOptions> {
    const listen = this.#settings.plainTransports;
    if (!listen) throw new HavenError('FORBIDDEN', 'plain RTP transports are off on this node');
    const member = this.#memberForTransport(participantId, connectionId, direction);
    const transport = await member.home.router.createPlainTransport({
      listenIp: { ip: listen.listenIp, announcedIp: listen.announcedIp },
      rtcpMux: true,
      comedia: false,
      enableSrtp: true,
      srtpCryptoSuite: 'AES_CM_128_HMAC_SHA1_80',
      appData: { participantId, direction, kind: 'plain' },
    });
    this.#keepTransport(member, transport);
    return {
      id: transport.id,
      ip: transport.tuple.localIp,
      port: transport.tuple.localPort,
      // Created with that one suite.
      srtpParameters: transport.srtpParameters as PlainTransportOptions['srtpParameters'],
    };
  }

  async connectPlainTransport(participantId: string, connectionId: string, request: ConnectPlainTransportRequest) {
    const member = this.#connected(participantId, connectionId);
    const transport = this.#transport(member, request.transportId);
    if (transport.appData.kind !== 'plain') throw new HavenError('INVALID_REQUEST', 'not a plain transport');
    await (transport as PlainTransport).connect({
      ip: request.ip,
      port: request.port,
      srtpParameters: request.srtpParameters,
    });
    this.#presence('mediaConnected', participantId, { direction: String(transport.appData.direction) });
  }

  /** The member asking for a transport in `direction`, whose older one in that direction is closed. */
  #memberForTransport(participantId: string, connectionId: string, direction: TransportDirection): Member {
    const member = this.#connected(participantId, connectionId);
    // One transport per direction: a new one replaces the old (a client recovering from a
    // media reset may ask again before it heard of the old one's end).
    for (const old of member.transports.values()) if (old.appData.direction === direction) old.close();
    if (
      direction === 'send' &&
      !Object.keys(sourceCapability).some((s) => this.#mayPublish(member, s as TrackSource))
    ) {
      throw new HavenError('FORBIDDEN', 'this participant may not publish');
    }
    return member;
  }

  #keepTransport(member: Member, transport: Transport): void {
    member.transports.set(transport.id, transport);
    transport.observer.once('close', () => member.transports.delete(transport.id));
  }

  #transport(member: Member, transportId: string, direction?: TransportDirection): Transport {
    const transport = member.transports.get(transportId);
    if (!transport) throw new HavenError('NOT_FOUND', 'no such transport');
    if (direction && transport.appData.direction !== direction) {
      throw new HavenError('INVALID_REQUEST', `transport is not a ${direction} transport`);
    }
    return transport;
  }

  async connectTransport(participantId: string, connectionId: string, transportId: string, dtlsParameters: unknown) {
    const member = this.#connected(participantId, connectionId);
    await this.#webRtcTransport(member, transportId).connect({ dtlsParameters: dtlsParameters as never });
  }

  async restartIce(participantId: string, connectionId: string, transportId: string) {
    const member = this.#connected(participantId, connectionId);
    return { iceParameters: await this.#webRtcTransport(member, transportId).restartIce() };
  }

  #webRtcTransport(member: Member, transportId: string): WebRtcTransport {
    const transport = this.#transport(member, transportId);
    if (transport.appData.kind !== 'webrtc') throw new HavenError('INVALID_REQUEST', 'not a WebRTC transport');
    return transport as WebRtcTransport;
  }

  #mayPublish(member: Member, source: TrackSource): boolean {
    return member.capabilities[sourceCapability[source]];
  }

  async produce(participantId: string, connectionId: string, request: ProduceRequest): Promise<{ producerId: string }> {
    const member = this.#connected(participantId, connectionId);
    const transport = this.#transport(member, request.transportId, 'send');
    if (sourceKind[request.source] !== request.kind) {
      throw new HavenError('INVALID_REQUEST', `a ${request.source} track is ${sourceKind[request.source]}`);
    }
    if (!this.#mayPublish(member, request.source)) {
      throw new HavenError('FORBIDDEN', `this participant may not publish ${request.source}`);
    }
    if ([...member.tracks.values()].some((t) => t.source === request.source)) {
      throw new HavenError('INVALID_STATE', `${request.source} is published already`);
    }
    // Controlled audio: a new microphone (even a re-published one) starts muted unless asked to unmute.
    const controlled = this.#audioMode === 'controlled' && member.identity.role === 'participant';
    const startMuted = request.source === 'microphone' && controlled && !member.unmuteGranted;
    const producer = await transport.produce({
      kind: request.kind,
      rtpParameters: request.rtpParameters as never,
      paused: startMuted,
      appData: { participantId, source: request.source },
    });
    if (startMuted)
      this.#notify(participantId, 'mutedByFacilitator', [{ source: 'microphone', producerId: producer.id }]);
    const track: PublishedTrack = { producer, source: request.source, home: member.home };
    member.tracks.set(producer.id, track);
    producer.observer.once('close', () => {
      member.tracks.delete(producer.id);
      this.#broadcast('trackUnpublished', [{ producerId: producer.id, participantId }], participantId, member);
    });
    if (producer.kind === 'audio') await member.home.speakers.addProducer({ producerId: producer.id });
    this.#broadcast('trackPublished', [this.#trackInfo(member, track)], participantId, member);
    return { producerId: producer.id };
  }

  #ownTrack(member: Member, producerId: string): PublishedTrack {
    const track = member.tracks.get(producerId);
    if (!track) throw new HavenError('NOT_FOUND', 'no such producer');
    return track;
  }

  async setProducerPaused(participantId: string, connectionId: string, producerId: string, paused: boolean) {
    const member = this.#connected(participantId, connectionId);
    const track = this.#ownTrack(member, producerId);
    const controlled = this.#audioMode === 'controlled' && member.identity.role === 'participant';
    if (!paused && track.source === 'microphone' && controlled && !member.unmuteGranted) {
      throw new HavenError('FORBIDDEN', 'the facilitator controls audio: unmute when asked');
    }
    await this.#pauseTrack(member, track, paused);
  }

  async #pauseTrack(member: Member, track: PublishedTrack, paused: boolean): Promise<void> {
    if (paused) await track.producer.pause();
    else await track.producer.resume();
    this.#broadcast('trackUpdated', [this.#trackInfo(member, track)], member.identity.participantId, member);
  }

  closeProducer(participantId: string, connectionId: string, producerId: string): void {
    const member = this.#connected(participantId, connectionId);
    this.#ownTrack(member, producerId).producer.close();
  }

  #findTrack(producerId: string): { owner: Member; track: PublishedTrack } | undefined {
    for (const owner of this.#members.values()) {
      const track = owner.tracks.get(producerId);
      if (track) return { owner, track };
    }
    return undefined;
  }

  /** Makes `track` available on `router` (once, however many consumers ask at the same time). */
  async #pipe(track: PublishedTrack, target: RoomRouter): Promise<void> {
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

  async consume(participantId: string, connectionId: string, request: ConsumeRequest): Promise<ConsumeResponse> {
    const member = this.#connected(participantId, connectionId);
    const transport = this.#transport(member, request.transportId, 'recv');
    const found = this.#findTrack(request.producerId);
    if (!found) throw new HavenError('NOT_FOUND', 'no such producer');
    if (found.owner === member) throw new HavenError('INVALID_REQUEST', 'cannot consume your own track');
    if ([...member.consumers.values()].some((c) => c.producerId === request.producerId)) {
      throw new HavenError('INVALID_STATE', 'this track is consumed already');
    }
    const router = member.home.router;
    await this.#pipe(found.track, member.home);
    const rtpCapabilities = request.rtpCapabilities as never;
    if (!router.canConsume({ producerId: request.producerId, rtpCapabilities })) {
      throw new HavenError('INVALID_REQUEST', 'the device cannot receive this track');
    }
    const consumer = await transport.consume({
      producerId: request.producerId,
      rtpCapabilities,
      paused: true,
      appData: { participantId },
    });
    member.consumers.set(consumer.id, consumer);
    member.home.consumers++;
    consumer.observer.once('close', () => {
      member.consumers.delete(consumer.id);
      member.home.consumers--;
    });
    consumer.once('producerclose', () => this.#notify(participantId, 'consumerClosed', [{ consumerId: consumer.id }]));
    return {
      id: consumer.id,
      producerId: request.producerId,
      participantId: found.owner.identity.participantId,
      kind: consumer.kind,
      source: found.track.source,
      rtpParameters: consumer.rtpParameters,
    };
  }

  #consumer(member: Member, consumerId: string): Consumer {
    const consumer = member.consumers.get(consumerId);
    if (!consumer) throw new HavenError('NOT_FOUND', 'no such consumer');
    return consumer;
  }

  async setConsumerPaused(participantId: string, connectionId: string, consumerId: string, paused: boolean) {
    const consumer = this.#consumer(this.#connected(participantId, connectionId), consumerId);
    if (paused) await consumer.pause();
    else await consumer.resume();
  }

  /** Picks the simulcast layer for the size the receiver renders at (a hint from the SDK). */
  async setPreferredSize(participantId: string, connectionId: string, consumerId: string, height: number) {
    const consumer = this.#consumer(this.#connected(participantId, connectionId), consumerId);
    if (consumer.type !== 'simulcast') return;
    const layers = this.#findTrack(consumer.producerId)?.track.producer.rtpParameters.encodings?.length ?? 1;
    const wanted = height <= 180 ? 0 : height <= 360 ? 1 : 2;
    await consumer.setPreferredLayers({ spatialLayer: Math.min(wanted, layers - 1), temporalLayer: 2 });
  }

  /** A connection dropped: the place is kept for the grace window, then the participant leaves. */
  disconnected(participantId: string, connectionId: string): void {
    const member = this.#members.get(participantId);
    if (!member || member.connectionId !== connectionId) return;
    member.connectionId = undefined;
    this.#logger.info({ participant: participantId, stage: member.stage }, 'participant disconnected; place kept');
    this.#presence('disconnected', participantId, { stage: member.stage });
    this.#saveMember(member);
    member.graceTimer = setTimeout(() => this.leave(participantId, 'disconnected'), this.#settings.reconnectGraceMs);
    if (member.identity.role === 'facilitator') this.#waitingRoomUpdated();
  }

  /** Removes a participant and its media; those who could see it are told why. */
  leave(participantId: string, reason: LeaveReason): void {
    const member = this.#members.get(participantId);
    if (!member) return;
    clearTimeout(member.graceTimer);
    this.#closeMedia(member);
    this.#members.delete(participantId);
    this.#state?.memberGone(participantId);
    this.#attendanceWatchers.delete(participantId);
    this.#lowerHand(participantId);
    if (member.stage === 'admitted') this.#broadcast('participantLeft', [{ participantId, reason }], undefined, member);
    else if (member.stage === 'waiting') this.#waitingRoomChanged();
    if (member.identity.role === 'facilitator') this.#waitingRoomUpdated();
    if (this.#spotlight === participantId) this.#setSpotlight(null);
    this.#logger.info({ participant: participantId, reason }, 'participant left');
    this.#presence(reason === 'removed' ? 'removed' : 'left', participantId, { reason, stage: member.stage });
    this.#armEmptyTimer();
  }

  /* ---- Waiting room ------------------------------------------------------------------------ */

  #waitingList(): WaitingEntry[] {
    return [...this.#members.values()]
      .filter((m) => m.stage === 'waiting')
      .sort((a, b) => a.waitingSince - b.waitingSince)
      .map((m) => ({
        participantId: m.identity.participantId,
        name: m.alias ?? m.identity.name,
        waitingSince: m.waitingSince,
      }));
  }

  #waitingInfo(reason?: WaitingInfo['reason']): WaitingInfo {
    const facilitatorPresent = this.#admittedMembers().some((m) => m.identity.role === 'facilitator' && m.connectionId);
    return { facilitatorPresent, message: this.#waitingMessage, ...(reason ? { reason } : {}) };
  }

  /** The waiting list changed: facilitators see it live. */
  #waitingRoomChanged(): void {
    const waiting = this.#waitingList();
    for (const m of this.#admittedMembers()) {
      if (m.identity.role === 'facilitator' && m.connectionId)
        this.#notify(m.identity.participantId, 'waitingRoomChanged', [{ waiting }]);
    }
  }

  /** What the waiting room says changed (a message, a facilitator came or went): tell those waiting. */
  #waitingRoomUpdated(): void {
    const info = this.#waitingInfo();
    for (const m of this.#members.values()) {
      if (m.stage === 'waiting' && m.connectionId) this.#notify(m.identity.participantId, 'waiting', [info]);
    }
  }

  #target(participantId: string, stage?: Stage): Member {
    const member = this.#members.get(participantId);
    if (!member || (stage && member.stage !== stage)) {
      throw new HavenError('NOT_FOUND', stage === 'waiting' ? 'nobody waiting with that id' : 'no such participant');
    }
    return member;
  }

  /** Audits a facilitator's action; `run` performs it. A refusal is audited with its code, then thrown. */
  async #moderate<T>(actor: string, action: string, target: string | undefined, run: () => T | Promise<T>): Promise<T> {
    try {
      const result = await run();
      this.#settings.audit({ room: this.id, actor, action, target, result: 'ok' });
      return result;
    } catch (err) {
      const code = err instanceof HavenError ? err.code : 'INTERNAL';
      this.#settings.audit({ room: this.id, actor, action, target, result: code });
      throw err;
    }
  }

  async admit(actorId: string, connectionId: string, targetId: string): Promise<void> {
    this.#facilitator(actorId, connectionId);
    await this.#moderate(actorId, 'admit', targetId, async () => {
      const target = this.#target(targetId, 'waiting');
      const refusal = this.#capacityRefusal(target);
      if (refusal) {
        this.#toldSessionFull([target]);
        throw refusal;
      }
      await this.#admit(target, true);
      this.#waitingRoomChanged();
      this.#toldSessionFull(this.#waitingMembers());
    });
  }

  /** Admits everyone waiting, in arrival order, up to the room's capacity; names who is left. */
  async admitAll(actorId: string, connectionId: string): Promise<AdmitAllResponse> {
    this.#facilitator(actorId, connectionId);
    return this.#moderate(actorId, 'admitAll', undefined, async () => {
      const admittedIds: string[] = [];
      for (const target of this.#waitingMembers()) {
        if (this.#capacityRefusal(target)) continue;
        await this.#admit(target, true);
        admittedIds.push(target.identity.participantId);
      }
      this.#waitingRoomChanged();
      const left = this.#waitingMembers();
      this.#toldSessionFull(left);
      return {
        admitted: admittedIds.length,
        admittedIds,
        leftWaiting: left.map((m) => ({ participantId: m.identity.participantId, reason: 'ROOM_FULL' as const })),
      };
    });
  }

  /** Those in the waiting room, in the order they arrived there. */
  #waitingMembers(): Member[] {
    return [...this.#members.values()]
      .filter((m) => m.stage === 'waiting')
      .sort((a, b) => a.waitingSince - b.waitingSince);
  }

  /** Tells each of `waiting` who cannot come in now that the session is full. */
  #toldSessionFull(waiting: Member[]): void {
    for (const m of waiting) {
      if (m.connectionId && this.#capacityRefusal(m)) {
        this.#notify(m.identity.participantId, 'waiting', [this.#waitingInfo('sessionFull')]);
      }
    }
  }

  async deny(actorId: string, connectionId: string, targetId: string, reason?: string): Promise<void> {
    this.#facilitator(actorId, connectionId);
    await this.#moderate(actorId, 'deny', targetId, () => {
      this.#target(targetId, 'waiting');
      this.#presence('denied', targetId);
      this.#notify(targetId, 'denied', [{ reason }]);
      this.#members.delete(targetId);
      this.#state?.memberGone(targetId);
      this.#waitingRoomChanged();
      this.safeEmit('evict', targetId);
      this.#armEmptyTimer();
    });
  }

  async messageWaitingRoom(actorId: string, connectionId: string, text: string): Promise<void> {
    this.#facilitator(actorId, connectionId);
    await this.#moderate(actorId, 'messageWaitingRoom', undefined, () => {
      this.#waitingMessage = text;
      this.#waitingRoomUpdated();
    });
  }

  async moveToWaitingRoom(actorId: string, connectionId: string, targetId: string): Promise<void> {
    this.#facilitator(actorId, connectionId);
    await this.#moderate(actorId, 'moveToWaitingRoom', targetId, () => {
      const target = this.#target(targetId, 'admitted');
      if (target.identity.role !== 'participant') throw new HavenError('FORBIDDEN', 'only participants wait');
      this.#closeMedia(target);
      target.stage = 'waiting';
      target.waitingSince = Date.now();
      this.#presence('movedToWaitingRoom', targetId);
      this.#saveMember(target);
      this.#lowerHand(targetId);
      this.#broadcast('participantLeft', [{ participantId: targetId, reason: 'movedToWaitingRoom' }], targetId, target);
      if (target.connectionId) this.#notify(targetId, 'waiting', [this.#waitingInfo('movedByFacilitator')]);
      this.#waitingRoomChanged();
    });
  }

  /* ---- Moderation of media ------------------------------------------------------------------ */

  #trackOf(member: Member, source: TrackSource): PublishedTrack | undefined {
    return [...member.tracks.values()].find((t) => t.source === source);
  }

  /** Pauses (microphone, camera) or closes (screen) a participant's track, and tells them. */
  async #silence(target: Member, source: TrackSource): Promise<boolean> {
    const track = this.#trackOf(target, source);
    if (source === 'microphone' && target.unmuteGranted) {
      target.unmuteGranted = false;
      this.#state?.unmuteGranted(target.identity.participantId, false);
    }
    if (!track || (source !== 'screen' && track.producer.paused)) return false;
    const id = target.identity.participantId;
    this.#notify(id, 'mutedByFacilitator', [{ source, producerId: track.producer.id }]);
    if (source === 'screen') track.producer.close();
    else await this.#pauseTrack(target, track, true);
    return true;
  }

  #moderatedMedia(actorId: string, connectionId: string, targetId: string, action: string, source: TrackSource) {
    this.#facilitator(actorId, connectionId);
    return this.#moderate(actorId, action, targetId, async () => {
      await this.#silence(this.#target(targetId, 'admitted'), source);
    });
  }

  mute(actorId: string, connectionId: string, targetId: string): Promise<void> {
    return this.#moderatedMedia(actorId, connectionId, targetId, 'mute', 'microphone');
  }

  disableCamera(actorId: string, connectionId: string, targetId: string): Promise<void> {
    return this.#moderatedMedia(actorId, connectionId, targetId, 'disableCamera', 'camera');
  }

  stopScreenShare(actorId: string, connectionId: string, targetId: string): Promise<void> {
    return this.#moderatedMedia(actorId, connectionId, targetId, 'stopScreenShare', 'screen');
  }

  /** Mutes everyone but the facilitators. */
  async muteAll(actorId: string, connectionId: string): Promise<{ muted: number }> {
    this.#facilitator(actorId, connectionId);
    return this.#moderate(actorId, 'muteAll', undefined, async () => {
      // All at once: each person is told without waiting for the others' producers to pause.
      const silenced = await Promise.all(
        this.#admittedMembers()
          .filter((m) => m.identity.role !== 'facilitator')
          .map((m) => this.#silence(m, 'microphone')),
      );
      return { muted: silenced.filter(Boolean).length };
    });
  }

  async setAudioMode(actorId: string, connectionId: string, mode: AudioMode): Promise<void> {
    this.#facilitator(actorId, connectionId);
    await this.#moderate(actorId, 'setAudioMode', undefined, () => {
      this.#audioMode = mode;
      for (const m of this.#members.values()) m.unmuteGranted = false;
      this.#state?.audioMode(mode);
      this.#broadcast('audioModeChanged', [{ mode }]);
    });
  }

  /** Asks a participant to unmute: only they can (consent); in controlled audio mode it allows them to. */
  async requestUnmute(actorId: string, connectionId: string, targetId: string): Promise<void> {
    this.#facilitator(actorId, connectionId);
    await this.#moderate(actorId, 'requestUnmute', targetId, () => {
      const target = this.#target(targetId, 'admitted');
      target.unmuteGranted = true;
      this.#state?.unmuteGranted(targetId, true);
      this.#notify(targetId, 'unmuteRequested', [{ by: actorId }]);
    });
  }

  /* ---- Moderation of presence --------------------------------------------------------------- */

  /** Removes a participant or observer (its token revoked); with `ban`, for the rest of the session. */
  async remove(actorId: string, connectionId: string, targetId: string, ban: boolean): Promise<void> {
    this.#facilitator(actorId, connectionId);
    await this.#moderate(actorId, ban ? 'ban' : 'remove', targetId, async () => {
      const target = this.#target(targetId);
      if (target.identity.role === 'facilitator') throw new HavenError('FORBIDDEN', 'a facilitator cannot be removed');
      // The token that brought them in is spent either way; a ban also refuses any new one.
      await this.#settings.revoke(target.identity);
      if (ban) {
        // Stored before it takes effect: the answer "banned" must hold on a node taking over.
        await this.#state?.ban(targetId);
        this.#banned.add(targetId);
      }
      this.#notify(targetId, 'removed', [{ banned: ban }]);
      this.leave(targetId, 'removed');
      this.safeEmit('evict', targetId);
    });
  }

  async lock(actorId: string, connectionId: string, locked: boolean): Promise<void> {
    this.#facilitator(actorId, connectionId);
    await this.#moderate(actorId, locked ? 'lock' : 'unlock', undefined, async () => {
      // Stored before it takes effect: the answer must hold on a node taking over.
      await this.#state?.locked(locked);
      this.#locked = locked;
      this.#broadcast('roomLocked', [{ locked }]);
    });
  }

  /** Checks the caller may end the session (signaling ends it through the room manager). */
  async authorizeEnd(actorId: string, connectionId: string): Promise<void> {
    this.#facilitator(actorId, connectionId);
    this.#settings.audit({ room: this.id, actor: actorId, action: 'endSession', result: 'ok' });
  }

  async setDisplayName(actorId: string, connectionId: string, targetId: string, name: string): Promise<void> {
    this.#facilitator(actorId, connectionId);
    await this.#moderate(actorId, 'setDisplayName', targetId, () => {
      const target = this.#target(targetId);
      target.alias = name;
      this.#state?.alias(targetId, name);
      this.#scheduleAttendancePush();
      if (target.stage === 'admitted')
        this.#broadcast('displayNameChanged', [{ participantId: targetId, name }], undefined, target);
      else if (target.stage === 'waiting') this.#waitingRoomChanged();
    });
  }

  async spotlight(actorId: string, connectionId: string, targetId: string | null): Promise<void> {
    this.#facilitator(actorId, connectionId);
    await this.#moderate(actorId, 'spotlight', targetId ?? undefined, () => {
      if (targetId !== null) this.#target(targetId, 'admitted');
      this.#setSpotlight(targetId);
    });
  }

  #setSpotlight(participantId: string | null): void {
    this.#spotlight = participantId;
    this.#state?.spotlight(participantId);
    this.#broadcast('spotlightChanged', [{ participantId }]);
  }

  /* ---- Hands -------------------------------------------------------------------------------- */

  /** Tells the facilitators and the person concerned. */
  #notifyHand<K extends 'handRaised' | 'handLowered'>(
    participantId: string,
    name: K,
    args: ServerNotifications[K],
  ): void {
    for (const m of this.#admittedMembers()) {
      const id = m.identity.participantId;
      if (m.connectionId && (id === participantId || m.identity.role === 'facilitator')) this.#notify(id, name, args);
    }
  }

  raiseHand(participantId: string, connectionId: string): void {
    this.#connected(participantId, connectionId);
    if (this.#hands.has(participantId)) return;
    const raisedAt = Date.now();
    this.#hands.set(participantId, raisedAt);
    this.#state?.hand(participantId, raisedAt);
    this.#notifyHand(participantId, 'handRaised', [{ participantId, raisedAt }]);
  }

  /** Lowers one's own hand, or (a facilitator) anyone's. */
  async lowerHand(participantId: string, connectionId: string, targetId = participantId): Promise<void> {
    if (targetId === participantId) {
      this.#connected(participantId, connectionId);
      this.#lowerHand(targetId);
      return;
    }
    this.#facilitator(participantId, connectionId);
    await this.#moderate(participantId, 'lowerHand', targetId, () => {
      if (!this.#hands.has(targetId)) throw new HavenError('NOT_FOUND', 'no raised hand for that participant');
      this.#lowerHand(targetId);
    });
  }

  #lowerHand(participantId: string): void {
    if (!this.#hands.delete(participantId)) return;
    this.#state?.hand(participantId, null);
    this.#notifyHand(participantId, 'handLowered', [{ participantId }]);
  }

  /* ---- Chat --------------------------------------------------------------------------------- */

  /** Sends to everyone, to the facilitators, or privately (to or from a facilitator, or where the room allows it). */
  sendChat(
    participantId: string,
    connectionId: string,
    text: string,
    to: ChatAudience | string,
  ): { messageId: string } {
    const sender = this.#connected(participantId, connectionId);
    if (!sender.capabilities.chat) throw new HavenError('FORBIDDEN', 'chat is not allowed for you');
    const admitted = this.#admittedMembers();
    let recipients: Member[];
    if (to === 'everyone') recipients = admitted.filter((m) => this.#visibleTo(m, sender));
    else if (to === 'facilitators')
      recipients = admitted.filter((m) => m === sender || m.identity.role === 'facilitator');
    else {
      const target = this.#members.get(to);
      if (target?.stage !== 'admitted' || !this.#visibleTo(sender, target)) {
        throw new HavenError('NOT_FOUND', 'no such participant');
      }
      const withFacilitator = sender.identity.role === 'facilitator' || target.identity.role === 'facilitator';
      if (!withFacilitator && !this.definition.privateChat) {
        throw new HavenError('FORBIDDEN', 'private messages between participants are off in this room');
      }
      recipients = [sender, target];
    }
    const ids = recipients.map((m) => m.identity.participantId);
    const message = this.#chat.add(participantId, to, text, ids);
    if (this.definition.keepChat) this.#settings.chatArchive.keep(this.id, message);
    for (const m of recipients) if (m.connectionId) this.#notify(m.identity.participantId, 'chatMessage', [message]);
    return { messageId: message.id };
  }

  async deleteChatMessage(actorId: string, connectionId: string, messageId: string): Promise<void> {
    this.#facilitator(actorId, connectionId);
    await this.#moderate(actorId, 'deleteChatMessage', undefined, () => {
      const recipients = this.#chat.delete(messageId);
      if (!recipients) throw new HavenError('NOT_FOUND', 'no such message');
      if (this.definition.keepChat) this.#settings.chatArchive.forget(this.id, messageId);
      for (const id of recipients) {
        if (this.#members.get(id)?.connectionId) this.#notify(id, 'chatMessageDeleted', [{ messageId }]);
      }
    });
  }

  /** Ends the session for everyone and closes the room. */
  end(reason: string): void {
    if (this.#closed) return;
    this.#presence('sessionEnded', undefined, { reason: reason.replace(new RegExp(`[^${idCharacters}]+`, 'g'), '-') });
    for (const [id, member] of this.#members) if (member.connectionId) this.#notify(id, 'sessionEnded', [{ reason }]);
    this.close();
  }

  #closeMedia(member: Member): void {
    for (const transport of [...member.transports.values()]) transport.close();
  }

  #armEmptyTimer(): void {
    if (this.#members.size > 0 || this.#closed) return;
    clearTimeout(this.#emptyTimer);
    this.#emptyTimer = setTimeout(() => {
      this.#logger.info('room empty past its timeout');
      this.#presence('sessionEnded', undefined, { reason: 'empty' });
      this.close();
    }, this.#settings.emptyTimeoutMs);
  }

  #notify<K extends NotificationName>(participantId: string, name: K, args: ServerNotifications[K]): void {
    this.safeEmit('notify', participantId, { name, args } as Notification);
  }

  /** Tells every connected member in the session (but `except`) who may see `subject`. */
  #broadcast<K extends NotificationName>(
    name: K,
    args: ServerNotifications[K],
    except?: string,
    subject?: Member,
  ): void {
    for (const member of this.#admittedMembers()) {
      const id = member.identity.participantId;
      if (id === except || !member.connectionId) continue;
      if (subject && !this.#visibleTo(member, subject)) continue;
      this.#notify(id, name, args);
    }
  }

  #presence(type: AttendanceEventType, participant?: string, details?: NewAttendanceEvent['details']): void {
    this.#settings.attendance({ type, room: this.id, participant, details });
    // The session is over: nothing of it is to be restored (a node stopping closes rooms without this).
    if (type === 'sessionEnded') this.#state?.clear();
    if (attendanceViewEvents.has(type)) this.#scheduleAttendancePush();
  }

  /* ---- Live attendance (facilitators) ------------------------------------------------------- */

  /** Who is present now, since when, seconds so far; names as facilitators see them. Changes are pushed from then on. */
  async liveAttendance(actorId: string, connectionId: string): Promise<AttendanceSnapshot> {
    this.#facilitator(actorId, connectionId);
    this.#attendanceWatchers.add(actorId);
    return this.#attendanceSnapshot();
  }

  async #attendanceSnapshot(): Promise<AttendanceSnapshot> {
    const { asOf, participants } = await this.#settings.liveAttendance(this.definition);
    return {
      asOf,
      participants: participants.map((p) => {
        const member = this.#members.get(p.participantId);
        return {
          ...p,
          // A restored member's name is unknown until they rejoin (the SDK keeps one it saw).
          name: member ? (member.alias ?? (member.restored ? null : member.identity.name)) : null,
          role: member?.identity.role ?? p.role,
          reconnecting: member !== undefined && member.connectionId === undefined,
        };
      }),
    };
  }

  #connectedWatchers(): Member[] {
    return this.#admittedMembers().filter(
      (m) =>
        m.identity.role === 'facilitator' && m.connectionId && this.#attendanceWatchers.has(m.identity.participantId),
    );
  }

  /** One push for the changes of the next second, so that a burst (admit all, an ending) costs one read. */
  #scheduleAttendancePush(): void {
    if (this.#attendancePush || this.#closed) return;
    this.#attendancePush = setTimeout(() => {
      this.#attendancePush = undefined;
      void this.#pushAttendance();
    }, attendancePushDelayMs);
  }

  async #pushAttendance(): Promise<void> {
    if (this.#closed || this.#connectedWatchers().length === 0) return;
    let snapshot: AttendanceSnapshot;
    try {
      snapshot = await this.#attendanceSnapshot();
    } catch (err) {
      // The next change pushes again; a facilitator may also ask.
      this.#logger.warn({ err: { message: (err as Error).message } }, 'live attendance not pushed');
      return;
    }
    if (this.#closed) return;
    for (const m of this.#connectedWatchers()) this.#notify(m.identity.participantId, 'attendanceUpdated', [snapshot]);
  }

  #cancelEmptyTimer(): void {
    clearTimeout(this.#emptyTimer);
    this.#emptyTimer = undefined;
  }

  /** Closes the room: members' media, routers, timers. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#emptyTimer);
    clearTimeout(this.#attendancePush);
    clearTimeout(this.#stateResync);
    for (const member of this.#members.values()) clearTimeout(member.graceTimer);
    this.#members.clear();
    this.#chat.clear();
    for (const { router } of this.#routers) router.close();
    this.#logger.info('room closed');
    this.safeEmit('closed');
  }
}
