/**
 * Mailboxes for the benchmarks: realistic generated mail (scripts/generate-mbox.ts)
 * in a temporary folder of `<address>.mbox` files, deleted when released.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateMbox } from '../../scripts/generate-mbox.js';
import { onCleanup } from './cleanup.js';
import { note } from './util.js';

export interface MailDir {
  dir: string;
  /** Bytes written, all mailboxes together. */
  bytes: number;
  remove(): Promise<void>;
}

/** Writes one generated mailbox per entry into a new temporary folder. */
export async function generatedMail(boxes: { address: string; count: number; seed: number; attachmentBytes?: number }[]): Promise<MailDir> {
  const dir = await mkdtemp(join(tmpdir(), 'gmail-connector-bench-'));
  const remove = onCleanup(`folder ${dir}`, () => rm(dir, { recursive: true, force: true }));
  try {
    let bytes = 0;
    const started = Date.now();
    for (const b of boxes) {
      const r = await generateMbox({ output: join(dir, `${b.address}.mbox`), count: b.count, seed: b.seed, address: b.address, attachmentBytes: b.attachmentBytes });
      bytes += r.bytes;
    }
    const total = boxes.reduce((n, b) => n + b.count, 0);
    note(`generated ${total.toLocaleString('en-US')} messages (${(bytes / 1048576).toFixed(0)} MiB) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return { dir, bytes, remove };
  } catch (e) {
    await remove();
    throw e;
  }
}
