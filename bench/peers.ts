/**
 * `npm run bench:peers [-- --runs N] [--cells 1:2500,60:2500,1:10000,60:10000] [--peers one,ten,batch50] [--concurrent N] [--no-build]`:
 * the connector's Synchronize against the scripts users would write
 * (lib/peers.ts), on one stack per cell: the same Gmail emulator (15,000 units a
 * minute, 50 ms latency, a burst window of 1 s or 60 s) and the same generated
 * mailbox, copied to one address per contender and run so that every run starts
 * with a full quota. A cell of 10,000 messages runs the connector and the best
 * peer of the 2,500-message cell with the same window. Each contender runs
 * `--runs` times (3 by default); the table shows medians.
 *
 * The connector's rate is measured from its submit to its action's end (queue
 * dispatch included) and it parses and writes every message to its sink; a
 * peer's from its first call to its last answer, only fetching. Each connector
 * run also prints the CPU time of the worker, of the Firestore emulator and of
 * the whole stack, which bounds how fast that run could go on this machine.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { startFirestoreEmulator } from '../test/emulators/firestore.js';
import { OWNER_TOKEN } from '../test/emulators/gmail/index.js';
import { cleanupAll, onCleanup } from './lib/cleanup.js';
import { generatedMail } from './lib/mail.js';
import { PEERS, runPeer, type PeerName } from './lib/peers.js';
import { newestProfile, summarizeProfile } from './lib/profile.js';
import { ROOT, startBenchStack } from './lib/stack.js';
import { cpuMs } from './lib/proc.js';
import { expectFinished, measureSync } from './lib/sync.js';
import { fmt, median, note } from './lib/util.js';

const QUOTA = 15_000;
const LATENCY_MS = 50;
const CEILING = QUOTA / 60 / 5;

type Contender = 'connector' | PeerName;
interface Cell {
  burstS: number;
  messages: number;
}
interface CellResult extends Cell {
  rows: { contender: Contender; rates: number[]; refused: number[]; seconds: number[]; load: number[]; firestoreCpuS: number[]; stackCpuS: number[] }[];
}

function parseArgs(argv: string[]) {
  let runs = 3;
  let cells: Cell[] = [
    { burstS: 1, messages: 2_500 },
    { burstS: 60, messages: 2_500 },
    { burstS: 1, messages: 10_000 },
    { burstS: 60, messages: 10_000 },
  ];
  let concurrent = 0;
  let build = true;
  let profile = false;
  let peers: PeerName[] = [...PEERS];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--runs') runs = Math.max(1, Number(argv[++i]));
    else if (a === '--cells')
      cells = String(argv[++i])
        .split(',')
        .map((c) => {
          const [b, m] = c.split(':').map(Number);
          if (!b || !m) throw new Error(`bad cell "${c}": want burstSeconds:messages`);
          return { burstS: b, messages: m };
        });
    else if (a === '--concurrent') concurrent = Math.max(0, Number(argv[++i]));
    else if (a === '--no-build') build = false;
    else if (a === '--profile') profile = true;
    else if (a === '--peers') peers = String(argv[++i]).split(',').filter((p): p is PeerName => (PEERS as string[]).includes(p));
    else throw new Error(`unknown option ${a}`);
  }
  return { runs, cells, concurrent, build, peers, profile };
}

interface CellOptions {
  runs: number;
  concurrent: number;
  logDir: string;
  /** Where the worker writes a CPU profile, when one is asked for. */
  profileDir?: string;
}

async function runCell(firestore: Awaited<ReturnType<typeof startFirestoreEmulator>>, cell: Cell, contenders: Contender[], { runs, concurrent, logDir, profileDir }: CellOptions): Promise<CellResult> {
  const addr = (c: Contender, r: number) => `${c}-${r}@peers.example.com`;
  const mail = await generatedMail(contenders.flatMap((c) => Array.from({ length: runs }, (_, r) => ({ address: addr(c, r), count: cell.messages, seed: 7 }))));
  try {
    const tasks: Record<string, unknown> = {};
    for (let r = 0; r < runs; r++) tasks[`P${r}`] = { users: [addr('connector', r)], includeSpamTrash: true };
    const stack = await startBenchStack({
      name: 'peers',
      firestore,
      logDir,
      mailDir: mail.dir,
      workerNodeArgs: profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [],
      connector: { gmail: { quotaUnitsPerUserPerMinute: QUOTA }, tasks },
      gmail: { quotaUnitsPerMinute: QUOTA, quotaBurstSeconds: cell.burstS, latencyMs: LATENCY_MS, maxConcurrentPerUser: concurrent },
    });
    try {
      const out: CellResult = { ...cell, rows: [] };
      for (const c of contenders) {
        const row = { contender: c, rates: [] as number[], refused: [] as number[], seconds: [] as number[], load: [] as number[], firestoreCpuS: [] as number[], stackCpuS: [] as number[] };
        for (let r = 0; r < runs; r++) {
          const before = stack.gmail.stats().rateLimited;
          let messages: number;
          let seconds: number;
          let extra = '';
          if (c === 'connector') {
            // The Firestore emulator's CPU time: what writing the sink (and the run's state) costs on this machine.
            const firestoreCpu = () => (firestore.pid === null ? null : cpuMs(firestore.pid));
            const fs0 = firestoreCpu();
            // This process runs the Gmail and Cloud Tasks emulators (and the client).
            const own0 = process.cpuUsage();
            const run = await measureSync(stack, `P${r}`, { timeoutMs: (cell.messages / CEILING) * 4_000 + 120_000 });
            const own = process.cpuUsage(own0);
            const fs1 = firestoreCpu();
            expectFinished(run, cell.messages);
            messages = run.messages;
            seconds = run.submitSeconds;
            const fsS = fs0 !== null && fs1 !== null ? (fs1 - fs0) / 1000 : null;
            if (fsS !== null && run.workerCpuMs !== null) {
              row.firestoreCpuS.push(fsS);
              row.stackCpuS.push(run.workerCpuMs / 1000 + fsS + (own.user + own.system) / 1e6);
            }
            extra =
              `; worker CPU ${run.workerCpuMs === null ? 'n/a' : `${fmt(run.workerCpuMs / run.messages, 2)} ms/msg`}, ` +
              `Firestore emulator CPU ${fsS === null ? 'n/a' : `${fmt(fsS, 1)} s`}, unit start to end ${fmt(run.unitSeconds, 1)} s`;
          } else {
            ({ messages, seconds } = await runPeer(c, stack.gmail.url, OWNER_TOKEN, addr(c, r)));
            if (messages !== cell.messages) throw new Error(`peer ${c} fetched ${messages} of ${cell.messages} messages`);
          }
          const refused = stack.gmail.stats().rateLimited - before;
          row.rates.push(messages / seconds);
          row.refused.push(refused);
          row.seconds.push(seconds);
          // The machine's load average when the run ended: the rates are only comparable at similar loads.
          const load = loadavg()[0] ?? NaN;
          row.load.push(load);
          note(`burst ${cell.burstS} s, ${cell.messages} msgs, ${c} run ${r + 1}: ${fmt(messages / seconds, 1)} msg/s in ${fmt(seconds, 1)} s, ${refused} refused, load ${fmt(load, 2)}${extra}`);
        }
        out.rows.push(row);
      }
      return out;
    } finally {
      await stack.close();
      if (profileDir) reportProfile(profileDir);
    }
  } finally {
    await mail.remove();
  }
}

/** Prints where the worker's CPU time went, from the newest profile in `dir`. */
function reportProfile(dir: string): void {
  const file = newestProfile(dir);
  if (!file) return note(`no CPU profile was written into ${dir}`);
  const summary = summarizeProfile(file, 25);
  note(`worker CPU profile ${file}: ${fmt(summary.busyMs / 1000, 1)} s busy; by package: ${summary.byPackage.map((p) => `${p.name} ${fmt(p.percent, 1)} %`).join(', ')}`);
  for (const f of summary.top) note(`  ${fmt(f.percent, 1)} % ${f.name} (${f.where})`);
}

function render(results: CellResult[]): string {
  const lines = [
    '| burst window | messages | contender | median msg/s | 429s (median) | connector ÷ best peer | connector ÷ sustained ceiling | load (1 min) |',
    '|---|---:|---|---:|---:|---:|---:|---:|',
  ];
  const targets: string[] = [];
  for (const cell of results) {
    const conn = cell.rows.find((r) => r.contender === 'connector');
    const peers = cell.rows.filter((r) => r.contender !== 'connector');
    const best = peers.reduce<(typeof peers)[number] | undefined>((b, r) => (!b || median(r.rates) > median(b.rates) ? r : b), undefined);
    for (const r of cell.rows) {
      const isConn = r.contender === 'connector';
      const ratio = isConn && best ? fmt(median(r.rates) / median(best.rates), 2) : '';
      const ceil = isConn ? fmt(median(r.rates) / CEILING, 2) : '';
      lines.push(`| ${cell.burstS} s | ${cell.messages.toLocaleString('en-US')} | ${r.contender} | ${fmt(median(r.rates), 1)} | ${median(r.refused)} | ${ratio} | ${ceil} | ${r.load.map((l) => fmt(l, 1)).join(', ')} |`);
    }
    if (conn && best) {
      const ratio = median(conn.rates) / median(best.rates);
      // A peer writes nothing; the connector's sink writes cost the Firestore emulator CPU on the same cores. The
      // CPU the whole stack spent on a run, spread over every core, is as fast as that run could have gone here.
      const sink =
        conn.stackCpuS.length && ratio < 1
          ? `; the stack spent a median ${fmt(median(conn.stackCpuS), 1)} s of CPU on each connector run (the Firestore emulator ${fmt(median(conn.firestoreCpuS), 1)} s of it), ` +
            `at least ${fmt(median(conn.stackCpuS) / cpus().length, 1)} s on ${cpus().length} cores, where the peer's whole run took ${fmt(median(best.seconds), 1)} s`
          : '';
      targets.push(`${cell.burstS} s / ${cell.messages}: connector ≥ 1.0 × best peer (${best.contender}): ${fmt(ratio, 2)} ${ratio >= 1 ? 'met' : 'MISSED'}${sink}`);
      targets.push(`${cell.burstS} s / ${cell.messages}: 429s ≤ best peer's: ${median(conn.refused)} vs ${median(best.refused)} ${median(conn.refused) <= median(best.refused) ? 'met' : 'MISSED'}`);
      if (cell.messages >= 10_000) {
        const c = median(conn.rates) / CEILING;
        targets.push(`${cell.burstS} s / ${cell.messages}: ≥ 0.95 of the sustained ceiling (${CEILING} msg/s): ${fmt(c, 2)} ${c >= 0.95 ? 'met' : 'MISSED'}`);
      }
    }
  }
  return `${lines.join('\n')}\n\n${targets.map((t) => `- ${t}`).join('\n')}`;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const started = Date.now();
  const outDir = join(ROOT, '.bench');
  mkdirSync(outDir, { recursive: true });
  if (args.build) {
    note('building the functions (functions/lib)');
    const r = spawnSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(ROOT, 'functions', 'tsconfig.json')], { cwd: ROOT, stdio: 'inherit' });
    if (r.status !== 0) throw new Error('the functions did not build (npm run build)');
  }
  const firestore = await startFirestoreEmulator();
  const stopFirestore = onCleanup('the Firestore emulator', () => firestore.close());
  const results: CellResult[] = [];
  const bestSmall = new Map<number, PeerName>();
  for (const cell of [...args.cells].sort((a, b) => a.messages - b.messages)) {
    let contenders: Contender[] = ['connector', ...args.peers];
    if (cell.messages > 2_500) {
      const best = bestSmall.get(cell.burstS);
      contenders = best ? ['connector', best] : ['connector', ...args.peers];
    }
    note(`— cell: burst ${cell.burstS} s, ${cell.messages} messages, ${contenders.join(', ')}, ${args.runs} run(s) each`);
    const res = await runCell(firestore, cell, contenders, { runs: args.runs, concurrent: args.concurrent, logDir: join(outDir, 'logs'), profileDir: args.profile ? join(outDir, 'profiles') : undefined });
    results.push(res);
    const peers = res.rows.filter((r) => r.contender !== 'connector');
    if (cell.messages <= 2_500 && peers.length > 0) {
      const best = peers.reduce((b, r) => (median(r.rates) > median(b.rates) ? r : b));
      bestSmall.set(cell.burstS, best.contender as PeerName);
    }
  }
  await stopFirestore();
  const seconds = Math.round((Date.now() - started) / 1000);
  const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'CPU'}, ${Math.round(totalmem() / 1073741824)} GiB, Node ${process.version}`;
  process.stdout.write(`\n${render(results)}\n\nQuota ${QUOTA} units/min, ${LATENCY_MS} ms latency, ${args.runs} run(s) a contender; total ${seconds} s on ${machine}.\n`);
  writeFileSync(join(outDir, 'peers.json'), `${JSON.stringify({ date: new Date(started).toISOString(), seconds, machine, args: process.argv.slice(2), results }, null, 2)}\n`);
}

process.on('SIGINT', () => void cleanupAll().finally(() => process.exit(130)));
try {
  await main();
  await cleanupAll();
  process.exit(0);
} catch (e) {
  note(`error: ${(e as Error).stack ?? String(e)}`);
  await cleanupAll();
  process.exit(1);
}
