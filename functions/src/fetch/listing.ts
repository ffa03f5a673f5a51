/**
 * One page of a mailbox's messages as a task section selects them (its query, labels and
 * whether spam and trash count), for every fetch action that lists a whole mailbox.
 */
import type { UnitContext } from './registry.js';

/** Gmail's largest page of messages.list. */
export const PAGE_SIZE = 500;

export async function listMessages(ctx: UnitContext, pageToken: string | null): Promise<{ ids: string[]; next: string | null }> {
  const t = ctx.taskConfig;
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
