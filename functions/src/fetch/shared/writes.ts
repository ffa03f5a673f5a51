/**
 * What the fetch actions that change mailboxes (Insert, Update, Delete) and those that act on
 * named sink documents (Hold, ReleaseHold) share: the Gmail scopes of each mode, the `writes`
 * switch, the `DryRun` parameter, and running a unit's named items in committed batches with one
 * result per item.
 *
 * Writes are off unless configured: a task changes its mailboxes only with `"writes": true` in its
 * configuration, and the Workspace grant must include the scopes the action asks for. The switch
 * is checked twice. In `parse`, so a refused request is a 403 before anything is queued or
 * written. And in the worker, before each batch of writes (`runItems` with a `guard`), against the
 * configuration the worker runs with: a task queued, retried, continued or re-enqueued after
 * `"writes": false` was deployed, or after its mailbox left the task, changes nothing, and its
 * items fail with the reason. A missing grant is only known when the worker asks for a token, and
 * fails each item with what an administrator must grant.
 */
import { badParameter, turnedOff } from '../../aci/errors.js';
import type { AciParams } from '../../aci/request.js';
import type { Config } from '../../config.js';
import { PermanentGmailError, classify } from '../../gmail/errors.js';
import { RunAborted } from '../../gmail/pacing.js';
import type { Checkpoint } from '../../store/model.js';
import { MAX_RESULT_BATCH, ResultStore, type ResultEntry } from '../../store/results.js';
import type { WriteBatch } from '@google-cloud/firestore';
import pLimit from 'p-limit';
import { decodeIdentifier } from '../../aci/identifiers.js';
import { belongsTo } from './named.js';
import { cloneProgress, listingCheckpoint, saveProgress } from './listing.js';
import type { UnitContext, UnitOutcome } from '../spec.js';

const G = 'https://www.googleapis.com/auth/';
/** The scopes of each mode (docs/deploy.md, infra outputs): reading, changing, and deleting for good. */
export const SCOPES = {
  readonly: `${G}gmail.readonly`,
  modify: `${G}gmail.modify`,
  insert: `${G}gmail.insert`,
  full: 'https://mail.google.com/',
} as const;

/**
 * Refuses (403 GMAILCONNECTOR-TURNED-OFF) unless every task allows writes, naming the setting
 * and the scopes the action needs. A dry run (`dryRun`) needs what the real action needs, so that
 * it shows what the real one would do. Pure: no I/O.
 */
export function requireWrites(config: Config, tasks: readonly string[], action: string, scopes: readonly string[], dryRun = false): void {
  const off = tasks.filter((t) => config.connector.tasks[t]?.writes !== true);
  if (off.length === 0) return;
  const what = dryRun ? `${action}, as a dry run (DryRun=true), needs what the real one needs,` : `${action} changes mailboxes,`;
  throw turnedOff(
    `${what} and writes are off for task ${off.join(', ')}: set "writes": true in the task's configuration ` +
      `(CONNECTOR_CONFIG tasks.${off[0]}.writes) and have the Workspace admin grant the scope ${scopes.join(' and ')}`,
  );
}

/**
 * `DryRun`: only `true` or `false` (any case); anything else, an empty value included, is a 400
 * naming it, so that a mistyped dry run never runs for real. Absent: false.
 */
export function parseDryRun(p: AciParams): boolean {
  if (!p.has('DryRun')) return false;
  const raw = p.get('DryRun') ?? '';
  const word = raw.trim().toLowerCase();
  if (word === 'true') return true;
  if (word === 'false') return false;
  throw badParameter('DryRun', raw, 'true or false (DryRun=true shows what the action would change and changes nothing)');
}

/** What the worker checks before each batch of a unit's writes: the action's name and scopes, as requireWrites names them. */
export interface WriteGuard {
  action: string;
  scopes: readonly string[];
  /** The failure of an item refused (default: the item as the result's id, with the reason). */
  failed?: (item: string, why: string) => ItemOutcome;
}

/**
 * Why the unit may not change its mailbox now, by the configuration this worker runs with, or
 * undefined: the task's `"writes"` is not true, or the mailbox is not one of the task's (its
 * `users`, or its `domain`). The configuration is the worker's, read when its instance started,
 * so a deployment that turns writes off, or takes a mailbox out of a task, stops the writes
 * queued before it. Pure: no I/O.
 */
export function writesRefusal(ctx: Pick<UnitContext, 'task' | 'user' | 'taskConfig'>, action: string, scopes: readonly string[]): string | undefined {
  if (ctx.taskConfig.writes !== true) {
    return (
      `${action} refused: writes are off for task ${ctx.task} in the worker's configuration; set "writes": true in the task's configuration ` +
      `(CONNECTOR_CONFIG tasks.${ctx.task}.writes), with the scope ${scopes.join(' and ')} granted, and send the request again`
    );
  }
  if (!belongsTo(ctx.taskConfig, ctx.user)) {
    return `${action} refused: ${ctx.user} is not a mailbox of task ${ctx.task} in the worker's configuration (CONNECTOR_CONFIG tasks.${ctx.task}.users or domain)`;
  }
  return undefined;
}

/** One item's outcome: its result entry, and the counter it adds to (`errors` for a failure). */
export interface ItemOutcome {
  entry: ResultEntry;
  counter: string;
  /** The counts it adds instead of one to `counter`, when it adds to several (a named Synchronize). */
  counts?: Record<string, number>;
}

export function failedEntry(id: string, message: string, attributes: Record<string, string> = {}): ItemOutcome {
  return { entry: { id, name: '', attributes: { ...attributes, message } }, counter: 'errors' };
}

/** The failure of one item from a Gmail error; throws what ends the whole unit (the run must end, a transient failure). */
export function gmailItemFailure(e: unknown, id: string, what: string, attributes?: Record<string, string>): ItemOutcome {
  if (e instanceof RunAborted) throw e;
  const err = classify(e, what);
  if (err instanceof PermanentGmailError) return failedEntry(id, err.message, attributes);
  throw err;
}

/** Messages looked up at once. */
const LOOKUPS = 10;

/**
 * Whether each identified message is in the unit's mailbox (`messages.get`, minimal): true,
 * `absent` (404), or the item's failure.
 */
export async function existing(ctx: UnitContext, ids: string[]): Promise<Map<string, true | 'absent' | ItemOutcome>> {
  const limit = pLimit(LOOKUPS);
  const out = new Map<string, true | 'absent' | ItemOutcome>();
  await Promise.all(
    ids.map((id) =>
      limit(async () => {
        const messageId = decodeIdentifier(id).messageId;
        const what = `messages.get ${messageId} of ${ctx.user}`;
        try {
          await ctx.caller.call('messages.get', what, (o) => ctx.gmail.users.messages.get({ userId: ctx.user, id: messageId, format: 'minimal', fields: 'id' }, o));
          out.set(id, true);
        } catch (e) {
          if (e instanceof PermanentGmailError && e.status === 404) out.set(id, 'absent');
          else out.set(id, gmailItemFailure(e, id, what));
        }
      }),
    ),
  );
  return out;
}

/**
 * Runs a unit's `items` (its named identifiers, say) in batches of `batch`: `apply` gives each
 * item's outcome and the sink writes that go with them; each batch is committed with its results
 * and the checkpoint it leads to, so a take-over resumes after the last committed batch and an
 * item's writes and result are never committed apart. Ends `failed` naming the failed items.
 *
 * With a `guard` (the actions that change mailboxes), `writesRefusal` is asked before each batch:
 * when it gives a reason, `apply` is not called, and every item of the batch fails with it (the
 * unit then ends `Error` as usual, its worker answering 2xx, so the queue does not retry it).
 */
export async function runItems(
  ctx: UnitContext,
  items: string[],
  apply: (batch: string[]) => Promise<{ outcomes: ItemOutcome[]; write?: (b: WriteBatch) => void } | undefined>,
  batch: number = MAX_RESULT_BATCH,
  guard?: WriteGuard,
): Promise<UnitOutcome> {
  const results = new ResultStore(ctx.db);
  try {
    if (ctx.progress.checkpoint === null) {
      const next = cloneProgress(ctx.progress);
      next.checkpoint = listingCheckpoint(items);
      next.total = items.length;
      await saveProgress(ctx, next);
    }
    for (;;) {
      if (ctx.shouldEnd()) return { kind: 'interrupted' };
      const cp = ctx.progress.checkpoint as Checkpoint;
      if (cp.phase === 'done' || cp.done >= cp.items.length) {
        const p = ctx.progress;
        if (p.messageErrors.length > 0) return { kind: 'failed', error: `${p.counts['errors'] ?? 0} items failed: ${p.messageErrors.slice(0, 5).join('; ')}` };
        return { kind: 'finished' };
      }
      const slice = cp.items.slice(cp.done, cp.done + Math.min(batch, MAX_RESULT_BATCH));
      const refused = guard && writesRefusal(ctx, guard.action, guard.scopes);
      const got: Awaited<ReturnType<typeof apply>> = refused ? { outcomes: slice.map((item) => guard.failed?.(item, refused) ?? failedEntry(item, refused)) } : await apply(slice);
      if (!got) return { kind: 'interrupted' };
      const next = cloneProgress(ctx.progress);
      const first = next.messages;
      next.messages += got.outcomes.length;
      for (const o of got.outcomes) {
        for (const [k, v] of Object.entries(o.counts ?? { [o.counter]: 1 })) next.counts[k] = (next.counts[k] ?? 0) + v;
        const why = o.entry.attributes?.['message'];
        if (why !== undefined) next.messageErrors.push(why);
      }
      const done = cp.done + got.outcomes.length;
      next.checkpoint = done < cp.items.length ? { ...cp, done } : { ...cp, done, phase: 'done', items: [] };
      if (done >= cp.items.length) next.pages += 1;
      const expireAt = ctx.expireWhileRunning();
      await saveProgress(ctx, next, (b) => {
        got.write?.(b);
        results.write(b, ctx.token, ctx.index, first, got.outcomes.map((o) => o.entry), expireAt);
      });
    }
  } catch (e) {
    if (e instanceof PermanentGmailError) return { kind: 'failed', error: e.message };
    if (e instanceof RunAborted) return { kind: 'interrupted' };
    throw e;
  }
}
