/**
 * Results of fetch actions that have them (Identifiers), `actions/{token}/results/{key}`:
 * each document holds one committed batch of one unit's entries, keyed by the unit's index and
 * the batch's first position in that unit, so that a page of results anywhere in a 200,000-entry
 * action is found by key, never by skipping documents.
 */
import { FieldPath, type Firestore, type Timestamp, type WriteBatch } from '@google-cloud/firestore';
import { COLLECTIONS, type UnitRecord } from './model.js';

/** One result: an identifier, and what describes it. */
export interface ResultEntry {
  id: string;
  name: string;
  attributes?: Record<string, string>;
}

interface ResultBatch {
  unit: number;
  first: number;
  entries: ResultEntry[];
  /** Firestore's TTL policy deletes the batch after this (see ActionStore.expireWhileRunning). */
  expireAt?: Timestamp;
}

/** The most entries one document holds: a page is found by key without scanning backwards. */
export const MAX_RESULT_BATCH = 50;

const pad = (n: number, width: number): string => String(n).padStart(width, '0');
const keyOf = (unit: number, first: number): string => `${pad(unit, 6)}-${pad(first, 9)}`;

export class ResultStore {
  constructor(private readonly db: Firestore) {}

  private col(token: string) {
    return this.db.collection(COLLECTIONS.actions).doc(token).collection(COLLECTIONS.results);
  }

  /** Adds, to `b`, the entries of unit `unit` from position `first` on (a rewrite of the same batch is the same document). */
  write(b: WriteBatch, token: string, unit: number, first: number, entries: ResultEntry[], expireAt: Timestamp): void {
    if (entries.length === 0) return;
    if (entries.length > MAX_RESULT_BATCH) throw new Error(`a result batch holds at most ${MAX_RESULT_BATCH} entries, not ${entries.length}`);
    const batch: ResultBatch = { unit, first, entries, expireAt };
    b.set(this.col(token).doc(keyOf(unit, first)), batch);
  }

  /** The entries of the batch of unit `unit` written at position `first`, if there is one. */
  async read(token: string, unit: number, first: number): Promise<ResultEntry[] | undefined> {
    const snap = await this.col(token).doc(keyOf(unit, first)).get();
    return snap.exists ? (snap.data() as ResultBatch).entries : undefined;
  }

  /**
   * Entries `start` (0-based) to `start + max` of the action, in unit order then listing
   * order; `units` gives each unit's committed number of entries (`messages`).
   */
  async page(token: string, units: UnitRecord[], start: number, max: number): Promise<ResultEntry[]> {
    const out: ResultEntry[] = [];
    let skip = start;
    for (const u of [...units].sort((a, b) => a.index - b.index)) {
      if (out.length >= max) break;
      if (skip >= u.messages) {
        skip -= u.messages;
        continue;
      }
      // The batch holding position `skip` starts at most MAX_RESULT_BATCH - 1 positions before it.
      let after = keyOf(u.index, Math.max(0, skip - MAX_RESULT_BATCH + 1));
      let first = true;
      while (out.length < max) {
        let q = this.col(token).orderBy(FieldPath.documentId());
        q = first ? q.startAt(after) : q.startAfter(after);
        const snaps = await q.endAt(keyOf(u.index, 999_999_999)).limit(20).get();
        if (snaps.empty) break;
        for (const d of snaps.docs) {
          const r = d.data() as ResultBatch;
          after = d.id;
          if (r.unit !== u.index) continue;
          for (let k = 0; k < r.entries.length && out.length < max; k++) {
            const pos = r.first + k;
            if (pos < skip || pos >= u.messages) continue;
            out.push(r.entries[k] as ResultEntry);
          }
        }
        first = false;
        if (snaps.size < 20) break;
      }
      skip = 0;
    }
    return out;
  }
}
