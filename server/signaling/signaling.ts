/**
 * socket.io signaling: authenticates each connection by its access token, then for every
 * request: rate limit → validate the payload → check the connection's state → look its member
 * up in its room (once, against the connection) → call the member's media or the room's part →
 * acknowledge `{ ok, data }` or `{ ok: false, error }`. Rooms' notifications are delivered
 * through a socket.io room per participant (`p:<room>:<participant>`), so that they reach the
 * participant's current connection wherever it is.
 */
import type { Server, Socket } from 'socket.io';
import {
  type Ack,
  type ClientToServerEvents,
  type Empty,
  type ErrorCode,
  type JoinResponse,
  protocolVersion,
  type RequestName,
  type RequestOf,
  type ResponseOf,
  type ServerToClientEvents,
} from '../../client-sdk/src/protocol/index.ts';
import type { TokenVerifier, VerifiedIdentity } from '../auth/tokens.ts';
import type { Cluster } from '../cluster/cluster.ts';
import { answerFailure, describeIssues, HavenError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { Member } from '../rooms/member.ts';
import type { Room } from '../rooms/room.ts';
import type { RoomManager } from '../rooms/room-manager.ts';
import { AddressCap, type PerAddressOptions } from './address-cap.ts';
import { guarded, loggableEventName } from './guard.ts';
import { authorize, callerNeed, stageIn } from './permissions.ts';
import { TokenBucket } from './rate-limit.ts';
import { isRequestName, requestSchemas } from './schemas.ts';

export interface SignalingOptions {
  verifier: TokenVerifier;
  rooms: RoomManager;
  logger: Logger;
  rateLimit: number;
  rateBurst: number;
  /** Where connections for a room belong among the nodes; absent: every room is served here. */
  cluster?: Pick<Cluster, 'route' | 'serves'>;
  /** Told of each connection admitted and each request answered (for metrics); must not throw. */
  observer?: SignalingObserver;
  /** The cap on connections open at once from one client address; absent: no cap. */
  perAddress?: PerAddressOptions;
}

/**
 * What signaling tells an observer: names from the protocol's fixed set only (`unknown` otherwise);
 * `connect` is the handshake (token, per-address cap, redirect).
 */
export interface SignalingObserver {
  connected(identity: VerifiedIdentity): void;
  answered(event: RequestName | 'connect' | 'unknown', code: 'ok' | ErrorCode): void;
}

export interface SignalingHandle {
  /** Tells a room's connections the node hands the room over, then closes them: the SDK reconnects. */
  moveRoom(roomId: string, reason: 'draining' | 'failover'): void;
}

interface SocketData {
  identity: VerifiedIdentity;
  room?: Room;
  bucket: TokenBucket;
}

type HavenSocket = Socket<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>;
export type HavenSocketServer = Server<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>;

/** A request from `member` (the connection's participant, speaking through it) in `room`. */
interface Call {
  socket: HavenSocket;
  room: Room;
  member: Member;
}

type Handler<K extends RequestName> = (call: Call, request: RequestOf<K>) => Promise<ResponseOf<K>>;

const participantChannel = (roomId: string, participantId: string) => `p:${roomId}:${participantId}`;
/** Every connection joined to a room (to move them all when the room leaves this node). */
const roomChannel = (roomId: string) => `r:${roomId}`;

export function attachSignaling(io: HavenSocketServer, options: SignalingOptions): SignalingHandle {
  const logger = options.logger.child({ component: 'signaling' });

  // Every listener given to socket.io or a room is guarded: what it throws is logged, never fatal.
  options.rooms.on(
    'roomOpened',
    guarded(logger, 'roomOpened', (room: Room) => {
      room.on(
        'notify',
        guarded(logger, 'notify', (participantId, { name, args }) => {
          io.to(participantChannel(room.id, participantId)).emit(name, ...(args as [never]));
        }),
      );
      // A polite disconnect: socket.io sends it after the notification that explains it.
      room.on(
        'evict',
        guarded(logger, 'evict', (participantId) =>
          io.in(participantChannel(room.id, participantId)).disconnectSockets(false),
        ),
      );
    }),
  );

  const addressCap = options.perAddress && new AddressCap(options.perAddress, logger);

  async function admitConnection(socket: HavenSocket): Promise<void> {
    // First, and cheap: a flood from one address is refused before its tokens are even checked.
    const release = addressCap?.hold(socket);
    try {
      await verifyConnection(socket);
    } catch (err) {
      release?.();
      throw err;
    }
  }

  async function verifyConnection(socket: HavenSocket): Promise<void> {
    const token = (socket.handshake.auth as { token?: unknown } | undefined)?.token;
    const identity = await options.verifier.verify(token);
    // A room served by another node: REDIRECT there (the SDK follows), before anything else.
    await options.cluster?.route(identity.roomId);
    socket.data.identity = identity;
    socket.data.bucket = new TokenBucket(options.rateLimit, options.rateBurst);
    options.observer?.connected(identity);
  }

  io.use((socket, next) => {
    admitConnection(socket).then(
      () => {
        options.observer?.answered('connect', 'ok');
        next();
      },
      (err) => {
        // The verifier logged the reason with the token's hash; socket.io carries `data` to the client.
        const error = answerFailure(err, logger, { listener: 'connect' });
        options.observer?.answered('connect', error.code);
        next(Object.assign(new Error(error.code), { data: error }));
      },
    );
  });

  // Each handler gets the caller, looked up once (and checked against its connection) by `dispatch`.
  const sessionHandlers: { [K in Exclude<RequestName, 'join' | 'leave'>]: Handler<K> } = {
    createTransport: ({ member }, r) => member.media.createTransport(r.direction),
    connectTransport: ({ member }, r) => done(member.media.connectTransport(r.transportId, r.dtlsParameters)),
    restartIce: ({ member }, r) => member.media.restartIce(r.transportId),
    createPlainTransport: ({ member }, r) => member.media.createPlainTransport(r.direction),
    connectPlainTransport: ({ member }, r) => done(member.media.connectPlainTransport(r)),
    produce: ({ member }, r) => member.media.produce(r),
    pauseProducer: ({ member }, r) => done(member.media.setProducerPaused(r.producerId, true)),
    resumeProducer: ({ member }, r) => done(member.media.setProducerPaused(r.producerId, false)),
    closeProducer: async ({ member }, r) => {
      member.media.closeProducer(r.producerId);
      return {};
    },
    consume: ({ member }, r) => member.media.consume(r),
    resumeConsumer: ({ member }, r) => done(member.media.setConsumerPaused(r.consumerId, false)),
    pauseConsumer: ({ member }, r) => done(member.media.setConsumerPaused(r.consumerId, true)),
    setPreferredSize: ({ member }, r) => done(member.media.setPreferredSize(r.consumerId, r.height)),
    setAudioOnly: async ({ member }, r) => {
      member.media.downlink.setAudioOnly(r.enabled);
      return {};
    },
    acceptConsent: ({ room, member }, r) => room.waitingRoom.acceptConsent(member, r.version),
    raiseHand: async ({ room, member }) => {
      room.hands.raise(member);
      return {};
    },
    lowerHand: ({ room, member }, r) => done(room.moderation.lowerHand(member, r.participantId ?? member.id)),
    sendChat: async ({ room, member }, r) => room.chat.send(member, r.text, r.to),
    admit: ({ room, member }, r) => done(room.moderation.admit(member, r.participantId)),
    admitAll: ({ room, member }) => room.moderation.admitAll(member),
    deny: ({ room, member }, r) => done(room.moderation.deny(member, r.participantId, r.reason)),
    messageWaitingRoom: ({ room, member }, r) => done(room.moderation.messageWaitingRoom(member, r.text)),
    moveToWaitingRoom: ({ room, member }, r) => done(room.moderation.moveToWaitingRoom(member, r.participantId)),
    mute: ({ room, member }, r) => done(room.moderation.mute(member, r.participantId)),
    muteAll: ({ room, member }) => room.moderation.muteAll(member),
    suggestAudioOnly: ({ room, member }, r) => done(room.moderation.suggestAudioOnly(member, r.participantId)),
    setAudioMode: ({ room, member }, r) => done(room.moderation.setAudioMode(member, r.mode)),
    requestUnmute: ({ room, member }, r) => done(room.moderation.requestUnmute(member, r.participantId)),
    disableCamera: ({ room, member }, r) => done(room.moderation.disableCamera(member, r.participantId)),
    stopScreenShare: ({ room, member }, r) => done(room.moderation.stopScreenShare(member, r.participantId)),
    remove: ({ room, member }, r) => done(room.moderation.remove(member, r.participantId, r.ban ?? false)),
    lockRoom: ({ room, member }, r) => done(room.moderation.lock(member, r.locked)),
    endSession: async ({ room, member }) => {
      room.moderation.authorizeEnd(member);
      await options.rooms.end(room.id, 'ended by the facilitator');
      return {};
    },
    setDisplayName: ({ room, member }, r) => done(room.moderation.setDisplayName(member, r.participantId, r.name)),
    spotlight: ({ room, member }, r) => done(room.moderation.spotlight(member, r.participantId)),
    deleteChatMessage: ({ room, member }, r) => done(room.moderation.deleteChatMessage(member, r.messageId)),
    liveAttendance: ({ room, member }) => room.liveAttendance.watch(member),
    e2eeDistribute: async ({ room, member }, r) => room.e2ee.distribute(member, r),
    e2eeKeyReceived: async ({ room, member }, r) => {
      room.e2ee.received(member, r.epoch);
      return {};
    },
    createBreakouts: ({ room, member }, r) => room.breakouts.create(member, r),
    updateBreakouts: ({ room, member }, r) => room.breakouts.update(member, r.groups),
    startBreakouts: ({ room, member }, r) => room.breakouts.start(member, r),
    moveToBreakout: ({ room, member }, r) => room.breakouts.move(member, r.participantId, r.breakoutId),
    visitBreakout: ({ room, member }, r) => room.breakouts.visit(member, r.breakoutId),
    broadcastToBreakouts: ({ room, member }, r) => room.breakouts.broadcast(member, r),
    recallBreakouts: ({ room, member }) => done(room.breakouts.recall(member)),
    askForHelp: ({ room, member }) => done(room.breakouts.askForHelp(member)),
  };

  /** Leaves the room (from any stage; the participant's place goes at once). */
  async function leave(socket: HavenSocket, room: Room): Promise<Empty> {
    room.leave(pid(socket), 'left');
    socket.data.room = undefined;
    await socket.leave(participantChannel(room.id, pid(socket)));
    return {};
  }

  async function join(socket: HavenSocket, request: RequestOf<'join'>): Promise<JoinResponse> {
    if (request.protocolVersion !== protocolVersion) {
      throw new HavenError('INVALID_REQUEST', `protocol version ${protocolVersion} is required`);
    }
    if (socket.data.room) throw new HavenError('INVALID_STATE', 'joined already');
    const { identity } = socket.data;
    const room = await options.rooms.roomFor(identity);
    const channel = participantChannel(room.id, identity.participantId);
    // Subscribed before the room answers: what it tells this participant from the answer on (a
    // track published or a hand raised in the same tick) must not fall between the two.
    await socket.join([channel, roomChannel(room.id)]);
    let joined: Awaited<ReturnType<Room['join']>>;
    try {
      joined = await room.join(identity, socket.id, request.e2ee);
    } catch (err) {
      await socket.leave(channel);
      await socket.leave(roomChannel(room.id));
      throw err;
    }
    const { response, replacedConnectionId } = joined;
    if (replacedConnectionId) {
      io.in(replacedConnectionId).socketsLeave(channel);
      io.to(replacedConnectionId).emit('replaced', {});
      io.in(replacedConnectionId).disconnectSockets(true);
    }
    socket.data.room = room;
    room.once(
      'closed',
      guarded(logger, 'closed', () => {
        if (socket.data.room === room) socket.data.room = undefined;
      }),
    );
    return response;
  }

  async function dispatch(socket: HavenSocket, name: RequestName, payload: unknown): Promise<unknown> {
    const parsed = safeParse(name, payload);
    if (!parsed.success) throw new HavenError('INVALID_REQUEST', describeIssues(parsed.error));
    authorize(name, socket.data.identity.role, stageIn(socket.data.room, pid(socket)));
    if (name === 'join') return join(socket, parsed.data as RequestOf<'join'>);
    const room = socket.data.room;
    if (!room || room.closed) throw new HavenError('INVALID_STATE', 'join the room first');
    // A node that lost the room (its lease ran out while it was frozen, say) serves nothing more of it.
    if (options.cluster && !options.cluster.serves(room.id)) {
      throw new HavenError('UNAVAILABLE', 'the room moved to another node; reconnecting will find it');
    }
    if (name === 'leave') return leave(socket, room);
    const member = room.caller(pid(socket), socket.id, callerNeed(name));
    const handler = sessionHandlers[name] as Handler<typeof name>;
    return handler({ socket, room, member }, parsed.data as never);
  }

  io.on(
    'connection',
    guarded(logger, 'connection', (socket: HavenSocket) => {
      const { identity } = socket.data;
      const log = logger.child({ room: identity.roomId, participant: identity.participantId, connection: socket.id });
      log.debug('connected');

      // Any frame at all: names and arguments are whatever the client sent (numbers, nothing, …).
      socket.onAny(
        guarded(log, 'event', (name: unknown, ...args: unknown[]) => {
          const ack = args[args.length - 1];
          const known = typeof name === 'string' && isRequestName(name) ? name : 'unknown';
          const reply = (response: Ack<unknown>) => {
            if (typeof ack === 'function') ack(response);
            options.observer?.answered(known, response.ok ? 'ok' : response.error.code);
          };
          if (!socket.data.bucket.take()) {
            reply({ ok: false, error: { code: 'RATE_LIMITED', message: 'too many requests; slow down' } });
            return;
          }
          if (typeof name !== 'string' || !isRequestName(name)) {
            log.warn({ event: loggableEventName(name) }, 'unknown event');
            reply({ ok: false, error: { code: 'UNKNOWN_EVENT', message: 'unknown event' } });
            return;
          }
          if (typeof ack !== 'function') {
            log.warn({ event: name }, 'request without acknowledgement ignored');
            return;
          }
          dispatch(socket, name, args.length > 1 ? args[0] : undefined).then(
            (data) => reply({ ok: true, data }),
            (err: unknown) => {
              const error = isMediasoupInputError(name, err)
                ? { code: 'INVALID_REQUEST' as const, message: 'invalid media parameters' }
                : answerFailure(err, log, { event: name });
              if (error.code !== 'INTERNAL') log.info({ event: name, code: error.code }, 'request refused');
              reply({ ok: false, error });
            },
          );
        }),
      );

      socket.on(
        'disconnect',
        guarded(log, 'disconnect', (reason: string) => {
          log.debug({ reason }, 'disconnected');
          socket.data.room?.disconnected(identity.participantId, socket.id);
        }),
      );
    }),
  );

  return {
    moveRoom(roomId, reason) {
      io.to(roomChannel(roomId)).emit('moved', { reason });
      io.in(roomChannel(roomId)).disconnectSockets(true);
    },
  };
}

/** A payload checked against its request's schema; a check that cannot even run (a payload too deep to walk, say) is the payload's fault. */
function safeParse(name: RequestName, payload: unknown) {
  try {
    return requestSchemas[name].safeParse(payload);
  } catch {
    throw new HavenError('INVALID_REQUEST', 'payload: cannot be read (too deep or malformed)');
  }
}

/** The empty acknowledgement of a request that returns nothing, once it is done. */
function done(work: Promise<void>): Promise<Empty> {
  return work.then(() => ({}));
}

function pid(socket: HavenSocket): string {
  return socket.data.identity.participantId;
}

/** Requests whose payload carries parameters that only mediasoup itself can check. */
const mediaParameterRequests = new Set<RequestName>([
  'connectTransport',
  'connectPlainTransport',
  'produce',
  'consume',
]);

/**
 * mediasoup throws TypeError for parameters it cannot use (bad RTP parameters, DTLS, …). Only
 * for those requests: elsewhere a TypeError is a fault of the server, answered INTERNAL.
 */
function isMediasoupInputError(name: RequestName, err: unknown): boolean {
  if (!mediaParameterRequests.has(name)) return false;
  return err instanceof TypeError || (err instanceof Error && err.name === 'UnsupportedError');
}
