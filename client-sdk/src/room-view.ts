/**
 * The room as this client sees it: what the join answer said of it, kept current by the room's
 * notifications (lock, audio mode, spotlight, raised hands, the loudest speaker), each change
 * emitted as the SessionClient's event; and what is said in it (chat messages, passed on).
 */

import type { NotificationHandlers, RoomNotification } from './notification-router.ts';
import type { AudioMode, RaisedHand, RoomInfo, ServerNotifications, SessionState } from './protocol/index.ts';
import type { SessionEvents } from './session-events.ts';

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

  constructor(events: SessionEvents) {
    this.#events = events;
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
      chatMessage: (message) => this.#events.safeEmit('chatMessage', { ...message }),
      chatMessageDeleted: ({ messageId }) => this.#events.safeEmit('chatMessageDeleted', messageId),
    };
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
