// Runs the Gmail emulator on its own:
//   npx tsx test/emulators/gmail/main.ts
// Settings (environment):
//   GMAIL_EMULATOR_PORT        port (default 8124; 0 = any free port)
//   GMAIL_EMULATOR_DATA        folder of <address>.mbox files (default test/fixtures/demo)
//   GMAIL_EMULATOR_QUOTA       per-user units per minute (default 15000; 0 = unlimited)
//   GMAIL_EMULATOR_LATENCY_MS  added latency per call (default 0)
//   GMAIL_EMULATOR_FAULTS      fraction of calls answered 429/403/500/503 (default 0)
//   GMAIL_EMULATOR_HANG        fraction of calls never answered, held open until the client gives up (default 0)
//   GMAIL_EMULATOR_QUOTA_STATUS  429 (rateLimitExceeded, default) or 403 (userRateLimitExceeded)
// Prints "gmail emulator: http://127.0.0.1:PORT/" once it listens; stops on SIGINT/SIGTERM.

import { fileURLToPath } from 'node:url';
import { resolve } from 'node:path';
import { startGmailEmulator } from './index.js';
import { closeOnSignals } from '../signals.js';

function numberFromEnv(name: string, def: number, min: number, max: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return def;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min || n > max) {
    throw new Error(`${name} must be a number from ${min} to ${max}, got "${raw}"`);
  }
  return n;
}

async function main(): Promise<void> {
  const quotaStatus = numberFromEnv('GMAIL_EMULATOR_QUOTA_STATUS', 429, 403, 429);
  if (quotaStatus !== 429 && quotaStatus !== 403) throw new Error('GMAIL_EMULATOR_QUOTA_STATUS must be 429 or 403');
  const defaultData = resolve(fileURLToPath(new URL('../../fixtures/demo', import.meta.url)));
  const emulator = await startGmailEmulator({
    port: numberFromEnv('GMAIL_EMULATOR_PORT', 8124, 0, 65535),
    dataDir: process.env['GMAIL_EMULATOR_DATA'] || defaultData,
    quotaUnitsPerMinute: numberFromEnv('GMAIL_EMULATOR_QUOTA', 15000, 0, Number.MAX_SAFE_INTEGER),
    latencyMs: numberFromEnv('GMAIL_EMULATOR_LATENCY_MS', 0, 0, 600_000),
    faultRate: numberFromEnv('GMAIL_EMULATOR_FAULTS', 0, 0, 1),
    hangRate: numberFromEnv('GMAIL_EMULATOR_HANG', 0, 0, 1),
    quotaStatus,
  });
  process.stdout.write(`gmail emulator: ${emulator.url}\n`);
  closeOnSignals('gmail emulator', () => emulator.close());
}

main().catch((err: unknown) => {
  process.stderr.write(`gmail emulator: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
