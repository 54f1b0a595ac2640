/**
 * The demo web app, for development only (`demo` config; never in production): `/demo` serves a
 * page built on the client SDK, `/demo/haven-sdk.js` the SDK bundle, and `POST /demo/token` mints
 * a development token with the node's own secret, as a clinic's backend would.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import { z } from 'zod';
import { idPattern } from '../../client-sdk/src/protocol/index.ts';
import { mintAccessToken } from '../../server-sdk/src/mint.ts';
import { answerFailure } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { readJsonBody, sendError, sendJson } from './json.ts';
import type { RouteSet } from './router.ts';
import { parse } from './validation.ts';

export interface DemoDeps {
  /** HS256 secret the node verifies tokens with. */
  secret: string;
  issuer: string;
  audience: string;
  logger: Logger;
}

interface DemoFile {
  path: string;
  type: string;
}

const root = join(import.meta.dirname, '..', '..', 'client-sdk');
const files: Record<string, DemoFile> = {
  '/demo': { path: join(root, 'demo', 'index.html'), type: 'text/html; charset=utf-8' },
  '/demo/': { path: join(root, 'demo', 'index.html'), type: 'text/html; charset=utf-8' },
  '/demo/demo.js': { path: join(root, 'demo', 'demo.js'), type: 'text/javascript; charset=utf-8' },
  '/demo/demo-network.js': { path: join(root, 'demo', 'demo-network.js'), type: 'text/javascript; charset=utf-8' },
  '/demo/demo-breakouts.js': { path: join(root, 'demo', 'demo-breakouts.js'), type: 'text/javascript; charset=utf-8' },
  '/demo/demo.css': { path: join(root, 'demo', 'demo.css'), type: 'text/css; charset=utf-8' },
  '/demo/haven-sdk.js': { path: join(root, 'dist', 'haven-sdk.js'), type: 'text/javascript; charset=utf-8' },
};

const tokenRequest = z.strictObject({
  room: z.string().regex(idPattern, 'letters, digits and . _ : - only'),
  role: z.enum(['facilitator', 'participant', 'observer']),
  name: z.string().trim().min(1).max(80),
});

/** The demo's routes, for the HTTP app. */
export function createDemoHandler(deps: DemoDeps): RouteSet {
  return (router) => {
    router.on('POST', '/demo/token', ({ req, res, url }) => {
      mintDemoToken(deps, req).then(
        (data) => sendJson(res, 200, { ok: true, data }),
        (err) => sendError(res, answerFailure(err, deps.logger, { path: url.pathname })),
      );
    });
    for (const [path, file] of Object.entries(files)) router.on('GET', path, ({ res }) => sendFile(res, file));
  };
}

function sendFile(res: ServerResponse, file: DemoFile): void {
  readFile(file.path).then(
    (body) => {
      res.writeHead(200, { 'content-type': file.type, 'cache-control': 'no-cache' });
      res.end(body);
    },
    () => sendError(res, { code: 'NOT_FOUND', message: 'demo file missing; run npm run build:sdk' }),
  );
}

async function mintDemoToken(deps: DemoDeps, req: IncomingMessage) {
  const { room, role, name } = parse(tokenRequest, await readJsonBody(req));
  // A pseudonymous id, as a clinic's backend would use; the name is only for display.
  const sub = `demo-${randomBytes(6).toString('hex')}`;
  const token = mintAccessToken({
    secret: deps.secret,
    issuer: deps.issuer,
    audience: deps.audience,
    sub,
    name,
    room,
    role,
    ttlS: 4 * 3600 - 60,
  });
  return { token, participantId: sub };
}
