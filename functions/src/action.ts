/**
 * The `action` HTTP function: parses an ACI request, dispatches it to its
 * action and renders the answer (or the error) in the requested format.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Request, Response } from '@google-cloud/functions-framework';
import { actionName, ACTIONS } from './aci/actions.js';
import { AciError, internal, methodNotAllowed } from './aci/errors.js';
import { parseAciRequest, type AciParams } from './aci/request.js';
import { chooseFormat, renderError, renderSuccess, type ResponseFormat } from './aci/response.js';
import type { Deps } from './deps.js';

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

export function createActionHandler(deps: Deps) {
  const secret = deps.config.actionSharedSecret ? digest(deps.config.actionSharedSecret) : undefined;
  return async function action(req: Request, res: Response): Promise<void> {
    let params: AciParams | undefined;
    let format: ResponseFormat = 'xml';
    let name: string | undefined;
    const send = (r: { status: number; contentType: string; body: string }) => {
      res.status(r.status).set('Content-Type', r.contentType).send(r.body);
    };
    // Only GET and POST run actions: a HEAD, a browser's OPTIONS preflight or a DELETE must never
    // start a sync or pause the queue. OPTIONS is answered with what is allowed; HEAD has no body.
    if (req.method !== 'GET' && req.method !== 'POST') {
      res.set('Allow', 'GET, POST');
      if (req.method === 'OPTIONS') res.status(204).end();
      else if (req.method === 'HEAD') res.status(405).end();
      else send(renderError(undefined, methodNotAllowed(req.method), 'xml', new Date(deps.now())));
      return;
    }
    try {
      if (secret) {
        const given = req.get('x-aci-secret');
        // Compared as digests so that neither the length nor the content leaks through timing.
        if (given === undefined || !timingSafeEqual(digest(given), secret)) {
          res.status(401).set('Content-Type', 'text/plain; charset=utf-8').send('missing or wrong X-ACI-Secret header\n');
          return;
        }
      }
      params = await parseAciRequest({ method: req.method, url: req.originalUrl ?? req.url, headers: req.headers, rawBody: req.rawBody, body: req });
      format = chooseFormat(params);
      const n = actionName(params);
      name = n;
      const data = await ACTIONS[n](params, deps);
      send(renderSuccess(n, data, format));
    } catch (e) {
      const err = e instanceof AciError ? e : internal('the connector failed to answer; see its logs', e);
      if (!(e instanceof AciError) || err.status >= 500) {
        deps.log.error('action failed', { action: name, error: (e as Error).message, stack: (e as Error).stack });
      }
      send(renderError(name ?? params?.get('action'), err, format, new Date(deps.now())));
    }
  };
}
