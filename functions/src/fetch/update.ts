/**
 * Update: changes the labels of the messages the `IdentifiersXML` names, each identifier with
 * `<metadata name="ADD_LABELS" value="L1,L2"/>` and/or `<metadata name="REMOVE_LABELS" value="..."/>`
 * (label ids, as Gmail names them: INBOX, STARRED, Label_12...). Messages with the same change are
 * changed together with `messages.batchModify` (up to 1,000 at once), after each was looked up
 * (`messages.get`, minimal), because batchModify passes over ids it does not know: a message that
 * is not in the mailbox fails by itself. A change Gmail refuses (an unknown label) fails the items
 * of its batch and changes none of them. Label changes are idempotent, so a batch redone after a
 * crash changes nothing more.
 *
 * `DryRun=true` changes nothing: each message is looked up, the label ids of each change are
 * checked against the mailbox's labels (`labels.list`), and each item is reported as the real
 * Update would report it, its result saying so: `<success dryrun="wouldUpdate">` counted `updated`;
 * a message not in the mailbox fails with `dryrun="absent"`; a change naming a label id the
 * mailbox does not have fails, as Gmail would refuse it. It needs the same writes switch and scope
 * as the real Update.
 *
 * Writes must be on for the task (`"writes": true`), when the request arrives and again in the
 * worker before each batch (writes.ts); scope gmail.modify. Results:
 * `<tasks><success>ID</success><failed message="why">ID</failed>`; counters `updated`, `errors`.
 */
import { decodeIdentifier } from '../aci/identifiers.js';
import { badParameter, missingParameter } from '../aci/errors.js';
import type { AciParams } from '../aci/request.js';
import type { Config } from '../config.js';
import { namedMailboxes, namedOf, parseNamed } from './shared/named.js';
import type { FetchActionSpec, FetchParams, UnitContext, UnitOutcome } from './spec.js';
import { SCOPES, existing, failedEntry, gmailItemFailure, parseDryRun, requireWrites, runItems, type ItemOutcome, type WriteGuard } from './shared/writes.js';

const UPDATE_SCOPES = [SCOPES.modify];
const GUARD: WriteGuard = { action: 'Update', scopes: UPDATE_SCOPES };
const LABEL = /^[A-Za-z0-9_-]{1,100}$/;

function labelList(raw: string | undefined, where: string): string[] {
  const out = (raw ?? '').split(',').map((l) => l.trim()).filter((l) => l !== '');
  for (const l of out) if (!LABEL.test(l)) throw badParameter('IdentifiersXML', raw ?? '', `${where}: label ids (letters, digits, _ and -), not ${JSON.stringify(l)}`);
  return [...new Set(out)];
}

function parse(p: AciParams, config: Config): FetchParams {
  const dryRun = parseDryRun(p);
  if (p.has('Identifiers')) throw badParameter('Identifiers', p.get('Identifiers') ?? '', 'left out: Update takes IdentifiersXML, whose <metadata name="ADD_LABELS"|"REMOVE_LABELS"> say what to change');
  const metadata = new Map<string, Record<string, string>>();
  const named = parseNamed(p, config, metadata);
  if (!named) throw missingParameter('IdentifiersXML', '<identifiersXML><identifier value="ID"><metadata name="ADD_LABELS" value="STARRED"/></identifier></identifiersXML>');
  const changes: Record<string, { add: string[]; remove: string[] }> = {};
  for (const [id, m] of metadata) {
    const where = `identifier ${id.slice(0, 40)}`;
    const unknown = Object.keys(m).filter((k) => k !== 'ADD_LABELS' && k !== 'REMOVE_LABELS');
    if (unknown.length) throw badParameter('IdentifiersXML', unknown.join(','), `${where}: metadata ADD_LABELS or REMOVE_LABELS only`);
    const add = labelList(m['ADD_LABELS'], where);
    const remove = labelList(m['REMOVE_LABELS'], where);
    if (add.length + remove.length === 0) throw badParameter('IdentifiersXML', id, `${where}: a label to add (ADD_LABELS) or remove (REMOVE_LABELS)`);
    const both = add.filter((l) => remove.includes(l));
    if (both.length) throw badParameter('IdentifiersXML', both.join(','), `${where}: a label either added or removed, not both`);
    changes[id] = { add, remove };
  }
  requireWrites(config, Object.keys(named), GUARD.action, GUARD.scopes, dryRun);
  return { identifiers: JSON.stringify(named), changes: JSON.stringify(changes), ...(dryRun ? { dryRun } : {}) };
}

/**
 * The label ids of the unit's mailbox (a dry run checks each change against them), or, when Gmail
 * refuses to list them, each item's failure; throws what ends the run (see gmailItemFailure).
 */
async function labelIds(ctx: UnitContext): Promise<Set<string> | ((id: string) => ItemOutcome)> {
  const what = `labels.list of ${ctx.user}`;
  try {
    const res = await ctx.caller.call('labels.list', what, (o) => ctx.gmail.users.labels.list({ userId: ctx.user, fields: 'labels(id)' }, o));
    return new Set((res.data.labels ?? []).map((l) => l.id ?? '').filter((id) => id !== ''));
  } catch (e) {
    const failure = gmailItemFailure(e, '', what);
    return (id) => ({ ...failure, entry: { ...failure.entry, id } });
  }
}

/**
 * Looks each message up; those found are changed together, per identical change. A dry run
 * changes none: a change whose label ids the mailbox has is reported as the update it would be.
 */
async function updateBatch(ctx: UnitContext, ids: string[]): Promise<{ outcomes: ItemOutcome[] }> {
  const changes = JSON.parse(String(ctx.params['changes'])) as Record<string, { add: string[]; remove: string[] }>;
  const dry = ctx.params['dryRun'] === true;
  const outcomes = new Map<string, ItemOutcome>();
  const present = await existing(ctx, ids);
  const found = ids.filter((id) => present.get(id) === true);
  for (const id of ids) {
    const p = present.get(id);
    if (p !== true && p !== undefined && p !== 'absent') outcomes.set(id, p);
    if (p === 'absent') outcomes.set(id, failedEntry(id, `message ${decodeIdentifier(id).messageId} is not in ${ctx.user}'s mailbox`, dry ? { dryrun: 'absent' } : {}));
  }
  const known = dry && found.length ? await labelIds(ctx) : undefined;
  const groups = new Map<string, string[]>();
  for (const id of found) {
    const c = changes[id] ?? { add: [], remove: [] };
    const key = JSON.stringify([[...c.add].sort(), [...c.remove].sort()]);
    groups.set(key, [...(groups.get(key) ?? []), id]);
  }
  for (const [key, group] of groups) {
    const [add, remove] = JSON.parse(key) as [string[], string[]];
    const messageIds = group.map((id) => decodeIdentifier(id).messageId);
    const what = `changing the labels of ${group.length} messages of ${ctx.user}`;
    if (known !== undefined) {
      const unknown = typeof known === 'function' ? [] : [...add, ...remove].filter((l) => !known.has(l));
      for (const id of group) {
        if (typeof known === 'function') outcomes.set(id, known(id));
        else if (unknown.length) outcomes.set(id, failedEntry(id, `${what} would be refused: Invalid label: ${unknown.join(', ')} (not a label id of the mailbox)`));
        else outcomes.set(id, { entry: { id, name: '', attributes: { dryrun: 'wouldUpdate' } }, counter: 'updated' });
      }
      continue;
    }
    try {
      if (group.length === 1) {
        await ctx.caller.call('messages.modify', what, (o) =>
          ctx.gmail.users.messages.modify({ userId: ctx.user, id: messageIds[0], requestBody: { addLabelIds: add, removeLabelIds: remove } }, o),
        );
      } else {
        await ctx.caller.call('messages.batchModify', what, (o) =>
          ctx.gmail.users.messages.batchModify({ userId: ctx.user, requestBody: { ids: messageIds, addLabelIds: add, removeLabelIds: remove } }, o),
        );
      }
      for (const id of group) outcomes.set(id, { entry: { id, name: '' }, counter: 'updated' });
    } catch (e) {
      for (const id of group) outcomes.set(id, gmailItemFailure(e, id, what));
    }
  }
  return { outcomes: ids.map((id) => outcomes.get(id) as ItemOutcome) };
}

async function run(ctx: UnitContext): Promise<UnitOutcome> {
  return runItems(ctx, namedOf(ctx) ?? [], (batch) => updateBatch(ctx, batch), undefined, GUARD);
}

export const updateAction: FetchActionSpec = {
  name: 'Update',
  summary: 'changes the labels of the named messages (IdentifiersXML with ADD_LABELS / REMOVE_LABELS; DryRun=true: shows what it would do); needs "writes": true',
  parameters: ['IdentifiersXML', 'DryRun'],
  parse,
  units: 'identifiers',
  namedMailboxes,
  lock: false,
  coalesces: false,
  scopes: UPDATE_SCOPES,
  methods: ['messages.get', 'labels.list', 'messages.modify', 'messages.batchModify'],
  counters: ['updated', 'errors'],
  run,
  results: 'tasks',
  dryRun: true,
};
