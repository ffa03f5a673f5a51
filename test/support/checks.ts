/**
 * What the guarantee tests check again and again: that a task's sink mirrors
 * a mailbox, and an action's counts as GetStatus reports them.
 */
import assert from 'node:assert/strict';
import type { gmail_v1 } from 'googleapis/build/src/apis/gmail/index.js';
import { mailboxState } from './gmail.js';
import type { TestStack } from './stack.js';

type Json = Record<string, unknown>;

/** Message id → sorted labels of the task's sink documents of one user. */
export async function sinkState(stack: TestStack, task: string, user: string): Promise<Map<string, string[]>> {
  const sink = await stack.sink(task, user);
  return new Map([...sink.values()].map((d) => [d.messageId as string, [...(d.labels as string[])].sort()]));
}

/** Asserts the task's sink for a user holds exactly the mailbox's messages, labels included. */
export async function assertSinkMirrors(stack: TestStack, g: gmail_v1.Gmail, task: string, user: string): Promise<void> {
  const want = await mailboxState(g, user);
  const got = await sinkState(stack, task, user);
  assert.equal(got.size, want.size, `${task}/${user}: ${got.size} documents for ${want.size} messages`);
  assert.deepEqual(got, want);
}

/** The action's counters for one task as GetStatus shows them, with its retries and attempts. */
export async function countsOf(stack: TestStack, token: string, task: string): Promise<Record<string, number>> {
  const r = await stack.aci({ action: 'QueueInfo', QueueName: 'fetch', QueueAction: 'GetStatus', Token: token });
  const action = ((((r.json as Json).autnresponse as Json).responsedata as Json).actions as { action: Json[] }).action[0] as Json;
  const dc = ((action.documentcounts as Json).documentcount as Json[]).find((d) => d['@task'] === task) as Json;
  const out: Record<string, number> = { retries: Number(action.retries), attempts: Number(action.attempts) };
  for (const [k, v] of Object.entries(dc)) if (k !== '@task') out[k.slice(1)] = Number(v);
  return out;
}

/** Polls `read` until `ok` holds of its value; returns that value. */
export async function until<T>(what: string, read: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 60_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await read();
    if (ok(v)) return v;
    if (Date.now() > end) throw new Error(`${what}: not reached within ${timeoutMs} ms (last: ${JSON.stringify(v)})`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Asserts the task's sink for a user is the mailbox plus the held documents, each marked: every
 * message outside SPAM and TRASH has its document with its labels, unless the document is held;
 * every held document (`held`: message ids) is kept, marked `deletedInSource` when its message is
 * gone from the mailbox, `changedInSource` when its labels are no longer Gmail's; no other document
 * is held, released or marked.
 */
export async function assertSinkWithHolds(stack: TestStack, g: gmail_v1.Gmail, task: string, user: string, held: ReadonlySet<string>): Promise<void> {
  const want = await mailboxState(g, user);
  const docs = new Map([...(await stack.sink(task, user)).values()].map((d) => [d.messageId as string, d]));
  const where = `${task}/${user}`;
  const heldInSink = [...docs.values()].filter((d) => d.held === true).map((d) => d.messageId as string).sort();
  assert.deepEqual(heldInSink, [...held].sort(), `${where}: the held documents`);
  for (const [id, labels] of want) {
    const d = docs.get(id);
    assert.ok(d, `${where}: message ${id} has a document`);
    if (held.has(id)) continue;
    assert.deepEqual([...(d.labels as string[])].sort(), labels, `${where}: labels of ${id}`);
  }
  for (const [id, d] of docs) {
    const marks = [d.released, d.deletedInSource, d.changedInSource];
    if (!held.has(id)) {
      assert.ok(want.has(id), `${where}: document ${id} has a message`);
      assert.deepEqual(marks, [undefined, undefined, undefined], `${where}: ${id} is not held, so not marked`);
      continue;
    }
    if (!want.has(id)) assert.equal(d.deletedInSource, true, `${where}: held ${id} is gone from the mailbox: marked deletedInSource`);
    else if ([...(d.labels as string[])].sort().join(',') !== (want.get(id) ?? []).join(',')) assert.equal(d.changedInSource, true, `${where}: held ${id} changed: marked changedInSource`);
  }
}
