/**
 * The queue page (`GET /queue`), end to end in headless Chromium (Debian's `chromium`, driven by
 * playwright-core): submit a Synchronize from the page, watch its mailbox's bar move, press Stop,
 * see `Stopped`. Also: the page is behind ACI's access control, and is only GET and HEAD.
 * `UPDATE_SCREENSHOT=1` rewrites docs/queue-page.png from the run.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { chromium, type Browser } from 'playwright-core';
import { FIRST_COMMIT_WITHIN } from '../../functions/src/fetch/synchronize.js';
import { writeMailbox } from '../support/mail.js';
import { startTestStack, type TestStack } from '../support/stack.js';

const CHROMIUM = '/usr/bin/chromium';
const SLOW = 'slow@page.example';
const FAST = 'fast@page.example';
const SECRET = 'page-secret-0123456789';
// CI installs chromium (.ci/run), so there it must run; elsewhere its absence is said, not hidden.
const skip = !existsSync(CHROMIUM) && !process.env.CI ? `${CHROMIUM} is missing: apt-get install -y chromium (CI installs it)` : false;

describe('the queue page in Chromium', { skip }, () => {
  let stack: TestStack;
  let browser: Browser;

  before(async () => {
    const { dir } = writeMailbox(SLOW, 600, { prefix: 's' });
    writeMailbox(FAST, 12, { dir, prefix: 'f' });
    stack = await startTestStack({
      mailDir: dir,
      connector: { gmail: { quotaUnitsPerUserPerMinute: 1_000_000 }, tasks: { SLOW: { users: [SLOW] }, FAST: { users: [FAST] } } },
      gmail: { latencyMs: 15 },
    });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'], headless: true, timeout: 60_000 });
  });

  after(async () => {
    await browser?.close();
    await stack?.close();
  });

  it('submits, shows the mailbox progress moving, stops, and shows Stopped', async (t) => {
    // A finished action first, so the page shows counts too.
    const done = await stack.synchronize('FAST');
    await stack.waitFor(done, ['Finished']);
    const page = await browser.newPage({ viewport: { width: 1280, height: 520 } });
    page.setDefaultTimeout(60_000);
    const problems: string[] = [];
    page.on('pageerror', (e) => problems.push(e.message));
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(m.text());
    });
    const r = await page.goto(`${stack.actionUrl}queue`);
    assert.equal(r?.status(), 200);
    await page.locator(`tr[data-token="${done}"][data-status="Finished"]`).waitFor();

    // The emulator lets the run read as many messages as its first commit may need (the first batch
    // and the batches fetched ahead, which may be read first), then holds it; as many more once the
    // bar has moved. So the bar moves twice whatever the machine's load, and the run is still
    // reading at the Stop: a mailbox that finished before the Stop reached it keeps its Finished.
    const firstGate = stack.gmail.holdCalls(SLOW, 'messages.get', FIRST_COMMIT_WITHIN);
    const releases = [firstGate];
    t.after(() => releases.forEach((release) => release()));
    await page.fill('#tasks', 'SLOW');
    await page.click('#submit button[type=submit]');
    await page.locator('#message').filter({ hasText: /^submitted / }).waitFor();
    const token = ((await page.textContent('#message')) ?? '').replace('submitted ', '').trim();
    assert.match(token, /^[\w-]{22}$/);
    const row = page.locator(`tr[data-token="${token}"]`);
    const bar = row.locator(`[data-mailbox="${SLOW}"] progress`);
    await row.and(page.locator('[data-status="Processing"]')).waitFor();
    const value = async () => Number(await bar.getAttribute('value'));
    const above = async (v: number) => {
      for (let i = 0; i < 600; i++) {
        if ((await value()) > v) return;
        await new Promise((res) => setTimeout(res, 100));
      }
      assert.fail(`the mailbox's bar stayed at ${v}`);
    };
    await above(0);
    const first = await value();
    // A new gate replaces the first; opening the first lets its held calls through.
    releases.push(stack.gmail.holdCalls(SLOW, 'messages.get', FIRST_COMMIT_WITHIN));
    firstGate();
    await above(first);
    assert.ok((await value()) > first);
    assert.equal(await bar.getAttribute('max'), '600');
    // The action's figures and its only mailbox's are read together: they agree.
    const total = (await row.locator('.total').textContent()) ?? '';
    const mailbox = (await row.locator(`[data-mailbox="${SLOW}"] .num`).textContent()) ?? '';
    const [, percent, messages] = /(\d+)% · (\d+) messages/.exec(total) ?? [];
    const [, applied] = /^(\d+) \/ 600 messages/.exec(mailbox) ?? [];
    assert.equal(messages, applied, `${total} beside ${mailbox}`);
    assert.equal(Number(percent), Math.min(99, Math.floor((Number(applied) * 100) / 600)), `${total} beside ${mailbox}`);
    // The page's own time is UTC, as the queued times beside it.
    assert.match((await page.textContent('#updated')) ?? '', /^updated \d\d:\d\d:\d\d UTC$/);
    if (process.env.UPDATE_SCREENSHOT === '1') {
      await page.screenshot({ path: resolve(import.meta.dirname, '../../docs/queue-page.png') });
    }

    await row.getByRole('button', { name: 'Stop' }).click();
    await page.locator(`tr[data-token="${token}"][data-status="Stopped"]`).waitFor();
    // A Stopped row keeps its task section's name.
    assert.equal((await row.locator('.action').textContent())?.trim(), 'SYNCHRONIZE SLOW');
    assert.equal((await stack.deps.store.get(token))?.status, 'Stopped');
    const units = await stack.units(token);
    assert.ok(units.every((u) => u.status === 'Stopped'), JSON.stringify(units.map((u) => u.status)));
    assert.deepEqual(problems, []);
    await page.close();
  });

  it('a Cancelled row keeps its task section', async () => {
    await stack.aci({ action: 'QueueInfo', QueueName: 'fetch', QueueAction: 'Pause' });
    const token = await stack.synchronize('FAST');
    await stack.aci({ action: 'QueueInfo', QueueName: 'fetch', QueueAction: 'Cancel', Token: token });
    await stack.aci({ action: 'QueueInfo', QueueName: 'fetch', QueueAction: 'Resume' });
    const page = await browser.newPage();
    await page.goto(`${stack.actionUrl}queue`);
    const row = page.locator(`tr[data-token="${token}"][data-status="Cancelled"]`);
    await row.waitFor({ timeout: 30_000 });
    assert.equal((await row.locator('.action').textContent())?.trim(), 'SYNCHRONIZE FAST');
    await page.close();
  });

  it('Pause and Resume change the queue', async () => {
    const page = await browser.newPage();
    await page.goto(`${stack.actionUrl}queue`);
    await page.click('#pause');
    await page.locator('body[data-paused="true"]').waitFor({ timeout: 30_000 });
    await page.click('#resume');
    await page.locator('body[data-paused="false"]').waitFor({ timeout: 30_000 });
    await page.close();
  });
});

describe('the queue page behind the shared secret', () => {
  let stack: TestStack;

  before(async () => {
    const { dir } = writeMailbox(FAST, 1, { prefix: 'x' });
    stack = await startTestStack({ mailDir: dir, connector: { tasks: { FAST: { users: [FAST] } } }, env: { ACTION_SHARED_SECRET: SECRET } });
  });
  after(async () => {
    await stack?.close();
  });

  const get = (path: string, init: RequestInit = {}) => fetch(`${stack.actionUrl}${path}`, { signal: AbortSignal.timeout(30_000), ...init });

  it('answers 401 without the secret and the page with it, pinned by its CSP', async () => {
    const refused = await get('queue');
    assert.equal(refused.status, 401);
    assert.doesNotMatch(await refused.text(), /<html/);
    const r = await get('queue', { headers: { 'X-ACI-Secret': SECRET } });
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') ?? '', /^text\/html/);
    assert.match(r.headers.get('content-security-policy') ?? '', /script-src 'sha256-[A-Za-z0-9+/]+=*'.*frame-ancestors 'none'/);
    assert.match(await r.text(), /<title>Gmail connector: queue<\/title>/);
    const prefixed = await get('some/prefix/queue/', { headers: { 'X-ACI-Secret': SECRET } });
    assert.equal(prefixed.status, 200);
  });

  it('answers HEAD without a body; POST and the path form stay ACI', async () => {
    const head = await get('queue', { method: 'HEAD', headers: { 'X-ACI-Secret': SECRET } });
    assert.equal(head.status, 200);
    assert.equal(await head.text(), '');
    const post = await get('queue', { method: 'POST', headers: { 'X-ACI-Secret': SECRET } });
    assert.equal(post.status, 400);
    assert.match(await post.text(), /<autnresponse/);
    const aci = await get('action=QueueInfo&QueueName=queue&QueueAction=QueueStatus', { headers: { 'X-ACI-Secret': SECRET } });
    assert.match(await aci.text(), /<autnresponse/);
  });
});
