/**
 * Throughput of one mailbox against Gmail's per-user quota: the Gmail
 * emulator and the connector are set to the same quota, and the emulator
 * enforces it strictly (a one-second bucket, not a minute's burst). The
 * ceiling is quota ÷ 60 ÷ 5 messages a second (messages.get costs 5 units);
 * the target is 90 % of it.
 */
import { generatedMail } from './lib/mail.js';
import { atLeast, type BenchContext, type Benchmark, type Outcome } from './lib/report.js';
import { startBenchStack } from './lib/stack.js';
import { expectFinished, measureSync } from './lib/sync.js';
import { fmt, note, round } from './lib/util.js';

const USER = 'throughput@example.com';

interface Scenario {
  label: string;
  quota: number;
  latencyMs: number;
  messages: number;
}

/** Quota units of Gmail's methods the connector calls (docs/CONTRACT.md). */
const COSTS: Record<string, number> = { 'messages.get': 5, 'messages.list': 5, 'history.list': 2, 'labels.list': 1, getProfile: 1 };
const BURST_SECONDS = 1;

const SCENARIOS: Scenario[] = [
  { label: '15,000 units/min', quota: 15_000, latencyMs: 0, messages: 1_500 },
  { label: '6,000 units/min', quota: 6_000, latencyMs: 0, messages: 600 },
  { label: '15,000 units/min, 50 ms latency', quota: 15_000, latencyMs: 50, messages: 1_500 },
];

async function runScenario(ctx: BenchContext, s: Scenario, seed: number) {
  const mail = await generatedMail([{ address: USER, count: s.messages, seed }]);
  try {
    const stack = await startBenchStack({
      name: 'throughput',
      firestore: ctx.firestore,
      logDir: ctx.logDir,
      mailDir: mail.dir,
      connector: { gmail: { quotaUnitsPerUserPerMinute: s.quota }, tasks: { TP: { users: [USER], includeSpamTrash: true } } },
      gmail: { quotaUnitsPerMinute: s.quota, quotaBurstSeconds: BURST_SECONDS, latencyMs: s.latencyMs },
    });
    try {
      const ceiling = s.quota / 60 / 5;
      note(`throughput ${s.label}: ${s.messages} messages, ceiling ${ceiling} msg/s (about ${Math.round(s.messages / ceiling)} s)`);
      const run = await measureSync(stack, 'TP', { timeoutMs: (s.messages / ceiling) * 3_000 + 60_000 });
      expectFinished(run, s.messages);
      return { scenario: s, ceiling, run };
    } finally {
      await stack.close();
    }
  } finally {
    await mail.remove();
  }
}

export const throughput: Benchmark = {
  name: 'throughput',
  title: 'one mailbox at the quota ceiling',
  async run(ctx): Promise<Outcome> {
    const out: Outcome = { rows: [], notes: [], details: { scenarios: [] as unknown[] } };
    let seed = 101;
    for (const s of SCENARIOS) {
      const { ceiling, run } = await runScenario(ctx, s, seed++);
      const rate = run.messages / run.unitSeconds;
      const submitRate = run.messages / run.submitSeconds;
      // The shortest possible run: the units of the calls Gmail answered, at the quota's rate, less the first second's burst.
      const refusedUnits = run.rateLimited * 5;
      const units = Object.entries(run.calls).reduce((n, [m, c]) => n + c * (COSTS[m] ?? 1), 0) - refusedUnits;
      const idealSeconds = Math.max(0, units - (s.quota / 60) * BURST_SECONDS) / (s.quota / 60);
      out.rows.push(atLeast(`1 mailbox, ${s.label}`, rate, 'msg/s', ceiling, 0.9));
      out.notes.push(
        `${s.label}: ${run.messages} messages in ${fmt(run.unitSeconds, 1)} s from unit start to end ` +
          `(${fmt(submitRate, 1)} msg/s from submit to Finished, ${fmt(run.submitSeconds, 1)} s); ` +
          `at the quota's rate it could take ${fmt(idealSeconds, 1)} s; Gmail refused ${run.rateLimited} calls for quota, the connector retried ${run.retries}; ` +
          `worker CPU ${run.workerCpuMs === null ? 'n/a' : `${fmt(run.workerCpuMs / run.messages, 2)} ms/msg`}`,
      );
      (out.details.scenarios as unknown[]).push({
        label: s.label,
        quotaUnitsPerMinute: s.quota,
        latencyMs: s.latencyMs,
        messages: run.messages,
        ceilingMsgPerS: ceiling,
        unitSeconds: round(run.unitSeconds, 3),
        idealSeconds: round(idealSeconds, 3),
        msgPerS: round(rate, 3),
        ratioToCeiling: round(rate / ceiling, 4),
        submitToFinishedSeconds: round(run.submitSeconds, 3),
        submitToFinishedMsgPerS: round(submitRate, 3),
        rateLimited: run.rateLimited,
        retries: run.retries,
        gmailCalls: run.calls,
        workerCpuMs: run.workerCpuMs,
        workerPeakMiB: run.workerPeakMiB === null ? null : round(run.workerPeakMiB, 1),
      });
    }
    out.notes.push(
      'msg/s is measured from the unit\'s start (its claim by the worker) to its end, both as the worker recorded them; ' +
        'the emulator\'s quota bucket holds 1 s of units, so it enforces the rate from the first second.',
    );
    return out;
  },
};
