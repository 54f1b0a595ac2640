/**
 * A session's chat: who may send what to whom (everyone, the facilitators, or privately to or
 * from a facilitator, or between participants where the room allows it; during breakouts,
 * everyone is one's own group plus the facilitators wherever they are), and the messages kept
 * in memory (with who received each) so that a facilitator can delete one everywhere it went.
 * Chat is dropped with the room, unless the room keeps it (`keepChat`, in the archive). In an
 * E2EE room the text is the clients' ciphertext, kept and relayed as it is; clear text is refused.
 */
import { randomBytes } from 'node:crypto';
import type { ChatAudience, ChatMessage } from '../../client-sdk/src/protocol/index.ts';
import { e2eeChatPattern, maxChatLength, maxEncryptedChatLength } from '../../client-sdk/src/protocol/index.ts';
import { HavenError } from '../errors.ts';
import type { Audience } from './audience.ts';
import type { Member } from './member.ts';
import type { RoomDefinition } from './room-store.ts';

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

/** Where a room with `keepChat` keeps its messages after the session. */
export interface ChatKeeper {
  keep(room: string, message: ChatMessage): void;
  forget(room: string, messageId: string): void;
}

export class Chat {
  readonly #log = new ChatLog();
  readonly #definition: RoomDefinition;
  readonly #members: ReadonlyMap<string, Member>;
  readonly #audience: Audience;
  readonly #archive: ChatKeeper;

  constructor(
    definition: RoomDefinition,
    members: ReadonlyMap<string, Member>,
    audience: Audience,
    archive: ChatKeeper,
  ) {
    this.#definition = definition;
    this.#members = members;
    this.#audience = audience;
    this.#archive = archive;
  }

  /** Sends to everyone, to the facilitators, or privately (to or from a facilitator, or where the room allows it). */
  send(sender: Member, text: string, to: ChatAudience | string): { messageId: string } {
    if (!sender.capabilities.chat) throw new HavenError('FORBIDDEN', 'chat is not allowed for you');
    this.#checkText(text);
    const recipients = this.#recipients(sender, to);
    const message = this.#log.add(
      sender.id,
      to,
      text,
      recipients.map((m) => m.id),
    );
    if (this.#definition.keepChat) this.#archive.keep(this.#definition.id, message);
    for (const m of recipients) this.#audience.tell(m, 'chatMessage', [message]);
    return { messageId: message.id };
  }

  /** Ciphertext in an E2EE room (signaling lets through up to its length), else clear text of the usual length. */
  #checkText(text: string): void {
    if (this.#definition.e2ee === true) {
      if (text.length > maxEncryptedChatLength || !e2eeChatPattern.test(text)) {
        throw new HavenError('INVALID_REQUEST', 'this room is end-to-end encrypted: send encrypted chat');
      }
    } else if (text.length > maxChatLength) {
      throw new HavenError('INVALID_REQUEST', `text: at most ${maxChatLength} characters`);
    }
  }

  #recipients(sender: Member, to: ChatAudience | string): Member[] {
    const audience = this.#audience;
    const admitted = audience.admitted();
    // Breakout groups: everyone means one's own group, and the facilitators wherever they are.
    if (to === 'everyone') return admitted.filter((m) => audience.visibleTo(m, sender) || m.role === 'facilitator');
    if (to === 'facilitators') return admitted.filter((m) => m === sender || m.role === 'facilitator');
    const target = this.#members.get(to);
    const withFacilitator = sender.role === 'facilitator' || target?.role === 'facilitator';
    // A facilitator and someone in another group still reach each other.
    const reachable = target && (audience.visibleTo(sender, target) || withFacilitator);
    if (target?.stage !== 'admitted' || !reachable) {
      throw new HavenError('NOT_FOUND', 'no such participant');
    }
    if (!withFacilitator && !this.#definition.privateChat) {
      throw new HavenError('FORBIDDEN', 'private messages between participants are off in this room');
    }
    return [sender, target];
  }

  /** Deletes a message everywhere it went (and from the archive). */
  delete(messageId: string): void {
    const recipients = this.#log.delete(messageId);
    if (!recipients) throw new HavenError('NOT_FOUND', 'no such message');
    if (this.#definition.keepChat) this.#archive.forget(this.#definition.id, messageId);
    for (const id of recipients) {
      const member = this.#members.get(id);
      if (member) this.#audience.tell(member, 'chatMessageDeleted', [{ messageId }]);
    }
  }

  clear(): void {
    this.#log.clear();
  }
}
