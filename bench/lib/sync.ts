/**
 * One measured Synchronize: submit, wait for the end, and read what it did
 * from its records (unit start and end times, counts), from the worker process
 * (CPU time, peak memory) and from the Gmail emulator (calls, quota refusals).
 */
import type { ActionRecord, UnitRecord } from '../../functions/src/store/model.js';
import { cpuMs, memory } from './proc.js';
import type { BenchStack } from './stack.js';
import { sleep } from './util.js';

export const ENDED = ['Finished', 'Stopped', 'Error', 'Cancelled'];

export interface SyncRun {
  token: string;
  action: ActionRecord;
  units: UnitRecord[];
  /** Messages examined, all units together. */
  messages: number;
  /** From the first unit's start to the last unit's end (the worker's own timestamps), in seconds. */
  unitSeconds: number;
  /** From the client's submit to the action's end, in seconds. */
  submitSeconds: number;
  /** Worker process CPU time spent during the run, in milliseconds (null without /proc). */
  workerCpuMs: number | null;
  /** Peak resident memory of the worker process since it started, in MiB. */
  workerPeakMiB: number | null;
  /** Largest resident memory sampled during the run, in MiB. */
  workerRssMaxMiB: number | null;
  /** Gmail calls answered 429/403 for quota during the run. */
  rateLimited: number;
  /** Gmail calls the connector retried (all units). */
  retries: number;
  /** Gmail calls by method during the run. */
  calls: Record<string, number>;
}

/** Runs a Synchronize of `task` to its end (any ended status) and measures it. */
export async function measureSync(
  stack: BenchStack,
  task: string,
  opts: { timeoutMs: number; onProgress?: (token: string) => Promise<void> },
): Promise<SyncRun> {
  const before = stack.gmail.stats();
  const cpu0 = cpuMs(stack.workerPid);
  let rssMax = memory(stack.workerPid)?.rssMiB ?? null;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const m = memory(stack.workerPid);
      if (m && (rssMax === null || m.rssMiB > rssMax)) rssMax = m.rssMiB;
      await sleep(250);
    }
  })();
  try {
    const submitted = Date.now();
    const { token } = await stack.synchronize(task);
    const side = opts.onProgress?.(token);
    // Awaited below; this keeps a failure while waiting from being reported as unhandled.
    side?.catch(() => {});
    const action = await stack.waitFor(token, ENDED, opts.timeoutMs);
    await side;
    const cpu1 = cpuMs(stack.workerPid);
    const units = await stack.units(token);
    const after = stack.gmail.stats();
    const starts = units.map((u) => u.startedAt?.toMillis()).filter((t): t is number => t !== undefined);
    const ends = units.map((u) => u.endedAt?.toMillis()).filter((t): t is number => t !== undefined);
    const calls: Record<string, number> = {};
    for (const [k, v] of Object.entries(after.calls)) {
      const d = v - (before.calls[k] ?? 0);
      if (d) calls[k] = d;
    }
    return {
      token,
      action,
      units,
      messages: units.reduce((n, u) => n + (u.counts['seen'] ?? 0), 0),
      unitSeconds: starts.length && ends.length ? (Math.max(...ends) - Math.min(...starts)) / 1000 : NaN,
      submitSeconds: ((action.endedAt?.toMillis() ?? Date.now()) - submitted) / 1000,
      workerCpuMs: cpu0 !== null && cpu1 !== null ? cpu1 - cpu0 : null,
      workerPeakMiB: memory(stack.workerPid)?.peakMiB ?? null,
      workerRssMaxMiB: rssMax,
      rateLimited: after.rateLimited - before.rateLimited,
      retries: units.reduce((n, u) => n + u.retries, 0),
      calls,
    };
  } finally {
    sampling = false;
    await sampler;
  }
}

/** Fails unless the run finished with every message it should have seen. */
export function expectFinished(run: SyncRun, expected: number): void {
  if (run.action.status !== 'Finished') {
    throw new Error(`action ${run.token} ended ${run.action.status}${run.action.error ? `: ${run.action.error}` : ''}`);
  }
  if (run.messages !== expected) throw new Error(`action ${run.token} examined ${run.messages} messages, expected ${expected}`);
}
