/** JSON in and out of the HTTP API: bounded request bodies, uncached responses, coded errors. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ProtocolError } from '../../client-sdk/src/protocol/index.ts';
import { HavenError, httpStatusOf } from '../errors.ts';

export const maxBodyBytes = 64 * 1024;

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  // Too late for an answer (a failure after the headers went out): cut the response short instead.
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(text);
}

/** A failed request's answer: `{ ok: false, error }` with the code's HTTP status. */
export function sendError(res: ServerResponse, error: ProtocolError): void {
  sendJson(res, httpStatusOf[error.code], { ok: false, error });
}

const tooLarge = () => new HavenError('PAYLOAD_TOO_LARGE', `body over ${maxBodyBytes} bytes`);

/**
 * Reads a body of at most 64 KiB as text; PAYLOAD_TOO_LARGE when it is bigger (by its declared
 * length, or once that many bytes came). The rest of a refused body is read and dropped rather
 * than the socket destroyed, so that the client, still sending, receives the 413.
 */
export function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    if (Number(req.headers['content-length'] ?? 0) > maxBodyBytes) {
      req.resume();
      reject(tooLarge());
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size <= maxBodyBytes) {
        chunks.push(chunk);
        return;
      }
      req.off('data', onData);
      req.resume();
      chunks.length = 0;
      reject(tooLarge());
    };
    req.on('data', onData);
    req.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.once('error', reject);
  });
}

/** Reads a JSON body of at most 64 KiB; INVALID_REQUEST when it is not JSON, PAYLOAD_TOO_LARGE when too big. */
export async function readJsonBody(req: IncomingMessage): Promise<unknown> {
  const type = req.headers['content-type'] ?? '';
  if (!type.startsWith('application/json')) {
    req.resume();
    throw new HavenError('INVALID_REQUEST', 'send application/json');
  }
  const text = await readBody(req);
  try {
    return JSON.parse(text);
  } catch {
    throw new HavenError('INVALID_REQUEST', 'body is not valid JSON');
  }
}
