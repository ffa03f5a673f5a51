/** The watches as the server's GetStatus shows them: how many, and the first of them in address order. */
import type { Deps } from '../deps.js';
import { WatchStore, type WatchRecord } from '../store/watches.js';

/** Watches GetStatus lists at most (it counts them all). */
export const WATCHES_SHOWN = 100;

export async function watchStatus(deps: Deps): Promise<{ count: number; watches: WatchRecord[] }> {
  const store = new WatchStore(deps.db, deps.now);
  const [count, watches] = await Promise.all([store.count(), store.list(WATCHES_SHOWN)]);
  return { count, watches };
}
