/**
 * socket.io signaling: authenticates each connection by its access token, then for every
 * request: rate limit → validate the payload → check the connection's state → call its room →
 * acknowledge `{ ok, data }` or `{ ok: false, error }`. Rooms' notifications are delivered
 * through a socket.io room per participant (`p:<room>:<participant>`), so that they reach the
 * participant's current connection wherever it is.
 */
import type { Server, Socket } from 'socket.io';
import {
  type Ack,
  type ClientToServerEvents,
  type Empty,
  type JoinResponse,
  protocolVersion,
  type RequestName,
  type RequestOf,
  type ResponseOf,
  type ServerToClientEvents,
} from '../../client-sdk/src/protocol/index.ts';
import type { TokenVerifier, VerifiedIdentity } from '../auth/tokens.ts';
import type { Cluster } from '../cluster/cluster.ts';
import { answerFailure, HavenError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { Room } from '../rooms/room.ts';
import type { RoomManager } from '../rooms/room-manager.ts';
import { guarded, loggableEventName } from './guard.ts';
import { authorize, stageIn } from './permissions.ts';
import { TokenBucket } from './rate-limit.ts';
import { describeIssues, isRequestName, requestSchemas } from './schemas.ts';

export interface SignalingOptions {
  verifier: TokenVerifier;
  rooms: RoomManager;
  logger: Logger;
  rateLimit: number;
  rateBurst: number;
  /** Where connections for a room belong among the nodes; absent: every room is served here. */
  cluster?: Pick<Cluster, 'route' | 'serves'>;
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

type Handler<K extends RequestName> = (
  socket: HavenSocket,
  room: Room,
  request: RequestOf<K>,
) => Promise<ResponseOf<K>>;

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

  async function admitConnection(socket: HavenSocket): Promise<void> {
    const token = (socket.handshake.auth as { token?: unknown } | undefined)?.token;
    const identity = await options.verifier.verify(token);
    // A room served by another node: REDIRECT there (the SDK follows), before anything else.
    await options.cluster?.route(identity.roomId);
    socket.data.identity = identity;
    socket.data.bucket = new TokenBucket(options.rateLimit, options.rateBurst);
  }

  io.use((socket, next) => {
    admitConnection(socket).then(
      () => next(),
      (err) => {
        // The verifier logged the reason with the token's hash; socket.io carries `data` to the client.
        const error = answerFailure(err, logger, { listener: 'connect' });
        next(Object.assign(new Error(error.code), { data: error }));
      },
    );
  });

  const sessionHandlers: { [K in Exclude<RequestName, 'join'>]: Handler<K> } = {
    createTransport: (s, room, r) => room.createTransport(pid(s), s.id, r.direction),
    connectTransport: async (s, room, r) => {
      await room.connectTransport(pid(s), s.id, r.transportId, r.dtlsParameters);
      return {};
    },
    restartIce: (s, room, r) => room.restartIce(pid(s), s.id, r.transportId),
    createPlainTransport: (s, room, r) => room.createPlainTransport(pid(s), s.id, r.direction),
    connectPlainTransport: async (s, room, r) => {
      await room.connectPlainTransport(pid(s), s.id, r);
      return {};
    },
    produce: (s, room, r) => room.produce(pid(s), s.id, r),
    pauseProducer: async (s, room, r) => {
      await room.setProducerPaused(pid(s), s.id, r.producerId, true);
      return {};
    },
    resumeProducer: async (s, room, r) => {
      await room.setProducerPaused(pid(s), s.id, r.producerId, false);
      return {};
    },
    closeProducer: async (s, room, r) => {
      room.closeProducer(pid(s), s.id, r.producerId);
      return {};
    },
    consume: (s, room, r) => room.consume(pid(s), s.id, r),
    resumeConsumer: async (s, room, r) => {
      await room.setConsumerPaused(pid(s), s.id, r.consumerId, false);
      return {};
    },
    pauseConsumer: async (s, room, r) => {
      await room.setConsumerPaused(pid(s), s.id, r.consumerId, true);
      return {};
    },
    setPreferredSize: async (s, room, r) => {
      await room.setPreferredSize(pid(s), s.id, r.consumerId, r.height);
      return {};
    },
    acceptConsent: (s, room, r) => room.acceptConsent(pid(s), s.id, r.version),
    raiseHand: async (s, room) => {
      room.raiseHand(pid(s), s.id);
      return {};
    },
    lowerHand: async (s, room, r) => {
      await room.lowerHand(pid(s), s.id, r.participantId);
      return {};
    },
    sendChat: async (s, room, r) => room.sendChat(pid(s), s.id, r.text, r.to),
    admit: (s, room, r) => done(room.admit(pid(s), s.id, r.participantId)),
    admitAll: (s, room) => room.admitAll(pid(s), s.id),
    deny: (s, room, r) => done(room.deny(pid(s), s.id, r.participantId, r.reason)),
    messageWaitingRoom: (s, room, r) => done(room.messageWaitingRoom(pid(s), s.id, r.text)),
    moveToWaitingRoom: (s, room, r) => done(room.moveToWaitingRoom(pid(s), s.id, r.participantId)),
    mute: (s, room, r) => done(room.mute(pid(s), s.id, r.participantId)),
    muteAll: (s, room) => room.muteAll(pid(s), s.id),
    setAudioMode: (s, room, r) => done(room.setAudioMode(pid(s), s.id, r.mode)),
    requestUnmute: (s, room, r) => done(room.requestUnmute(pid(s), s.id, r.participantId)),
    disableCamera: (s, room, r) => done(room.disableCamera(pid(s), s.id, r.participantId)),
    stopScreenShare: (s, room, r) => done(room.stopScreenShare(pid(s), s.id, r.participantId)),
    remove: (s, room, r) => done(room.remove(pid(s), s.id, r.participantId, r.ban ?? false)),
    lockRoom: (s, room, r) => done(room.lock(pid(s), s.id, r.locked)),
    endSession: async (s, room) => {
      await room.authorizeEnd(pid(s), s.id);
      await options.rooms.end(room.id, 'ended by the facilitator');
      return {};
    },
    setDisplayName: (s, room, r) => done(room.setDisplayName(pid(s), s.id, r.participantId, r.name)),
    spotlight: (s, room, r) => done(room.spotlight(pid(s), s.id, r.participantId)),
    deleteChatMessage: (s, room, r) => done(room.deleteChatMessage(pid(s), s.id, r.messageId)),
    liveAttendance: (s, room) => room.liveAttendance(pid(s), s.id),
    leave: async (s, room) => {
      room.leave(pid(s), 'left');
      s.data.room = undefined;
      await s.leave(participantChannel(room.id, pid(s)));
      return {};
    },
  };

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
      joined = await room.join(identity, socket.id);
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
    const handler = sessionHandlers[name] as Handler<typeof name>;
    return handler(socket, room, parsed.data as never);
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
          const reply = (response: Ack<unknown>) => (typeof ack === 'function' ? ack(response) : undefined);
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
