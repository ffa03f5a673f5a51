/**
 * Pacing per address against a throttled Gmail emulator. Every check counts
 * (quota refusals, messages) and none times anything, so a slow or loaded
 * machine changes how long the tests take, not what they find.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { runPeer } from '../../bench/lib/peers.js';
import { OWNER_TOKEN } from '../emulators/gmail/index.js';
import { writeMailbox } from '../support/mail.js';
import { startTestStack, type TestStack } from '../support/stack.js';

const ENDED = ['Finished', 'Stopped', 'Error', 'Cancelled'];

describe('two task sections on one address', () => {
  const USER = 'shared@pacing.example';
  // 600 units a minute with a minute's burst: 600 units at once, then 10 a second. Two
  // Synchronizes of 70 messages need about 730 units, so only paced together do they fit.
  const QUOTA = 600;
  let stack: TestStack;

  before(async () => {
    const { dir } = writeMailbox(USER, 70, { prefix: 's' });
    stack = await startTestStack({
      mailDir: dir,
      connector: { gmail: { quotaUnitsPerUserPerMinute: QUOTA }, tasks: { ONE: { users: [USER] }, TWO: { users: [USER] } } },
      gmail: { quotaUnitsPerMinute: QUOTA, quotaBurstSeconds: 60 },
    });
  });
  after(async () => {
    await stack?.close();
  });

  it('read it together within its quota, without one quota refusal', async () => {
    const [a, b] = await Promise.all([stack.synchronize('ONE'), stack.synchronize('TWO')]);
    const done = await Promise.all([stack.waitFor(a, ENDED, 240_000), stack.waitFor(b, ENDED, 240_000)]);
    assert.deepEqual(
      done.map((d) => d.status),
      ['Finished', 'Finished'],
    );
    assert.equal((await stack.sink('ONE', USER)).size, 70);
    assert.equal((await stack.sink('TWO', USER)).size, 70);
    assert.equal(stack.gmail.stats().rateLimited, 0);
    assert.equal(stack.gmail.stats().calls['messages.get'], 140);
  });
});

describe('a Gmail that allows a 1 s burst', () => {
  const CONNECTOR = 'connector@burst.example';
  const PEER = 'peer@burst.example';
  // 6,000 units a minute: 100 a second, 20 gets; a bucket of one second.
  const QUOTA = 6000;
  const MESSAGES = 100;
  let stack: TestStack;

  before(async () => {
    const { dir } = writeMailbox(CONNECTOR, MESSAGES, { prefix: 'c' });
    writeMailbox(PEER, MESSAGES, { dir, prefix: 'c' });
    stack = await startTestStack({
      mailDir: dir,
      connector: { gmail: { quotaUnitsPerUserPerMinute: QUOTA }, tasks: { BURST: { users: [CONNECTOR] } } },
      gmail: { quotaUnitsPerMinute: QUOTA, quotaBurstSeconds: 1 },
    });
  });
  after(async () => {
    await stack?.close();
  });

  it('is refused fewer calls by the connector than by a script getting ten messages at a time', async () => {
    const t0 = stack.gmail.stats().rateLimited;
    const token = await stack.synchronize('BURST');
    const done = await stack.waitFor(token, ENDED, 240_000);
    assert.equal(done.status, 'Finished');
    const connector = stack.gmail.stats().rateLimited - t0;

    const t1 = stack.gmail.stats().rateLimited;
    const peer = await runPeer('ten', stack.gmail.url, OWNER_TOKEN, PEER);
    assert.equal(peer.messages, MESSAGES);
    const script = stack.gmail.stats().rateLimited - t1;
    assert.ok(connector < script, `the connector provoked ${connector} refusals, the script ${script}`);
  });
});
