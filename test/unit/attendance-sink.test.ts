import { pino } from 'pino';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { attendanceEventTypes, type NewAttendanceEvent } from '../../server/attendance/event.ts';
import { attendanceSink, attendanceWebhook } from '../../server/attendance/sink.ts';
import type { WebhookEventInput, WebhookEventType } from '../../server/webhooks/events.ts';

test('session starts and ends and removals are webhooks; no other attendance event is', () => {
  const mapped = Object.fromEntries(
    attendanceEventTypes.flatMap((t) => (attendanceWebhook(t) ? [[t, attendanceWebhook(t)]] : [])),
  );
  assert.equal(mapped, {
    sessionStarted: 'session.started',
    sessionEnded: 'session.ended',
    removed: 'participant.removed',
  });
});

function sink(served: boolean) {
  const recorded: NewAttendanceEvent[] = [];
  const sent: [WebhookEventType, WebhookEventInput][] = [];
  const record = (event: NewAttendanceEvent) => {
    recorded.push(event);
    return { ...event, id: '1-0', at: 1 };
  };
  const deliver = attendanceSink({
    serves: (room) => served && room === 'r1',
    recorder: { record },
    webhook: (type, input) => sent.push([type, input]),
    logger: pino({ level: 'silent' }),
  });
  return { deliver, recorded, sent };
}

test('an event of a room served here is recorded, and sent as its webhook if it has one', () => {
  const { deliver, recorded, sent } = sink(true);
  deliver({ room: 'r1', type: 'admitted', participant: 'p1' });
  deliver({ room: 'r1', type: 'removed', participant: 'p1', details: { by: 'f1' } });
  assert.equal(
    recorded.map((e) => e.type),
    ['admitted', 'removed'],
  );
  assert.equal(sent, [['participant.removed', { room: 'r1', participant: 'p1' }]]);
});

test('an event of a room this node no longer serves is neither recorded nor sent', () => {
  const { deliver, recorded, sent } = sink(false);
  deliver({ room: 'r1', type: 'sessionEnded' });
  assert.equal(recorded, []);
  assert.equal(sent, []);
});

test.run();
