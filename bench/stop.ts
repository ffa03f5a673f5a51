/**
 * Stop latency: a Synchronize of a large mailbox, with Gmail answering slowly,
 * is stopped after about 2 s of processing; measured from sending the Stop
 * request to the moment the action reads `Stopped` in Firestore (polled every
 * 20 ms). docs/CONTRACT.md and §4: it ends `Stopped` within 2 s.
 *
 * Three series of runs: one with Gmail within quota; one where Gmail's
 * quota drops to a tenth for the last 2 s before the Stop, so that the Stop
 * arrives while the worker is being refused and is slowing itself down (as
 * when another client shares the user's quota); and one where a fifth of
 * Gmail's calls never answer for those 2 s, so that the Stop arrives while
 * calls hang (the worker must abort them, not wait out their timeout).
 */
import type { GmailEmulatorStats } from '../test/emulators/gmail/index.js';
import { generatedMail } from './lib/mail.js';
import { cpuMs } from './lib/proc.js';
import { below, type Benchmark, type Outcome, type Row } from './lib/report.js';
import { startBenchStack, type BenchStack } from './lib/stack.js';
import { ENDED } from './lib/sync.js';
import { fmt, median, note, poll, round, sleep } from './lib/util.js';

const USER = 'stop@example.com';
const MESSAGES = 3_000;
const QUOTA = 15_000;
const LATENCY_MS = 100;
const REPEATS = 5;
const PROCESSING_MS = 2_000;
/** In the refused series: Gmail's quota for the last REFUSED_MS before the Stop. */
const REFUSED_QUOTA = QUOTA / 10;
const REFUSED_MS = 2_000;
const LIMIT_MS = 2_000;
/** In the hung series: the fraction of Gmail calls that never answer for the last HUNG_MS before the Stop. */
const HANG_RATE = 0.2;
const HUNG_MS = 2_000;

type Mode = 'within' | 'refused' | 'hung';

interface StopRun {
  observedMs: number;
  recordedMs: number;
  stopRequestMs: number;
  messagesAtStop: number;
  /** Gmail calls refused for quota during the whole run. */
  rateLimited: number;
  retries: number;
  /** Worker CPU time between the Stop request and Stopped. */
  workerCpuAfterStopMs: number | null;
}

const refusals = (a: GmailEmulatorStats, b: GmailEmulatorStats) => b.rateLimited - a.rateLimited;

async function stopOnce(stack: BenchStack, mode: Mode): Promise<StopRun> {
  const before = stack.gmail.stats();
  const { token } = await stack.synchronize('STOP');
  await stack.waitFor(token, ['Processing', ...ENDED], 60_000, 20);
  if (mode === 'refused') {
    await sleep(PROCESSING_MS - REFUSED_MS);
    stack.gmail.setQuota(REFUSED_QUOTA);
    await sleep(REFUSED_MS);
  } else if (mode === 'hung') {
    await sleep(PROCESSING_MS - HUNG_MS);
    stack.gmail.setHangRate(HANG_RATE);
    await sleep(HUNG_MS);
  } else {
    await sleep(PROCESSING_MS);
  }
  const cpu0 = cpuMs(stack.workerPid);
  const t0 = Date.now();
  try {
    const stop = await stack.queue('Stop', token);
    const ended = await poll(
      `action ${token} ending after Stop`,
      async () => {
        const a = await stack.store.get(token);
        return a && ENDED.includes(a.status) ? a : undefined;
      },
      30_000,
      20,
    );
    const observedMs = Date.now() - t0;
    const cpu1 = cpuMs(stack.workerPid);
    if (ended.status !== 'Stopped') throw new Error(`action ${token} ended ${ended.status}, not Stopped${ended.error ? `: ${ended.error}` : ''}`);
    const units = await stack.units(token);
    return {
      observedMs,
      recordedMs: (ended.endedAt?.toMillis() ?? NaN) - t0,
      stopRequestMs: stop.ms,
      messagesAtStop: units.reduce((n, u) => n + u.messages, 0),
      rateLimited: refusals(before, stack.gmail.stats()),
      retries: units.reduce((n, u) => n + u.retries, 0),
      workerCpuAfterStopMs: cpu0 !== null && cpu1 !== null ? cpu1 - cpu0 : null,
    };
  } finally {
    stack.gmail.setHangRate(0);
    if (mode === 'refused') {
      stack.gmail.setQuota(QUOTA);
      // Let the user's quota bucket fill again before the next run.
      await sleep(1_500);
    }
  }
}

function describe(label: string, runs: StopRun[]): { rows: Row[]; notes: string[] } {
  const observed = runs.map((r) => r.observedMs);
  return {
    rows: [below(`${label}: max of ${REPEATS}`, Math.max(...observed), 'ms', LIMIT_MS, 0), below(`${label}: median`, median(observed), 'ms', LIMIT_MS, 0)],
    notes: [
      `${label}: each run ${runs.map((r) => `${r.observedMs} ms`).join(', ')} (by the action's own end time: ${runs.map((r) => `${fmt(r.recordedMs, 0)}`).join(', ')} ms); ` +
        `Gmail quota refusals per run: ${runs.map((r) => r.rateLimited).join(', ')}; ` +
        `worker CPU between Stop and Stopped: ${runs.map((r) => (r.workerCpuAfterStopMs === null ? 'n/a' : `${r.workerCpuAfterStopMs}`)).join(', ')} ms.`,
    ],
  };
}

export const stopLatency: Benchmark = {
  name: 'stop',
  title: 'Stop → Stopped',
  async run(ctx): Promise<Outcome> {
    const mail = await generatedMail([{ address: USER, count: MESSAGES, seed: 303 }]);
    try {
      const stack = await startBenchStack({
        name: 'stop',
        firestore: ctx.firestore,
        logDir: ctx.logDir,
        mailDir: mail.dir,
        connector: { gmail: { quotaUnitsPerUserPerMinute: QUOTA }, tasks: { STOP: { users: [USER], includeSpamTrash: true } } },
        gmail: { quotaUnitsPerMinute: QUOTA, quotaBurstSeconds: 1, latencyMs: LATENCY_MS },
      });
      try {
        const series: { label: string; mode: Mode; runs: StopRun[] }[] = [
          { label: 'within quota', mode: 'within', runs: [] },
          { label: 'Gmail refusing', mode: 'refused', runs: [] },
          { label: 'Gmail calls hanging', mode: 'hung', runs: [] },
        ];
        for (const s of series) {
          for (let i = 0; i < REPEATS; i++) {
            const run = await stopOnce(stack, s.mode);
            s.runs.push(run);
            note(
              `stop, ${s.label}, ${i + 1}/${REPEATS}: Stopped ${run.observedMs} ms after the Stop request (${run.messagesAtStop} messages examined, ` +
                `${run.rateLimited} Gmail quota refusals, worker CPU ${run.workerCpuAfterStopMs ?? 'n/a'} ms meanwhile)`,
            );
          }
        }
        const out: Outcome = {
          rows: [],
          notes: [
            `${MESSAGES.toLocaleString('en-US')}-message mailbox, quota ${QUOTA.toLocaleString('en-US')} units/min for Gmail and the connector, ${LATENCY_MS} ms Gmail latency; ` +
              `Stop sent about ${PROCESSING_MS / 1000} s after the action turned Processing; measured from sending Stop until a 20 ms poll of Firestore reads Stopped. ` +
              `"Gmail refusing": Gmail's quota was ${REFUSED_QUOTA.toLocaleString('en-US')} units/min for the last ${REFUSED_MS / 1000} s before the Stop. ` +
              `"Gmail calls hanging": ${HANG_RATE * 100}% of Gmail's calls never answered for the last ${HUNG_MS / 1000} s before the Stop.`,
          ],
          details: { messages: MESSAGES, quotaUnitsPerMinute: QUOTA, latencyMs: LATENCY_MS, processingBeforeStopMs: PROCESSING_MS, refusedQuota: REFUSED_QUOTA, hangRate: HANG_RATE, series: [] as unknown[] },
        };
        for (const s of series) {
          const d = describe(s.label, s.runs);
          out.rows.push(...d.rows);
          out.notes.push(...d.notes);
          (out.details.series as unknown[]).push({
            label: s.label,
            maxMs: Math.max(...s.runs.map((r) => r.observedMs)),
            medianMs: median(s.runs.map((r) => r.observedMs)),
            runs: s.runs.map((r) => ({ ...r, recordedMs: round(r.recordedMs, 0), stopRequestMs: round(r.stopRequestMs, 1) })),
          });
        }
        out.notes.push(`the Stop request itself answered in a median ${fmt(median(series.flatMap((s) => s.runs.map((r) => r.stopRequestMs))), 1)} ms.`);
        return out;
      } finally {
        await stack.close();
      }
    } finally {
      await mail.remove();
    }
  },
};
