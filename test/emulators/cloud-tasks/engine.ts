/**
 * The queues, their tasks and the dispatch loop of the Cloud Tasks emulator.
 *
 * Owns every piece of state: queues (RUNNING or PAUSED, rate limits, retry configuration),
 * their tasks, and the names of tasks deleted or finished recently (de-duplication). Dispatch
 * is driven by one timer for the whole emulator: each queue keeps its pending tasks in a heap
 * ordered by due time and a token bucket for its rate, and after every change the loop
 * dispatches what may go now and arms the timer for the earliest moment something else may.
 * Nothing polls, so thousands of waiting tasks cost nothing until they are due.
 *
 * Semantics follow Google's documentation: a 2xx answer completes a task; anything else, a
 * connection error or a passed dispatch deadline is a failed attempt, retried after
 * min_backoff doubled max_doublings times then growing linearly, capped at max_backoff, until
 * max_attempts attempts have been made and max_retry_duration has passed since the first.
 * A 429 or 503 answer with a Retry-After header delays the next attempt to at least that
 * moment. The name of a deleted queue stays reserved for a while, as on Google.
 */
import { randomBytes } from 'node:crypto';
import { Dispatcher, type AttemptOutcome } from './dispatch.js';
import {
  ApiError,
  RPC_CODES,
  alreadyExists,
  invalidArgument,
  notFound,
  rpcCodeForHttpStatus,
} from './errors.js';
import { MinHeap } from './heap.js';
import type { OidcSigner } from './oidc.js';
import {
  type AttemptRecord,
  type HttpTarget,
  type QueueConfig,
  type QueueInput,
  type QueueState,
  type RetryConfig,
  type TaskInput,
  applyQueueInput,
  checkLocationName,
  splitQueueName,
  splitTaskName,
} from './resources.js';
import { type Micros, nowMicros } from './wire.js';

/** setTimeout's longest delay; later wake-ups are re-armed when it fires. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** The opaque access token sent for tasks with an `oauthToken` (no Google token exists here). */
const EMULATOR_ACCESS_TOKEN = 'ya29.cloud-tasks-emulator';

/**
 * The delay before retry number `retry` (1 for the first retry): min_backoff doubled up to
 * max_doublings times, then growing by min_backoff × 2^max_doublings per retry, never more
 * than max_backoff. With 10 s, 300 s and 3 doublings: 10, 20, 40, 80, 160, 240, 300, 300 s.
 */
export function retryDelayMs(
  retry: number,
  config: Pick<RetryConfig, 'minBackoffMs' | 'maxBackoffMs' | 'maxDoublings'>,
): number {
  const k = Math.max(0, retry - 1);
  const { minBackoffMs: min, maxBackoffMs: max, maxDoublings: doublings } = config;
  const delay = k <= doublings ? min * 2 ** k : min * 2 ** doublings * (1 + k - doublings);
  return Math.min(delay, max);
}

export class Task {
  readonly createTime: Micros = nowMicros();
  scheduleTime: Micros;
  dispatchCount = 0;
  responseCount = 0;
  /** Answers that were not 5xx: X-CloudTasks-TaskExecutionCount. */
  executionCount = 0;
  /** The HTTP status of the last attempt, when it got one: X-CloudTasks-TaskPreviousResponse. */
  previousResponse: number | undefined;
  /** Why the last attempt failed: X-CloudTasks-TaskRetryReason. */
  retryReason: string | undefined;
  firstAttempt: AttemptRecord | undefined;
  lastAttempt: AttemptRecord | undefined;
  firstDispatchMs: number | undefined;
  phase: 'pending' | 'dispatching' | 'gone' = 'pending';
  /** Bumped whenever the task leaves the heap, so stale heap entries are skipped. */
  generation = 0;

  constructor(
    readonly queue: Queue,
    readonly id: string,
    readonly httpRequest: HttpTarget,
    readonly dispatchDeadlineMs: number,
    scheduleTime: Micros | undefined,
  ) {
    this.scheduleTime = scheduleTime ?? this.createTime;
  }

  get name(): string {
    return `${this.queue.name}/tasks/${this.id}`;
  }
}

interface HeapEntry {
  at: number;
  seq: number;
  task: Task;
  generation: number;
}

export class Queue {
  readonly tasks = new Map<string, Task>();
  readonly pending = new MinHeap<HeapEntry>((a, b) => a.at < b.at || (a.at === b.at && a.seq < b.seq));
  state: QueueState = 'RUNNING';
  purgeTime: Micros | undefined;
  inFlight = 0;
  deleted = false;
  private tokens: number;
  private refilledAt = Date.now();

  constructor(
    readonly name: string,
    public config: QueueConfig,
  ) {
    this.tokens = config.rateLimits.maxBurstSize;
  }

  get id(): string {
    return this.name.slice(this.name.lastIndexOf('/') + 1);
  }

  /** Adds the tokens earned since the last refill, up to the burst size. */
  refill(now: number): void {
    const { maxDispatchesPerSecond: rate, maxBurstSize: burst } = this.config.rateLimits;
    this.tokens = Math.min(burst, this.tokens + ((now - this.refilledAt) * rate) / 1000);
    this.refilledAt = now;
  }

  /** The first pending task's heap entry, dropping entries of tasks that moved on. */
  head(): HeapEntry | undefined {
    for (let e = this.pending.peek(); e; e = this.pending.peek()) {
      if (e.task.phase === 'pending' && e.generation === e.task.generation) return e;
      this.pending.pop();
    }
    return undefined;
  }

  /** When the bucket will hold a whole token again. */
  tokenTime(now: number): number {
    return this.tokens >= 1 ? now : now + ((1 - this.tokens) * 1000) / this.config.rateLimits.maxDispatchesPerSecond;
  }

  takeToken(): void {
    this.tokens -= 1;
  }

  setConfig(config: QueueConfig, now: number): void {
    this.refill(now);
    this.config = config;
    this.tokens = Math.min(this.tokens, config.rateLimits.maxBurstSize);
  }
}

export interface EngineOptions {
  /** How long the name of a deleted or finished task stays taken. */
  dedupWindowMs: number;
  /** How long the name of a deleted queue stays reserved (Google: 7 days). */
  queueNameReservationMs: number;
  /** The shortest dispatch_deadline CreateTask accepts (Google: 15 s). */
  minDispatchDeadlineMs: number;
  signer: OidcSigner;
}

/** Google's message for a queue name still reserved after its queue was deleted. */
export const QUEUE_NAME_RESERVED_MESSAGE =
  'The queue cannot be created because a queue with this name existed too recently.';

export class TasksEngine {
  private readonly queues = new Map<string, Queue>();
  /** Full task name → when (ms) it may be used again. Insertion order is expiry order. */
  private readonly tombstones = new Map<string, number>();
  /** Full queue name → when (ms) it may be created again. Insertion order is expiry order. */
  private readonly deletedQueues = new Map<string, number>();
  private readonly dispatcher = new Dispatcher();
  private readonly attempts = new Set<Promise<void>>();
  private seq = 0;
  private timer: NodeJS.Timeout | undefined;
  private immediate: NodeJS.Immediate | undefined;
  private closed = false;

  constructor(private readonly options: EngineOptions) {}

  /** The shortest dispatch deadline CreateTask accepts. */
  get minDispatchDeadlineMs(): number {
    return this.options.minDispatchDeadlineMs;
  }

  // -------------------------------------------------------------------------------------------
  // Queues.

  createQueue(parent: string, input: QueueInput): Queue {
    checkLocationName(parent);
    if (!input.name) throw invalidArgument('queue.name is required');
    const { parent: queueParent } = splitQueueName(input.name);
    if (queueParent !== parent) {
      throw invalidArgument(`Queue name "${input.name}" is not under the request's parent "${parent}"`);
    }
    if (this.queues.has(input.name)) throw alreadyExists();
    this.checkQueueNameFree(input.name);
    const queue = new Queue(input.name, applyQueueInput(undefined, input, undefined));
    this.queues.set(queue.name, queue);
    return queue;
  }

  getQueue(name: string): Queue {
    splitQueueName(name);
    const queue = this.queues.get(name);
    if (!queue) throw notFound();
    return queue;
  }

  listQueues(parent: string, state?: QueueState): Queue[] {
    checkLocationName(parent);
    const prefix = `${parent}/queues/`;
    return [...this.queues.values()]
      .filter((q) => q.name.startsWith(prefix) && (state === undefined || q.state === state))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** UpdateQueue: changes the masked fields, creating the queue when it does not exist (as Google does). */
  updateQueue(name: string, input: QueueInput, mask: string[] | undefined): Queue {
    splitQueueName(name);
    if (input.name !== undefined && input.name !== '' && input.name !== name) {
      throw invalidArgument(`queue.name "${input.name}" does not match the queue of the request, "${name}"`);
    }
    const queue = this.queues.get(name);
    if (!queue) {
      this.checkQueueNameFree(name);
      const created = new Queue(name, applyQueueInput(undefined, input, mask));
      this.queues.set(name, created);
      return created;
    }
    queue.setConfig(applyQueueInput(queue.config, input, mask), Date.now());
    this.wake();
    return queue;
  }

  deleteQueue(name: string): void {
    const queue = this.getQueue(name);
    this.dropAllTasks(queue);
    queue.deleted = true;
    this.queues.delete(name);
    const now = Date.now();
    this.pruneDeletedQueues(now);
    this.deletedQueues.delete(name);
    this.deletedQueues.set(name, now + this.options.queueNameReservationMs);
  }

  /** FAILED_PRECONDITION while the name of a deleted queue is still reserved. */
  private checkQueueNameFree(name: string): void {
    this.pruneDeletedQueues(Date.now());
    if (this.deletedQueues.has(name)) throw new ApiError('FAILED_PRECONDITION', QUEUE_NAME_RESERVED_MESSAGE);
  }

  private pruneDeletedQueues(now: number): void {
    for (const [name, until] of this.deletedQueues) {
      if (until > now) break;
      this.deletedQueues.delete(name);
    }
  }

  pauseQueue(name: string): Queue {
    const queue = this.getQueue(name);
    queue.state = 'PAUSED';
    return queue;
  }

  resumeQueue(name: string): Queue {
    const queue = this.getQueue(name);
    queue.state = 'RUNNING';
    this.wake();
    return queue;
  }

  purgeQueue(name: string): Queue {
    const queue = this.getQueue(name);
    this.dropAllTasks(queue);
    queue.purgeTime = nowMicros();
    return queue;
  }

  // -------------------------------------------------------------------------------------------
  // Tasks.

  createTask(queueName: string, input: TaskInput): Task {
    const queue = this.getQueue(queueName);
    let id = input.id;
    if (id !== undefined) {
      const name = `${queueName}/tasks/${id}`;
      if (queue.tasks.has(id)) throw alreadyExists();
      if (this.isTombstoned(name)) {
        throw alreadyExists('The task cannot be created because a task with this name existed too recently.');
      }
    } else {
      do id = generateTaskId();
      while (queue.tasks.has(id));
    }
    const task = new Task(queue, id, input.httpRequest, input.dispatchDeadlineMs, input.scheduleTime);
    queue.tasks.set(id, task);
    this.created.add(id);
    this.enqueue(task, task.scheduleTime / 1000);
    return task;
  }

  /** Task ids created since the emulator started, in any queue (for tests of what was really lost). */
  private readonly created = new Set<string>();

  /** Whether a task with this id was ever created, in any queue. */
  wasCreated(id: string): boolean {
    return this.created.has(id);
  }

  getTask(name: string): Task {
    const { queue: queueName, id } = splitTaskName(name);
    const task = this.queues.get(queueName)?.tasks.get(id);
    if (!task) throw notFound();
    return task;
  }

  listTasks(queueName: string): Task[] {
    const queue = this.getQueue(queueName);
    return [...queue.tasks.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /** Deletes a task; an attempt in flight runs on, but its outcome is ignored. */
  deleteTask(name: string): void {
    this.remove(this.getTask(name));
  }

  /** RunTask: dispatches now, whatever the queue's state and rate limits. */
  runTask(name: string): Task {
    const task = this.getTask(name);
    if (task.phase === 'pending') {
      task.generation++;
      task.scheduleTime = nowMicros();
      this.startAttempt(task);
    }
    return task;
  }

  // -------------------------------------------------------------------------------------------
  // Lifecycle.

  /** Stops the loop and every attempt in flight. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.immediate) clearImmediate(this.immediate);
    this.timer = undefined;
    this.immediate = undefined;
    this.dispatcher.close();
    await Promise.all([...this.attempts]);
    for (const queue of this.queues.values()) queue.pending.clear();
  }

  // -------------------------------------------------------------------------------------------
  // The loop.

  private enqueue(task: Task, atMs: number): void {
    task.phase = 'pending';
    task.queue.pending.push({ at: atMs, seq: this.seq++, task, generation: task.generation });
    this.wake();
  }

  /** Runs the loop soon, once for any number of changes made meanwhile. */
  private wake(): void {
    if (this.closed || this.immediate) return;
    this.immediate = setImmediate(() => {
      this.immediate = undefined;
      this.pump();
    });
    this.immediate.unref();
  }

  /** Dispatches everything that may go now, then sleeps until something else may. */
  private pump(): void {
    if (this.closed) return;
    const now = Date.now();
    let next = Infinity;
    for (const queue of this.queues.values()) next = Math.min(next, this.pumpQueue(queue, now));
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (next === Infinity) return;
    const delay = Math.min(MAX_TIMER_MS, Math.max(1, Math.ceil(next - now)));
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.pump();
    }, delay);
    this.timer.unref();
  }

  /** Dispatches the queue's due tasks within its limits; returns when it may dispatch next. */
  private pumpQueue(queue: Queue, now: number): number {
    if (queue.state !== 'RUNNING') return Infinity;
    queue.refill(now);
    for (;;) {
      if (queue.inFlight >= queue.config.rateLimits.maxConcurrentDispatches) return Infinity; // woken on completion
      const head = queue.head();
      if (!head) return Infinity;
      if (head.at > now) return head.at;
      const tokenAt = queue.tokenTime(now);
      if (tokenAt > now) return tokenAt;
      queue.pending.pop();
      queue.takeToken();
      this.startAttempt(head.task);
    }
  }

  private startAttempt(task: Task): void {
    const queue = task.queue;
    const now = Date.now();
    const retryCount = task.dispatchCount;
    task.phase = 'dispatching';
    task.generation++;
    task.dispatchCount++;
    task.firstDispatchMs ??= now;
    const attempt: AttemptRecord = { scheduleTime: task.scheduleTime, dispatchTime: now * 1000 };
    task.firstAttempt ??= { dispatchTime: now * 1000 };
    task.lastAttempt = attempt;
    queue.inFlight++;

    const headers = this.dispatchHeaders(task, retryCount);
    const run = async (): Promise<void> => {
      const auth = await this.authorization(task.httpRequest);
      if (auth) headers.Authorization = auth;
      const { url, httpMethod: method, body } = task.httpRequest;
      const request = { url, method, headers, deadlineMs: task.dispatchDeadlineMs };
      const outcome = await this.dispatcher.send(body ? { ...request, body } : request);
      this.finishAttempt(task, attempt, outcome);
    };
    const done: Promise<void> = run()
      .catch((err: unknown) => {
        this.finishAttempt(task, attempt, { kind: 'error', message: err instanceof Error ? err.message : String(err) });
      })
      .finally(() => this.attempts.delete(done));
    this.attempts.add(done);
  }

  private dispatchHeaders(task: Task, retryCount: number): Record<string, string> {
    const headers: Record<string, string> = { ...task.httpRequest.headers };
    if (task.httpRequest.body && !Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) {
      headers['Content-Type'] = 'application/octet-stream';
    }
    headers['User-Agent'] = 'Google-Cloud-Tasks';
    headers['X-CloudTasks-QueueName'] = task.queue.id;
    headers['X-CloudTasks-TaskName'] = task.id;
    headers['X-CloudTasks-TaskRetryCount'] = String(retryCount);
    headers['X-CloudTasks-TaskExecutionCount'] = String(task.executionCount);
    headers['X-CloudTasks-TaskETA'] = (task.scheduleTime / 1e6).toFixed(6);
    if (retryCount > 0 && task.previousResponse !== undefined) {
      headers['X-CloudTasks-TaskPreviousResponse'] = String(task.previousResponse);
    }
    if (retryCount > 0 && task.retryReason !== undefined) {
      headers['X-CloudTasks-TaskRetryReason'] = task.retryReason;
    }
    return headers;
  }

  private async authorization(target: HttpTarget): Promise<string | undefined> {
    if (target.oidcToken) {
      const audience = target.oidcToken.audience ?? target.url;
      return `Bearer ${await this.options.signer.sign(target.oidcToken.serviceAccountEmail, audience)}`;
    }
    if (target.oauthToken) return `Bearer ${EMULATOR_ACCESS_TOKEN}`;
    return undefined;
  }

  private finishAttempt(task: Task, attempt: AttemptRecord, outcome: AttemptOutcome): void {
    const queue = task.queue;
    queue.inFlight--;
    if (this.closed || outcome.kind === 'cancelled') return;
    const now = Date.now();
    let retryAfterMs = 0;
    switch (outcome.kind) {
      case 'response':
        attempt.responseTime = outcome.at * 1000;
        attempt.responseStatus = {
          code: rpcCodeForHttpStatus(outcome.status),
          message: `HTTP status code ${outcome.status}`,
        };
        task.responseCount++;
        task.previousResponse = outcome.status;
        task.retryReason = `HTTP status code ${outcome.status}`;
        if (outcome.status < 500 || outcome.status > 599) task.executionCount++;
        if (outcome.retryAfterAt !== undefined) retryAfterMs = outcome.retryAfterAt - now;
        break;
      case 'deadline':
        attempt.responseStatus = { code: RPC_CODES.DEADLINE_EXCEEDED, message: 'The dispatch deadline was exceeded.' };
        // No HTTP status this time: the next attempt must not report an older one as "previous".
        task.previousResponse = undefined;
        task.retryReason = 'DEADLINE_EXCEEDED';
        break;
      case 'error':
        task.previousResponse = undefined;
        task.retryReason = 'UNAVAILABLE';
        attempt.responseStatus = {
          code: RPC_CODES.UNAVAILABLE,
          message: `The target could not be reached: ${outcome.message}`,
        };
        break;
    }
    if (task.phase === 'dispatching') {
      const succeeded = outcome.kind === 'response' && outcome.status >= 200 && outcome.status < 300;
      if (succeeded || this.exhausted(task, now)) {
        this.remove(task);
      } else {
        // A Retry-After of the target (429 or 503) delays the retry beyond the backoff, never less.
        const at = now + Math.max(retryDelayMs(task.dispatchCount, queue.config.retryConfig), retryAfterMs);
        task.scheduleTime = at * 1000;
        this.enqueue(task, at);
      }
    }
    this.wake();
  }

  /** Whether a failed task has used up its attempts (and its retry duration, when one is set). */
  private exhausted(task: Task, now: number): boolean {
    const { maxAttempts, maxRetryDurationMs } = task.queue.config.retryConfig;
    const attemptsUsed = maxAttempts !== -1 && task.dispatchCount >= maxAttempts;
    const durationUsed = maxRetryDurationMs <= 0 || now - (task.firstDispatchMs ?? now) >= maxRetryDurationMs;
    return attemptsUsed && durationUsed;
  }

  // -------------------------------------------------------------------------------------------
  // Removal and de-duplication.

  private remove(task: Task): void {
    if (task.phase === 'gone') return;
    task.phase = 'gone';
    task.generation++;
    task.queue.tasks.delete(task.id);
    this.tombstone(task.name);
  }

  private dropAllTasks(queue: Queue): void {
    for (const task of [...queue.tasks.values()]) this.remove(task);
    queue.pending.clear();
  }

  private tombstone(name: string): void {
    const now = Date.now();
    this.pruneTombstones(now);
    this.tombstones.delete(name);
    this.tombstones.set(name, now + this.options.dedupWindowMs);
  }

  private isTombstoned(name: string): boolean {
    this.pruneTombstones(Date.now());
    return this.tombstones.has(name);
  }

  private pruneTombstones(now: number): void {
    for (const [name, until] of this.tombstones) {
      if (until > now) break;
      this.tombstones.delete(name);
    }
  }
}

/** A numeric id like the ones Google gives unnamed tasks. */
function generateTaskId(): string {
  const n = randomBytes(8).readBigUInt64BE(0) % 10n ** 19n;
  return `${1 + Number(n % 9n)}${n.toString().padStart(19, '0')}`;
}
