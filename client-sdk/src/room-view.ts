/**
 * The room as this client sees it: what the join answer said of it, kept current by the room's
 * notifications (lock, audio mode, spotlight, raised hands, the loudest speaker), each change
 * emitted as the SessionClient's event; and what is said in it (chat messages, passed on; in an
 * E2EE room decrypted first, and emitted in the order they arrived, deletions included).
 */

import type { NotificationHandlers, RoomNotification } from './notification-router.ts';
import {
  type AudioMode,
  type ChatMessage,
  maxChatLength,
  type RaisedHand,
  type RoomInfo,
  type ServerNotifications,
  type SessionState,
} from './protocol/index.ts';
import { type ReceivedChatMessage, reportError, type SessionEvents } from './session-events.ts';

/** Checks what `sendChat()` is given. @throws TypeError for an empty or too long `text`, or an empty `to`. */
export function checkChatArguments(text: unknown, to: unknown): void {
  if (typeof text !== 'string' || text.length === 0 || text.length > maxChatLength)
    throw new TypeError(`text must be a string of 1 to ${maxChatLength} characters`);
  if (typeof to !== 'string' || to.length === 0) throw new TypeError('to must be a non-empty string');
}

/** Opens chat messages of an E2EE room (e2ee/key-exchange.ts). */
export interface ChatOpener {
  /** Whether the room's chat is encrypted. */
  readonly enabled: boolean;
  openChat(message: ChatMessage): Promise<ReceivedChatMessage>;
}

/** The room notifications a {@link RoomView} applies. */
export type RoomViewNotification = Extract<
  RoomNotification,
  | 'activeSpeaker'
  | 'roomLocked'
  | 'audioModeChanged'
  | 'spotlightChanged'
  | 'handRaised'
  | 'handLowered'
  | 'chatMessage'
  | 'chatMessageDeleted'
>;

export class RoomView {
  readonly #events: SessionEvents;
  #room: RoomInfo | undefined;
  #audioMode: AudioMode = 'open';
  #locked = false;
  #spotlight: string | null = null;
  #hands: readonly RaisedHand[] = [];
  #activeSpeakerId: string | null = null;
  readonly #chat: ChatOpener | undefined;
  /** Encrypted chat being opened, emitted in arrival order; undefined when nothing is pending. */
  #chatQueue: Promise<void> | undefined;
  /** Changes on leaving the room: what was still being opened is not emitted. */
  #chatGeneration = 0;

  /** @param chat - opens an E2EE room's chat; without it, chat is passed on as it is. */
  constructor(events: SessionEvents, chat?: ChatOpener) {
    this.#events = events;
    this.#chat = chat;
  }

  get room(): RoomInfo | undefined {
    return this.#room;
  }

  get audioMode(): AudioMode {
    return this.#audioMode;
  }

  get locked(): boolean {
    return this.#locked;
  }

  get spotlight(): string | null {
    return this.#spotlight;
  }

  /** Oldest first; a new frozen array after each change. */
  get hands(): ReadonlyArray<RaisedHand> {
    return this.#hands;
  }

  get activeSpeakerId(): string | null {
    return this.#activeSpeakerId;
  }

  /** The room as an admission describes it. */
  applySession(session: SessionState): void {
    this.#room = session.room;
    this.#audioMode = session.audioMode;
    this.#locked = session.locked;
    this.#spotlight = session.spotlight;
    this.#setHands(session.hands.map((hand) => ({ ...hand })));
  }

  /** Out of the room (still connected): nobody speaks, no hands in view. */
  leave(): void {
    this.#activeSpeakerId = null;
    this.#setHands([]);
    this.#chatGeneration++;
    this.#chatQueue = undefined;
  }

  /**
   * Someone left this client's view: no longer the loudest speaker here (in breakouts the server
   * names only speakers one sees, so it may never say who speaks next).
   */
  leftView(participantId: string): void {
    if (participantId === this.#activeSpeakerId) this.#setActiveSpeaker(null);
  }

  /** The handlers of the notifications it applies. */
  handlers(): NotificationHandlers<RoomViewNotification> {
    return {
      activeSpeaker: ({ participantId }) => this.#setActiveSpeaker(participantId),
      roomLocked: ({ locked }) => {
        this.#locked = locked;
        this.#events.safeEmit('roomLocked', locked);
      },
      audioModeChanged: ({ mode }) => {
        this.#audioMode = mode;
        this.#events.safeEmit('audioModeChanged', mode);
      },
      spotlightChanged: ({ participantId }) => {
        this.#spotlight = participantId;
        this.#events.safeEmit('spotlightChanged', participantId);
      },
      handRaised: (hand) => this.#raiseHand(hand),
      handLowered: ({ participantId }) => {
        this.#setHands(this.#hands.filter((hand) => hand.participantId !== participantId));
        this.#events.safeEmit('handLowered', participantId);
      },
      chatMessage: (message) => this.#receiveChat(message),
      chatMessageDeleted: ({ messageId }) =>
        this.#inChatOrder(async () => this.#events.safeEmit('chatMessageDeleted', messageId)),
    };
  }

  /** A chat message: as it is, or (E2EE) decrypted; either way after those that came before it. */
  #receiveChat(message: ChatMessage): void {
    const chat = this.#chat;
    if (!chat?.enabled) {
      this.#inChatOrder(async () => this.#events.safeEmit('chatMessage', { ...message }));
      return;
    }
    // Opened at once, emitted in turn.
    const opened = chat.openChat({ ...message });
    this.#inChatOrder(async () => this.#events.safeEmit('chatMessage', await opened));
  }

  /** Runs `emit` now if no chat is pending, else after what is (unless the room is left meanwhile). */
  #inChatOrder(emit: () => Promise<unknown>): void {
    if (!this.#chatQueue && !this.#chat?.enabled) {
      void emit();
      return;
    }
    const generation = this.#chatGeneration;
    const run = (this.#chatQueue ?? Promise.resolve())
      .then(async () => {
        if (generation === this.#chatGeneration) await emit();
      })
      .catch((error) => reportError(this.#events, error));
    this.#chatQueue = run;
    void run.then(() => {
      if (this.#chatQueue === run) this.#chatQueue = undefined;
    });
  }

  #setActiveSpeaker(participantId: string | null): void {
    if (participantId === this.#activeSpeakerId) return;
    this.#activeSpeakerId = participantId;
    this.#events.safeEmit('activeSpeakerChanged', participantId);
  }

  #raiseHand(hand: ServerNotifications['handRaised'][0]): void {
    this.#setHands([...this.#hands.filter((h) => h.participantId !== hand.participantId), { ...hand }]);
    this.#events.safeEmit('handRaised', { ...hand });
  }

  #setHands(hands: RaisedHand[]): void {
    this.#hands = Object.freeze(hands.sort((a, b) => a.raisedAt - b.raisedAt));
  }
}
