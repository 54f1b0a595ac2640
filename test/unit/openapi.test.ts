import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { errorCodes } from '../../client-sdk/src/protocol/index.ts';
import { createRoomSchema } from '../../server/http/admin-schemas.ts';
import { webhookEventTypes } from '../../server/webhooks/events.ts';

const spec = JSON.parse(readFileSync(join(import.meta.dirname, '..', '..', 'docs', 'openapi.json'), 'utf8'));

test('the OpenAPI file describes every admin route', () => {
  const described = Object.entries(spec.paths).flatMap(([path, ops]) =>
    Object.keys(ops as object)
      .filter((k) => k !== 'parameters')
      .map((method) => `${method.toUpperCase()} ${path}`),
  );
  assert.equal(described.sort(), [
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

test('it describes every webhook event', () => {
  assert.equal(Object.keys(spec.webhooks), [...webhookEventTypes]);
  assert.equal(spec.components.schemas.WebhookEvent.properties.type.enum, [...webhookEventTypes]);
});

test.run();
