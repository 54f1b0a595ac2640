/** client-sdk/README.md's "Raw protocol" names every request, notification and error code of the wire contract. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { errorCodes, protocolVersion, socketPath } from '../../client-sdk/src/protocol/index.ts';
import { notificationNames } from '../../client-sdk/src/signaling.ts';
import { requestNames } from '../../server/signaling/schemas.ts';

const sdk = join(import.meta.dirname, '..', '..', 'client-sdk');
const readme = readFileSync(join(sdk, 'README.md'), 'utf8');
const section = readme.slice(readme.indexOf('## Raw protocol'));
const named = (name: string) => section.includes(`\`${name}\``);

test('the section exists and states the path, the transport and the version', () => {
  assert.ok(readme.includes('## Raw protocol'));
  assert.ok(named(socketPath));
  assert.ok(named('websocket'));
  assert.ok(section.includes(`{ protocolVersion: ${protocolVersion} }`));
  assert.ok(section.includes('{ ok: true, data }') && section.includes('{ ok: false, error: { code, message, … } }'));
});

test('it names every request', () => {
  assert.equal(
    requestNames.filter((name) => !named(name)),
    [],
  );
});

test('it names every notification', () => {
  assert.ok(notificationNames.length > 20, 'the notifications were read');
  assert.equal(
    notificationNames.filter((name) => !named(name)),
    [],
  );
});

test('every error code it refers to is the protocol’s', () => {
  for (const code of section.match(/`[A-Z_]{5,}`/g) ?? [])
    assert.ok(errorCodes.includes(code.slice(1, -1) as never), code);
});

test.run();
