/**
 * Runs the Cloud Tasks emulator on its own: `npx tsx test/emulators/cloud-tasks/main.ts`.
 * Listens on 127.0.0.1 at CLOUD_TASKS_EMULATOR_PORT (default 8123), prints one line
 * `cloud-tasks emulator: http://127.0.0.1:PORT/` when ready, and stops on SIGINT or SIGTERM.
 */
import { startCloudTasksEmulator } from './server.js';
import { closeOnSignals } from '../signals.js';

const DEFAULT_PORT = 8123;

function portFrom(value: string | undefined): number {
  if (value === undefined || value.trim() === '') return DEFAULT_PORT;
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`CLOUD_TASKS_EMULATOR_PORT must be a port number from 0 to 65535; got "${value}"`);
  }
  return port;
}

async function main(): Promise<void> {
  const emulator = await startCloudTasksEmulator({ port: portFrom(process.env.CLOUD_TASKS_EMULATOR_PORT) });
  process.stdout.write(`cloud-tasks emulator: ${emulator.url}\n`);
  closeOnSignals('cloud-tasks emulator', () => emulator.close());
}

main().catch((err: unknown) => {
  process.stderr.write(`cloud-tasks emulator: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
