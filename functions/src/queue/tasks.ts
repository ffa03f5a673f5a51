/**
 * The `fetch` Cloud Tasks queue as the connector uses it: named tasks that carry
 * a work payload to the worker, deletion for Cancel, pause and resume.
 */
import type { CloudTasksClient } from '@google-cloud/tasks';
import type { Config } from '../config.js';

/** What a task tells the worker to do. */
export interface WorkPayload {
  /** The action. */
  token: string;
  /** The mailbox unit (`{task}:{address}`); absent for the action's own task, which fans out. */
  unit?: string;
  /** The unit's task generation (continuations and re-enqueues count up). */
  generation?: number;
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
}

// gRPC codes, or the HTTP statuses the REST transport reports in their place.
const ALREADY_EXISTS = new Set([6, 409]);
const NOT_FOUND = new Set([5, 404]);
/** No queue call may hold a delivery or an ACI answer for long. */
const CALL_TIMEOUT_MS = 30_000;
/** Cloud Tasks' default for HTTP tasks is 600 s; a worker's run needs up to 30 minutes. */
const DISPATCH_DEADLINE_S = 1800;

function grpcCode(e: unknown): number | undefined {
  const c = (e as { code?: unknown }).code;
  return typeof c === 'number' ? c : undefined;
}

/** Runs a call on one task: true when it went through, false when the queue has no such task. */
async function onTask(call: () => Promise<unknown>): Promise<boolean> {
  try {
    await call();
    return true;
  } catch (e) {
    if (NOT_FOUND.has(grpcCode(e) ?? 0)) return false;
    throw e;
  }
}

export function createTaskQueue(client: CloudTasksClient, config: Config): TaskQueue {
  const queuePath = client.queuePath(config.project, config.tasksLocation, config.tasksQueue);
  return {
    queuePath,
    async enqueue(taskId, payload, opts = {}) {
      const delay = opts.delaySeconds ?? 0;
      const scheduleTime = delay > 0 ? { seconds: Math.floor(Date.now() / 1000) + Math.ceil(delay) } : undefined;
      try {
        await client.createTask({
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
        }, { timeout: CALL_TIMEOUT_MS });
        return 'created';
      } catch (e) {
        if (ALREADY_EXISTS.has(grpcCode(e) ?? 0)) return 'exists';
        throw e;
      }
    },
    remove: (taskId) => onTask(() => client.deleteTask({ name: `${queuePath}/tasks/${taskId}` }, { timeout: CALL_TIMEOUT_MS })),
    exists: (taskId) => onTask(() => client.getTask({ name: `${queuePath}/tasks/${taskId}` }, { timeout: CALL_TIMEOUT_MS })),
    async pause() {
      await client.pauseQueue({ name: queuePath }, { timeout: CALL_TIMEOUT_MS });
    },
    async resume() {
      await client.resumeQueue({ name: queuePath }, { timeout: CALL_TIMEOUT_MS });
    },
    async isPaused() {
      const [q] = await client.getQueue({ name: queuePath }, { timeout: CALL_TIMEOUT_MS });
      return q.state === 'PAUSED' || q.state === 2;
    },
  };
}
