/**
 * Collect into the Cloud Storage emulator, the worker as a child process: 1,000 messages of
 * about 1 MB in one mailbox and ten of about 40 MB in another, at Gmail's per-user quota (the
 * emulator and the connector both at QUOTA units a minute). Figures: each mailbox's rate against
 * the quota's ceiling (a message costs one messages.get, 5 units, so QUOTA ÷ 5 messages a
 * minute), and the worker's peak memory (VmHWM) while collecting, which must stay far below
 * what holding messages whole would take.
 */
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { startStorageEmulator } from '../test/emulators/storage/index.js';
import { onCleanup } from './lib/cleanup.js';
import { memory } from './lib/proc.js';
import { atLeast, below, info, type Benchmark, type Outcome } from './lib/report.js';
import { startBenchStack } from './lib/stack.js';
import { fmt, note, round } from './lib/util.js';

const QUOTA = 15_000;
const BUCKET = 'bench-collect';
const BOXES = [
  { address: 'mb@collect.example', task: 'MB', count: 1000, size: 1_000_000 },
  { address: 'big@collect.example', task: 'BIG', count: 10, size: 40_000_000 },
];
/** A mailbox at least this share of the quota's ceiling is collected fast enough. */
const MIN_RATIO = 0.8;
/** The worker's peak must stay below this: a few messages in flight, never a mailbox. */
const MAX_PEAK_MIB = 600;

/** Writes `count` messages of about `size` bytes (base64 lines) as `<address>.mbox`, streamed. */
async function writeMailbox(dir: string, address: string, count: number, size: number): Promise<void> {
  const out = createWriteStream(join(dir, `${address}.mbox`));
  for (let i = 0; i < count; i++) {
    const date = new Date(Date.UTC(2025, 2, 1) + i * 60_000);
    const head = [
      `From 1800000000000${String(i).padStart(6, '0')}@xxx ${date.toUTCString().replace(/^(\w+), (\d+) (\w+) (\d+) ([\d:]+) GMT$/, '$1 $3 $2 $5 +0000 $4')}`,
      `X-GM-THRID: ${(1800000000000000000n + BigInt(i)).toString()}`,
      'X-Gmail-Labels: Inbox',
      `Message-ID: <collect${i}@bench.example>`,
      `Date: ${date.toUTCString()}`,
      'From: sender@example.org',
      `To: ${address}`,
      `Subject: Collect ${i}`,
      'MIME-Version: 1.0',
      'Content-Type: application/octet-stream',
      'Content-Transfer-Encoding: base64',
      '',
      '',
    ].join('\n');
    if (!out.write(head)) await once(out, 'drain');
    for (let left = size; left > 0; left -= 77 * 1000) {
      const chunk = (randomBytes(Math.min(left, 77 * 1000) * 0.75).toString('base64').match(/.{1,76}/g) ?? []).join('\n');
      if (!out.write(`${chunk}\n`)) await once(out, 'drain');
    }
    if (!out.write('\n')) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
}

export const collectBench: Benchmark = {
  name: 'collect',
  title: `Collect to Cloud Storage at ${QUOTA.toLocaleString('en-US')} units/min per user`,
  async run(ctx): Promise<Outcome> {
    const dir = await mkdtemp(join(tmpdir(), 'gmail-connector-bench-collect-'));
    const removeDir = onCleanup(`folder ${dir}`, () => rm(dir, { recursive: true, force: true }));
    const storage = await startStorageEmulator({ buckets: [BUCKET] });
    const closeStorage = onCleanup('Cloud Storage emulator', () => storage.close());
    const out: Outcome = { rows: [], notes: [], details: {} };
    try {
      for (const b of BOXES) await writeMailbox(dir, b.address, b.count, b.size);
      const stack = await startBenchStack({
        name: 'collect',
        firestore: ctx.firestore,
        logDir: ctx.logDir,
        mailDir: dir,
        connector: {
          gmail: { quotaUnitsPerUserPerMinute: QUOTA },
          tasks: Object.fromEntries(BOXES.map((b) => [b.task, { users: [b.address] }])),
        },
        gmail: { quotaUnitsPerMinute: QUOTA },
        collect: { storageUrl: storage.url, buckets: [BUCKET] },
      });
      try {
        const idle = memory(stack.workerPid)?.peakMiB ?? NaN;
        const ceiling = QUOTA / 5 / 60;
        const runs: Record<string, unknown>[] = [];
        for (const b of BOXES) {
          note(`collect: ${b.count} messages of ${fmt(b.size / 1e6, 0)} MB`);
          const r = await stack.aci({ action: 'Fetch', FetchAction: 'Collect', TaskSections: b.task, Destination: `gs://${BUCKET}/${b.task}` });
          if (r.status !== 200) throw new Error(`Collect answered ${r.status}: ${r.text.slice(0, 300)}`);
          const token = String((((r.json as Record<string, unknown>).autnresponse as Record<string, unknown>).responsedata as Record<string, unknown>).token);
          const a = await stack.waitFor(token, ['Finished', 'Error', 'Stopped'], 900_000, 250);
          if (a.status !== 'Finished') throw new Error(`Collect of ${b.task} ended ${a.status}: ${a.error ?? ''}`);
          const [u] = await stack.units(token);
          const seconds = ((u?.endedAt?.toMillis() ?? 0) - (u?.startedAt?.toMillis() ?? 0)) / 1000;
          const collected = u?.counts['collected'] ?? 0;
          const rate = collected / seconds;
          const mib = (b.count * b.size) / 1048576 / seconds;
          out.rows.push(b.count >= 100 ? atLeast(`${b.task}: rate`, rate, 'msg/s', ceiling, MIN_RATIO) : info(`${b.task}: rate`, rate, 'msg/s', 2));
          out.rows.push(info(`${b.task}: throughput`, mib, 'MiB/s', 1));
          runs.push({ task: b.task, count: b.count, size: b.size, collected, seconds: round(seconds, 2), msgPerS: round(rate, 2), mibPerS: round(mib, 1) });
        }
        const peak = memory(stack.workerPid)?.peakMiB ?? NaN;
        out.rows.push(below('worker peak memory (VmHWM)', peak, 'MiB', MAX_PEAK_MIB, 0));
        out.notes.push(
          `ceiling: ${QUOTA.toLocaleString('en-US')} units/min ÷ 5 units per messages.get = ${fmt(ceiling, 1)} msg/s per mailbox; the ten 40 MB messages are bound by bytes, not by the quota. ` +
            `Worker peak ${fmt(peak, 0)} MiB (${fmt(idle, 0)} MiB idle after start) while copying ${fmt(BOXES.reduce((n, b) => n + b.count * b.size, 0) / 1e9, 1)} GB.`,
        );
        out.details = { quota: QUOTA, ceilingMsgPerS: round(ceiling, 2), runs, workerPeakMiB: round(peak, 1), workerIdlePeakMiB: round(idle, 1) };
      } finally {
        await stack.close();
      }
    } finally {
      await closeStorage();
      await removeDir();
    }
    return out;
  },
};
