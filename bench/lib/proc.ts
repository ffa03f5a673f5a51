/**
 * CPU time and memory of a process, read from Linux's /proc: `utime + stime`
 * from /proc/<pid>/stat, `VmHWM` (peak resident set) and `VmRSS` from
 * /proc/<pid>/status. Where /proc is missing every reading is null.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';

let ticks: number | undefined;

/** Clock ticks per second of /proc's CPU times (`getconf CLK_TCK`, 100 on Linux). */
function clockTicks(): number {
  if (ticks === undefined) {
    const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
    const n = Number(r.stdout?.trim());
    ticks = r.status === 0 && Number.isInteger(n) && n > 0 ? n : 100;
  }
  return ticks;
}

/** User plus system CPU time of a process so far, in milliseconds. */
export function cpuMs(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(rest[11]);
    const stime = Number(rest[12]);
    if (!Number.isFinite(utime) || !Number.isFinite(stime)) return null;
    return ((utime + stime) * 1000) / clockTicks();
  } catch {
    return null;
  }
}

export interface Memory {
  /** Peak resident set size since the process started, in MiB. */
  peakMiB: number;
  /** Resident set size now, in MiB. */
  rssMiB: number;
}

export function memory(pid: number): Memory | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
    const peak = kb('VmHWM');
    const rss = kb('VmRSS');
    if (!Number.isFinite(peak) || !Number.isFinite(rss)) return null;
    return { peakMiB: peak / 1024, rssMiB: rss / 1024 };
  } catch {
    return null;
  }
}

/**
 * The pid of the Java process serving the Firestore emulator on `port`, found by
 * its command line; null when there is none on this machine (a remote emulator).
 */
export function firestoreEmulatorPid(port: number): number | null {
  try {
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      let cmd: string;
      try {
        cmd = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      } catch {
        continue;
      }
      const args = cmd.split('\0');
      if (!args.some((a) => a.includes('CloudFirestore') || a.includes('cloud-firestore-emulator'))) continue;
      const i = args.indexOf('--port');
      if (i >= 0 && args[i + 1] === String(port)) return Number(entry);
    }
  } catch {
    // No /proc: nothing to measure.
  }
  return null;
}

/** CPU time of this process (the emulators that run in it), in milliseconds. */
export function ownCpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}
