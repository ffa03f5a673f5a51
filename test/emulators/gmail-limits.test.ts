// The Gmail emulator's burst window, concurrency limit and batch endpoint. No test here
// depends on the machine's speed: counts are checked, never durations.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { optionsFromEnv } from './gmail/env.js';
import { OWNER_TOKEN, startGmailEmulator, type GmailEmulator } from './gmail/index.js';
import { testGmail } from '../support/gmail.js';

const DEMO_DIR = fileURLToPath(new URL('../fixtures/demo', import.meta.url));
const DEMO = 'demo@example.com';

async function ids(e: GmailEmulator): Promise<string[]> {
  const r = await testGmail(e.url).users.messages.list({ userId: DEMO, maxResults: 500 });
  return (r.data.messages ?? []).map((m) => m.id ?? '');
}

function batchBody(boundary: string, paths: string[]): string {
  return (
    paths.map((p, i) => `--${boundary}\r\nContent-Type: application/http\r\nContent-ID: <item${i}>\r\n\r\nGET ${p}\r\nAccept: application/json\r\n\r\n`).join('') +
    `--${boundary}--\r\n`
  );
}

async function batch(e: GmailEmulator, paths: string[]): Promise<{ status: number; parts: { id: string; status: number; body: string }[] }> {
  const res = await fetch(new URL('batch/gmail/v1', e.url), {
    method: 'POST',
    headers: { 'Content-Type': 'multipart/mixed; boundary=xyz', Authorization: `Bearer ${OWNER_TOKEN}` },
    body: batchBody('xyz', paths),
  });
  const text = await res.text();
  if (res.status !== 200) return { status: res.status, parts: [] };
  const ct = res.headers.get('content-type') ?? '';
  assert.match(ct, /^multipart\/mixed; boundary=/);
  const boundary = ct.split('boundary=')[1] ?? '';
  const parts = text
    .split(`--${boundary}`)
    .slice(1, -1)
    .map((p) => ({
      id: /Content-ID: <([^>]+)>/.exec(p)?.[1] ?? '',
      status: Number(/HTTP\/1\.1 (\d{3})/.exec(p)?.[1]),
      body: p.slice(p.indexOf('{')),
    }));
  return { status: res.status, parts };
}

describe('Gmail emulator limits', () => {
  test('GMAIL_EMULATOR_BURST_S and GMAIL_EMULATOR_MAX_CONCURRENT are read and checked', () => {
    const d = optionsFromEnv({}, DEMO_DIR);
    assert.equal(d.quotaBurstSeconds, 60);
    assert.equal(d.maxConcurrentPerUser, 0);
    const o = optionsFromEnv({ GMAIL_EMULATOR_BURST_S: '1', GMAIL_EMULATOR_MAX_CONCURRENT: '4' }, DEMO_DIR);
    assert.equal(o.quotaBurstSeconds, 1);
    assert.equal(o.maxConcurrentPerUser, 4);
    assert.throws(() => optionsFromEnv({ GMAIL_EMULATOR_BURST_S: '0' }, DEMO_DIR), /GMAIL_EMULATOR_BURST_S/);
    assert.throws(() => optionsFromEnv({ GMAIL_EMULATOR_MAX_CONCURRENT: '-1' }, DEMO_DIR), /GMAIL_EMULATOR_MAX_CONCURRENT/);
  });

  test('a 1 s burst window lets one second of quota through at once, a 60 s one a minute of it', async () => {
    for (const burst of [1, 60]) {
      const e = await startGmailEmulator({ dataDir: DEMO_DIR, quotaUnitsPerMinute: 0, quotaBurstSeconds: burst });
      try {
        const [id] = await ids(e);
        // 600 units a minute, 10 a second, from a full bucket; messages.get costs 5.
        e.setQuota(600);
        const gmail = testGmail(e.url);
        let ok = 0;
        for (let i = 0; i < 30; i++) {
          try {
            await gmail.users.messages.get({ userId: DEMO, id: id ?? '', format: 'minimal' });
            ok++;
          } catch {
            break;
          }
        }
        if (burst === 1) {
          // Two gets fill a 10-unit bucket; a slow machine may refill room for another between calls.
          assert.ok(ok >= 2 && ok < 30, `burst 1 s: ${ok} gets before the first refusal`);
          assert.equal(e.stats().rateLimited, 1);
        } else {
          assert.equal(ok, 30);
          assert.equal(e.stats().rateLimited, 0);
        }
      } finally {
        await e.close();
      }
    }
  });

  test('more concurrent calls than allowed for one user are answered 429 "Too many concurrent requests for user"', async () => {
    const e = await startGmailEmulator({ dataDir: DEMO_DIR, quotaUnitsPerMinute: 0, maxConcurrentPerUser: 2, latencyMs: 200 });
    try {
      const [id] = await ids(e);
      const url = new URL(`gmail/v1/users/${DEMO}/messages/${id}?format=minimal`, e.url);
      const answers = await Promise.all(Array.from({ length: 6 }, () => fetch(url, { headers: { Authorization: `Bearer ${OWNER_TOKEN}` } }).then(async (r) => ({ status: r.status, text: await r.text() }))));
      const refused = answers.filter((a) => a.status === 429);
      // The latency keeps the first calls in flight while the others arrive; at most 2 are served at once.
      assert.ok(answers.filter((a) => a.status === 200).length >= 2);
      assert.ok(refused.length >= 1, 'some calls were refused');
      for (const r of refused) assert.match(r.text, /Too many concurrent requests for user/);
      assert.equal(e.stats().concurrencyRefused, refused.length);
      // Once they are answered, calls go through again.
      const again = await fetch(url, { headers: { Authorization: `Bearer ${OWNER_TOKEN}` } });
      assert.equal(again.status, 200);
      await again.text();
    } finally {
      await e.close();
    }
  });

  test('the batch endpoint answers each part in order, charging each its own quota, up to 100 parts', async () => {
    // 120 units a minute with a minute's burst: 120 units, so 24 gets of 5 units.
    const e = await startGmailEmulator({ dataDir: DEMO_DIR, quotaUnitsPerMinute: 120 });
    try {
      const [id] = await ids(e); // 5 units
      const path = `/gmail/v1/users/${DEMO}/messages/${id}?format=minimal`;
      const r = await batch(e, Array.from({ length: 30 }, () => path));
      assert.equal(r.status, 200);
      assert.equal(r.parts.length, 30);
      assert.deepEqual(
        r.parts.map((p) => p.id),
        r.parts.map((_, i) => `response-item${i}`),
      );
      const ok = r.parts.filter((p) => p.status === 200);
      assert.ok(ok.length >= 23 && ok.length <= 24, `${ok.length} parts served`);
      assert.equal((JSON.parse(ok[0]?.body ?? '{}') as { id?: string }).id, id);
      assert.equal(r.parts.filter((p) => p.status === 429).length, 30 - ok.length);
      assert.equal(e.stats().calls['messages.get'], 30);
      assert.equal(e.stats().calls['batch'], 1);

      assert.equal((await batch(e, Array.from({ length: 101 }, () => path))).status, 400);
    } finally {
      await e.close();
    }
  });
});
