/**
 * What Hold and ReleaseHold share: one spec for both (the same units, lock and results, the
 * opposite change), their parsing, and one batch of holds or releases.
 */
import { FieldValue, Timestamp } from '@google-cloud/firestore';
import { decodeIdentifier } from '../../aci/identifiers.js';
import { badParameter, missingParameter } from '../../aci/errors.js';
import { parseBoolParam, type AciParams } from '../../aci/request.js';
import type { Config } from '../../config.js';
import { COLLECTIONS, documentId } from '../../store/model.js';
import { namedMailboxes, namedOf, parseNamed } from './named.js';
import type { FetchActionSpec, FetchParams, UnitContext, UnitOutcome } from '../spec.js';
import { failedEntry, runItems, type ItemOutcome } from './writes.js';

/** Reads the identifiers of a Hold or ReleaseHold (required). */
export function parseHoldTargets(name: string): (p: AciParams, config: Config) => FetchParams {
  return (p, config) => {
    if (p.has('Sync') && parseBoolParam(p, 'Sync', false)) throw badParameter('Sync', p.get('Sync') ?? '', `false: ${name} runs only as an action`);
    const named = parseNamed(p, config);
    if (!named) throw missingParameter('Identifiers', `the identifiers of the documents to ${name === 'Hold' ? 'hold' : 'release'}, as FetchAction=Identifiers lists them`);
    return { identifiers: JSON.stringify(named) };
  };
}

/** Holds or releases one batch of a unit's identifiers: their outcomes and the sink writes. */
export function holdBatch(ctx: UnitContext, ids: string[], hold: boolean) {
  return async () => {
    const refs = ids.map((id) => ctx.db.collection(COLLECTIONS.documents).doc(documentId(ctx.task, ctx.user, decodeIdentifier(id).messageId)));
    const snaps = await ctx.db.getAll(...refs, { fieldMask: ['held'] });
    const outcomes: ItemOutcome[] = [];
    const writes: { ref: (typeof refs)[number]; data: Record<string, unknown> }[] = [];
    ids.forEach((id, k) => {
      const snap = snaps[k];
      const ref = refs[k] as (typeof refs)[number];
      if (!snap?.exists) {
        outcomes.push(failedEntry(id, `no sink document for this message in task ${ctx.task}: synchronize the task first`));
        return;
      }
      if (hold) {
        writes.push({ ref, data: { held: true, heldBy: ctx.token, heldAt: Timestamp.now(), released: FieldValue.delete() } });
        outcomes.push({ entry: { id, name: '' }, counter: 'holds' });
      } else if (snap.get('held') !== true) {
        outcomes.push(failedEntry(id, 'the document is not on hold'));
      } else {
        writes.push({ ref, data: { held: FieldValue.delete(), heldBy: FieldValue.delete(), heldAt: FieldValue.delete(), released: true } });
        outcomes.push({ entry: { id, name: '' }, counter: 'releasedholds' });
      }
    });
    return { outcomes, write: (b: FirebaseFirestore.WriteBatch) => writes.forEach((w) => b.update(w.ref, w.data)) };
  };
}

/** The spec of Hold (`hold`) or ReleaseHold: the same units, lock and results, the opposite change. */
export function holdSpec(name: 'Hold' | 'ReleaseHold', summary: string): FetchActionSpec {
  const hold = name === 'Hold';
  return {
    name,
    summary,
    parameters: ['Identifiers', 'IdentifiersXML'],
    parse: parseHoldTargets(name),
    units: 'identifiers',
    namedMailboxes,
    lock: true,
    coalesces: false,
    scopes: [],
    methods: [],
    counters: [hold ? 'holds' : 'releasedholds', 'errors'],
    run: (ctx: UnitContext): Promise<UnitOutcome> => runItems(ctx, namedOf(ctx) ?? [], (batch) => holdBatch(ctx, batch, hold)()),
    results: 'tasks',
  };
}
