/**
 * Eight mailboxes in one action against one mailbox alone, same size per
 * mailbox, quota 3,000 units/min (10 msg/s a mailbox) for the connector and
 * the Gmail emulator: eight mailboxes then need well under the CPU of a
 * 2-core machine that runs the worker and every emulator, so the ratio to
 * eight times one shows what the fan-out loses (its units starting late or
 * contending), not the CPU; the CPU time of each process is reported per
 * message, and the load average, since the machine may be shared.
 */
import { generatedMail } from './lib/mail.js';
import { cpuMs, firestoreEmulatorPid, ownCpuMs } from './lib/proc.js';
import { loadavg } from 'node:os';
import { atLeast, info, type Benchmark, type Outcome } from './lib/report.js';
import { startBenchStack, type BenchStack } from './lib/stack.js';
import { expectFinished, measureSync, type SyncRun } from './lib/sync.js';
import { fmt, median, note, round } from './lib/util.js';

const PER_MAILBOX = 500;
const MAILBOXES = 8;
const QUOTA = 3_000;

interface Measured {
  run: SyncRun;
  /** CPU of every process on the stack during the run, in ms. */
  cpu: { worker: number | null; firestore: number | null; emulators: number };
}

async function measured(stack: BenchStack, task: string, firestorePid: number | null, timeoutMs: number): Promise<Measured> {
  const fs0 = firestorePid === null ? null : cpuMs(firestorePid);
  const own0 = ownCpuMs();
  const run = await measureSync(stack, task, { timeoutMs });
  const fs1 = firestorePid === null ? null : cpuMs(firestorePid);
  return {
    run,
    cpu: { worker: run.workerCpuMs, firestore: fs0 !== null && fs1 !== null ? fs1 - fs0 : null, emulators: ownCpuMs() - own0 },
  };
}

function perMessage(ms: number | null, messages: number): number {
  return ms === null ? NaN : ms / messages;
}

export const fanout: Benchmark = {
  name: 'fanout',
  title: `${MAILBOXES} mailboxes in one action vs one`,
  async run(ctx): Promise<Outcome> {
    const users = Array.from({ length: MAILBOXES }, (_, i) => `fan${i + 1}@example.com`);
    const mail = await generatedMail(users.map((address, i) => ({ address, count: PER_MAILBOX, seed: 500 + i })));
    try {
      const stack = await startBenchStack({
        name: 'fanout',
        firestore: ctx.firestore,
        logDir: ctx.logDir,
        mailDir: mail.dir,
        connector: {
          gmail: { quotaUnitsPerUserPerMinute: QUOTA },
          tasks: { ONE: { users: users.slice(0, 1), includeSpamTrash: true }, EIGHT: { users, includeSpamTrash: true } },
        },
        gmail: { quotaUnitsPerMinute: QUOTA, quotaBurstSeconds: 1 },
      });
      try {
        const port = Number(ctx.firestore.host.split(':').pop());
        const fsPid = firestoreEmulatorPid(port);
        const ceiling = QUOTA / 60 / 5;
        note(`fanout: 1 mailbox of ${PER_MAILBOX} messages (about ${Math.round(PER_MAILBOX / ceiling)} s)`);
        const one = await measured(stack, 'ONE', fsPid, 600_000);
        expectFinished(one.run, PER_MAILBOX);
        note(`fanout: ${MAILBOXES} mailboxes of ${PER_MAILBOX} messages in one action`);
        const eight = await measured(stack, 'EIGHT', fsPid, 900_000);
        expectFinished(eight.run, PER_MAILBOX * MAILBOXES);

        const single = one.run.messages / one.run.unitSeconds;
        const aggregate = eight.run.messages / eight.run.unitSeconds;
        const linear = single * MAILBOXES;
        const perUnit = eight.run.units.map((u) => (u.counts['seen'] ?? 0) / (((u.endedAt?.toMillis() ?? NaN) - (u.startedAt?.toMillis() ?? NaN)) / 1000));
        const starts = eight.run.units.map((u) => u.startedAt?.toMillis() ?? NaN);
        const first = Math.min(...starts);
        const startOffsets = starts.map((t) => (t - first) / 1000).sort((a, b) => a - b);
        const startSpread = Math.max(...startOffsets);
        const sumOfUnits = perUnit.reduce((a, b) => a + b, 0);
        const m = eight.run.messages;
        const totalCpu = (eight.cpu.worker ?? 0) + (eight.cpu.firestore ?? 0) + eight.cpu.emulators;
        const busyCores = totalCpu / 1000 / eight.run.unitSeconds;
        const cpuCeiling = (2 * 1000) / (totalCpu / m);
        return {
          rows: [
            info('1 mailbox alone', single, 'msg/s', 1, `ceiling ${fmt(ceiling, 1)} msg/s`, single / ceiling),
            atLeast(`${MAILBOXES} mailboxes, aggregate (vs ${MAILBOXES} × one)`, aggregate, 'msg/s', linear, 0.95),
            info(`${MAILBOXES} mailboxes, sum of each one's rate`, sumOfUnits, 'msg/s', 1, `linear: ${fmt(linear, 0)}`, sumOfUnits / linear),
            info('worker CPU per message, 1 mailbox', perMessage(one.cpu.worker, one.run.messages), 'ms', 2),
            info(`worker CPU per message, ${MAILBOXES} mailboxes`, perMessage(eight.cpu.worker, m), 'ms', 2),
            info(`all processes' CPU per message, ${MAILBOXES}`, totalCpu / m, 'ms', 2, `→ ${fmt(cpuCeiling, 0)} msg/s on 2 cores`),
          ],
          notes: [
            `${MAILBOXES} × ${PER_MAILBOX.toLocaleString('en-US')} messages; msg/s from the first unit's start to the last unit's end; ` +
              `the ratio of the aggregate row is aggregate ÷ (${MAILBOXES} × single).`,
            `aggregate = all messages ÷ (last unit's end − first unit's start); "sum of each one's rate" adds each mailbox's own messages ÷ (its end − its start), ` +
              `so the difference between the two rows is the time the units did not run together.`,
            `per mailbox within the action: median ${fmt(median(perUnit), 1)} msg/s (min ${fmt(Math.min(...perUnit), 1)}, max ${fmt(Math.max(...perUnit), 1)}); ` +
              `units started ${startOffsets.map((o) => fmt(o, 2)).join(', ')} s after the first.`,
            `CPU during the ${MAILBOXES}-mailbox run (${fmt(eight.run.unitSeconds, 1)} s): worker ${fmt(perMessage(eight.cpu.worker, m), 2)} ms/msg, ` +
              `Firestore emulator ${fsPid === null ? 'n/a' : `${fmt(perMessage(eight.cpu.firestore, m), 2)} ms/msg`}, ` +
              `Gmail + Cloud Tasks emulators ${fmt(eight.cpu.emulators / m, 2)} ms/msg; ${fmt(busyCores, 2)} of 2 cores busy on average.`,
            `load average (1, 5, 15 min) after the ${MAILBOXES}-mailbox run: ${loadavg().map((l) => l.toFixed(2)).join(' ')} (the machine is shared).`,
            `Gmail refused ${eight.run.rateLimited} calls for quota in the ${MAILBOXES}-mailbox run (${one.run.rateLimited} alone); the connector retried ${eight.run.retries}.`,
          ],
          details: {
            perMailbox: PER_MAILBOX,
            mailboxes: MAILBOXES,
            quotaUnitsPerMinute: QUOTA,
            single: {
              messages: one.run.messages,
              seconds: round(one.run.unitSeconds, 3),
              msgPerS: round(single, 3),
              cpuMs: one.cpu,
              rateLimited: one.run.rateLimited,
            },
            eight: {
              messages: m,
              seconds: round(eight.run.unitSeconds, 3),
              msgPerS: round(aggregate, 3),
              ratioToLinear: round(aggregate / linear, 4),
              perMailboxMsgPerS: perUnit.map((r) => round(r, 2)),
              sumOfMailboxRates: round(sumOfUnits, 3),
              startOffsetsSeconds: startOffsets.map((o) => round(o, 3)),
              startSpreadSeconds: round(startSpread, 3),
              cpuMs: eight.cpu,
              busyCores: round(busyCores, 3),
              cpuBoundMsgPerS: round(cpuCeiling, 1),
              rateLimited: eight.run.rateLimited,
              retries: eight.run.retries,
              workerPeakMiB: eight.run.workerPeakMiB === null ? null : round(eight.run.workerPeakMiB, 1),
            },
          },
        };
      } finally {
        await stack.close();
      }
    } finally {
      await mail.remove();
    }
  },
};
