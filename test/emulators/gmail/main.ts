// Runs the Gmail emulator on its own:
//   npx tsx test/emulators/gmail/main.ts
// Settings (environment), checked in env.ts:
//   GMAIL_EMULATOR_PORT        port (default 8124; 0 = any free port)
//   GMAIL_EMULATOR_DATA        folder of <address>.mbox files (default test/fixtures/demo)
//   GMAIL_EMULATOR_QUOTA       per-user units per minute (default 15000; 0 = unlimited)
//   GMAIL_EMULATOR_BURST_S     seconds of quota a user may spend at once (default 60)
//   GMAIL_EMULATOR_MAX_CONCURRENT  calls one user may have in flight; more are 429 (default 0 = no limit)
//   GMAIL_EMULATOR_LATENCY_MS  added latency per call (default 0)
//   GMAIL_EMULATOR_FAULTS      fraction of calls answered 429/403/500/503 (default 0)
//   GMAIL_EMULATOR_HANG        fraction of calls never answered, held open until the client gives up (default 0)
//   GMAIL_EMULATOR_QUOTA_STATUS  429 (rateLimitExceeded, default) or 403 (userRateLimitExceeded)
//   GMAIL_EMULATOR_HISTORY_RETENTION  history records kept per mailbox, a whole number ≥ 1; an older
//                              startHistoryId is 404 (default: unlimited)
//   GMAIL_EMULATOR_SEARCH_LAG_MS  ms before a message inserted or imported is seen by q= searches,
//                              as Gmail's search index lags (default 0)
// Accepts the bearer token "owner" only (no token verifier when run on its own).
// Prints "gmail emulator: http://127.0.0.1:PORT/" once it listens; stops on SIGINT/SIGTERM.

import { fileURLToPath } from 'node:url';
import { resolve } from 'node:path';
import { startGmailEmulator } from './index.js';
import { optionsFromEnv } from './env.js';
import { closeOnSignals } from '../signals.js';

async function main(): Promise<void> {
  const defaultData = resolve(fileURLToPath(new URL('../../fixtures/demo', import.meta.url)));
  const emulator = await startGmailEmulator(optionsFromEnv(process.env, defaultData));
  process.stdout.write(`gmail emulator: ${emulator.url}\n`);
  closeOnSignals('gmail emulator', () => emulator.close());
}

main().catch((err: unknown) => {
  process.stderr.write(`gmail emulator: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
