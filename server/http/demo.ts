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
import { mintAccessToken } from '../auth/mint.ts';
import { answerFailure, HavenError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { describeIssues } from '../signaling/schemas.ts';
import { readJsonBody, sendError, sendJson } from './json.ts';

export interface DemoDeps {
  /** HS256 secret the node verifies tokens with. */
  secret: string;
  issuer: string;
  audience: string;
  logger: Logger;
}

const root = join(import.meta.dirname, '..', '..', 'client-sdk');
const files: Record<string, { path: string; type: string }> = {
  '/demo': { path: join(root, 'demo', 'index.html'), type: 'text/html; charset=utf-8' },
  '/demo/': { path: join(root, 'demo', 'index.html'), type: 'text/html; charset=utf-8' },
  '/demo/demo.js': { path: join(root, 'demo', 'demo.js'), type: 'text/javascript; charset=utf-8' },
  '/demo/demo.css': { path: join(root, 'demo', 'demo.css'), type: 'text/css; charset=utf-8' },
  '/demo/haven-sdk.js': { path: join(root, 'dist', 'haven-sdk.js'), type: 'text/javascript; charset=utf-8' },
};

const tokenRequest = z.strictObject({
  room: z.string().regex(idPattern, 'letters, digits and . _ : - only'),
  role: z.enum(['facilitator', 'participant', 'observer']),
  name: z.string().trim().min(1).max(80),
});

export function createDemoHandler(deps: DemoDeps) {
  return (req: IncomingMessage, res: ServerResponse, url: URL): boolean => {
    if (url.pathname === '/demo/token' && req.method === 'POST') {
      mintDemoToken(deps, req).then(
        (data) => sendJson(res, 200, { ok: true, data }),
        (err) => sendError(res, answerFailure(err, deps.logger, { path: url.pathname })),
      );
      return true;
    }
    const file = files[url.pathname];
    if (!file || req.method !== 'GET') return false;
    readFile(file.path).then(
      (body) => {
        res.writeHead(200, { 'content-type': file.type, 'cache-control': 'no-cache' });
        res.end(body);
      },
      () =>
        sendJson(res, 404, {
          ok: false,
          error: { code: 'NOT_FOUND', message: 'demo file missing; run npm run build:sdk' },
        }),
    );
    return true;
  };
}

async function mintDemoToken(deps: DemoDeps, req: IncomingMessage) {
  const parsed = tokenRequest.safeParse(await readJsonBody(req));
  if (!parsed.success) throw new HavenError('INVALID_REQUEST', describeIssues(parsed.error));
  const { room, role, name } = parsed.data;
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
