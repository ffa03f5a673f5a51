/**
 * One reader of an address at a time: Gmail meters its quota per user, so every
 * run reading one address (whatever its task section, action or delivery) must
 * spend from one budget. A run holds the address's document,
 * `gmailAddresses/{address}`, for the length of its lease, renewing it as it
 * goes; another run waits (reading, not writing) until the hold ends or expires.
 * The holder's pacer state is written with each renewal and at release, and the
 * next holder, in whatever process, starts from it: the burst Gmail has been
 * seen to allow, the rate it came down to, and any Retry-After still running.
 *
 * Why a hold rather than a shared budget in Firestore: a shared bucket would
 * need a write per reservation from every reader, and Firestore sustains about
 * one write a second per document; a hold costs one write per renewal (a third
 * of the lease) whatever the call rate, and one reader at the full quota reads
 * as fast as two at half of it. Waiting runs only read.
 *
 * The documents do not pile up: each write sets `expireAt` an hour past the
 * hold's end, and Firestore's TTL policy on it (infra/firestore.tf) deletes an
 * address nobody has read for that long. By then its pacer's state says
 * nothing any more: the bucket is full again and a burst learned smaller has
 * grown back (pacing.ts), which is also how a holder that finds no document
 * starts.
 */
import { Timestamp, type Firestore } from '@google-cloud/firestore';
import { runTransaction } from '../store/conflicts.js';
import { RunAborted, sleep, type PacerState, type QuotaPacer } from './pacing.js';

export const ADDRESS_COLLECTION = 'gmailAddresses';
/** How long an address's document outlives the end of its last hold. */
export const ADDRESS_KEEP_MS = 3_600_000;

/** Another run took the address over (its hold had expired). */
export class AddressLost extends Error {
  override readonly name = 'AddressLost';
  constructor(address: string) {
    super(`another run took over reading ${address}`);
  }
}

interface HoldDoc {
  holder?: string | null;
  until?: number;
  pacer?: PacerState | null;
}

export interface AddressHold {
  /** Ends the hold and leaves the pacer's state for the next holder. */
  release(): Promise<void>;
}

/**
 * Waits until `address` is free (or its hold expired), then holds it for
 * `leaseMs`, renewed every third of it. `onLost` is called if another run
 * takes it over. Throws RunAborted when `signal` aborts while waiting.
 */
export async function holdAddress(opts: {
  db: Firestore;
  address: string;
  holder: string;
  leaseMs: number;
  pacer: QuotaPacer;
  now: () => number;
  signal: AbortSignal;
  onLost: (e: AddressLost) => void;
}): Promise<AddressHold> {
  const { db, address, holder, leaseMs, pacer, now, signal } = opts;
  const ref = db.collection(ADDRESS_COLLECTION).doc(address.toLowerCase());
  for (let wait = 200; ; wait = Math.min(2000, wait * 1.5)) {
    if (signal.aborted) throw new RunAborted();
    const got = await runTransaction(db, async (tx) => {
      const snap = await tx.get(ref);
      const d = (snap.data() ?? {}) as HoldDoc;
      const t = now();
      if (d.holder && d.holder !== holder && (d.until ?? 0) > t) return { ok: false as const, until: d.until ?? t };
      tx.set(ref, { holder, until: t + leaseMs, pacer: d.pacer ?? null, expireAt: Timestamp.fromMillis(t + leaseMs + ADDRESS_KEEP_MS) });
      return { ok: true as const, pacer: d.pacer ?? null };
    });
    if (got.ok) {
      // Another process's state is newer than anything this process's pacer knows of the address.
      if (got.pacer) pacer.restore(got.pacer);
      break;
    }
    await sleep(Math.min(wait, Math.max(50, got.until - now())) * (0.75 + Math.random() / 2), signal);
  }
  let ended = false;
  const write = (last: boolean) =>
    runTransaction(db, async (tx) => {
      const snap = await tx.get(ref);
      const d = (snap.data() ?? {}) as HoldDoc;
      if (d.holder !== holder) return false;
      const t = now();
      tx.set(
        ref,
        last
          ? { holder: null, until: 0, pacer: pacer.snapshot(), expireAt: Timestamp.fromMillis(t + ADDRESS_KEEP_MS) }
          : { holder, until: t + leaseMs, pacer: pacer.snapshot(), expireAt: Timestamp.fromMillis(t + leaseMs + ADDRESS_KEEP_MS) },
      );
      return true;
    });
  const timer = setInterval(
    () => {
      write(false).then(
        (held) => {
          if (!held && !ended) opts.onLost(new AddressLost(address));
        },
        () => {},
      );
    },
    Math.max(1000, leaseMs / 3),
  );
  return {
    async release() {
      if (ended) return;
      ended = true;
      clearInterval(timer);
      await write(true).catch(() => {});
    },
  };
}
