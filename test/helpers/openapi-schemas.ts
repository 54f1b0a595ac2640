/**
 * docs/openapi.json as a JSON Schema 2020-12 validator (OpenAPI 3.1's dialect), to check real
 * answers against the documented ones. The validator is the Ajv that openapi-typescript brings
 * (`@redocly/ajv`); formats are not checked, and the `x-haven-…` extensions are ignored.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import ajv2020 from '@redocly/ajv/dist/2020.js';

export const openapiPath = join(import.meta.dirname, '..', '..', 'docs', 'openapi.json');
// biome-ignore lint/suspicious/noExplicitAny: the spec is read as untyped JSON.
export const spec = JSON.parse(readFileSync(openapiPath, 'utf8')) as any;

const base = 'haven-openapi';
// A CommonJS module: its class is both the module and its `default`, which is what the types see.
const ajv = new ajv2020.default({ strict: false, allErrors: true, validateFormats: false });
ajv.addSchema({ $id: base, components: spec.components });

/** The errors of `value` against the named component schema (empty when it conforms). */
export function schemaErrors(schemaName: string, value: unknown): string[] {
  const validate = ajv.getSchema(`${base}#/components/schemas/${schemaName}`);
  if (!validate) throw new Error(`no schema ${schemaName} in docs/openapi.json`);
  if (validate(value)) return [];
  return (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message} ${JSON.stringify(e.params)}`);
}

/** The component schema a path's operation answers `status` with in `mediaType` (following `$ref`s). */
export function responseSchemaName(
  path: string,
  method: string,
  status: number,
  mediaType = 'application/json',
): string {
  let response = spec.paths[path]?.[method]?.responses?.[String(status)];
  if (response?.$ref) response = spec.components.responses[String(response.$ref).split('/').at(-1) as string];
  const ref = response?.content?.[mediaType]?.schema?.$ref;
  if (typeof ref !== 'string') throw new Error(`${method.toUpperCase()} ${path} documents no ${status} ${mediaType}`);
  return ref.split('/').at(-1) as string;
}
