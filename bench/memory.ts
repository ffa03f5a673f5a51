/**
 * The worker without quota (Gmail emulator unlimited, connector at its
 * maximum of 1,000,000 units/min): its CPU time and peak memory (VmHWM of the
 * worker process, a fresh one for each size) for growing generated mailboxes.
 * Target: memory flat as the mailbox grows, peak at 100k ≤ 1.5 × peak at 10k.
 *
 * Beside them (`memlarge`), a mailbox of large messages: each a text part and
 * one attachment, about 49 MB in all (Gmail's limit is 50 MB), twelve of them
 * read ten at a time. Target: peak ≤ K_BOUND × message size × 10 + the idle worker's peak +
 * 256 MiB; the k measured is (peak − idle peak) ÷ (message size × 10).
 */
import { generatedMail } from './lib/mail.js';
import { memory } from './lib/proc.js';
import { newestProfile, summarizeProfile } from './lib/profile.js';
import { below, info, type BenchContext, type Benchmark, type Outcome } from './lib/report.js';
import { startBenchStack } from './lib/stack.js';
import { ENDED, expectFinished, measureSync, type SyncRun } from './lib/sync.js';
import { fmt, note, round, sleep } from './lib/util.js';

const USER = 'memory@example.com';
const BASE = 10_000;
const SIZES = [10_000, 50_000, 100_000];
/**
 * A run still going after this long is stopped and reported as partial, so that the
 * whole suite stays within about ten minutes on 2 cores; `--full` lifts it to the
 * worker's own time budget.
 */
const MAX_RUN_S = 240;
const FULL_MAX_RUN_S = 1_500;
const MAX_RATIO = 1.5;

interface SizeResult {
  size: number;
  run: SyncRun;
  complete: boolean;
  idlePeakMiB: number | null;
}

async function runSize(ctx: BenchContext, size: number, profile: boolean, maxRunS: number): Promise<SizeResult> {
  const mail = await generatedMail([{ address: USER, count: size, seed: 700 }]);
  try {
    const stack = await startBenchStack({
      name: 'memory',
      firestore: ctx.firestore,
      logDir: ctx.logDir,
      mailDir: mail.dir,
      connector: { gmail: { quotaUnitsPerUserPerMinute: 1_000_000 }, tasks: { MEM: { users: [USER], includeSpamTrash: true } } },
      gmail: { quotaUnitsPerMinute: 0 },
      workerNodeArgs: profile ? ['--cpu-prof', `--cpu-prof-dir=${ctx.profileDir}`] : [],
    });
    try {
      const idlePeakMiB = memory(stack.workerPid)?.peakMiB ?? null;
      note(`memory: ${size.toLocaleString('en-US')} messages, quota off${profile ? ', CPU profile on' : ''} (stopped if still running after ${maxRunS} s)`);
      let stopped = false;
      const run = await measureSync(stack, 'MEM', {
        timeoutMs: (maxRunS + 120) * 1000,
        onProgress: async (token) => {
          const until = Date.now() + maxRunS * 1000;
          while (Date.now() < until) {
            const a = await stack.store.get(token);
            if (a && ENDED.includes(a.status)) return;
            await sleep(500);
          }
          stopped = true;
          note(`memory: ${size.toLocaleString('en-US')} still running after ${maxRunS} s: stopping it`);
          // 409 when it ended meanwhile: nothing to stop.
          await stack.aci({ action: 'QueueInfo', QueueName: 'fetch', QueueAction: 'Stop', Token: token });
        },
      });
      if (!stopped) expectFinished(run, size);
      else if (run.action.status !== 'Stopped' && run.action.status !== 'Finished') throw new Error(`action ${run.token} ended ${run.action.status}`);
      return { size, run, complete: run.action.status === 'Finished' && run.messages === size, idlePeakMiB };
    } finally {
      await stack.close();
    }
  } finally {
    await mail.remove();
  }
}

const LARGE_USER = 'large@example.com';
const LARGE_COUNT = 12;
/** An attachment of 36 MiB is 48.6 MiB in base64: a message just under Gmail's 50 MB. */
const LARGE_ATTACHMENT = 36 * 1024 * 1024;
/** The generator's PDF attachments start with a 15-byte header before their random bytes. */
const PDF_HEADER = 15;
/** Messages a Synchronize reads at once once they prove large (fetch/synchronize.ts). */
const LARGE_CONCURRENCY = 10;
const K_BOUND = 0.5;
const CONSTANT_MIB = 256;

export const largeMemoryBench: Benchmark = {
  name: 'memlarge',
  title: 'worker peak memory on twelve messages of about 49 MB with attachments',
  async run(ctx): Promise<Outcome> {
    const mail = await generatedMail([{ address: LARGE_USER, count: LARGE_COUNT, seed: 701, attachmentBytes: LARGE_ATTACHMENT }]);
    try {
      const stack = await startBenchStack({
        name: 'memlarge',
        firestore: ctx.firestore,
        logDir: ctx.logDir,
        mailDir: mail.dir,
        connector: { gmail: { quotaUnitsPerUserPerMinute: 1_000_000 }, tasks: { BIG: { users: [LARGE_USER], includeSpamTrash: true } } },
        gmail: { quotaUnitsPerMinute: 0 },
      });
      try {
        const idle = memory(stack.workerPid)?.peakMiB ?? NaN;
        note(`memlarge: ${LARGE_COUNT} messages of ${fmt(mail.bytes / LARGE_COUNT / 1048576, 1)} MiB, quota off`);
        const run = await measureSync(stack, 'BIG', { timeoutMs: 1_200_000 });
        expectFinished(run, LARGE_COUNT);
        const docs = await stack.db.collection('documents').where('user', '==', LARGE_USER).get();
        const kept = docs.docs.map((d) => (d.get('attachments') as { size: number }[])[0]?.size ?? 0);
        if (kept.some((size) => size !== LARGE_ATTACHMENT + PDF_HEADER)) throw new Error(`attachment sizes in the sink: ${kept.join(', ')}; expected ${LARGE_ATTACHMENT + PDF_HEADER} each`);
        const sizeMiB = mail.bytes / LARGE_COUNT / 1048576;
        const peak = run.workerPeakMiB ?? NaN;
        const k = (peak - idle) / (sizeMiB * LARGE_CONCURRENCY);
        const bound = K_BOUND * sizeMiB * LARGE_CONCURRENCY + idle + CONSTANT_MIB;
        return {
          rows: [
            below(`peak worker memory, ${LARGE_COUNT} × ${fmt(sizeMiB, 1)} MiB messages`, peak, 'MiB', bound, 0, true),
            info('k = (peak − idle peak) ÷ (message size × 10)', k, '', 3, `≤ ${K_BOUND}`, k / K_BOUND),
            info(`${LARGE_COUNT} large messages: rate`, run.messages / run.unitSeconds, 'msg/s', 2),
          ],
          notes: [
            `memlarge: ${LARGE_COUNT} messages of ${fmt(sizeMiB, 1)} MiB (a text part and a ${LARGE_ATTACHMENT / 1048576} MiB PDF attachment each), ` +
              `read ${LARGE_CONCURRENCY} at a time; worker peak (VmHWM) ${fmt(peak, 0)} MiB, ${fmt(idle, 0)} MiB idle after start; ` +
              `bound ${K_BOUND} × ${fmt(sizeMiB, 1)} MiB × ${LARGE_CONCURRENCY} + ${fmt(idle, 0)} + ${CONSTANT_MIB} MiB = ${fmt(bound, 0)} MiB; ` +
              `worker CPU ${fmt((run.workerCpuMs ?? NaN) / 1000, 1)} s; every attachment's size in the sink is exact.`,
          ],
          details: { count: LARGE_COUNT, messageMiB: round(sizeMiB, 2), idlePeakMiB: round(idle, 1), peakMiB: round(peak, 1), k: round(k, 4), bound: round(bound, 1), seconds: round(run.unitSeconds, 2), workerCpuMs: run.workerCpuMs },
        };
      } finally {
        await stack.close();
      }
    } finally {
      await mail.remove();
    }
  },
};

export const memoryBench: Benchmark = {
  name: 'memory',
  title: 'worker CPU and peak memory, quota off',
  async run(ctx): Promise<Outcome> {
    const maxRunS = ctx.full ? FULL_MAX_RUN_S : MAX_RUN_S;
    const results: SizeResult[] = [];
    for (const size of SIZES) results.push(await runSize(ctx, size, ctx.profile && size === BASE, maxRunS));
    const out: Outcome = { rows: [], notes: [], details: {} };
    for (const r of results) {
      const label = `${r.size.toLocaleString('en-US')} msgs${r.complete ? '' : ` (partial: ${r.run.messages.toLocaleString('en-US')})`}`;
      out.rows.push(info(`${label}: rate`, r.run.messages / r.run.unitSeconds, 'msg/s', 0));
      out.rows.push(info(`${label}: worker CPU per message`, (r.run.workerCpuMs ?? NaN) / r.run.messages, 'ms', 2));
      out.rows.push(info(`${label}: worker peak memory (VmHWM)`, r.run.workerPeakMiB ?? NaN, 'MiB', 0));
    }
    const base = results.find((r) => r.size === BASE && r.complete);
    const top = [...results].reverse().find((r) => r.complete && r.size > BASE);
    if (base && top && base.run.workerPeakMiB !== null && top.run.workerPeakMiB !== null) {
      const ratio = top.run.workerPeakMiB / base.run.workerPeakMiB;
      const row = below(`peak ${top.size / 1000}k ÷ peak ${BASE / 1000}k`, ratio, '×', MAX_RATIO, 2, true);
      out.rows.push({ ...row, ratio: ratio / MAX_RATIO });
    } else {
      out.notes.push('no peak-memory ratio: it needs the 10,000-message run and a larger one to finish.');
    }
    for (const r of results.filter((x) => !x.complete)) {
      out.notes.push(
        `the ${r.size.toLocaleString('en-US')}-message run did not finish within ${maxRunS} s and was stopped at ${r.run.messages.toLocaleString('en-US')} messages: ` +
          `its figures are of that part only, and the ratio is of the largest size that finished${ctx.full ? '' : '; `--full` lets it run to the end'}.`,
      );
    }
    for (const r of results) {
      out.notes.push(
        `${r.size.toLocaleString('en-US')}: ${r.run.messages.toLocaleString('en-US')} messages in ${fmt(r.run.unitSeconds, 1)} s, worker CPU ${fmt((r.run.workerCpuMs ?? NaN) / 1000, 1)} s ` +
          `(${fmt((r.run.workerCpuMs ?? NaN) / 1000 / r.run.unitSeconds, 2)} cores), peak ${fmt(r.run.workerPeakMiB ?? NaN, 0)} MiB ` +
          `(${fmt(r.idlePeakMiB ?? NaN, 0)} MiB when idle after start, largest sampled RSS ${fmt(r.run.workerRssMaxMiB ?? NaN, 0)} MiB).`,
      );
    }
    out.details.sizes = results.map((r) => ({
      size: r.size,
      complete: r.complete,
      messages: r.run.messages,
      seconds: round(r.run.unitSeconds, 3),
      msgPerS: round(r.run.messages / r.run.unitSeconds, 2),
      workerCpuMs: r.run.workerCpuMs,
      workerCpuMsPerMsg: r.run.workerCpuMs === null ? null : round(r.run.workerCpuMs / r.run.messages, 3),
      workerPeakMiB: r.run.workerPeakMiB === null ? null : round(r.run.workerPeakMiB, 1),
      workerIdlePeakMiB: r.idlePeakMiB === null ? null : round(r.idlePeakMiB, 1),
      workerRssMaxMiB: r.run.workerRssMaxMiB === null ? null : round(r.run.workerRssMaxMiB, 1),
      gmailCalls: r.run.calls,
    }));
    if (ctx.profile) {
      const file = newestProfile(ctx.profileDir);
      if (file) {
        const summary = summarizeProfile(file, 15);
        out.details.profile = { file, ...summary };
        out.notes.push(`worker CPU profile of the ${BASE.toLocaleString('en-US')} run: ${file}; self time by package: ${summary.byPackage.map((p) => `${p.name} ${fmt(p.percent, 1)} %`).join(', ')}.`);
        out.notes.push(`top functions by self time: ${summary.top.map((f) => `${f.name} (${f.where}) ${fmt(f.percent, 1)} %`).join('; ')}.`);
      } else {
        out.notes.push(`no CPU profile was written into ${ctx.profileDir}.`);
      }
    }
    return out;
  },
};
