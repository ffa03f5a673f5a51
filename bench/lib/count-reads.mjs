/**
 * Loaded with `--import` into a function's process by the benchmarks: counts the Firestore
 * documents the process reads, as Firestore bills them (a document read by get or getAll is one;
 * a query is one per document returned, at least one; a count aggregation one per 1,000 entries,
 * at least one), and writes the running totals to `$FIRESTORE_READS_DIR/<pid>.json`.
 * Reads inside transactions (only the coalescing of scheduled runs makes them) are not counted.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DocumentReference, Firestore, Query } from '@google-cloud/firestore';

const dir = process.env.FIRESTORE_READS_DIR;
if (dir) {
  const counts = { documents: 0, queries: 0, aggregations: 0, gets: 0 };
  let dirty = false;
  const add = (field, n) => {
    counts[field] += 1;
    counts.documents += n;
    dirty = true;
  };
  const file = join(dir, `${process.pid}.json`);
  const flush = () => {
    if (!dirty) return;
    dirty = false;
    writeFileSync(file, JSON.stringify({ pid: process.pid, argv: process.argv.slice(2), ...counts }));
  };
  setInterval(flush, 200).unref();
  process.on('exit', flush);

  const getAll = Firestore.prototype.getAll;
  Firestore.prototype.getAll = async function (...args) {
    const snaps = await getAll.apply(this, args);
    add('gets', snaps.length);
    return snaps;
  };
  const queryGet = Query.prototype.get;
  Query.prototype.get = async function (...args) {
    const snap = await queryGet.apply(this, args);
    add('queries', Math.max(1, snap.size));
    return snap;
  };
  // DocumentReference.get goes through getAll; nothing to add for it.
  void DocumentReference;
  const probe = new Firestore({ projectId: 'count-reads', host: '127.0.0.1:1', ssl: false });
  const Aggregate = Object.getPrototypeOf(probe.collection('x').count());
  const aggregateGet = Aggregate.get;
  Aggregate.get = async function (...args) {
    const snap = await aggregateGet.apply(this, args);
    const n = Number(snap.data().count ?? 0);
    add('aggregations', Math.max(1, Math.ceil(n / 1000)));
    return snap;
  };
  void probe.terminate();
}
