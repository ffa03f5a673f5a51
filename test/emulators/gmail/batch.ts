// Gmail's batch endpoint, POST /batch/gmail/v1: a multipart/mixed body whose parts are each one
// HTTP request (Content-Type: application/http), at most 100 of them; the answer is a
// multipart/mixed body with one application/http response per part, in order, each with the
// part's Content-ID as "response-<id>". Every part is served as the call it names, concurrently,
// through the emulator's own routes (so each one gets the latency, auth, faults, concurrency
// limit and quota charge of that call); a part without Authorization carries the batch's.

import { randomBytes } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import { ApiError, badRequest } from './errors.js';
import { parseHeaderBlock, splitMultipart } from './mime.js';

export const MAX_BATCH_PARTS = 100;

interface PartRequest {
  contentId: string | undefined;
  method: string;
  path: string;
  headers: Record<string, string>;
  body: Buffer;
}

function header(headers: Array<{ name: string; value: string }>, name: string): string | undefined {
  return headers.find((h) => h.name.toLowerCase() === name)?.value;
}

function boundaryOf(contentType: string | undefined): string {
  const m = /^\s*multipart\/mixed\s*;(?:.*;)?\s*boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType ?? '');
  const b = m?.[1] ?? m?.[2];
  if (!b) throw badRequest('Batch requests must be multipart/mixed with a boundary');
  return b;
}

/** The parts of a batch request body. */
export function parseBatch(body: Buffer, contentType: string | undefined): PartRequest[] {
  const boundary = boundaryOf(contentType);
  const { parts } = splitMultipart(body, 0, body.length, boundary);
  if (parts.length === 0) throw badRequest('A batch request must hold at least one part');
  if (parts.length > MAX_BATCH_PARTS) throw new ApiError(400, `Too many requests in batch; the limit is ${MAX_BATCH_PARTS}`, 'batchSizeTooLarge');
  return parts.map((p) => {
    const outer = parseHeaderBlock(body, p.start, p.end);
    const inner = body.subarray(outer.bodyStart, p.end);
    const lineEnd = inner.indexOf('\n');
    const requestLine = inner.toString('latin1', 0, lineEnd === -1 ? inner.length : lineEnd).trim();
    const m = /^([A-Z]+)\s+(\S+)(?:\s+HTTP\/\d(?:\.\d)?)?$/.exec(requestLine);
    if (!m) throw badRequest(`Bad request line in batch part: ${requestLine.slice(0, 100)}`);
    const rest = lineEnd === -1 ? Buffer.alloc(0) : inner.subarray(lineEnd + 1);
    const ih = parseHeaderBlock(rest, 0, rest.length);
    const headers: Record<string, string> = {};
    for (const h of ih.headers) headers[h.name.toLowerCase()] = h.value;
    const contentId = header(outer.headers, 'content-id')?.replace(/^<|>$/g, '');
    let path = m[2] ?? '/';
    if (/^https?:\/\//i.test(path)) {
      const u = new URL(path);
      path = u.pathname + u.search;
    }
    return { contentId, method: m[1] ?? 'GET', path, headers, body: rest.subarray(ih.bodyStart) };
  });
}

/** Serves each part through `selfUrl` and answers the multipart/mixed response. */
export async function serveBatch(
  parts: PartRequest[],
  selfUrl: string,
  authorization: string | undefined,
): Promise<{ contentType: string; body: Buffer }> {
  const answers = await Promise.all(
    parts.map(async (p) => {
      const headers: Record<string, string> = { ...p.headers };
      delete headers['host'];
      delete headers['content-length'];
      if (!headers['authorization'] && authorization) headers['authorization'] = authorization;
      try {
        const r = await fetch(new URL(p.path.replace(/^\/+/, ''), selfUrl), {
          method: p.method,
          headers,
          ...(p.body.length > 0 && p.method !== 'GET' ? { body: p.body } : {}),
        });
        const text = Buffer.from(await r.arrayBuffer());
        const h: string[] = [];
        r.headers.forEach((v, k) => {
          if (!['connection', 'keep-alive', 'date', 'transfer-encoding'].includes(k)) h.push(`${k}: ${v}`);
        });
        return { status: r.status, headers: h, body: text };
      } catch {
        const e = new ApiError(503, 'The service is currently unavailable.', 'backendError').body();
        return { status: 503, headers: ['content-type: application/json; charset=UTF-8'], body: Buffer.from(JSON.stringify(e)) };
      }
    }),
  );
  const boundary = `batch_${randomBytes(12).toString('hex')}`;
  const chunks: Buffer[] = [];
  answers.forEach((a, i) => {
    const id = parts[i]?.contentId;
    chunks.push(
      Buffer.from(
        `--${boundary}\r\nContent-Type: application/http\r\n${id ? `Content-ID: <response-${id}>\r\n` : ''}\r\n` +
          `HTTP/1.1 ${a.status} ${STATUS_CODES[a.status] ?? ''}\r\n${a.headers.map((h) => `${h}\r\n`).join('')}\r\n`,
        'latin1',
      ),
      a.body,
      Buffer.from('\r\n', 'latin1'),
    );
  });
  chunks.push(Buffer.from(`--${boundary}--\r\n`, 'latin1'));
  return { contentType: `multipart/mixed; boundary=${boundary}`, body: Buffer.concat(chunks) };
}
