/**
 * The `worker` HTTP function: the Cloud Tasks target. It checks the caller,
 * reads the task's payload and hands it to the work module.
 */
import type { Request, Response } from '@google-cloud/functions-framework';
import { CallerRefused, createCallerCheck } from './auth/oidc.js';
import type { Deps } from './deps.js';
import { createWork } from './fetch/work.js';
import type { WorkPayload } from './queue/tasks.js';
import { TOKEN_PATTERN } from './store/model.js';

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
  return { token: b.token, unit: b.unit as string | undefined, generation: b.generation as number | undefined };
}

export function createWorkerHandler(deps: Deps) {
  const checkCaller = createCallerCheck({
    jwksUrl: deps.config.oidcJwksUrl,
    audience: deps.config.workerUrl,
    serviceAccount: deps.config.invokerServiceAccount,
  });
  const work = createWork(deps);
  return async function worker(req: Request, res: Response): Promise<void> {
    try {
      await checkCaller(req.get('authorization'));
    } catch (e) {
      if (e instanceof CallerRefused) {
        res.status(401).json({ error: e.message });
        return;
      }
      throw e;
    }
    let body: unknown = req.body;
    if (Buffer.isBuffer(body)) {
      try {
        body = JSON.parse(body.toString('utf8'));
      } catch {
        body = undefined;
      }
    }
    const payload = parsePayload(body);
    if (typeof payload === 'string') {
      res.status(400).json({ error: payload });
      return;
    }
    try {
      const result = await work.handle(payload);
      res.status(result.status).json({ message: result.message });
    } catch (e) {
      deps.log.with({ token: payload.token }).error('delivery failed; the queue will retry', { error: (e as Error).message });
      res.status(500).json({ error: 'internal error; the queue will retry' });
    }
  };
}
