import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { errorCodes } from '../../client-sdk/src/protocol/index.ts';
import { attendanceCsvHeader } from '../../server/attendance/csv.ts';
import { httpStatusOf } from '../../server/errors.ts';
import { createRoomSchema } from '../../server/http/admin-schemas.ts';
import { deliveryStatuses } from '../../server/webhooks/deliveries.ts';
import { webhookEventTypes } from '../../server/webhooks/events.ts';
import { schemaErrors, spec } from '../helpers/openapi-schemas.ts';

test('the OpenAPI file describes every admin route', () => {
  const described = Object.entries(spec.paths).flatMap(([path, ops]) =>
    Object.keys(ops as object)
      .filter((k) => k !== 'parameters')
      .map((method) => `${method.toUpperCase()} ${path}`),
  );
  assert.equal(described.sort(), [
    'GET /healthz',
    'GET /readyz',
    'GET /v1/participants/{id}/attendance',
    'GET /v1/rooms',
    'GET /v1/rooms/{id}',
    'GET /v1/rooms/{id}/attendance',
    'GET /v1/webhooks/deliveries',
    'GET /v1/webhooks/endpoints',
    'POST /v1/rooms',
    'POST /v1/rooms/{id}/end',
    'PUT /v1/rooms/{id}/consent',
  ]);
});

test('its room body has exactly the fields the API accepts', () => {
  assert.equal(
    Object.keys(spec.components.schemas.NewRoom.properties).sort(),
    Object.keys(createRoomSchema.shape).sort(),
  );
});

test('its error codes are the protocol’s', () => {
  assert.equal(spec.components.schemas.ErrorAnswer.properties.error.properties.code.enum, [...errorCodes]);
});

test('each error code is documented with the HTTP status the API answers it with', () => {
  assert.equal(spec.components.schemas.ErrorAnswer['x-haven-http-status'], httpStatusOf);
});

test('its CSV header row is the one the API writes', () => {
  const csv = spec.paths['/v1/rooms/{id}/attendance'].get.responses['200'].content['text/csv'];
  assert.equal(csv.schema['x-haven-csv-header'], [...attendanceCsvHeader]);
  assert.ok(csv.description.includes(attendanceCsvHeader.join(',')));
});

test('its delivery statuses are the store’s', () => {
  assert.equal(spec.components.schemas.Delivery.properties.status.enum.sort(), [...deliveryStatuses].sort());
  assert.equal(Object.keys(spec.components.schemas.DeliveryCounts.properties).sort(), [...deliveryStatuses].sort());
});

test('every schema compiles as JSON Schema 2020-12, every $ref resolving', () => {
  for (const name of Object.keys(spec.components.schemas)) schemaErrors(name, null);
});

test('the schemas refuse what the API never answers', () => {
  assert.equal(schemaErrors('Health', { status: 'ok' }), []);
  assert.ok(schemaErrors('Health', { status: 'ok', extra: 1 }).length > 0, 'no undocumented field');
  assert.ok(schemaErrors('RoomEndedAnswer', { ok: true, data: { id: 'r', ended: false } }).length > 0);
  assert.ok(schemaErrors('ErrorAnswer', { ok: false, error: { code: 'NOPE', message: 'x' } }).length > 0);
});

test('every operation documents its answers with a schema, and every error code with its status', () => {
  for (const [path, ops] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(ops as Record<string, { responses: Record<string, unknown> }>)) {
      if (method === 'parameters') continue;
      for (const [status, response] of Object.entries(op.responses)) {
        const r = response as { $ref?: string; content?: Record<string, { schema?: unknown }> };
        assert.ok(r.$ref || Object.values(r.content ?? {}).every((c) => c.schema), `${method} ${path} ${status}`);
      }
    }
  }
});

test('it describes every webhook event', () => {
  assert.equal(Object.keys(spec.webhooks), [...webhookEventTypes]);
  assert.equal(spec.components.schemas.WebhookEvent.properties.type.enum, [...webhookEventTypes]);
});

test.run();
