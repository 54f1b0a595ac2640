/**
 * A session's chat, in memory: who may send what to whom is decided by the room; this keeps the
 * messages (and who received each) so that a facilitator can delete one everywhere it went. It is
 * dropped with the room: chat is not kept after the session.
 */
import { randomBytes } from 'node:crypto';
import type { ChatMessage } from '../../client-sdk/src/protocol/index.ts';

interface Sent {
  message: ChatMessage;
  recipients: string[];
}

/** Most messages kept for deletion; older ones can no longer be deleted. */
const maxKept = 2_000;

export class ChatLog {
  readonly #sent = new Map<string, Sent>();

  /** Stores a message and returns it with its id and time. */
  add(from: string, to: string, text: string, recipients: string[], now = Date.now()): ChatMessage {
    const message: ChatMessage = { id: `msg_${randomBytes(8).toString('hex')}`, from, to, text, sentAt: now };
    this.#sent.set(message.id, { message, recipients });
    if (this.#sent.size > maxKept) this.#sent.delete(this.#sent.keys().next().value as string);
    return message;
  }

  /** Forgets a message; returns who had received it (undefined if unknown). */
  delete(messageId: string): string[] | undefined {
    const sent = this.#sent.get(messageId);
    this.#sent.delete(messageId);
    return sent?.recipients;
  }

  clear(): void {
    this.#sent.clear();
  }
}
