/** JSON in and out of the HTTP API: bounded request bodies, uncached responses. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { HavenError } from '../errors.ts';

const maxBodyBytes = 64 * 1024;

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(text);
}

/** Reads a body of at most 64 KiB as text; INVALID_REQUEST when it is bigger. */
export async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBodyBytes) throw new HavenError('INVALID_REQUEST', `body over ${maxBodyBytes} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Reads a JSON body of at most 64 KiB; INVALID_REQUEST when it is too big or not JSON. */
export async function readJsonBody(req: IncomingMessage): Promise<unknown> {
  const type = req.headers['content-type'] ?? '';
  if (!type.startsWith('application/json')) throw new HavenError('INVALID_REQUEST', 'send application/json');
  const text = await readBody(req);
  try {
    return JSON.parse(text);
  } catch {
    throw new HavenError('INVALID_REQUEST', 'body is not valid JSON');
  }
}
