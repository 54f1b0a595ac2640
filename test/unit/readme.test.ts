import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { nodeFlags } from '../../bench/node-process.ts';
import { renderConfigTable } from '../../config/doc.ts';
import { envNames } from '../../config/schema.ts';

const readme = readFileSync(join(import.meta.dirname, '..', '..', 'README.md'), 'utf8');

test('the README documents every configuration key, as the schema says (npm run config:doc)', () => {
  assert.ok(readme.includes(renderConfigTable()), 'README config table is stale: paste `npm run config:doc`');
  for (const env of Object.values(envNames)) assert.ok(readme.includes(`\`${env}\``), env);
});

test('the README quickstart names the two commands', () => {
  const quickstart = readme.slice(
    readme.indexOf('## Quickstart'),
    readme.indexOf('\n## ', readme.indexOf('## Quickstart') + 1),
  );
  assert.match(quickstart, /npm start/);
  assert.match(quickstart, /npm test/);
});

test('npm start runs the node with the V8 flags the tests and the bench start it with', () => {
  const start = JSON.parse(readFileSync(join(import.meta.dirname, '..', '..', 'package.json'), 'utf8')).scripts.start;
  assert.ok(start.includes(`node ${nodeFlags.join(' ')} --import tsx app/main.ts`), start);
  for (const flag of nodeFlags) assert.ok(readme.includes(flag), `README names ${flag}`);
});

test.run();
