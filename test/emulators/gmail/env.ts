// The standalone runner's settings (main.ts), read from the environment and checked: a value
// that is not a number in range is an error naming the variable, never a silent default.

import type { GmailEmulatorOptions } from './index.js';

type Env = Record<string, string | undefined>;

function numberFromEnv(env: Env, name: string, def: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return def;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min || n > max) {
    throw new Error(`${name} must be a number from ${min} to ${max}, got "${raw}"`);
  }
  return n;
}

/** Options for startGmailEmulator from GMAIL_EMULATOR_* variables (see main.ts for the list). */
export function optionsFromEnv(env: Env, defaultDataDir: string): GmailEmulatorOptions {
  const quotaStatus = numberFromEnv(env, 'GMAIL_EMULATOR_QUOTA_STATUS', 429, 403, 429);
  if (quotaStatus !== 429 && quotaStatus !== 403) throw new Error('GMAIL_EMULATOR_QUOTA_STATUS must be 429 or 403');
  const retention = numberFromEnv(env, 'GMAIL_EMULATOR_HISTORY_RETENTION', Number.POSITIVE_INFINITY, 1, Number.MAX_SAFE_INTEGER);
  if (Number.isFinite(retention) && !Number.isInteger(retention)) {
    throw new Error(`GMAIL_EMULATOR_HISTORY_RETENTION must be a whole number, got "${env['GMAIL_EMULATOR_HISTORY_RETENTION'] ?? ''}"`);
  }
  return {
    port: numberFromEnv(env, 'GMAIL_EMULATOR_PORT', 8124, 0, 65535),
    dataDir: env['GMAIL_EMULATOR_DATA'] || defaultDataDir,
    quotaUnitsPerMinute: numberFromEnv(env, 'GMAIL_EMULATOR_QUOTA', 15000, 0, Number.MAX_SAFE_INTEGER),
    quotaBurstSeconds: numberFromEnv(env, 'GMAIL_EMULATOR_BURST_S', 60, 0.001, 86_400),
    maxConcurrentPerUser: Math.floor(numberFromEnv(env, 'GMAIL_EMULATOR_MAX_CONCURRENT', 0, 0, 100_000)),
    latencyMs: numberFromEnv(env, 'GMAIL_EMULATOR_LATENCY_MS', 0, 0, 600_000),
    faultRate: numberFromEnv(env, 'GMAIL_EMULATOR_FAULTS', 0, 0, 1),
    hangRate: numberFromEnv(env, 'GMAIL_EMULATOR_HANG', 0, 0, 1),
    quotaStatus,
    searchLagMs: numberFromEnv(env, 'GMAIL_EMULATOR_SEARCH_LAG_MS', 0, 0, 3_600_000),
    ...(Number.isFinite(retention) ? { historyRetention: retention } : {}),
  };
}
