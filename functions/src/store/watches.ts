/**
 * Gmail watches, one per address: `watches/{address}` (docs/CONTRACT.md) holds the topic, the
 * label filter, the expiry Gmail gave, the last renewal and the last error; and
 * `watches/{address}/pending/{TASK}` names the push Synchronize of that task and address that is
 * still queued, so that notifications join it (push/queue.ts).
 */
import { Timestamp, type DocumentReference, type Firestore } from '@google-cloud/firestore';
import { COLLECTIONS } from './model.js';

/** `watches/{address}`. */
export interface WatchRecord {
  address: string;
  topic: string;
  /** Label ids the watch is limited to; empty: none. */
  labelIds: string[];
  /** When Gmail stops notifying unless the watch is renewed; null before the first success. */
  expiration: Timestamp | null;
  /** The mailbox's history id when it was last watched. */
  historyId: string | null;
  /** The last successful users.watch. */
  renewedAt: Timestamp | null;
  /** Why the last users.watch or users.stop failed; null after a success. */
  lastError: string | null;
  lastErrorAt: Timestamp | null;
}

export class WatchStore {
  constructor(
    private readonly db: Firestore,
    private readonly now: () => number = Date.now,
  ) {}

  ref(address: string): DocumentReference {
    return this.db.collection(COLLECTIONS.watches).doc(address.toLowerCase());
  }

  /** Where the queued push Synchronize of a task and address is named. */
  pendingRef(address: string, task: string): DocumentReference {
    return this.ref(address).collection('pending').doc(task.toUpperCase());
  }

  async get(address: string): Promise<WatchRecord | null> {
    const snap = await this.ref(address).get();
    return snap.exists ? (snap.data() as WatchRecord) : null;
  }

  /** Watches in address order, from after `after`, at most `limit`. */
  async list(limit: number, after?: string): Promise<WatchRecord[]> {
    let q = this.db.collection(COLLECTIONS.watches).orderBy('address').limit(limit);
    if (after !== undefined) q = q.startAfter(after);
    return (await q.get()).docs.map((d) => d.data() as WatchRecord);
  }

  async count(): Promise<number> {
    return (await this.db.collection(COLLECTIONS.watches).count().get()).data().count;
  }

  /** Records a successful users.watch. */
  async watched(address: string, w: { topic: string; labelIds: string[]; expiration: number; historyId: string | null }): Promise<void> {
    const rec: WatchRecord = {
      address: address.toLowerCase(),
      topic: w.topic,
      labelIds: w.labelIds,
      expiration: Timestamp.fromMillis(w.expiration),
      historyId: w.historyId,
      renewedAt: Timestamp.fromMillis(this.now()),
      lastError: null,
      lastErrorAt: null,
    };
    await this.ref(address).set(rec);
  }

  /** Records a failed users.watch or users.stop; the watch as it was is kept. */
  async failed(address: string, w: { topic: string; labelIds: string[] }, message: string): Promise<void> {
    const at = Timestamp.fromMillis(this.now());
    const prev = await this.get(address);
    const rec: WatchRecord = prev
      ? { ...prev, lastError: message, lastErrorAt: at }
      : { address: address.toLowerCase(), topic: w.topic, labelIds: w.labelIds, expiration: null, historyId: null, renewedAt: null, lastError: message, lastErrorAt: at };
    await this.ref(address).set(rec);
  }

  /** Forgets the address's watch (after users.stop). */
  async remove(address: string): Promise<void> {
    await this.db.recursiveDelete(this.ref(address));
  }
}
