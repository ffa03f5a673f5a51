// Checks that loading a large mbox keeps memory modest: the emulator keeps a small index per
// message and reads message bytes from disk on demand. Not part of the default test run.
//
//   node --expose-gc --import tsx test/emulators/gmail/memory-check.ts [count=20000] [maxBytesPerMessage=1500]
//
// Generates <count> messages into a temporary folder, loads them, lists every page, reads a
// sample, and fails (exit 1) when the heap grew by more than maxBytesPerMessage per message.
// (Message bodies are never kept: the index costs about 1 KB a message whatever its size.)

import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateMbox } from '../../../scripts/generate-mbox.js';
import { OWNER_TOKEN, startGmailEmulator } from './index.js';

const gc = (globalThis as { gc?: () => void }).gc;

function settle(): number {
  gc?.();
  gc?.();
  return process.memoryUsage().heapUsed;
}

async function main(): Promise<void> {
  const count = Number(process.argv[2] ?? 20000);
  const maxPerMessage = Number(process.argv[3] ?? 1500);
  if (!gc) process.stderr.write('note: run with --expose-gc for exact numbers\n');
  const dir = await mkdtemp(join(tmpdir(), 'gmail-memory-'));
  try {
    const address = 'load@example.com';
    const file = join(dir, `${address}.mbox`);
    const t0 = performance.now();
    await generateMbox({ output: file, count, seed: 3, address });
    const size = (await stat(file)).size;
    const t1 = performance.now();
    const heapBefore = settle();
    const rssBefore = process.memoryUsage().rss;
    const emulator = await startGmailEmulator({ dataDir: dir, quotaUnitsPerMinute: 0 });
    const t2 = performance.now();
    const heapAfter = settle();
    const rssAfter = process.memoryUsage().rss;
    try {
      const headers = { Authorization: `Bearer ${OWNER_TOKEN}` };
      let pageToken = '';
      let listed = 0;
      const ids: string[] = [];
      do {
        const url = `${emulator.url}gmail/v1/users/${encodeURIComponent(address)}/messages?maxResults=500&includeSpamTrash=true${pageToken ? `&pageToken=${pageToken}` : ''}`;
        const page = (await (await fetch(url, { headers })).json()) as { messages?: Array<{ id: string }>; nextPageToken?: string };
        listed += page.messages?.length ?? 0;
        if (ids.length < 200) ids.push(...(page.messages ?? []).slice(0, 20).map((m) => m.id));
        pageToken = page.nextPageToken ?? '';
      } while (pageToken);
      for (const id of ids) {
        const res = await fetch(`${emulator.url}gmail/v1/users/${encodeURIComponent(address)}/messages/${id}?format=full`, { headers });
        if (res.status !== 200) throw new Error(`messages.get ${id}: ${res.status}`);
        await res.arrayBuffer();
      }
      const t3 = performance.now();
      const grown = heapAfter - heapBefore;
      const perMessage = grown / count;
      const mb = (n: number): string => `${(n / 1048576).toFixed(1)} MiB`;
      process.stdout.write(
        `messages ${count}, file ${mb(size)} (generated in ${((t1 - t0) / 1000).toFixed(1)} s)\n` +
          `load ${((t2 - t1) / 1000).toFixed(1)} s; heap +${mb(grown)} (${perMessage.toFixed(0)} B/message); rss +${mb(rssAfter - rssBefore)}\n` +
          `listed ${listed}, read ${ids.length} in ${((t3 - t2) / 1000).toFixed(1)} s\n`,
      );
      if (listed !== count) throw new Error(`listed ${listed} of ${count}`);
      if (perMessage > maxPerMessage) {
        throw new Error(`heap grew by ${mb(grown)}: more than ${maxPerMessage} B/message`);
      }
      process.stdout.write('memory check: ok\n');
    } finally {
      await emulator.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`memory check: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
