/**
 * Builds the browser SDK: `client-sdk/dist/haven-sdk.js`, one minified ESM bundle (ES2020, for
 * browsers) with mediasoup-client and socket.io-client inside, and `haven-sdk.d.ts`, its type
 * declarations (tsc's per-module declarations under `dist/types/`, re-exported). The E2EE frame
 * worker (`client-sdk/src/e2ee/frame-worker.ts`) is bundled first, on its own, and goes into the
 * SDK bundle as a string (the page starts it from a blob URL). Fails if the
 * bundle imports anything or mentions a Node built-in, or if the public declarations reach a
 * package a consumer would not have. Prints the bundle's size, raw and gzipped.
 *
 * Usage: node --import tsx scripts/build-sdk.ts
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';

const root = join(import.meta.dirname, '..');
const sdk = join(root, 'client-sdk');
const dist = join(sdk, 'dist');

export interface SdkBuild {
  /** Path of the ESM bundle. */
  bundle: string;
  /** Path of the declarations' entry point. */
  declarations: string;
  bytes: number;
  gzipBytes: number;
}

/** Problems of a browser bundle: imports left in, `require` calls, Node built-ins. */
export function bundleProblems(code: string): string[] {
  const problems: string[] = [];
  const patterns: [RegExp, string][] = [
    [/\brequire\s*\(/, 'a require() call'],
    [/\bimport\s*\(\s*["'`]/, 'a dynamic import'],
    [/\bimport\s*[\w*{$][^;]*?\bfrom\s*["']/, 'an import statement'],
    [/^\s*import\s*["']/m, 'a side-effect import'],
    [/["']node:[a-z_/]+["']/, 'a node: built-in'],
    [/\bprocess\.(?:versions|binding|cwd)\b/, 'a Node process API'],
  ];
  for (const [pattern, what] of patterns) {
    const match = pattern.exec(code);
    if (match) problems.push(`${what}: …${code.slice(Math.max(0, match.index - 40), match.index + 60)}…`);
  }
  return problems;
}

/** Relative module specifiers of a declaration file, and bare ones. */
function declarationImports(text: string): { relative: string[]; bare: string[] } {
  const specifiers = [...text.matchAll(/\b(?:from|import)\s*\(?\s*["']([^"']+)["']/g)].map((m) => m[1] as string);
  return {
    relative: specifiers.filter((s) => s.startsWith('.')),
    bare: specifiers.filter((s) => !s.startsWith('.')),
  };
}

/** Follows the public declarations from `entry`; throws if one reaches a package (it is bundled, not installed). */
export function checkDeclarations(entry: string): string[] {
  const seen = new Set<string>();
  const queue = [entry];
  while (queue.length) {
    const file = queue.pop() as string;
    if (seen.has(file)) continue;
    seen.add(file);
    const { relative: local, bare } = declarationImports(readFileSync(file, 'utf8'));
    if (bare.length) throw new Error(`${relative(root, file)} imports ${bare.join(', ')}: keep those types internal`);
    for (const specifier of local) {
      const target = resolve(dirname(file), specifier.replace(/\.js$/, '.d.ts'));
      if (!existsSync(target)) throw new Error(`${relative(root, file)} imports ${specifier}, which was not emitted`);
      queue.push(target);
    }
  }
  return [...seen];
}

/** tsc keeps the sources' `.ts` specifiers in declarations: point them at the emitted `.js`/`.d.ts` pair. */
export function rewriteSpecifiers(dir: string): void {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const file = join(dir, entry.name);
    if (entry.isDirectory()) rewriteSpecifiers(file);
    if (!entry.name.endsWith('.d.ts')) continue;
    const text = readFileSync(file, 'utf8');
    writeFileSync(file, text.replace(/(["'])(\.\.?\/[^"']+)\.ts\1/g, '$1$2.js$1'));
  }
}

/** Runs tsc on a build project (declarations only); throws with its output if it fails. */
export function emitDeclarations(project: string): void {
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  const result = spawnSync(process.execPath, [tsc, '-p', project], { cwd: root, encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`tsc failed:\n${result.stdout}${result.stderr}`);
}

/** The E2EE frame worker's code: one self-contained classic script (a worker from a blob URL). */
export async function buildFrameWorker(): Promise<string> {
  const result = await build({
    entryPoints: [join(sdk, 'src', 'e2ee', 'frame-worker.ts')],
    bundle: true,
    write: false,
    format: 'iife',
    platform: 'browser',
    target: 'es2020',
    minify: true,
    legalComments: 'none',
    logLevel: 'warning',
  });
  const code = result.outputFiles[0]?.text;
  if (!code) throw new Error('the frame worker built to nothing');
  const problems = bundleProblems(code);
  if (problems.length) throw new Error(`the frame worker is not browser-clean:\n${problems.join('\n')}`);
  return code;
}

export async function buildSdk(): Promise<SdkBuild> {
  rmSync(dist, { recursive: true, force: true });
  mkdirSync(dist, { recursive: true });
  const bundle = join(dist, 'haven-sdk.js');
  const frameWorker = await buildFrameWorker();

  await build({
    entryPoints: [join(sdk, 'src', 'index.ts')],
    outfile: bundle,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2020',
    minify: true,
    sourcemap: true,
    legalComments: 'eof',
    // Some dependencies read process.env.NODE_ENV / DEBUG; a browser has no `process`.
    define: { 'process.env.NODE_ENV': '"production"', __HAVEN_E2EE_WORKER__: JSON.stringify(frameWorker) },
    logLevel: 'warning',
  });
  const code = readFileSync(bundle, 'utf8');
  const problems = bundleProblems(code);
  if (problems.length) throw new Error(`the bundle is not browser-clean:\n${problems.join('\n')}`);
  if (!/export\s*\{[^}]*\bSessionClient\b/.test(code)) throw new Error('the bundle does not export SessionClient');
  if (!code.includes('onrtctransform')) throw new Error('the bundle does not hold the E2EE frame worker');

  emitDeclarations(join(sdk, 'tsconfig.build.json'));
  rewriteSpecifiers(join(dist, 'types'));
  const declarations = join(dist, 'haven-sdk.d.ts');
  writeFileSync(declarations, "export * from './types/index.js';\n");
  checkDeclarations(declarations);

  return { bundle, declarations, bytes: Buffer.byteLength(code), gzipBytes: gzipSync(code, { level: 9 }).length };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const started = Date.now();
  const { bundle, declarations, bytes, gzipBytes } = await buildSdk();
  const kb = (n: number) => `${(n / 1024).toFixed(1)} KiB`;
  console.log(
    `${relative(root, bundle)}: ${bytes} bytes (${kb(bytes)}), ${gzipBytes} bytes gzipped (${kb(gzipBytes)})`,
  );
  console.log(`${relative(root, declarations)}: declarations`);
  console.log(`built in ${Date.now() - started} ms`);
}
