/**
 * `npm run bench [-- <name>...] [--full] [--profile] [--no-build]`: builds the
 * functions, starts one Firestore emulator for the run, runs the chosen
 * benchmarks (all by default) one after another, prints one table of figures
 * against their targets and writes `.bench/results.json`.
 *
 * The exit code is non-zero only when a benchmark could not be measured (an
 * error); a figure that misses its target is printed as MISSED.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { startFirestoreEmulator } from '../test/emulators/firestore.js';
import { collectBench } from './collect.js';
import { fanout } from './fanout.js';
import { firstDocument } from './first.js';
import { cleanupAll, mark, onCleanup } from './lib/cleanup.js';
import { renderTable, type BenchContext, type BenchResult, type Benchmark } from './lib/report.js';
import { ROOT } from './lib/stack.js';
import { note } from './lib/util.js';
import { largeMemoryBench, memoryBench } from './memory.js';
import { scaleBench } from './scale.js';
import { stopLatency } from './stop.js';
import { throughput } from './throughput.js';
import { tokenLatency } from './latency.js';
import { pushBench } from './push.js';

const BENCHMARKS: Benchmark[] = [throughput, tokenLatency, firstDocument, stopLatency, fanout, scaleBench, memoryBench, largeMemoryBench, collectBench, pushBench];

const USAGE = `usage: npm run bench [-- [${BENCHMARKS.map((b) => b.name).join('|')}]... [--full] [--profile] [--no-build]]
  (no name)   every benchmark
  --full      let the "memory" runs (up to 100,000 messages) go on past 240 s each
  --profile   record a CPU profile of the worker in "memory" and print where its time goes
  --no-build  use functions/lib as it is instead of building it first`;

function parseArgs(argv: string[]): { chosen: Benchmark[]; full: boolean; profile: boolean; build: boolean } {
  const names: string[] = [];
  let full = false;
  let profile = false;
  let build = true;
  for (const a of argv) {
    if (a === '--full') full = true;
    else if (a === '--profile') profile = true;
    else if (a === '--no-build') build = false;
    else if (a === '--help' || a === '-h') {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    } else if (a.startsWith('-')) {
      process.stderr.write(`unknown option ${a}\n${USAGE}\n`);
      process.exit(2);
    } else names.push(a.toLowerCase());
  }
  for (const n of names) {
    if (!BENCHMARKS.some((b) => b.name === n)) {
      process.stderr.write(`unknown benchmark "${n}"\n${USAGE}\n`);
      process.exit(2);
    }
  }
  const chosen = names.length ? BENCHMARKS.filter((b) => names.includes(b.name)) : BENCHMARKS;
  return { chosen, full, profile, build };
}

let interrupted = false;

/** After Ctrl-C the interrupt handler cleans up and exits; the benchmarks' own flow stops here. */
async function haltIfInterrupted(): Promise<void> {
  if (interrupted) await new Promise<never>(() => {});
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  const started = Date.now();
  const outDir = join(ROOT, '.bench');
  // Each run keeps only its own logs and profiles.
  rmSync(join(outDir, 'logs'), { recursive: true, force: true });
  if (args.profile) rmSync(join(outDir, 'profiles'), { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });

  if (args.build) {
    note('building the functions (functions/lib)');
    const r = spawnSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(ROOT, 'functions', 'tsconfig.json')], {
      cwd: ROOT,
      stdio: 'inherit',
    });
    if (r.status !== 0) throw new Error('the functions did not build (npm run build)');
  }

  note('starting the Firestore emulator');
  const firestore = await startFirestoreEmulator();
  const stopFirestore = onCleanup('the Firestore emulator', () => firestore.close());
  note(`Firestore emulator at ${firestore.host}${firestore.owned ? '' : ' (borrowed from FIRESTORE_EMULATOR_HOST)'}`);

  const ctx: BenchContext = {
    firestore,
    logDir: join(outDir, 'logs'),
    full: args.full,
    profile: args.profile,
    profileDir: join(outDir, 'profiles'),
  };
  const results: BenchResult[] = [];
  for (const b of args.chosen) {
    await haltIfInterrupted();
    note(`— ${b.name}: ${b.title}`);
    const t0 = Date.now();
    const since = mark();
    try {
      const outcome = await b.run(ctx);
      results.push({ name: b.name, title: b.title, seconds: (Date.now() - t0) / 1000, ...outcome });
    } catch (e) {
      await haltIfInterrupted();
      const message = (e as Error).stack ?? String(e);
      note(`${b.name} failed: ${message}`);
      results.push({ name: b.name, title: b.title, seconds: (Date.now() - t0) / 1000, error: (e as Error).message });
      // Whatever the failed benchmark left running goes before the next one starts.
      await cleanupAll(since);
    }
  }
  await haltIfInterrupted();
  await stopFirestore();

  const table = renderTable(results);
  process.stdout.write(`\n${table}\n\nTotal: ${Math.round((Date.now() - started) / 1000)} s on ${cpus().length} CPUs.\n`);
  const file = join(outDir, 'results.json');
  writeFileSync(
    file,
    `${JSON.stringify(
      {
        date: new Date(started).toISOString(),
        seconds: Math.round((Date.now() - started) / 1000),
        args: process.argv.slice(2),
        machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? '', memoryMiB: Math.round(totalmem() / 1048576), node: process.version },
        results,
      },
      null,
      2,
    )}\n`,
  );
  process.stdout.write(`Results written to ${file}\n`);
  return results.some((r) => r.error !== undefined) ? 1 : 0;
}

const interrupt = (signal: string) => {
  if (interrupted) return;
  interrupted = true;
  note(`${signal}: stopping every process and deleting temporary files`);
  void cleanupAll().finally(() => process.exit(130));
};
process.on('SIGINT', () => interrupt('SIGINT'));
process.on('SIGTERM', () => interrupt('SIGTERM'));
process.on('unhandledRejection', (e) => {
  // Clients closed under a request in flight reject on their own while an interrupt cleans up.
  if (interrupted) return;
  note(`error: ${(e as Error)?.stack ?? String(e)}`);
  interrupted = true;
  void cleanupAll().finally(() => process.exit(1));
});

try {
  const code = await main();
  await cleanupAll();
  process.exit(code);
} catch (e) {
  await haltIfInterrupted();
  note(`error: ${(e as Error).message}`);
  await cleanupAll();
  process.exit(1);
}
