/**
 * One watcher per worker process for the stop flags of the actions its units run: every
 * `intervalMs` it reads each watched action once (one batched read, whatever the number of
 * units), and tells every unit of a stopped or cancelled action. A unit thus sees Stop within
 * one interval plus one read, and the reads scale with the actions a process runs, not with
 * its units (docs/CONTRACT.md, "Stop").
 */

/** Reads the flags of `tokens`: true for an action whose Stop was asked or that was cancelled. */
export type ReadStopFlags = (tokens: string[]) => Promise<Map<string, boolean>>;

export interface StopWatch {
  /** Calls `onStop` once the action is seen stopping; returns the function that ends the watch. */
  watch(token: string, onStop: () => void): () => void;
  /** Reads made so far (one per action per interval). */
  readonly reads: number;
}

export function createStopWatch(read: ReadStopFlags, intervalMs: number): StopWatch {
  const watchers = new Map<string, Set<() => void>>();
  let timer: NodeJS.Timeout | undefined;
  let reading = false;
  let reads = 0;

  async function tick(): Promise<void> {
    if (reading || watchers.size === 0) return;
    reading = true;
    try {
      const tokens = [...watchers.keys()];
      reads += tokens.length;
      const flags = await read(tokens);
      for (const [token, stopped] of flags) {
        if (!stopped) continue;
        for (const cb of [...(watchers.get(token) ?? [])]) cb();
      }
    } catch {
      // A failed read is tried again at the next tick.
    } finally {
      reading = false;
    }
  }

  return {
    watch(token, onStop) {
      let set = watchers.get(token);
      if (!set) watchers.set(token, (set = new Set()));
      let called = false;
      const cb = () => {
        if (called) return;
        called = true;
        onStop();
      };
      set.add(cb);
      timer ??= setInterval(() => void tick(), intervalMs);
      return () => {
        set.delete(cb);
        if (set.size === 0 && watchers.get(token) === set) watchers.delete(token);
        if (watchers.size === 0 && timer) {
          clearInterval(timer);
          timer = undefined;
        }
      };
    },
    get reads() {
      return reads;
    },
  };
}
