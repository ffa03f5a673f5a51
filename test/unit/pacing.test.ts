/**
 * The per-mailbox pacer and the sorting of Google API failures.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { classify, parseRetryAfter, PermanentGmailError, TransientGmailError } from '../../functions/src/gmail/errors.js';
import { GmailCaller } from '../../functions/src/gmail/caller.js';
import { pacerFor, QuotaPacer, RATE_EPISODES_MS, RunAborted } from '../../functions/src/gmail/pacing.js';

describe('QuotaPacer', () => {
  it('with a one-second burst, lets through one second of quota, then paces at quota ÷ 60 units a second', async () => {
    let now = 0;
    const pacer = new QuotaPacer(6000, () => now, 1);
    const realSleep = setTimeout;
    // 100 units/s with a 100-unit burst, 20 ms of refill kept in hand: 19 calls of 5 units go at once, the next waits.
    for (let i = 0; i < 19; i++) await pacer.take(5);
    let done = false;
    const p = pacer.take(5).then(() => (done = true));
    await new Promise((r) => realSleep(r, 5));
    assert.equal(done, false);
    now += 50;
    await p;
    assert.equal(done, true);
  });

  it('tries a minute of burst by default, and shrinks it to what Gmail proves it holds', () => {
    let now = 0;
    const pacer = new QuotaPacer(6000, () => now);
    assert.equal(pacer.burstUnits, 6000);
    // 30 calls (150 units) went through, then Gmail refused: its bucket held about 150 units, not 6,000.
    for (let i = 0; i < 30; i++) void pacer.take(5);
    pacer.throttled(1000);
    assert.equal(pacer.burstUnits, 150);
    // The burst being wrong is no reason to lower the sustained rate.
    assert.equal(pacer.currentRate, 100);
    // Never below one second of quota.
    now += 5000;
    for (let i = 0; i < 10; i++) void pacer.take(5);
    pacer.throttled(1000);
    assert.equal(pacer.burstUnits, 100);
  });

  it('keeps its rate through a lone episode of refusals, halves it once per episode when they recur, and climbs back on success', () => {
    let now = 0;
    const pacer = new QuotaPacer(6000, () => now, 1);
    void pacer.take(100);
    assert.equal(pacer.currentRate, 100);
    // A lone episode (the calls in flight refused together) is jitter: the rate stays.
    for (let i = 0; i < 10; i++) pacer.throttled();
    assert.equal(pacer.currentRate, 100);
    // Another episode within RATE_EPISODES_MS: the rate is too high, halve it, once.
    now += 1000;
    void pacer.take(49);
    for (let i = 0; i < 10; i++) pacer.throttled();
    assert.equal(pacer.currentRate, 50);
    now += RATE_EPISODES_MS - 1;
    pacer.throttled();
    assert.equal(pacer.currentRate, 25);
    // Long after: lone again.
    now += RATE_EPISODES_MS;
    pacer.throttled();
    assert.equal(pacer.currentRate, 25);
    for (let i = 0; i < 1000; i++) pacer.succeeded();
    assert.equal(pacer.currentRate, 100);
  });

  it('holds every call until a Retry-After has passed, and backs off on its own without one', async () => {
    let now = 0;
    const pacer = new QuotaPacer(6000, () => now);
    pacer.throttled(3000);
    assert.equal(pacer.notBefore, 3000);
    let done = false;
    const p = pacer.take(5).then(() => (done = true));
    await new Promise((r) => setTimeout(r, 5));
    assert.equal(done, false);
    now = 3000;
    await p;
    pacer.succeeded();
    // Without Retry-After: 1 s, then 2 s for a second episode with no success between.
    now = 10_000;
    pacer.throttled();
    assert.equal(pacer.notBefore, 11_000);
    now = 11_000;
    pacer.throttled();
    assert.equal(pacer.notBefore, 13_000);
  });

  it('allows one fewer call in flight after a concurrency refusal, and widens again after successes', async () => {
    const pacer = new QuotaPacer(0, () => 0);
    for (let i = 0; i < 4; i++) await pacer.enter();
    pacer.tooManyConcurrent();
    assert.equal(pacer.concurrency, 3);
    for (let i = 0; i < 4; i++) pacer.leave();
    for (let i = 0; i < 50; i++) pacer.succeeded();
    assert.equal(pacer.concurrency, 4);
  });

  it('hands its state to the next holder of the address, with the refill since', () => {
    let now = 0;
    const a = new QuotaPacer(6000, () => now);
    void a.take(6000);
    a.throttled(2000);
    const s = a.snapshot();
    now = 500;
    const b = new QuotaPacer(6000, () => now);
    b.restore(s);
    assert.equal(b.burstUnits, a.burstUnits);
    assert.equal(b.notBefore, 2000);
  });

  it('is one pacer per address in a process', () => {
    const clock = () => 0;
    assert.equal(pacerFor('A@example.com', 6000, clock), pacerFor('a@example.com', 6000, clock));
    assert.notEqual(pacerFor('a@example.com', 6000, clock), pacerFor('b@example.com', 6000, clock));
  });

  it('0 units means unpaced', async () => {
    const pacer = new QuotaPacer(0, () => 0);
    for (let i = 0; i < 10_000; i++) await pacer.take(5);
  });
});

describe('GmailCaller and Retry-After', () => {
  const refusal = (seconds: number) =>
    Object.assign(new Error('User-rate limit exceeded'), {
      response: { status: 429, headers: { 'retry-after': String(seconds) }, data: { error: { code: 429, message: 'User-rate limit exceeded', errors: [{ reason: 'rateLimitExceeded' }] } } },
    });

  it('never calls again, from this caller or another on the same address, before Retry-After has passed', async () => {
    const pacer = new QuotaPacer(60_000);
    const a = new GmailCaller({ pacer, baseBackoffMs: 1 });
    const b = new GmailCaller({ pacer, baseBackoffMs: 1 });
    const starts: number[] = [];
    let refusedAt = 0;
    let first = true;
    const fn = async () => {
      starts.push(Date.now());
      if (first) {
        first = false;
        refusedAt = Date.now();
        throw refusal(1);
      }
      return 'ok';
    };
    const pa = a.call('messages.get', 'a', fn);
    // b starts only after the refusal, so that its wait is the Retry-After's.
    while (refusedAt === 0) await new Promise((r) => setTimeout(r, 1));
    const pb = b.call('messages.get', 'b', fn);
    assert.deepEqual(await Promise.all([pa, pb]), ['ok', 'ok']);
    assert.equal(starts.length, 3);
    for (const t of starts.slice(1)) assert.ok(t >= refusedAt + 1000, `a call started ${t - refusedAt} ms after a Retry-After of 1 s`);
  });
});

describe('GmailCaller winding down', () => {
  it('lets a call already sent answer once the run winds down, and starts none after', async () => {
    const ending = new AbortController();
    const hard = new AbortController();
    const caller = new GmailCaller({ pacer: new QuotaPacer(0), signal: hard.signal, ending: ending.signal });
    let release = () => {};
    let sent = 0;
    const inFlight = caller.call('messages.list', 'list', async (o) => {
      sent++;
      await new Promise<void>((r) => (release = r));
      assert.equal(o.signal.aborted, false);
      return 'page';
    });
    while (sent === 0) await new Promise((r) => setImmediate(r));
    ending.abort();
    const after = caller.call('messages.list', 'list', async () => {
      sent++;
      return 'never';
    });
    await assert.rejects(after, RunAborted);
    release();
    assert.equal(await inFlight, 'page');
    assert.equal(sent, 1);
  });

  it('does not retry a call that fails once the run winds down', async () => {
    const ending = new AbortController();
    const caller = new GmailCaller({ pacer: new QuotaPacer(0), ending: ending.signal, baseBackoffMs: 1 });
    let sent = 0;
    const call = caller.call('messages.get', 'get', async () => {
      sent++;
      ending.abort();
      throw Object.assign(new Error('backend error'), { response: { status: 503, headers: {}, data: {} } });
    });
    await assert.rejects(call, RunAborted);
    assert.equal(sent, 1);
    assert.equal(caller.retries, 0);
  });
});

describe('classify', () => {
  const gaxios = (status: number, reason?: string, headers: Record<string, string> = {}, data?: unknown) => ({
    response: { status, headers, data: data ?? { error: { code: status, message: 'm', errors: reason ? [{ reason }] : [] } } },
  });

  it('sorts rate limits, server errors and network failures as transient', () => {
    const a = classify(gaxios(429, 'rateLimitExceeded', { 'retry-after': '7' }), 'x');
    assert.ok(a instanceof TransientGmailError && a.rateLimited && a.retryAfterMs === 7000);
    const b = classify(gaxios(403, 'userRateLimitExceeded'), 'x');
    assert.ok(b instanceof TransientGmailError && b.rateLimited);
    assert.ok(classify(gaxios(503), 'x') instanceof TransientGmailError);
    assert.ok(classify({ code: 'ECONNRESET', message: 'reset' }, 'x') instanceof TransientGmailError);
  });

  it('sorts forbidden, not found, bad requests and refused delegation as permanent, naming the call', () => {
    const f = classify(gaxios(403, 'forbidden'), 'messages.list of a@b.co');
    assert.ok(f instanceof PermanentGmailError && /a@b\.co/.test(f.message) && f.status === 403);
    assert.ok(classify(gaxios(404, 'notFound'), 'x') instanceof PermanentGmailError);
    assert.ok(classify(gaxios(400, 'failedPrecondition'), 'x') instanceof PermanentGmailError);
    const g = classify(gaxios(400, undefined, {}, { error: 'invalid_grant', error_description: 'Invalid email or User ID' }), 'a@b.co');
    assert.ok(g instanceof PermanentGmailError && /invalid_grant/.test(g.message));
  });

  it('reads Retry-After as seconds or as a date', () => {
    assert.equal(parseRetryAfter('3'), 3000);
    assert.equal(parseRetryAfter(new Date(10_000).toUTCString(), 4_000), 6000);
    assert.equal(parseRetryAfter('soon'), undefined);
  });
});
