/**
 * The per-mailbox pacer and the sorting of Google API failures.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { classify, parseRetryAfter, PermanentGmailError, TransientGmailError } from '../../functions/src/gmail/errors.js';
import { QuotaPacer } from '../../functions/src/gmail/pacing.js';

describe('QuotaPacer', () => {
  it('lets through one second of quota, then paces at quota ÷ 60 units a second', async () => {
    let now = 0;
    const pacer = new QuotaPacer(6000, () => now);
    const realSleep = setTimeout;
    // 100 units/s with a 100-unit burst: 20 calls of 5 units go at once, the next must wait 50 ms.
    for (let i = 0; i < 20; i++) await pacer.take(5);
    let done = false;
    const p = pacer.take(5).then(() => (done = true));
    await new Promise((r) => realSleep(r, 5));
    assert.equal(done, false);
    now += 50;
    await p;
    assert.equal(done, true);
  });

  it('halves its rate once per episode of rate-limit answers and climbs back on success', () => {
    let now = 0;
    const pacer = new QuotaPacer(6000, () => now);
    assert.equal(pacer.currentRate, 100);
    for (let i = 0; i < 10; i++) pacer.throttled();
    assert.equal(pacer.currentRate, 50);
    now += 1000;
    pacer.throttled();
    assert.equal(pacer.currentRate, 25);
    for (let i = 0; i < 1000; i++) pacer.succeeded();
    assert.equal(pacer.currentRate, 100);
  });

  it('0 units means unpaced', async () => {
    const pacer = new QuotaPacer(0, () => 0);
    for (let i = 0; i < 10_000; i++) await pacer.take(5);
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
