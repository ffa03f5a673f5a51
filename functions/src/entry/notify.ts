/**
 * The `notify` HTTP function: the push endpoint of the Pub/Sub subscription that carries Gmail's
 * notifications (docs/CONTRACT.md, "Push"). It checks the subscription's OIDC token (signed by
 * Google, for NOTIFY_URL, issued to PUSH_SERVICE_ACCOUNT), parses the notification and queues
 * the push Synchronizes it calls for (push/queue.ts). A request it refuses (4xx) changes nothing;
 * its own failures are 5xx, so that Pub/Sub delivers the message again.
 */
import type { Request, Response } from '@google-cloud/functions-framework';
import { createCallerCheck } from '../auth/oidc.js';
import type { Deps } from '../deps.js';
import { callerAdmitted, jsonBody } from './internal-request.js';
import { parsePushBody } from '../push/notification.js';
import { queuePushSyncs } from '../push/queue.js';
import { errorMessage } from '../error-message.js';

export function createNotifyHandler(deps: Deps) {
  const { config, log } = deps;
  const checkCaller =
    config.notifyUrl && config.pushServiceAccount
      ? createCallerCheck({ jwksUrl: config.oidcJwksUrl, audience: config.notifyUrl, serviceAccount: config.pushServiceAccount })
      : undefined;
  return async function notify(req: Request, res: Response): Promise<void> {
    if (req.method !== 'POST') {
      res.status(405).set('Allow', 'POST').json({ error: `${req.method} is not accepted: notify takes POST from the Pub/Sub push subscription` });
      return;
    }
    if (!checkCaller) {
      log.error('notify is not configured: NOTIFY_URL and PUSH_SERVICE_ACCOUNT must be set');
      res.status(503).json({ error: 'notify is not configured (NOTIFY_URL, PUSH_SERVICE_ACCOUNT)' });
      return;
    }
    if (!(await callerAdmitted(checkCaller, req, res))) return;
    if (req.path !== '/') {
      res.status(404).json({ error: `no route ${req.path}: notify serves /` });
      return;
    }
    const body = jsonBody(req);
    const n = parsePushBody(body);
    if (typeof n === 'string') {
      res.status(400).json({ error: n });
      return;
    }
    try {
      const outcomes = await queuePushSyncs(deps, n);
      res.status(200).json({ emailAddress: n.emailAddress, historyId: n.historyId, tasks: outcomes });
    } catch (e) {
      log.with({ user: n.emailAddress }).error('notification not handled; Pub/Sub will deliver it again', { error: errorMessage(e) });
      res.status(503).json({ error: 'the notification could not be handled; it will be delivered again' });
    }
  };
}
