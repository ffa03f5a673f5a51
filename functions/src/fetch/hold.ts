/**
 * Hold: puts the sink documents the `Identifiers` (or `IdentifiersXML`) name on hold, so that no
 * Synchronize deletes or overwrites them until ReleaseHold (fetch/shared/held-documents.ts says what a run does
 * with them). Results: `<tasks><success>ID</success><failed message="why">ID</failed>`; counters
 * `holds` and `errors`. An identifier with no sink document fails (synchronize the task first).
 *
 * Only the sink changes, never Gmail: Hold needs no writes switch. One unit per named mailbox,
 * holding the mailbox's lock, so a hold never lands in the middle of a Synchronize's batch: each
 * batch of holds is committed with its results and checkpoint, by the mailbox's owner only.
 */
import { holdSpec } from './shared/hold-spec.js';

export const holdAction = holdSpec('Hold', 'puts the named sink documents on hold: no Synchronize deletes or overwrites them until ReleaseHold');
