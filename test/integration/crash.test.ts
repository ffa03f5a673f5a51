/**
 * Crash drill: the worker runs as its own process, as on the platform, and is
 * killed with SIGKILL at three random moments of a Synchronize. Each time a new
 * process takes its place; the next delivery takes the unit over once the dead
 * holder's lease expires and resumes from the last checkpoint. The action must
 * finish with every message in the sink exactly once.
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { mailboxState, testGmail } from '../support/gmail.js';
import { writeMailbox } from '../support/mail.js';
import { startTestStack, type TestStack } from '../support/stack.js';

const USER = 'crash@example.com';
const COUNT = 900;
let stack: TestStack;

before(async () => {
  const { dir } = writeMailbox(USER, COUNT, { prefix: 'k' });
  stack = await startTestStack({
    mailDir: dir,
    workerProcess: true,
    gmail: { latencyMs: 5 },
    env: { WORKER_LEASE_S: '3' },
    connector: { gmail: { quotaUnitsPerUserPerMinute: 1_000_000 }, tasks: { CRASH: { users: [USER] } } },
  });
});

after(async () => {
  await stack?.close();
});

it('kill -9 of the worker at three random points: the action finishes with every message once', async () => {
  const token = await stack.synchronize('CRASH');
  const pids = new Set<number>();
  let claims = 0;
  let mark = 0;
  for (let k = 0; k < 3; k++) {
    // A random point of the run, in a new delivery, after it committed more than the last one.
    const ahead = 1 + Math.floor(Math.random() * 120);
    for (;;) {
      const [u] = await stack.units(token);
      if (u && u.status === 'Processing' && u.attempts > claims && u.messages >= mark + ahead) {
        claims = u.attempts;
        mark = u.messages;
        break;
      }
      assert.notEqual(u?.status, 'Finished', 'the run ended before the third kill; make the mailbox larger');
      await new Promise((r) => setTimeout(r, 5));
    }
    const pid = stack.worker.pid();
    if (pid !== undefined) pids.add(pid);
    await stack.worker.kill();
    await stack.worker.start();
  }
  assert.equal(pids.size, 3, 'three different worker processes were killed');
  const a = await stack.waitFor(token, ['Finished', 'Error', 'Stopped'], 240_000);
  assert.equal(a.status, 'Finished', a.error ?? '');
  const want = await mailboxState(testGmail(stack.gmail.url), USER);
  const sink = await stack.sink('CRASH', USER);
  assert.equal(sink.size, COUNT);
  assert.deepEqual(new Set([...sink.values()].map((d) => d.messageId as string)), new Set(want.keys()));
  const [unit] = await stack.units(token);
  assert.ok((unit?.attempts ?? 0) >= 4, `the unit was taken over after each kill (${unit?.attempts} claims)`);
  // Documents and counts are committed together: a take-over neither loses nor doubles a count.
  assert.deepEqual(unit?.counts, { seen: COUNT, added: COUNT, updated: 0, unchanged: 0, deleted: 0, errors: 0 });
  assert.equal(unit?.messages, COUNT);
  assert.equal(unit?.pages, Math.ceil(COUNT / 500));
});
