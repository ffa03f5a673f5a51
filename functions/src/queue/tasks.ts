/**
 * The `fetch` Cloud Tasks queue as the connector uses it: named tasks that carry
 * a work payload to the worker, deletion for Cancel, pause and resume.
 */
import type { CloudTasksClient } from '@google-cloud/tasks';
import pRetry from 'p-retry';
import type { Config } from '../config.js';

/** What a task tells the worker to do. */
export interface WorkPayload {
  /** The action. */
  token: string;
  /** The mailbox unit (`{task}:{address}`); absent for the action's own task, which fans out. */
  unit?: string;
  /** The unit's task generation (continuations and re-enqueues count up). */
  generation?: number;
  /**
   * When the action function wrote the action's record and this task at once
   * (ms since the epoch; the action's own task only): a delivery that finds no
   * record yet waits for it, then asks to be delivered again (engine/fan-out.ts).
   */
  queuedAt?: number;
}

/** The queue operations the functions need. */
export interface TaskQueue {
  /** Creates a named task; `exists` when that name is live or was used recently. */
  enqueue(taskId: string, payload: WorkPayload, opts?: { delaySeconds?: number }): Promise<'created' | 'exists'>;
  /** Deletes a task; false when there was none. */
  remove(taskId: string): Promise<boolean>;
  /** Whether the task is still in the queue (waiting, being dispatched, or to be retried). */
  exists(taskId: string): Promise<boolean>;
  pause(): Promise<void>;
  resume(): Promise<void>;
  isPaused(): Promise<boolean>;
  /** The queue's full resource name. */
  readonly queuePath: string;
  /**
   * The longest an enqueue can take before it succeeds or fails: every attempt times out, with
   * the waits between them. A task whose name was recorded less than this long ago may still be
   * on its way (reconcile counts it lost only after).
   */
  readonly longestEnqueueMs: number;
}

/**
 * How a failed queue call is read. The client library reports gRPC status codes on its gRPC
 * transport and, on its REST transport, the HTTP status in their place; both are understood.
 */
export type QueueFailureKind = 'exists' | 'missing' | 'invalid' | 'unavailable' | 'other';

const KINDS: ReadonlyMap<number, QueueFailureKind> = new Map<number, QueueFailureKind>([
  [6, 'exists'], [409, 'exists'], // ALREADY_EXISTS
  [5, 'missing'], [404, 'missing'], // NOT_FOUND
  [3, 'invalid'], [400, 'invalid'], // INVALID_ARGUMENT
  [14, 'unavailable'], [503, 'unavailable'], // UNAVAILABLE
  [4, 'unavailable'], [504, 'unavailable'], // DEADLINE_EXCEEDED: the outcome is unknown, the call may be repeated
]);

export function queueFailureKind(e: unknown): QueueFailureKind {
  const c = (e as { code?: unknown } | null)?.code;
  return (typeof c === 'number' && KINDS.get(c)) || 'other';
}

/** A queue call that failed for good: `kind` says how, the message what Cloud Tasks said. */
export class QueueError extends Error {
  constructor(
    readonly kind: QueueFailureKind,
    operation: string,
    cause: unknown,
  ) {
    const why = kind === 'invalid' ? 'refused as invalid' : kind === 'unavailable' ? 'unavailable' : 'failed';
    super(`Cloud Tasks ${operation}: ${why}: ${(cause as Error)?.message ?? String(cause)}`, { cause });
    this.name = 'QueueError';
  }
}

/** Cloud Tasks' default for HTTP tasks is 600 s; a worker's run needs up to 30 minutes. */
const DISPATCH_DEADLINE_S = 1800;
/** Attempts of a call that meets UNAVAILABLE, and the first wait between them (doubling). */
const ATTEMPTS = 3;
const FIRST_RETRY_MS = 250;
/** The longest an enqueue can take when each attempt may take `callTimeoutMs` (see TaskQueue.longestEnqueueMs). */
export function longestEnqueueMs(callTimeoutMs: number): number {
  return ATTEMPTS * callTimeoutMs + FIRST_RETRY_MS * (2 ** (ATTEMPTS - 1) - 1);
}

/**
 * Runs one queue call, again (at most ATTEMPTS times) while Cloud Tasks is unavailable. Every
 * call the connector makes may be repeated safely: tasks are named, so a creation repeated
 * after an unknown outcome answers ALREADY_EXISTS, which the caller reads as "there".
 */
async function call<T>(operation: string, run: () => Promise<T>): Promise<T> {
  try {
    return await pRetry(run, {
      retries: ATTEMPTS - 1,
      minTimeout: FIRST_RETRY_MS,
      factor: 2,
      shouldRetry: ({ error }) => queueFailureKind(error) === 'unavailable',
    });
  } catch (e) {
    throw Object.assign(new QueueError(queueFailureKind(e), operation, e), { code: (e as { code?: unknown }).code });
  }
}

/** Runs a call on one task: true when it went through, false when the queue has no such task. */
async function onTask(operation: string, run: () => Promise<unknown>): Promise<boolean> {
  try {
    await call(operation, run);
    return true;
  } catch (e) {
    if ((e as QueueError).kind === 'missing') return false;
    throw e;
  }
}

export function createTaskQueue(client: CloudTasksClient, config: Config): TaskQueue {
  const queuePath = client.queuePath(config.project, config.tasksLocation, config.tasksQueue);
  // No queue call may hold a delivery or an ACI answer for long (TASKS_CALL_TIMEOUT_S). Our
  // retries are the only ones (see `call`): the library's own are turned off.
  const callTimeoutMs = config.tasksCallTimeoutS * 1000;
  const CALL_OPTIONS = { timeout: callTimeoutMs, retry: null };
  return {
    queuePath,
    longestEnqueueMs: longestEnqueueMs(callTimeoutMs),
    async enqueue(taskId, payload, opts = {}) {
      const delay = opts.delaySeconds ?? 0;
      const scheduleTime = delay > 0 ? { seconds: Math.floor(Date.now() / 1000) + Math.ceil(delay) } : undefined;
      try {
        await call(`createTask ${taskId}`, () => client.createTask({
          parent: queuePath,
          task: {
            name: `${queuePath}/tasks/${taskId}`,
            scheduleTime,
            dispatchDeadline: { seconds: DISPATCH_DEADLINE_S },
            httpRequest: {
              url: config.workerUrl,
              httpMethod: 'POST',
              headers: { 'Content-Type': 'application/json' },
              body: Buffer.from(JSON.stringify(payload)).toString('base64'),
              oidcToken: { serviceAccountEmail: config.invokerServiceAccount, audience: config.workerUrl },
            },
          },
        }, CALL_OPTIONS));
        return 'created';
      } catch (e) {
        if ((e as QueueError).kind === 'exists') return 'exists';
        throw e;
      }
    },
    remove: (taskId) =>
      onTask(`deleteTask ${taskId}`, () => client.deleteTask({ name: `${queuePath}/tasks/${taskId}` }, CALL_OPTIONS)),
    exists: (taskId) =>
      onTask(`getTask ${taskId}`, () => client.getTask({ name: `${queuePath}/tasks/${taskId}` }, CALL_OPTIONS)),
    async pause() {
      await call('pauseQueue', () => client.pauseQueue({ name: queuePath }, CALL_OPTIONS));
    },
    async resume() {
      await call('resumeQueue', () => client.resumeQueue({ name: queuePath }, CALL_OPTIONS));
    },
    async isPaused() {
      const [q] = await call('getQueue', () => client.getQueue({ name: queuePath }, CALL_OPTIONS));
      return q.state === 'PAUSED' || q.state === 2;
    },
  };
}
