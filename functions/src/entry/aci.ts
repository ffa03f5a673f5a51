/**
 * The `action` HTTP function: parses an ACI request, dispatches it to its
 * action and renders the answer (or the error) in the requested format.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Request, Response } from '@google-cloud/functions-framework';
import { CallerRefused, createCallerCheck } from '../auth/oidc.js';
import { actionName, ACTIONS, RawAnswer, readsOnly } from '../app/dispatch.js';
import { AciError, methodNotAllowed, withNearMisses } from '../aci/errors.js';
import { toAciError } from '../app/failures.js';
import { nearMisses, unknownParameterWarnings } from '../app/request-parameters.js';
import { parseAciRequest, type AciParams } from '../aci/request.js';
import { echoedActionId, parseActionId } from '../aci/action-id.js';
import { chooseFormat, renderError, renderSuccess, warningHeader, type ResponseFormat } from '../aci/response.js';
import type { Deps } from '../deps.js';
import { isQueuePage, QUEUE_PAGE } from '../page/queue.js';
import { errorMessage } from '../error-message.js';

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

export function createActionHandler(deps: Deps) {
  const { config } = deps;
  const secret = config.actionSharedSecret ? digest(config.actionSharedSecret) : undefined;
  // Shared-secret mode lets everyone through Cloud Run, so action checks Cloud Scheduler's OIDC
  // token itself: signed by Google, for ACTION_URL, issued to SCHEDULER_SERVICE_ACCOUNT. The
  // scheduler jobs thus carry no copy of the secret. Outside that mode Cloud Run checks callers.
  const schedulerCheck =
    secret && config.actionUrl && config.schedulerServiceAccount
      ? createCallerCheck({ jwksUrl: config.oidcJwksUrl, audience: config.actionUrl, serviceAccount: config.schedulerServiceAccount })
      : undefined;
  /** Whether the request carries the secret or, without one, the scheduler's token. */
  const admitted = async (req: Request): Promise<boolean> => {
    if (!secret) return true;
    const given = req.get('x-aci-secret');
    // Compared as digests so that neither the length nor the content leaks through timing.
    if (given !== undefined) return timingSafeEqual(digest(given), secret);
    if (!schedulerCheck || req.get('authorization') === undefined) return false;
    try {
      await schedulerCheck(req.get('authorization'));
      return true;
    } catch (e) {
      if (e instanceof CallerRefused) return false;
      throw e;
    }
  };
  return async function action(req: Request, res: Response): Promise<void> {
    let params: AciParams | undefined;
    let format: ResponseFormat = 'xml';
    let name: string | undefined;
    const send = (r: { status: number; contentType: string; body: string }) => {
      res.status(r.status).set('Content-Type', r.contentType).send(r.body);
    };
    // Only GET and POST run actions: a browser's OPTIONS preflight or a DELETE must never start a
    // sync or pause the queue. OPTIONS is answered with what is allowed. HEAD answers as GET would,
    // without a body, for actions that only read; one that would write is refused.
    const head = req.method === 'HEAD';
    if (req.method !== 'GET' && req.method !== 'POST' && !head) {
      res.set('Allow', 'GET, POST, HEAD');
      if (req.method === 'OPTIONS') res.status(204).end();
      else send(renderError(undefined, methodNotAllowed(req.method), 'xml', new Date(deps.now())));
      return;
    }
    try {
      if (!(await admitted(req))) {
        res.status(401).set('Content-Type', 'text/plain; charset=utf-8').send('missing or wrong X-ACI-Secret header\n');
        return;
      }
      // The queue page (GET /queue), behind the same access control as ACI; its script calls ACI.
      if (req.method !== 'POST' && isQueuePage(req.originalUrl ?? req.url)) {
        res.status(200).set(QUEUE_PAGE.headers).send(head ? '' : QUEUE_PAGE.body);
        return;
      }
      params = await parseAciRequest({ method: head ? 'GET' : req.method, url: req.originalUrl ?? req.url, headers: req.headers, rawBody: req.rawBody, body: req });
      format = chooseFormat(params);
      const n = actionName(params);
      name = n;
      // A malformed ActionID is refused for every action: it is echoed, and a Fetch keeps it.
      parseActionId(params);
      if (head && !readsOnly(n, params)) {
        res.set('Allow', 'GET, POST');
        throw methodNotAllowed('HEAD', `action ${n} changes state: HEAD answers only actions that read`);
      }
      const data = await ACTIONS[n](params, deps);
      // A parameter the request's action does not read is named, with the closest known one.
      const warnings = unknownParameterWarnings(n, params);
      if (warnings.length > 0) res.set('Warning', warningHeader(warnings));
      if (data instanceof RawAnswer) {
        // View with NoACI=true: the message's own bytes, as a download.
        res
          .status(200)
          .set('Content-Type', data.contentType)
          .set('Content-Disposition', `attachment; filename="${data.filename}"`)
          .send(data.body);
        return;
      }
      send(renderSuccess(n, data, format, warnings, echoedActionId(params)));
    } catch (e) {
      let err = toAciError(e);
      // A missing parameter the client probably misspelt: name what it sent instead.
      if (err.id === 'GMAILCONNECTOR-MISSING-PARAMETER' && err.parameter !== undefined && params !== undefined) {
        err = withNearMisses(err, nearMisses(name, params, err.parameter));
      }
      if (!(e instanceof AciError) || err.status >= 500) {
        deps.log.error('action failed', { action: name, error: errorMessage(e), stack: (e as Error).stack });
      }
      send(renderError(name ?? params?.get('action'), err, format, new Date(deps.now()), echoedActionId(params)));
    }
  };
}
