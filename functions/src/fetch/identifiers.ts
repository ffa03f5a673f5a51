/**
 * Identifiers: the identifier of every message of the task sections' mailboxes, as IDOL writes
 * identifiers (see aci/identifiers.ts), with the message's subject as its name and, with
 * `ShowAttributes=true`, its sender, date and labels. Results are read with QueueInfo GetStatus
 * and the action's token, paged with Start and MaxResults.
 *
 * One unit per mailbox, without the mailbox's lock: it only reads, so it neither waits for nor
 * holds up a Synchronize. Each batch of entries is committed with the checkpoint it leads to, so
 * a take-over resumes after the last committed batch and no entry is written twice.
 */
import pLimit from 'p-limit';
import { encodeIdentifier } from '../aci/identifiers.js';
import { badParameter } from '../aci/errors.js';
import { parseBoolParam, type AciParams } from '../aci/request.js';
import { GMAIL_SCOPES } from '../gmail/client.js';
import { PermanentGmailError, classify } from '../gmail/errors.js';
import { RunAborted } from '../gmail/pacing.js';
import type { Checkpoint } from '../store/model.js';
import { MAX_RESULT_BATCH, ResultStore, type ResultEntry } from '../store/results.js';
import { heldIdentifiers } from './shared/held-documents.js';
import { cloneProgress, listingCheckpoint, listMessages, listNextPage, pastItems, saveProgress } from './shared/listing.js';
import type { FetchActionSpec, UnitContext, UnitOutcome } from './spec.js';

/** Entries fetched, then committed, together; the run's end is checked between batches. */
const BATCH = MAX_RESULT_BATCH;
const CONCURRENCY = 10;

function header(headers: { name?: string | null; value?: string | null }[] | undefined, name: string): string {
  return headers?.find((h) => h.name?.toLowerCase() === name.toLowerCase())?.value ?? '';
}

/** One message's entry; `undefined` when the run must end first. */
async function entryOf(ctx: UnitContext, id: string): Promise<{ entry: ResultEntry; error?: string } | undefined> {
  const identifier = encodeIdentifier({ task: ctx.task, address: ctx.user, messageId: id });
  try {
    const res = await ctx.caller.call('messages.get', `messages.get ${id} of ${ctx.user}`, (o) =>
      ctx.gmail.users.messages.get({ userId: ctx.user, id, format: 'metadata', metadataHeaders: ['Subject', 'From', 'Date'] }, o),
    );
    const headers = res.data.payload?.headers ?? undefined;
    const entry: ResultEntry = { id: identifier, name: header(headers, 'Subject') };
    if (ctx.params['showAttributes'] === true) {
      entry.attributes = {
        from: header(headers, 'From'),
        date: res.data.internalDate ? new Date(Number(res.data.internalDate)).toISOString() : '',
        labels: (res.data.labelIds ?? []).join(','),
      };
    }
    return { entry };
  } catch (e) {
    if (e instanceof RunAborted) return undefined;
    const err = classify(e, `message ${id} of ${ctx.user}`);
    if (err instanceof PermanentGmailError && (err.status === 401 || err.status === 403)) throw err;
    // Listed but unreadable: its identifier is still a result, without a name.
    return { entry: { id: identifier, name: '' }, error: err.message };
  }
}

async function run(ctx: UnitContext): Promise<UnitOutcome> {
  if (ctx.params['held'] === true) return heldIdentifiers(ctx);
  const results = new ResultStore(ctx.db);
  const limit = pLimit(CONCURRENCY);
  try {
    if (ctx.progress.checkpoint === null) {
      const next = cloneProgress(ctx.progress);
      // The mailbox's size, for the percentage, when the task reads all of it.
      const t = ctx.taskConfig;
      if (t.query === '' && t.labels.length === 0) {
        const profile = await ctx.caller.call('getProfile', `getProfile of ${ctx.user}`, (o) => ctx.gmail.users.getProfile({ userId: ctx.user }, o));
        next.total = profile.data.messagesTotal ?? null;
      }
      next.checkpoint = listingCheckpoint();
      await saveProgress(ctx, next);
    }
    for (;;) {
      if (ctx.shouldEnd()) return { kind: 'interrupted' };
      const cp = ctx.progress.checkpoint as Checkpoint;
      if (cp.phase === 'done') {
        const p = ctx.progress;
        if (p.messageErrors.length > 0) {
          return { kind: 'failed', error: `${p.counts['errors'] ?? 0} messages could not be read: ${p.messageErrors.slice(0, 5).join('; ')}` };
        }
        return { kind: 'finished' };
      }
      if (cp.phase === 'listing') {
        await listNextPage(ctx, cp);
        continue;
      }
      const batch = cp.items.slice(cp.done, cp.done + BATCH);
      const got = await Promise.all(batch.map((id) => limit(() => (ctx.shouldEnd() ? undefined : entryOf(ctx, id)))));
      const cut = got.findIndex((g) => g === undefined);
      const ready = (cut === -1 ? got : got.slice(0, cut)) as { entry: ResultEntry; error?: string }[];
      if (ready.length === 0) return { kind: 'interrupted' };
      const next = cloneProgress(ctx.progress);
      const first = next.messages;
      next.messages += ready.length;
      next.counts['identifiers'] = (next.counts['identifiers'] ?? 0) + ready.length;
      for (const r of ready) {
        if (r.error) {
          next.counts['errors'] = (next.counts['errors'] ?? 0) + 1;
          next.messageErrors.push(r.error);
        }
      }
      pastItems(next, cp, ready.length);
      const expireAt = ctx.expireWhileRunning();
      await saveProgress(ctx, next, (b) => results.write(b, ctx.token, ctx.index, first, ready.map((r) => r.entry), expireAt));
    }
  } catch (e) {
    if (e instanceof PermanentGmailError) return { kind: 'failed', error: e.message };
    if (e instanceof RunAborted) return { kind: 'interrupted' };
    throw e;
  }
}

/** The most identifiers `Sync=true` answers inline; larger tasks run as an action. */
export const SYNC_CAP = 1000;

/**
 * The identifiers of one mailbox, read now (`Sync=true`): `over` when it holds more than `cap`
 * messages, so that nothing is fetched for an answer that could not be given.
 */
export async function identifiersNow(ctx: UnitContext, cap: number): Promise<ResultEntry[] | 'over'> {
  const ids: string[] = [];
  let pageToken: string | null = null;
  do {
    const page = await listMessages(ctx, pageToken);
    ids.push(...page.ids);
    if (ids.length > cap) return 'over';
    pageToken = page.next;
  } while (pageToken);
  const limit = pLimit(CONCURRENCY);
  const got = await Promise.all(ids.map((id) => limit(() => entryOf(ctx, id))));
  return got.map((g) => {
    if (!g) throw new RunAborted();
    return g.entry;
  });
}

function parse(p: AciParams) {
  const held = parseBoolParam(p, 'Held', false);
  // Held documents are read from the sink by the worker; Sync=true reads Gmail.
  if (held && parseBoolParam(p, 'Sync', false)) throw badParameter('Sync', p.get('Sync') ?? '', 'false with Held=true: held documents are listed by an action');
  return { showAttributes: parseBoolParam(p, 'ShowAttributes', false), ...(held ? { held } : {}) };
}

export const identifiersAction: FetchActionSpec = {
  name: 'Identifiers',
  summary: 'lists the identifier of every message of the task sections, read with QueueInfo GetStatus',
  parameters: ['ShowAttributes', 'Held'],
  parse,
  units: 'mailboxes',
  lock: false,
  coalesces: false,
  scopes: GMAIL_SCOPES,
  methods: ['getProfile', 'messages.list', 'messages.get'],
  counters: ['identifiers', 'errors'],
  run,
  results: 'identifiers',
  inline: { cap: SYNC_CAP, run: identifiersNow },
};
