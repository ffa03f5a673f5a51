/**
 * Fetching ahead while committing: the items of a listed page are applied in
 * batches, and while one batch commits, the next ones are already being
 * fetched, so that neither Gmail's round trips nor Firestore's commits leave
 * the other idle.
 *
 * What stays as it was without the overlap (docs/CONTRACT.md, "Exactly once"):
 * - commits happen one at a time, in the order of the items, each with the
 *   checkpoint it leads to (the caller's `commit`);
 * - a batch whose items did not all apply (the run must end, or an item was
 *   abandoned) commits its applied prefix only, and nothing after it is
 *   committed: the batches fetched ahead are dropped, and the next run fetches
 *   them again from the checkpoint;
 * - once a commit fails (a lost lease or mailbox, or Firestore), nothing more
 *   is committed and the failure is thrown; the fetches still in flight are
 *   told to stop and waited for, so nothing of the run goes on after it.
 *
 * What is held: at most `ahead + 1` batches of results (each at most a sink
 * document, which is under 1 MiB), and the calls in flight that the limiter
 * allows.
 */
import pLimit from 'p-limit';

export interface PipelineOptions<T, R> {
  /** The items to apply, in order. */
  items: readonly T[];
  /** Items applied, then committed, together. */
  batchSize: number;
  /** The first batch's size, when smaller: the first documents land sooner. */
  firstBatchSize?: number;
  /** Batches fetched beyond the one committing. */
  ahead: number;
  /** Items applied at once, across the batches in flight; asked again before each item starts. */
  concurrency: () => number;
  /** Reads what a batch needs before its items apply (its sink documents); answers how to apply each one. */
  prepare: (batch: readonly T[]) => Promise<(item: T, k: number) => Promise<R | undefined>>;
  /** Commits a batch's applied prefix (never empty), in order. */
  commit: (batch: readonly T[], ready: R[]) => Promise<void>;
  /** True once the run must end: no item starts after that. */
  shouldEnd: () => boolean;
}

interface InFlight<T, R> {
  batch: readonly T[];
  results: Promise<(R | undefined)[]>;
}

/**
 * Applies and commits `items`; true when every item was committed, false when
 * the run must end first (what was committed is a prefix of the items).
 */
export async function fetchAhead<T, R>(o: PipelineOptions<T, R>): Promise<boolean> {
  const limit = pLimit(Math.max(1, o.concurrency()));
  let halted = false;
  const ended = () => halted || o.shouldEnd();
  const inFlight: InFlight<T, R>[] = [];
  let next = 0;

  const launch = () => {
    const size = next === 0 ? Math.min(o.batchSize, o.firstBatchSize ?? o.batchSize) : o.batchSize;
    const batch = o.items.slice(next, next + size);
    next += batch.length;
    const results = (async () => {
      const apply = await o.prepare(batch);
      return Promise.all(
        batch.map((item, k) =>
          limit(async () => {
            // A limiter shared by the batches in flight, as wide as the caller allows now.
            limit.concurrency = Math.max(1, o.concurrency());
            return ended() ? undefined : apply(item, k);
          }),
        ),
      );
    })();
    // Read (or dropped) below; this keeps a dropped batch's failure from being reported as unhandled.
    results.catch(() => {});
    inFlight.push({ batch, results });
  };

  /** Stops every batch still in flight and waits for them: nothing goes on after the return. */
  const halt = async () => {
    halted = true;
    await Promise.allSettled(inFlight.map((f) => f.results));
  };

  try {
    for (;;) {
      while (!ended() && next < o.items.length && inFlight.length <= o.ahead) launch();
      const head = inFlight.shift();
      if (!head) return next >= o.items.length;
      const results = await head.results;
      // The next batch starts fetching before this one commits.
      if (!ended() && next < o.items.length && inFlight.length <= o.ahead) launch();
      const cut = results.findIndex((r) => r === undefined);
      const ready = (cut === -1 ? results : results.slice(0, cut)) as R[];
      if (ready.length > 0) await o.commit(head.batch, ready);
      if (ready.length < head.batch.length) return false;
    }
  } finally {
    await halt();
  }
}
