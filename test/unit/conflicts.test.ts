/**
 * How a transaction refused as gone is run again afresh, and nothing else is: the policy of
 * store/conflicts.ts's runTransaction, given a stand-in for the client's runTransaction that
 * answers as scripted. (Under contention on a loaded machine, the Firestore emulator refuses a
 * few transactions in a hundred this way; guarantees.test.ts's simultaneous ticks meet it there.)
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Firestore, Transaction } from '@google-cloud/firestore';
import { runTransaction, transactionGone } from '../../functions/src/store/conflicts.js';

function refusal(code: number, message: string): Error {
  return Object.assign(new Error(`${code} ${message}`), { code });
}

const CLOSED = () => refusal(3, 'INVALID_ARGUMENT: Transaction is invalid or closed.');
const EXPIRED = () => refusal(3, 'INVALID_ARGUMENT: Transaction is invalid or expired.');
const SERVICE = () => refusal(3, 'INVALID_ARGUMENT: The referenced transaction has expired or is no longer valid.');

/** A client whose runTransaction fails with `failures` in turn, then runs the update. */
function scripted(failures: Error[]) {
  const seen: { maxAttempts?: number }[] = [];
  const db = {
    runTransaction: async <T>(update: (tx: Transaction) => Promise<T>, options?: { maxAttempts?: number }): Promise<T> => {
      seen.push({ ...options });
      const next = failures[seen.length - 1];
      if (next) throw next;
      return update({} as Transaction);
    },
  } as Pick<Firestore, 'runTransaction'>;
  return { db, seen };
}

describe('runTransaction', () => {
  it('runs a transaction refused as gone again afresh, with the same options, until it commits', async () => {
    const { db, seen } = scripted([CLOSED(), EXPIRED(), SERVICE()]);
    const out = await runTransaction(db, async () => 'committed', { maxAttempts: 20 });
    assert.equal(out, 'committed');
    assert.deepEqual(seen, [{ maxAttempts: 20 }, { maxAttempts: 20 }, { maxAttempts: 20 }, { maxAttempts: 20 }]);
  });

  it('gives up after five runs, with the last refusal', async () => {
    const last = CLOSED();
    const { db, seen } = scripted([CLOSED(), CLOSED(), CLOSED(), CLOSED(), last, CLOSED()]);
    await assert.rejects(runTransaction(db, async () => 'committed'), (e) => e === last);
    assert.equal(seen.length, 5);
  });

  it('passes any other refusal on at once, as it was', async () => {
    for (const other of [
      refusal(10, 'ABORTED: Transaction lock timeout.'),
      refusal(6, 'ALREADY_EXISTS: Document already exists'),
      refusal(3, 'INVALID_ARGUMENT: Value for argument "documentPath" is not a valid resource path.'),
      new Error('Transaction ID was missing from server response'),
    ]) {
      const { db, seen } = scripted([other]);
      await assert.rejects(runTransaction(db, async () => 'committed'), (e) => e === other);
      assert.equal(seen.length, 1, other.message);
    }
  });

  it('passes on what the update itself throws, without running it again', async () => {
    const { db, seen } = scripted([]);
    const mine = new Error('decided against it');
    await assert.rejects(
      runTransaction(db, async () => {
        throw mine;
      }),
      (e) => e === mine,
    );
    assert.equal(seen.length, 1);
  });

  it('tells a gone transaction by code and message', () => {
    assert.equal(transactionGone(CLOSED()), true);
    assert.equal(transactionGone(EXPIRED()), true);
    assert.equal(transactionGone(SERVICE()), true);
    assert.equal(transactionGone(refusal(10, 'ABORTED: Transaction is invalid or closed.')), false);
    assert.equal(transactionGone(refusal(3, 'INVALID_ARGUMENT: bad field')), false);
    assert.equal(transactionGone(null), false);
  });
});
