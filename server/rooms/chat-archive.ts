/**
 * Chat kept after a session, for rooms created with `keepChat` (off by default: chat normally
 * lives only in the room's memory). One Redis hash per room, message id → message, so that a
 * facilitator's deletion removes it here too; retention purges messages past their age.
 */
import type { Redis } from 'ioredis';
import { z } from 'zod';
import type { ChatMessage } from '../../client-sdk/src/protocol/index.ts';
import type { Logger } from '../logger.ts';
import { parseJson } from '../redis/codec.ts';

/** Where kept chat lives: one hash per room, `<prefix>chat:<room>`. */
export const chatArchivesPrefix = (prefix = 'haven:') => `${prefix}chat:`;
export const chatArchiveKey = (room: string, prefix = 'haven:') => `${chatArchivesPrefix(prefix)}${room}`;

const keptMessageSchema = z.object({ sentAt: z.number() });

/** A kept message's `sentAt` (what retention ages it by); one that cannot be read is Infinity, never guessed old. */
export function keptMessageSentAt(json: string): number {
  return parseJson(keptMessageSchema, json)?.sentAt ?? Number.POSITIVE_INFINITY;
}

export class ChatArchive {
  readonly #redis: Redis;
  readonly #logger: Logger;
  readonly #prefix: string;

  constructor(redis: Redis, logger: Logger, prefix = 'haven:') {
    this.#redis = redis;
    this.#logger = logger.child({ component: 'chat-archive' });
    this.#prefix = prefix;
  }

  keep(room: string, message: ChatMessage): void {
    this.#redis.hset(chatArchiveKey(room, this.#prefix), message.id, JSON.stringify(message)).catch((err: Error) => {
      // The message id only: never its text.
      this.#logger.error({ room, message: message.id, err: { message: err.message } }, 'chat message not kept');
    });
  }

  forget(room: string, messageId: string): void {
    this.#redis.hdel(chatArchiveKey(room, this.#prefix), messageId).catch((err: Error) => {
      this.#logger.error({ room, message: messageId, err: { message: err.message } }, 'chat message not forgotten');
    });
  }

  /** A room's kept messages, oldest first. */
  async messages(room: string): Promise<ChatMessage[]> {
    const all = Object.values(await this.#redis.hgetall(chatArchiveKey(room, this.#prefix)));
    return all.map((json) => JSON.parse(json) as ChatMessage).sort((a, b) => a.sentAt - b.sentAt);
  }
}
