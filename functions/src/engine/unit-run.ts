/**
 * One delivery's run of a claimed unit, as steps in order:
 * 1. watch: the stop flag, the lease renewal and the time budget start;
 * 2. hold: the address's single reader is taken (for a task still configured);
 * 3. start: the action's move to `Processing` is awaited (a Cancel may have won);
 * 4. run: the fetch action runs until it ends or must end;
 * 5. quiesce: whatever Gmail calls are still in flight are aborted and awaited;
 * 6. settle: the unit ends, or is handed over to a continuation, or given back to the queue;
 * 7. release: every timer, watch and hold the run started is cleared, whatever happened.
 * Nothing a run starts outlives it, and no Gmail call outlives the lease it ran under.
 */
import pLimit from 'p-limit';
import type { Deps } from '../deps.js';
import { holdAddress, type AddressHold } from '../gmail/address.js';
import { GmailCaller } from '../gmail/caller.js';
import { MailboxLost } from '../store/mailboxes.js';
import { pacerFor, RunAborted } from '../gmail/pacing.js';
import { unitTaskId, type ActionRecord, type Status, type UnitRecord } from '../store/model.js';
import { flushEveryMs } from '../store/totals.js';
import { LeaseLost, type Holding, type UnitProgress } from '../store/units.js';
import type { createWatcher } from '../push/watch-renewal.js';
import type { FetchActionSpec, UnitOutcome } from '../fetch/spec.js';
import type { createStopWatch } from './stopwatch.js';
import { errorMessage } from '../error-message.js';

/** The worker's answer: an HTTP status for Cloud Tasks (2xx: done; else: retry later). */
export interface WorkResult {
  status: number;
  message: string;
}

/** How long Gmail calls already sent may go on once the time budget winds a run down. */
const WIND_DOWN_MS = 10_000;

/** What a run is given. */
export interface UnitRunOptions {
  deps: Deps;
  stops: ReturnType<typeof createStopWatch>;
  watcher: ReturnType<typeof createWatcher>;
  token: string;
  id: string;
  generation: number;
  holder: string;
  unit: UnitRecord;
  action: ActionRecord;
  spec: FetchActionSpec;
  mailbox: ReturnType<Deps['google']['gmail']>;
  progress: UnitProgress;
  /** The action's status once the claimant's move to `Processing` settled (thrown if it failed). */
  started: Promise<() => Status | null>;
  leaseMs: number;
  callTimeoutMs: number;
  log: Deps['log'];
}

export class UnitRun {
  /** Ends every wait and call at once (Stop, a lost lease or address, the wind-down's end). */
  private readonly abort = new AbortController();
  /** Starts no new call or wait (the budget); calls already sent may still answer. */
  private readonly ending = new AbortController();
  /** One write of this run at a time: each is conditional on the one before. */
  private readonly serial = pLimit(1);
  private readonly caller: GmailCaller;
  private stop: boolean;
  private outOfTime = false;
  private lost: unknown;
  private windDown: NodeJS.Timeout | undefined;
  private leaseTimer: NodeJS.Timeout | undefined;
  private budgetTimer: NodeJS.Timeout | undefined;
  private unwatch: () => void = () => {};
  private address: AddressHold | undefined;
  private held: Holding | undefined;

  constructor(private readonly o: UnitRunOptions) {
    this.stop = o.action.stopRequested;
    const { deps, unit, mailbox, progress } = o;
    // One pacer per address in this process, and one reader of the address at a time across processes (gmail/address.ts).
    const pacer = pacerFor(unit.user, deps.config.connector.gmail.quotaUnitsPerUserPerMinute, deps.now);
    this.caller = new GmailCaller({
      auth: mailbox,
      pacer,
      signal: this.abort.signal,
      ending: this.ending.signal,
      timeoutMs: o.callTimeoutMs,
      baseBackoffMs: deps.config.gmailBackoffMs,
      maxBackoffMs: Math.min(30_000, deps.config.gmailBackoffMs * 60),
    });
    this.caller.retries = progress.retries;
  }

  /** Runs the steps; answers Cloud Tasks. */
  async go(): Promise<WorkResult> {
    const { log, generation, unit } = this.o;
    try {
      await this.watch();
      log.info('unit started', { generation, attempts: unit.attempts });
      await this.holdAddress();
      const status = (await this.o.started)();
      if (status !== 'Processing') return await this.neverStarted(status);
      let outcome: UnitOutcome;
      try {
        outcome = await this.runSpec();
      } finally {
        await this.quiesce();
      }
      await this.address?.release();
      if (this.lost) throw this.lost;
      this.o.progress.retries = this.caller.retries;
      await this.settle(outcome);
      log.info('unit ended', { outcome: outcome.kind, counts: this.o.progress.counts });
      return { status: 200, message: outcome.kind };
    } catch (e) {
      return await this.interrupted(e);
    } finally {
      await this.release();
    }
  }

  /** Why the run must end now; `wind down` lets the calls already sent answer first. */
  private end(why: () => void, at: 'once' | 'wind down' = 'once'): void {
    why();
    this.ending.abort();
    if (at === 'once') this.abort.abort();
    else this.windDown ??= setTimeout(() => this.abort.abort(), Math.min(WIND_DOWN_MS, this.o.callTimeoutMs));
  }

  /** Step 1: the stop flag, the lease and the budget. */
  private async watch(): Promise<void> {
    const { deps, token, id, holder, action, leaseMs } = this.o;
    this.unwatch = this.o.stops.watch(token, () => this.end(() => (this.stop = true)));
    const held = await deps.units.hold(token, id, holder, flushEveryMs(action.unitsTotal));
    this.held = held;
    this.leaseTimer = setInterval(() => {
      this.serial(() => deps.units.renew(held, leaseMs)).catch((e: unknown) => {
        if (e instanceof LeaseLost || e instanceof MailboxLost) this.end(() => (this.lost = e));
      });
    }, Math.max(1000, leaseMs / 3));
    // The budget ends the run even inside a hung call: the hand-over must happen before the dispatch deadline.
    this.budgetTimer = setTimeout(() => this.end(() => (this.outOfTime = true), 'wind down'), deps.config.workerTimeBudgetS * 1000);
  }

  /** Step 2: the address's single reader, for a task still configured. */
  private async holdAddress(): Promise<void> {
    const { deps, unit, holder, leaseMs } = this.o;
    if (!deps.config.connector.tasks[unit.task]) return;
    const pacer = pacerFor(unit.user, deps.config.connector.gmail.quotaUnitsPerUserPerMinute, deps.now);
    this.address = await holdAddress({
      db: deps.db,
      address: unit.user,
      holder,
      leaseMs,
      pacer,
      now: deps.now,
      signal: this.ending.signal,
      onLost: (e) => this.end(() => (this.lost = e)),
    }).catch((e: unknown) => {
      if (e instanceof RunAborted) return undefined;
      throw e;
    });
  }

  /** Cancel (or an end) won the race with this claim: the mailbox never starts. */
  private async neverStarted(status: Status | null): Promise<WorkResult> {
    const { deps, token, id, holder, progress } = this.o;
    await this.address?.release();
    await this.serial(() => deps.units.end(token, id, holder, status === 'Cancelled' ? 'Cancelled' : 'Stopped', progress));
    return { status: 200, message: `the action is ${status ?? 'gone'}` };
  }

  /** Step 4: the fetch action's run of the unit. */
  private async runSpec(): Promise<UnitOutcome> {
    const { deps, token, unit, action, spec, mailbox, progress, leaseMs } = this.o;
    const taskConfig = deps.config.connector.tasks[unit.task];
    if (!taskConfig) return { kind: 'failed', error: `task ${unit.task} is no longer configured` };
    if (!this.address) return { kind: 'interrupted' };
    const held = this.held as Holding;
    return spec.run({
      db: deps.db,
      gmail: mailbox.api,
      caller: this.caller,
      storage: deps.storage,
      token,
      task: unit.task,
      user: unit.user,
      index: unit.index,
      taskConfig,
      params: action.params ?? {},
      progress,
      shouldEnd: () => this.stop || this.outOfTime || this.lost !== undefined,
      expireWhileRunning: () => deps.store.expireWhileRunning(),
      begin: (epoch, selection) => this.serial(() => deps.units.begin(held, leaseMs, epoch, selection)),
      commit: async (p, write) => {
        await this.serial(() => deps.units.write(held, leaseMs, { ...p, retries: this.caller.retries }, write));
      },
    });
  }

  /**
   * Step 5: no call of the run goes on once it has returned: the calls still in flight (a
   * fetch action that gave up on a batch while others of it were running) are aborted, and
   * awaited, while the lease is still held and renewed.
   */
  private async quiesce(): Promise<void> {
    if (this.caller.pending === 0) return;
    this.ending.abort();
    this.abort.abort();
    await this.caller.settled();
  }

  /** Step 6: the unit ends, or is handed over to a continuation. */
  private async settle(outcome: UnitOutcome): Promise<void> {
    const { deps, token, id, holder, unit, action, generation, progress, log } = this.o;
    const end = (status: Status, p: Parameters<Deps['units']['end']>[4], finish?: Parameters<Deps['units']['end']>[5]) =>
      this.serial(() => deps.units.end(token, id, holder, status, p, finish));
    switch (outcome.kind) {
      case 'finished':
        await end('Finished', progress, outcome.epoch === undefined ? undefined : { epoch: outcome.epoch, historyId: outcome.historyId ?? null, selection: outcome.selection ?? null });
        // A push task's mailbox is watched once it has been synchronized (push/watch-renewal.ts).
        await this.o.watcher.afterSync(unit.task, unit.user, action.fetchAction);
        return;
      case 'superseded':
        await end('Finished', { ...progress, note: `action ${outcome.by} synchronized this mailbox after this run began; this run stopped there` });
        return;
      case 'failed':
        await end('Error', { ...progress, error: outcome.error });
        log.error('unit failed', { error: outcome.error });
        return;
      case 'interrupted': {
        if (this.stop) {
          await end('Stopped', progress);
          return;
        }
        if (!this.outOfTime) throw new Error('the run ended without a reason');
        // The lease is released before the continuation exists, so that its first delivery can
        // claim the unit at once. The hand-over records when it named the task: reconcile counts
        // the task lost only once it is still missing the longest an enqueue can take later (TaskQueue.longestEnqueueMs).
        const next = generation + 1;
        const taskId = unitTaskId(token, unit.key, next);
        await this.serial(() => deps.units.handOver(token, id, holder, next, taskId, progress));
        await deps.queue.enqueue(taskId, { token, unit: id, generation: next });
        log.info('handed over to a continuation', { next: taskId });
        return;
      }
      default: {
        const never: never = outcome;
        throw new Error(`unknown outcome ${JSON.stringify(never)}`);
      }
    }
  }

  /**
   * Transient, or the mailbox passed to another delivery: keep what was committed, free the
   * lease, and let Cloud Tasks deliver again.
   */
  private async interrupted(e: unknown): Promise<WorkResult> {
    const { deps, token, id, holder, generation, unit, progress, log } = this.o;
    await this.quiesce();
    if (e instanceof LeaseLost) {
      log.warn('lease lost: another delivery took over');
      return { status: 200, message: 'lease lost to another delivery' };
    }
    const message = errorMessage(e);
    log.warn('unit interrupted; the queue will retry', { error: message });
    try {
      progress.retries = this.caller.retries;
      await this.serial(() => deps.units.handOver(token, id, holder, generation, unit.taskId, progress, message));
    } catch {
      // The lease expires on its own; reconcile looks after a unit whose task is gone.
    }
    return { status: 503, message: `interrupted: ${message}; will be retried` };
  }

  /** Step 7: whatever the run started ends with it. */
  private async release(): Promise<void> {
    this.unwatch();
    clearInterval(this.leaseTimer);
    clearTimeout(this.budgetTimer);
    clearTimeout(this.windDown);
    await this.address?.release().catch(() => undefined);
  }
}
