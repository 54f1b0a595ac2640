/** The attendance events a clinic also hears of as webhooks, and as which. */
import type { AttendanceEventType } from '../attendance/event.ts';
import type { WebhookEventType } from './events.ts';

const webhookOf: Partial<Record<AttendanceEventType, WebhookEventType>> = {
  sessionStarted: 'session.started',
  sessionEnded: 'session.ended',
  removed: 'participant.removed',
};

/** The webhook an attendance event is sent as, if any. */
export function attendanceWebhook(type: AttendanceEventType): WebhookEventType | undefined {
  return webhookOf[type];
}
