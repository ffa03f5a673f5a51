/**
 * How Firestore refuses a conditional write whose condition no longer holds:
 * the stores read again and decide again instead of failing. And how a
 * transaction is run so that losing to others is retried, not reported.
 */
import type { Firestore, Transaction } from '@google-cloud/firestore';
import pRetry from 'p-retry';
import { errorMessage } from '../error-message.js';

/** gRPC codes of a refused conditional write. */
export const CODES = {
  /** A transaction's handle no longer names a live transaction (see `runTransaction`). */
  INVALID_ARGUMENT: 3,
  /** A `lastUpdateTime` precondition failed: the document changed since it was read. */
  FAILED_PRECONDITION: 9,
  /** An update found the document gone. */
  NOT_FOUND: 5,
  /** A create found the document there. */
  ALREADY_EXISTS: 6,
} as const;

/** Whether `e` is a refusal with one of `codes`. */
export function refusedWith(e: unknown, ...codes: number[]): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'number' && codes.includes(code);
}

/**
 * How Firestore says a transaction is gone: "The referenced transaction has expired or is no
 * longer valid" (the service); "Transaction is invalid or closed" and "Transaction is invalid or
 * expired" (the emulator, for a transaction it has already ended, as after a lock timeout, or
 * for the client's retry that names one).
 */
const GONE = /transaction (is invalid|has expired|is no longer valid)/i;

/** Whether `e` says the transaction it ran in is gone: nothing of it was written. */
export function transactionGone(e: unknown): boolean {
  return refusedWith(e, CODES.INVALID_ARGUMENT) && GONE.test(errorMessage(e) ?? '');
}

/** Times a transaction refused as gone is run again afresh. */
const FRESH_RUNS = 5;

/**
 * `db.runTransaction`, run again afresh (at most FRESH_RUNS times, 25 ms apart and doubling)
 * when it ends refused as gone. The client retries a transaction only on refusals it knows
 * (ABORTED, or "transaction has expired"); under contention the emulator refuses a few in a
 * hundred with INVALID_ARGUMENT "Transaction is invalid or closed", which turned a tie between
 * writers into an error for the caller.
 */
export function runTransaction<T>(
  db: Pick<Firestore, 'runTransaction'>,
  update: (tx: Transaction) => Promise<T>,
  options?: { maxAttempts?: number },
): Promise<T> {
  return pRetry(() => db.runTransaction(update, options), {
    retries: FRESH_RUNS - 1,
    minTimeout: 25,
    factor: 2,
    shouldRetry: ({ error }) => transactionGone(error),
  });
}
