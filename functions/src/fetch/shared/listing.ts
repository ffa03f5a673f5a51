/**
 * What the fetch actions that work through a mailbox share: one page of its messages as a task
 * section selects them (its query, labels and whether spam and trash count), the checkpoint of a
 * listing, and committing a unit's progress.
 */
import { selectionOf, type Selection } from '../../store/mailboxes.js';
import type { Checkpoint } from '../../store/model.js';
import type { UnitProgress } from '../../store/units.js';
import type { UnitContext } from '../spec.js';

/** Gmail's largest page of messages.list. */
export const PAGE_SIZE = 500;

/** One page of the mailbox's messages as `selection` (by default the task's) selects them. */
export async function listMessages(ctx: UnitContext, pageToken: string | null, selection: Selection = selectionOf(ctx.taskConfig)): Promise<{ ids: string[]; next: string | null }> {
  const t = selection;
  const res = await ctx.caller.call('messages.list', `messages.list of ${ctx.user}`, (o) =>
    ctx.gmail.users.messages.list(
      {
        userId: ctx.user,
        maxResults: PAGE_SIZE,
        pageToken: pageToken ?? undefined,
        q: t.query || undefined,
        labelIds: t.labels.length ? [...t.labels] : undefined,
        includeSpamTrash: t.includeSpamTrash,
      },
      o,
    ),
  );
  const ids = (res.data.messages ?? []).map((m) => m.id).filter((id): id is string => !!id);
  return { ids: [...new Set(ids)], next: res.data.nextPageToken ?? null };
}

/** A copy of a unit's progress that can be changed without touching the committed one. */
export function cloneProgress(p: UnitProgress): UnitProgress {
  return { ...p, counts: { ...p.counts }, messageErrors: [...p.messageErrors], checkpoint: p.checkpoint ? { ...p.checkpoint } : null };
}

/** Commits `next` (with the writes of `write`) and makes it the unit's progress. */
export async function saveProgress(ctx: UnitContext, next: UnitProgress, write?: Parameters<UnitContext['commit']>[1]): Promise<void> {
  await ctx.commit(next, write);
  Object.assign(ctx.progress, next);
}

/** The checkpoint of a full listing that has not begun: `items` given are fetched without listing. */
export function listingCheckpoint(items?: string[]): Checkpoint {
  return {
    mode: 'full',
    phase: items ? 'fetching' : 'listing',
    epoch: 0,
    pageToken: null,
    items: items ?? [],
    done: 0,
    next: null,
    startHistoryId: null,
    baselineHistoryId: null,
    sweepAfter: null,
  };
}

/** Lists the checkpoint's next page and commits it: its ids to fetch, or on to the next page or the end. */
export async function listNextPage(ctx: UnitContext, cp: Checkpoint): Promise<void> {
  const page = await listMessages(ctx, cp.pageToken);
  const next = cloneProgress(ctx.progress);
  next.checkpoint = page.ids.length
    ? { ...cp, phase: 'fetching', items: page.ids, done: 0, next: page.next }
    : { ...cp, phase: page.next ? 'listing' : 'done', pageToken: page.next, items: [], done: 0, next: null };
  if (!page.ids.length) next.pages += 1;
  await saveProgress(ctx, next);
}

/**
 * Moves `next` past `count` more items of the listed page `cp`: within the page, or on to the
 * next page's listing (or done) once the page is used up.
 */
export function pastItems(next: UnitProgress, cp: Checkpoint, count: number): void {
  const done = cp.done + count;
  if (done < cp.items.length) {
    next.checkpoint = { ...cp, done };
    return;
  }
  next.pages += 1;
  next.checkpoint = { ...cp, phase: cp.next ? 'listing' : 'done', pageToken: cp.next, items: [], done: 0, next: null };
}
