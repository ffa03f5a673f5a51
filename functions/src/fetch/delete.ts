/**
 * Delete (alias Remove): moves the messages the `Identifiers` (or `IdentifiersXML`) name to the
 * Trash (`messages.trash`, one call each: Gmail has no batch trash), or, with `Permanent=true`,
 * deletes them for good with `messages.batchDelete` (up to 1,000 at once, after each was looked
 * up, since batchDelete passes over ids it does not know). A message that is not in the mailbox is
 * reported `absent` and succeeds: it is gone either way, and a batch redone after a crash finds
 * the messages it had already deleted gone.
 *
 * `DryRun=true` changes nothing: each message is looked up (`messages.get`, minimal) and reported
 * as the real Delete would report it, its result saying so: `<success dryrun="wouldTrash">`
 * (`wouldDelete` with `Permanent=true`) counted `deleted`, `<success dryrun="absent">` counted
 * `absent`. It needs the same writes switch and scopes as the real Delete.
 *
 * Writes must be on for the task (`"writes": true`), when the request arrives and again in the
 * worker before each batch (writes.ts); scope gmail.modify, or https://mail.google.com/ with
 * `Permanent=true` (only that scope may delete for good). Results:
 * `<tasks><success>ID</success><failed message="why">ID</failed>`; counters `deleted`, `absent`, `errors`.
 */
import pLimit from 'p-limit';
import { decodeIdentifier } from '../aci/identifiers.js';
import { badParameter, missingParameter } from '../aci/errors.js';
import { parseBoolParam, type AciParams } from '../aci/request.js';
import type { Config } from '../config.js';
import { PermanentGmailError } from '../gmail/errors.js';
import { namedMailboxes, namedOf, parseNamed } from './shared/named.js';
import type { FetchActionSpec, FetchParams, UnitContext, UnitOutcome } from './spec.js';
import { SCOPES, existing, gmailItemFailure, parseDryRun, requireWrites, runItems, type ItemOutcome, type WriteGuard } from './shared/writes.js';

const TRASH_SCOPES = [SCOPES.modify];
const PERMANENT_SCOPES = [SCOPES.full];
const TRASH_CONCURRENCY = 10;

function parse(p: AciParams, config: Config): FetchParams {
  if (p.has('Sync') && parseBoolParam(p, 'Sync', false)) throw badParameter('Sync', p.get('Sync') ?? '', 'false: Delete runs only as an action');
  const permanent = parseBoolParam(p, 'Permanent', false);
  const dryRun = parseDryRun(p);
  const named = parseNamed(p, config);
  if (!named) throw missingParameter('Identifiers', 'the identifiers of the messages to delete, as FetchAction=Identifiers lists them');
  const g = guardOf({ permanent });
  requireWrites(config, Object.keys(named), g.action, g.scopes, dryRun);
  return { identifiers: JSON.stringify(named), permanent, ...(dryRun ? { dryRun } : {}) };
}

/** The action's name in refusals, and its scopes: those of trashing, or of deleting for good. */
function guardOf(params: FetchParams): WriteGuard {
  return params['permanent'] === true ? { action: 'Delete with Permanent=true', scopes: PERMANENT_SCOPES } : { action: 'Delete', scopes: TRASH_SCOPES };
}

/** A dry run: each message looked up, and reported as the real Delete would report it. */
async function wouldDelete(ctx: UnitContext, ids: string[]): Promise<{ outcomes: ItemOutcome[] }> {
  const present = await existing(ctx, ids);
  const would = ctx.params['permanent'] === true ? 'wouldDelete' : 'wouldTrash';
  return {
    outcomes: ids.map((id) => {
      const p = present.get(id) as true | 'absent' | ItemOutcome;
      if (p === true) return { entry: { id, name: '', attributes: { dryrun: would } }, counter: 'deleted' };
      if (p === 'absent') return { entry: { id, name: '', attributes: { dryrun: 'absent' } }, counter: 'absent' };
      return p;
    }),
  };
}

async function deleteBatch(ctx: UnitContext, ids: string[]): Promise<{ outcomes: ItemOutcome[] }> {
  if (ctx.params['dryRun'] === true) return wouldDelete(ctx, ids);
  const outcomes = new Map<string, ItemOutcome>();
  const ok = (id: string, counter: string) => outcomes.set(id, { entry: { id, name: '' }, counter });
  if (ctx.params['permanent'] === true) {
    const present = await existing(ctx, ids);
    const found = ids.filter((id) => present.get(id) === true);
    for (const id of ids) {
      const p = present.get(id);
      if (p === 'absent') ok(id, 'absent');
      else if (p !== true && p !== undefined) outcomes.set(id, p);
    }
    if (found.length) {
      const what = `deleting ${found.length} messages of ${ctx.user} for good`;
      try {
        await ctx.caller.call('messages.batchDelete', what, (o) =>
          ctx.gmail.users.messages.batchDelete({ userId: ctx.user, requestBody: { ids: found.map((id) => decodeIdentifier(id).messageId) } }, o),
        );
        for (const id of found) ok(id, 'deleted');
      } catch (e) {
        for (const id of found) outcomes.set(id, gmailItemFailure(e, id, what));
      }
    }
  } else {
    const limit = pLimit(TRASH_CONCURRENCY);
    await Promise.all(
      ids.map((id) =>
        limit(async () => {
          const messageId = decodeIdentifier(id).messageId;
          const what = `messages.trash ${messageId} of ${ctx.user}`;
          try {
            await ctx.caller.call('messages.trash', what, (o) => ctx.gmail.users.messages.trash({ userId: ctx.user, id: messageId, fields: 'id' }, o));
            ok(id, 'deleted');
          } catch (e) {
            if (e instanceof PermanentGmailError && e.status === 404) ok(id, 'absent');
            else outcomes.set(id, gmailItemFailure(e, id, what));
          }
        }),
      ),
    );
  }
  return { outcomes: ids.map((id) => outcomes.get(id) as ItemOutcome) };
}

async function run(ctx: UnitContext): Promise<UnitOutcome> {
  return runItems(ctx, namedOf(ctx) ?? [], (batch) => deleteBatch(ctx, batch), undefined, guardOf(ctx.params));
}

export const deleteAction: FetchActionSpec = {
  name: 'Delete',
  summary: 'moves the named messages to the Trash, or deletes them for good with Permanent=true (DryRun=true: shows what it would do); needs "writes": true',
  parameters: ['Identifiers', 'IdentifiersXML', 'Permanent', 'DryRun'],
  parse,
  units: 'identifiers',
  namedMailboxes,
  lock: false,
  coalesces: false,
  scopes: TRASH_SCOPES,
  scopesFor: (params) => (params['permanent'] === true ? PERMANENT_SCOPES : TRASH_SCOPES),
  methods: ['messages.get', 'messages.trash', 'messages.batchDelete'],
  counters: ['deleted', 'absent', 'errors'],
  run,
  results: 'tasks',
  dryRun: true,
};

/** Remove: IDOL's other name for Delete. */
export const removeAction: FetchActionSpec = { ...deleteAction, name: 'Remove', summary: 'the same as Delete' };
