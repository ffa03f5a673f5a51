/**
 * Where a process's CPU time went, from a V8 CPU profile (`node --cpu-prof`):
 * self time by function and by package, idle time left out.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  /** Busy (non-idle) time sampled, in milliseconds. */
  busyMs: number;
  top: { name: string; where: string; percent: number }[];
  byPackage: { name: string; percent: number }[];
}

/** The package a script belongs to: a node_modules package, the connector's code, or node itself. */
function packageOf(url: string, fn: string): string {
  if (url === '') return fn.startsWith('(') ? fn : '(native)';
  if (url.startsWith('node:')) return 'node';
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url.replace(/\\/g, '/'));
  if (m?.[1]) return m[1];
  if (url.includes('/functions/lib/')) return 'connector';
  return 'other';
}

function shortWhere(url: string, line: number): string {
  if (url === '') return 'native';
  const clean = url.replace(/^file:\/\//, '');
  const nm = clean.lastIndexOf('node_modules/');
  const tail = nm >= 0 ? clean.slice(nm + 'node_modules/'.length) : clean.includes('/functions/lib/') ? clean.slice(clean.indexOf('/functions/lib/') + 1) : clean;
  return `${tail}:${line + 1}`;
}

export function summarizeProfile(file: string, topN: number): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const fns = new Map<string, { name: string; where: string; us: number }>();
  const pkgs = new Map<string, number>();
  let busy = 0;
  for (const [id, us] of self) {
    const n = byId.get(id);
    if (!n || n.callFrame.functionName === '(idle)') continue;
    busy += us;
    const { functionName, url, lineNumber } = n.callFrame;
    const key = `${functionName}|${url}|${lineNumber}`;
    const f = fns.get(key) ?? { name: functionName || '(anonymous)', where: shortWhere(url, lineNumber), us: 0 };
    f.us += us;
    fns.set(key, f);
    const p = packageOf(url, functionName);
    pkgs.set(p, (pkgs.get(p) ?? 0) + us);
  }
  const pct = (us: number) => (busy > 0 ? (us * 100) / busy : 0);
  return {
    busyMs: busy / 1000,
    top: [...fns.values()]
      .sort((a, b) => b.us - a.us)
      .slice(0, topN)
      .map((f) => ({ name: f.name, where: f.where, percent: pct(f.us) })),
    byPackage: [...pkgs.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 10)
      .map(([name, us]) => ({ name, percent: pct(us) })),
  };
}

/** The newest CPU profile written into `dir`, if any. */
export function newestProfile(dir: string): string | undefined {
  try {
    return readdirSync(dir)
      .filter((f) => f.endsWith('.cpuprofile'))
      .map((f) => join(dir, f))
      .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)[0];
  } catch {
    return undefined;
  }
}

