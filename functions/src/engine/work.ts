/**
 * What the worker does with one delivery of a task (docs/CONTRACT.md):
 * - the action's own task fans out to one unit task per task section and mailbox (fan-out.ts);
 * - a unit task claims the unit's lease and mailbox (claim.ts), runs its fetch action with the
 *   lease renewed and the stop flag watched, then ends the unit or hands it over to a
 *   continuation task before the time budget runs out (unit-run.ts).
 */
import type { Deps } from '../deps.js';
import { createWatcher } from '../push/watch-renewal.js';
import type { WorkPayload } from '../queue/tasks.js';
import type { DeliveryInfo } from '../store/units.js';
import { createUnitClaim } from './claim.js';
import { createFanOut } from './fan-out.js';
import { createStopWatch } from './stopwatch.js';
import type { WorkResult } from './unit-run.js';

export type { WorkResult } from './unit-run.js';

/** How often a worker process reads the stop flags of the actions its units run (one read per action). */
const STOP_POLL_MS = 400;

export function createWork(deps: Deps) {
  const stops = createStopWatch((tokens) => deps.store.stopFlags(tokens), STOP_POLL_MS);
  const fanOut = createFanOut(deps);
  const runUnit = createUnitClaim(deps, stops, createWatcher(deps));
  return {
    /** Handles one delivery. */
    async handle(p: WorkPayload, delivery: DeliveryInfo = { retryCount: 0, previousResponse: null }): Promise<WorkResult> {
      if (p.unit === undefined) return fanOut(p.token, p.queuedAt);
      return runUnit(p.token, p.unit, p.generation ?? 0, delivery);
    },
  };
}

export type Work = ReturnType<typeof createWork>;
