/**
 * One Haven node process for a test file, started by uvu's `before` and stopped by its `after`:
 * with the test secret and admin key (and, if asked, an embedded Redis of its own), rooms created
 * through the admin API, and socket clients that are closed at the end whether the tests passed
 * or not.
 */
import type { Redis, RedisOptions } from 'ioredis';
import type { Test } from 'uvu';
import * as assert from 'uvu/assert';
import { type NodeProcess, startNodeProcess } from '../../bench/node-process.ts';
import type { Role } from '../../client-sdk/src/protocol/index.ts';
import type { EmbeddedRedis } from '../../server/redis/embedded-redis.ts';
import { lateBound, runAll } from './hooks.ts';
import { admin, connect, type TestSocket, testAdminKey, testSecret, token } from './signaling-client.ts';
import { testRedis } from './test-redis.ts';

/** What every test node is started with: the secret tests mint tokens with, the admin key, any WebRTC port. */
export const testNodeEnv = {
  HAVEN_AUTH_SECRET: testSecret,
  HAVEN_ADMIN_API_KEY: testAdminKey,
  HAVEN_MEDIA_WEBRTC_PORT: '0',
} as const;

export interface SessionNodeOptions {
  /** The node's environment besides `testNodeEnv` (which it may override); `undefined` leaves a variable out. */
  env?: Record<string, string | undefined>;
  /** Start an embedded Redis for this file and give it to the node as `REDIS_URL`. */
  redis?: boolean;
  /** Rooms from `newRoom` are named `<roomPrefix>-<pid>-<n>`. */
  roomPrefix?: string;
  /** What `newRoom` creates a room with, before the caller's own fields. */
  room?: object;
  /** Whether `before` starts the node (default); without it, the file starts its nodes with `startNode`. */
  start?: boolean;
}

export function sessionNode(test: Test, options: SessionNodeOptions = {}) {
  const node = lateBound<NodeProcess>('the node');
  const redis = options.redis ? testRedis() : undefined;
  const sockets: TestSocket[] = [];
  const started: NodeProcess[] = [];
  const atEnd: (() => unknown)[] = [];
  let roomSeq = 0;

  const startNode = async (env: Record<string, string | undefined> = {}): Promise<NodeProcess> => {
    const merged: Record<string, string | undefined> = {
      ...(redis ? { REDIS_URL: redis.server.url } : {}),
      ...testNodeEnv,
      ...options.env,
      ...env,
    };
    const given = Object.entries(merged).filter(([, v]) => v !== undefined) as [string, string][];
    const spawned = await startNodeProcess(Object.fromEntries(given));
    started.push(spawned);
    return spawned;
  };

  test.before(async () => {
    await redis?.start();
    if (options.start !== false) node.set(await startNode());
  });

  test.after(() =>
    runAll([
      ...atEnd,
      ...sockets.map((s) => () => s.close()),
      ...started.map((n) => () => n.kill()),
      () => redis?.stop(),
    ]),
  );

  return {
    /** The node (once `before` has run). */
    node: node.handle,
    /** The embedded Redis (with `redis: true`), and the folder it keeps its data in (removed at the end). */
    redis: redis?.server as EmbeddedRedis,
    redisDir: redis?.dir as string,

    /** The sockets closed at the end: `client`'s, and any a test connected some other way and pushed. */
    sockets,

    /** A client of the embedded Redis (with `redis: true`), connected in `before` and disconnected in `after`. */
    redisClient(clientOptions: RedisOptions = {}): Redis {
      if (!redis) throw new Error('sessionNode: redisClient needs `redis: true`');
      return redis.client(clientOptions);
    },

    /** Creates a room through the admin API of the node (or of `url`), expecting 201; resolves with its id. */
    async newRoom(extra: object = {}, url = node.handle.url): Promise<string> {
      const id = `${options.roomPrefix ?? 'room'}-${process.pid}-${++roomSeq}`;
      const res = await admin(url, 'POST', '/v1/rooms', { id, ...options.room, ...extra });
      assert.is(res.status, 201, JSON.stringify(res.body));
      return id;
    },

    /** A socket connected with a token for `sub` in `room`, closed at the end. */
    async client(
      room: string,
      sub: string,
      role: Role = 'participant',
      claims: Parameters<typeof token>[3] = {},
    ): Promise<TestSocket> {
      const socket = await connect(node.handle.url, token(room, sub, role, claims));
      sockets.push(socket);
      return socket;
    },

    /** Runs `step` at the end, before the sockets close and the node stops. */
    atEnd(step: () => unknown): void {
      atEnd.push(step);
    },

    /** Kills the node and starts a fresh one with the same environment. */
    async restart(): Promise<NodeProcess> {
      node.get()?.kill();
      node.set(await startNode());
      return node.handle;
    },

    /** Starts another node (killed at the end), with `env` over the file's own. */
    startNode,
  };
}
