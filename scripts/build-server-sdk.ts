/**
 * Builds the server package (`@haven/server-sdk`) into `server-sdk/dist`: first the admin API's
 * types, generated from `docs/openapi.json` by openapi-typescript into `server-sdk/src/generated/`,
 * then `index.js`, one ESM bundle for Node 20+ (its dependencies, jsonwebtoken and zod, stay
 * imports; the protocol's limits are inside), and `index.d.ts` with tsc's declarations under `dist/types/`,
 * type-checked strictly against the generated types. Fails if the bundle imports anything else or
 * the declarations reach a package a portal would not have.
 *
 * Usage: node --import tsx scripts/build-server-sdk.ts
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import openapiTS, { astToString } from 'openapi-typescript';
import { checkDeclarations, emitDeclarations, rewriteSpecifiers } from './build-sdk.ts';

const root = join(import.meta.dirname, '..');
const pkg = join(root, 'server-sdk');
const dist = join(pkg, 'dist');
/** What the bundle may import at run time: Node's own modules and the package's dependencies. */
const dependencies = Object.keys(JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8')).dependencies ?? {});

/** Writes the admin API's types from the OpenAPI description; returns the file's path. */
export async function generateApiTypes(): Promise<string> {
  const file = join(pkg, 'src', 'generated', 'openapi.ts');
  mkdirSync(join(file, '..'), { recursive: true });
  // A default is what the server fills in: in a request body such a field may be left out.
  const ast = await openapiTS(pathToFileURL(join(root, 'docs', 'openapi.json')), { defaultNonNullable: false });
  writeFileSync(
    file,
    `// Generated from docs/openapi.json by openapi-typescript at build time: do not edit.\n${astToString(ast)}`,
  );
  return file;
}

/** Imports of an ESM bundle that are neither a Node built-in nor one of `allowed`. */
export function foreignImports(code: string, allowed: readonly string[]): string[] {
  const specifiers = [...code.matchAll(/\b(?:from|import)\s*\(?\s*["']([^"']+)["']/g)].map((m) => m[1] as string);
  const builtins = new Set(builtinModules);
  return specifiers.filter((s) => !s.startsWith('node:') && !builtins.has(s) && !allowed.includes(s));
}

/** Declaration files under `dir` that `reachable` does not list: emitted, but not part of the API. */
function pruneDeclarations(dir: string, reachable: Set<string>): void {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const file = join(dir, entry.name);
    if (entry.isDirectory()) {
      pruneDeclarations(file, reachable);
      if (readdirSync(file).length === 0) rmSync(file, { recursive: true });
    } else if (!reachable.has(file)) rmSync(file);
  }
}

export async function buildServerSdk(): Promise<{ bundle: string; declarations: string; bytes: number }> {
  await generateApiTypes();
  rmSync(dist, { recursive: true, force: true });
  mkdirSync(dist, { recursive: true });
  const bundle = join(dist, 'index.js');
  await build({
    entryPoints: [join(pkg, 'src', 'index.ts')],
    outfile: bundle,
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    external: dependencies,
    legalComments: 'eof',
    logLevel: 'warning',
  });
  const code = readFileSync(bundle, 'utf8');
  const foreign = foreignImports(code, dependencies);
  if (foreign.length) throw new Error(`the bundle imports what the package does not depend on: ${foreign.join(', ')}`);

  emitDeclarations(join(pkg, 'tsconfig.build.json'));
  const types = join(dist, 'types');
  rewriteSpecifiers(types);
  const declarations = join(dist, 'index.d.ts');
  writeFileSync(declarations, "export * from './types/server-sdk/src/index.js';\n");
  pruneDeclarations(types, new Set(checkDeclarations(declarations)));
  return { bundle, declarations, bytes: statSync(bundle).size };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const started = Date.now();
  const { bundle, declarations, bytes } = await buildServerSdk();
  console.log(`${relative(root, bundle)}: ${bytes} bytes (${(bytes / 1024).toFixed(1)} KiB)`);
  console.log(`${relative(root, declarations)}: declarations`);
  console.log(`built in ${Date.now() - started} ms`);
}
