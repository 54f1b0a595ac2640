/**
 * Where a room's attendance events go on a node: recorded (the stream programs bill by) and, for
 * session and removal events, sent as webhooks; dropped when this node no longer serves the room.
 */
import type { Logger } from '../logger.ts';
import type { WebhookEventInput, WebhookEventType } from '../webhooks/events.ts';
import type { AttendanceEventType, NewAttendanceEvent } from './event.ts';
import type { AttendanceRecorder } from './recorder.ts';

const webhookOf: Partial<Record<AttendanceEventType, WebhookEventType>> = {
  sessionStarted: 'session.started',
  sessionEnded: 'session.ended',
  removed: 'participant.removed',
};

/** The webhook an attendance event is also sent as, if any: a clinic hears of sessions and removals. */
export function attendanceWebhook(type: AttendanceEventType): WebhookEventType | undefined {
  return webhookOf[type];
}

export interface AttendanceSinkDeps {
  /** Whether this node serves the room now (holds its lease). */
  serves: (room: string) => boolean;
  recorder: Pick<AttendanceRecorder, 'record'>;
  /** Queues a webhook without waiting; must not throw. */
  webhook: (type: WebhookEventType, input: WebhookEventInput) => void;
  logger: Logger;
}

export function attendanceSink(deps: AttendanceSinkDeps): (event: NewAttendanceEvent) => void {
  return (event) => {
    // A node that lost the room (frozen past its lease, cut off) no longer speaks for it.
    if (!deps.serves(event.room)) {
      deps.logger.warn({ room: event.room, type: event.type }, 'attendance event dropped: room not served here');
      return;
    }
    deps.recorder.record(event);
    const hook = attendanceWebhook(event.type);
    if (hook) deps.webhook(hook, { room: event.room, participant: event.participant });
  };
}
