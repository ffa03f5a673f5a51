/** What the internal HTTP functions (worker, notify) share in reading a request. */
import type { Request } from '@google-cloud/functions-framework';

/**
 * The request's JSON body. Callers may send it without a JSON content type, so the framework
 * hands over raw bytes; those are parsed here. Undefined when they are not JSON.
 */
export function jsonBody(req: Request): unknown {
  const body: unknown = req.body;
  if (!Buffer.isBuffer(body)) return body;
  try {
    return JSON.parse(body.toString('utf8')) as unknown;
  } catch {
    return undefined;
  }
}
