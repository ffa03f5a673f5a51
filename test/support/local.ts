/**
 * Pieces the local stack (`npm start`) and the test stack share: the `fetch`
 * queue on the Cloud Tasks emulator, and waiting for a server to answer.
 */
import { createTasksClient } from '../../functions/src/queue/client.js';

/** Retry settings of a queue, in seconds. */
export interface QueueRetry {
  maxAttempts: number;
  minBackoffS: number;
  maxBackoffS: number;
  maxDoublings: number;
}

/** Creates the `fetch` queue (as Terraform does in production); an existing one is kept. */
export async function createFetchQueue(emulatorHost: string, project: string, location: string, retry: QueueRetry): Promise<void> {
  const client = createTasksClient({ emulatorHost });
  const seconds = (s: number) => ({ seconds: Math.floor(s), nanos: Math.round((s % 1) * 1e9) });
  try {
    await client.createQueue({
      parent: client.locationPath(project, location),
      queue: {
        name: client.queuePath(project, location, 'fetch'),
        retryConfig: {
          maxAttempts: retry.maxAttempts,
          minBackoff: seconds(retry.minBackoffS),
          maxBackoff: seconds(retry.maxBackoffS),
          maxDoublings: retry.maxDoublings,
        },
      },
    });
  } catch (e) {
    if ((e as { code?: number }).code !== 6) throw e;
  } finally {
    await client.close();
  }
}

/** Waits until `url` answers anything over HTTP, polling every `everyMs`, for at most `withinMs`. */
export async function waitUntilAnswers(url: string, withinMs = 60_000, everyMs = 100): Promise<void> {
  const until = Date.now() + withinMs;
  while (Date.now() < until) {
    try {
      await fetch(url, { signal: AbortSignal.timeout(1000) });
      return;
    } catch {
      await new Promise((r) => setTimeout(r, everyMs));
    }
  }
  throw new Error(`${url} did not answer within ${withinMs / 1000} s`);
}

/**
 * Calls one of the worker's scheduled routes (`reconcile`, `watches`) as Cloud Scheduler does: a
 * POST with an OIDC token of the queue's invoker account for the worker's URL, minted by the Cloud
 * Tasks emulator (the worker trusts its keys locally).
 */
export async function callWorkerRoute(
  tasks: { mintOidcToken(serviceAccount: string, audience: string): Promise<string> },
  workerUrl: string,
  invoker: string,
  route: 'reconcile' | 'watches',
): Promise<{ status: number; body: unknown }> {
  const token = await tasks.mintOidcToken(invoker, workerUrl);
  const r = await fetch(new URL(route, workerUrl), {
    method: 'POST',
    headers: { authorization: `Bearer ${token}` },
    signal: AbortSignal.timeout(route === 'watches' ? 600_000 : 120_000),
  });
  const text = await r.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // Not JSON: kept as text.
  }
  return { status: r.status, body };
}

/** The reconcile pass, as Cloud Scheduler calls it. */
export function callReconcile(
  tasks: { mintOidcToken(serviceAccount: string, audience: string): Promise<string> },
  workerUrl: string,
  invoker: string,
): Promise<{ status: number; body: unknown }> {
  return callWorkerRoute(tasks, workerUrl, invoker, 'reconcile');
}
