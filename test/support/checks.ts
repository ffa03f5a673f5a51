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
