/**
 * The `worker` HTTP function: the Cloud Tasks target. It checks the caller,
 * reads the task's payload and hands it to the work module. `POST /reconcile`
 * (Cloud Scheduler, with the same identity) runs one reconcile pass; `POST /watches`
 * renews every Gmail watch (push/watch-renewal.ts).
 */
import type { Request, Response } from '@google-cloud/functions-framework';
import { createCallerCheck } from '../auth/oidc.js';
import type { Deps } from '../deps.js';
import { callerAdmitted, jsonBody } from './internal-request.js';
import { createWork } from '../engine/work.js';
import { createWatcher } from '../push/watch-renewal.js';
import { createReconciler } from '../queue/reconcile.js';
import type { WorkPayload } from '../queue/tasks.js';
import type { DeliveryInfo } from '../store/units.js';
import { TOKEN_PATTERN } from '../store/model.js';
import { errorMessage } from '../error-message.js';

function parsePayload(body: unknown): WorkPayload | string {
  if (typeof body !== 'object' || body === null) return 'the body must be a JSON object';
  const b = body as Record<string, unknown>;
  if (typeof b.token !== 'string' || !TOKEN_PATTERN.test(b.token)) return 'token must be a 22-character base64url token';
  if (b.unit !== undefined && (typeof b.unit !== 'string' || !/^[A-Za-z0-9_-]{1,64}:[^/\s]{3,320}$/.test(b.unit))) {
    return 'unit must be "TASK:address"';
  }
  if (b.generation !== undefined && !(Number.isInteger(b.generation) && (b.generation as number) >= 0)) {
    return 'generation must be a whole number';
  }
  if (b.queuedAt !== undefined && !(Number.isInteger(b.queuedAt) && (b.queuedAt as number) > 0)) {
    return 'queuedAt must be a time in milliseconds since the epoch';
  }
  return { token: b.token, unit: b.unit as string | undefined, generation: b.generation as number | undefined, queuedAt: b.queuedAt as number | undefined };
}

/** The delivery as Cloud Tasks describes it: how many times it was retried and the previous attempt's status. */
function deliveryInfo(req: Request): DeliveryInfo {
  const count = Number(req.get('x-cloudtasks-taskretrycount') ?? '0');
  const prev = Number(req.get('x-cloudtasks-taskpreviousresponse') ?? '');
  return {
    retryCount: Number.isInteger(count) && count >= 0 ? count : 0,
    previousResponse: Number.isInteger(prev) && prev > 0 ? prev : null,
  };
}

export function createWorkerHandler(deps: Deps) {
  const checkCaller = createCallerCheck({
    jwksUrl: deps.config.oidcJwksUrl,
    audience: deps.config.workerUrl,
    serviceAccount: deps.config.invokerServiceAccount,
  });
  const work = createWork(deps);
  const reconciler = createReconciler(deps);
  const watcher = createWatcher(deps);
  return async function worker(req: Request, res: Response): Promise<void> {
    if (req.method !== 'POST') {
      res.status(405).set('Allow', 'POST').json({ error: `${req.method} is not accepted: the worker takes POST from the queue` });
      return;
    }
    if (!(await callerAdmitted(checkCaller, req, res))) return;
    if (req.path === '/reconcile') {
      try {
        res.status(200).json(await reconciler.pass());
      } catch (e) {
        deps.log.error('reconcile failed', { error: errorMessage(e) });
        res.status(503).json({ error: 'reconcile did not complete; the next pass continues' });
      }
      return;
    }
    if (req.path === '/watches') {
      try {
        res.status(200).json(await watcher.renewAll());
      } catch (e) {
        deps.log.error('watch renewal failed', { error: errorMessage(e) });
        res.status(503).json({ error: 'watch renewal did not complete; the next run continues' });
      }
      return;
    }
    if (req.path !== '/') {
      res.status(404).json({ error: `no route ${req.path}: the worker serves / (tasks), /reconcile and /watches` });
      return;
    }
    const body = jsonBody(req);
    const payload = parsePayload(body);
    if (typeof payload === 'string') {
      res.status(400).json({ error: payload });
      return;
    }
    try {
      const result = await work.handle(payload, deliveryInfo(req));
      res.status(result.status).json({ message: result.message });
    } catch (e) {
      deps.log.with({ token: payload.token }).error('delivery failed; the queue will retry', { error: errorMessage(e) });
      res.status(500).json({ error: 'internal error; the queue will retry' });
    }
  };
}
