/**
 * The ACI error a client is given for what an action threw: the error itself when it is one,
 * 503 when Firestore or Cloud Tasks said "not now", 500 otherwise (no stack trace either way).
 */
import { AciError, internal, unavailable } from '../aci/errors.js';
import { refusedWith, transactionGone } from '../store/conflicts.js';

/**
 * gRPC codes with which Firestore and Cloud Tasks say "not now": a deadline passed, a quota ran
 * out, a transaction lost to others (after the client's own retries), the service unreachable.
 * A transaction refused as gone after its fresh runs (store/conflicts.ts) is busy too.
 */
const BUSY_CODES = [4 /* DEADLINE_EXCEEDED */, 8 /* RESOURCE_EXHAUSTED */, 10 /* ABORTED */, 14 /* UNAVAILABLE */];

/** The error a client is given for what an action threw: 503 when a dependency was busy, else 500. */
export function toAciError(error: unknown): AciError {
  if (error instanceof AciError) return error;
  // The code is on the client's error, or on the cause of ours (a QueueError wraps it).
  for (let e: unknown = error, depth = 0; e && depth < 3; e = (e as { cause?: unknown }).cause, depth++) {
    if (refusedWith(e, ...BUSY_CODES) || transactionGone(e)) return unavailable('Firestore or Cloud Tasks is busy', error);
  }
  return internal('the connector failed to answer; see its logs', error);
}
