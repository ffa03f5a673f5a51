/**
 * ReleaseHold: takes the hold off the sink documents the `Identifiers` (or `IdentifiersXML`) name.
 * The next Synchronize of their mailbox examines each again and applies what changed while it
 * was held (fetch/holds.ts). Results: `<tasks><success>ID</success><failed message="why">ID</failed>`;
 * counters `releasedholds` and `errors`. An identifier whose document is not on hold fails.
 * Like Hold: the sink only, one unit per named mailbox under the mailbox's lock.
 */
import { namedMailboxes, namedOf } from './collect.js';
import { holdBatch, parseHoldTargets } from './hold.js';
import type { FetchActionSpec, UnitContext, UnitOutcome } from './registry.js';
import { runItems } from './writes.js';

async function run(ctx: UnitContext): Promise<UnitOutcome> {
  return runItems(ctx, namedOf(ctx) ?? [], (batch) => holdBatch(ctx, batch, false)());
}

export const releaseHoldAction: FetchActionSpec = {
  name: 'ReleaseHold',
  summary: 'releases the named sink documents from hold; the next Synchronize applies what changed meanwhile',
  parse: parseHoldTargets('ReleaseHold'),
  units: 'identifiers',
  namedMailboxes,
  lock: true,
  coalesces: false,
  scopes: [],
  methods: [],
  counters: ['releasedholds', 'errors'],
  run,
  results: 'tasks',
};
