/** What the internal HTTP functions (worker, notify) share in reading a request. */
import type { Request, Response } from '@google-cloud/functions-framework';
import { CallerRefused } from '../auth/oidc.js';

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

/**
 * Whether the request's OIDC token passes `check`. A refused caller is answered 401 here, with
 * why; any other failure (the keys could not be fetched) is thrown.
 */
export async function callerAdmitted(check: (authorization: string | undefined) => Promise<void>, req: Request, res: Response): Promise<boolean> {
  try {
    await check(req.get('authorization'));
    return true;
  } catch (e) {
    if (!(e instanceof CallerRefused)) throw e;
    res.status(401).json({ error: e.message });
    return false;
  }
}
