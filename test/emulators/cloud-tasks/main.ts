/**
 * Runs the Cloud Tasks emulator on its own: `npx tsx test/emulators/cloud-tasks/main.ts`.
 * Listens on 127.0.0.1 at CLOUD_TASKS_EMULATOR_PORT (REST, default 8123) and
 * CLOUD_TASKS_EMULATOR_GRPC_PORT (gRPC, default 8122), prints two lines when ready,
 * `cloud-tasks emulator: http://127.0.0.1:PORT/` and `cloud-tasks emulator grpc: 127.0.0.1:PORT`,
 * and stops on SIGINT or SIGTERM. Like Google, it refuses calls without a bearer token.
 */
import { startCloudTasksEmulator } from './server.js';
import { closeOnSignals } from '../signals.js';

const DEFAULT_PORT = 8123;
const DEFAULT_GRPC_PORT = 8122;

function portFrom(name: string, fallback: number): number {
  const value = process.env[name];
  if (value === undefined || value.trim() === '') return fallback;
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`${name} must be a port number from 0 to 65535; got "${value}"`);
  }
  return port;
}

async function main(): Promise<void> {
  const emulator = await startCloudTasksEmulator({
    port: portFrom('CLOUD_TASKS_EMULATOR_PORT', DEFAULT_PORT),
    grpcPort: portFrom('CLOUD_TASKS_EMULATOR_GRPC_PORT', DEFAULT_GRPC_PORT),
  });
  process.stdout.write(`cloud-tasks emulator: ${emulator.url}\ncloud-tasks emulator grpc: ${emulator.grpcHost}\n`);
  closeOnSignals('cloud-tasks emulator', () => emulator.close());
}

main().catch((err: unknown) => {
  process.stderr.write(`cloud-tasks emulator: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
