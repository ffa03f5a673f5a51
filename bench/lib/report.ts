/**
 * Results: rows of a table (figure, target, ratio, verdict) and the JSON file
 * `.bench/results.json`.
 */
import type { FirestoreEmulator } from '../../test/emulators/firestore.js';
import { fmt } from './util.js';

/** `ok` met its target, `MISSED` did not, `info` has no target of its own. */
export type Verdict = 'ok' | 'MISSED' | 'info';

export interface Row {
  measure: string;
  value: number;
  unit: string;
  /** Decimals shown in the table. */
  digits: number;
  /** The target in words, e.g. "≥ 0.9 × 50.0 msg/s" or "< 50 ms". */
  target: string;
  /** The figure divided by its limit or target (what the verdict is read from). */
  ratio: number | null;
  verdict: Verdict;
}

export interface Outcome {
  rows: Row[];
  /** Lines printed under the table: how it was measured, what was left out. */
  notes: string[];
  /** Everything measured, for the JSON file. */
  details: Record<string, unknown>;
}

export interface BenchContext {
  firestore: FirestoreEmulator;
  /** Where the functions' logs of each stack go. */
  logDir: string;
  /** No time cap on the long runs (the 100k mailbox of "memory"). */
  full: boolean;
  /** Record a CPU profile of the worker where a benchmark supports it. */
  profile: boolean;
  /** Where CPU profiles go. */
  profileDir: string;
}

export interface Benchmark {
  name: string;
  title: string;
  run(ctx: BenchContext): Promise<Outcome>;
}

export interface BenchResult extends Partial<Outcome> {
  name: string;
  title: string;
  seconds: number;
  error?: string;
}

/** A row whose verdict is `value ≥ min` (a floor on the ratio). */
export function atLeast(measure: string, value: number, unit: string, ceiling: number, minRatio: number, digits = 1): Row {
  const ratio = value / ceiling;
  return {
    measure,
    value,
    unit,
    digits,
    target: `≥ ${minRatio} × ${fmt(ceiling, 1)} ${unit}`,
    ratio,
    verdict: ratio >= minRatio ? 'ok' : 'MISSED',
  };
}

/** A row whose verdict is `value < limit` (or ≤ with `inclusive`). */
export function below(measure: string, value: number, unit: string, limit: number, digits = 1, inclusive = false): Row {
  const ratio = value / limit;
  return {
    measure,
    value,
    unit,
    digits,
    target: `${inclusive ? '≤' : '<'} ${fmt(limit, limit % 1 === 0 ? 0 : 1)} ${unit}`,
    ratio,
    verdict: (inclusive ? value <= limit : value < limit) ? 'ok' : 'MISSED',
  };
}

/** A row without a target. */
export function info(measure: string, value: number, unit: string, digits = 1, target = '—', ratio: number | null = null): Row {
  return { measure, value, unit, digits, target, ratio, verdict: 'info' };
}

function pad(s: string, n: number, right = false): string {
  const len = [...s].length;
  return right ? ' '.repeat(Math.max(0, n - len)) + s : s + ' '.repeat(Math.max(0, n - len));
}

/** The results as one text table, with each benchmark's notes after it. */
export function renderTable(results: BenchResult[]): string {
  const header = ['benchmark', 'measure', 'value', 'target', 'ratio', 'result'];
  const lines: string[][] = [];
  for (const r of results) {
    if (r.error !== undefined) {
      lines.push([r.name, 'ERROR', '', '', '', 'ERROR']);
      continue;
    }
    for (const row of r.rows ?? []) {
      lines.push([
        r.name,
        row.measure,
        `${fmt(row.value, row.digits)} ${row.unit}`,
        row.target,
        row.ratio === null ? '—' : fmt(row.ratio, 2),
        row.verdict === 'info' ? '—' : row.verdict,
      ]);
    }
  }
  const widths = header.map((h, i) => Math.max([...h].length, ...lines.map((l) => [...(l[i] ?? '')].length)));
  const rightAligned = new Set([2, 4]);
  const fmtLine = (cells: string[]) => cells.map((c, i) => pad(c, widths[i] ?? 0, rightAligned.has(i))).join('  ').trimEnd();
  const rule = widths.map((w) => '-'.repeat(w)).join('  ');
  const out = [fmtLine(header), rule];
  let last = '';
  for (const l of lines) {
    if (last !== '' && l[0] !== last) out.push('');
    last = l[0] ?? '';
    out.push(fmtLine(l));
  }
  const notes: string[] = [];
  for (const r of results) {
    const own = r.error !== undefined ? [`ERROR: ${r.error}`] : (r.notes ?? []);
    if (own.length) notes.push(`${r.name} (${r.title}, ${Math.round(r.seconds)} s):`, ...own.map((n) => `  - ${n}`));
  }
  return [...out, '', ...notes].join('\n');
}
