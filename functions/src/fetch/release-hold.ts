/**
 * ReleaseHold: takes the hold off the sink documents the `Identifiers` (or `IdentifiersXML`) name.
 * The next Synchronize of their mailbox examines each again and applies what changed while it
 * was held (fetch/shared/held-documents.ts). Results: `<tasks><success>ID</success><failed message="why">ID</failed>`;
 * counters `releasedholds` and `errors`. An identifier whose document is not on hold fails.
 * Like Hold (fetch/hold.ts): the sink only, one unit per named mailbox under the mailbox's lock.
 */
import { holdSpec } from './shared/hold-spec.js';

export const releaseHoldAction = holdSpec('ReleaseHold', 'releases the named sink documents from hold; the next Synchronize applies what changed meanwhile');
