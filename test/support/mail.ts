/**
 * Small mailboxes for tests: writes an mbox in Google Takeout's form and
 * returns what was written, so tests can compare the sink with it exactly.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestMessage {
  messageId: string;
  subject: string;
  labels: string[];
}

/** Writes `<address>.mbox` with `count` simple messages into a new temporary folder (or `dir`). */
export function writeMailbox(address: string, count: number, opts: { dir?: string; prefix?: string } = {}): { dir: string; messages: TestMessage[] } {
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'gmail-connector-test-'));
  const prefix = opts.prefix ?? 'm';
  const messages: TestMessage[] = [];
  const parts: string[] = [];
  const base = Date.UTC(2025, 0, 1);
  for (let i = 0; i < count; i++) {
    const date = new Date(base + i * 60_000);
    const m: TestMessage = {
      messageId: `<${prefix}${i}.${i * 7919}@test.example.com>`,
      subject: `Message ${i} ünïcödé`,
      labels: i % 3 === 0 ? ['Inbox', 'Important'] : ['Inbox'],
    };
    messages.push(m);
    parts.push(
      [
        `From 1780000000000${String(i).padStart(6, '0')}@xxx ${date.toUTCString().replace(/^(\w+), (\d+) (\w+) (\d+) ([\d:]+) GMT$/, '$1 $3 $2 $5 +0000 $4')}`,
        `X-GM-THRID: ${(1780000000000000000n + BigInt(i)).toString()}`,
        `X-Gmail-Labels: ${m.labels.join(',')}`,
        `Message-ID: ${m.messageId}`,
        `Date: ${date.toUTCString()}`,
        `From: =?UTF-8?B?${Buffer.from('Sénder Ñame').toString('base64')}?= <sender${i % 5}@example.org>`,
        `To: ${address}`,
        `Subject: =?UTF-8?B?${Buffer.from(m.subject).toString('base64')}?=`,
        'MIME-Version: 1.0',
        'Content-Type: text/plain; charset=UTF-8',
        'Content-Transfer-Encoding: 8bit',
        '',
        `Body of message ${i}.`,
        '',
      ].join('\n'),
    );
  }
  writeFileSync(join(dir, `${address}.mbox`), parts.join('\n'));
  return { dir, messages };
}
