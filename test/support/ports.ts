/**
 * Fixed ports for a whole stack started as `npm start` is (scripts/stack.ts), chosen below the
 * kernel's ephemeral range: a port picked by listening on port 0 is an ephemeral one, which the
 * outgoing connections of the stack's own start-up may take before the stack listens on it.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/** Whether nothing listens on 127.0.0.1:`port`. */
export function portFree(port: number): Promise<boolean> {
  return new Promise((res) => {
    const probe = createServer();
    probe.once('error', () => res(false));
    probe.listen(port, '127.0.0.1', () => probe.close(() => res(true)));
  });
}

/** The lowest ephemeral port (Linux's ip_local_port_range; 32768 elsewhere). */
function ephemeralLow(): number {
  try {
    return Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || 32768;
  } catch {
    return 32768;
  }
}

/** `n` distinct free ports from 20000 up to the ephemeral range. */
export async function fixedPorts(n: number): Promise<number[]> {
  const high = Math.max(20_001, ephemeralLow());
  const out = new Set<number>();
  while (out.size < n) {
    const p = 20_000 + Math.floor(Math.random() * (high - 20_000));
    if (!out.has(p) && (await portFree(p))) out.add(p);
  }
  return [...out];
}

/** Each variable with a port of {@link fixedPorts}, as strings for an environment. */
export async function portsFor(variables: readonly string[]): Promise<Record<string, string>> {
  const ports = await fixedPorts(variables.length);
  return Object.fromEntries(variables.map((v, i) => [v, String(ports[i])]));
}

/** The variables naming the local stack's ports (scripts/stack.ts). */
export const STACK_PORT_VARIABLES = [
  'FIRESTORE_EMULATOR_PORT',
  'CLOUD_TASKS_EMULATOR_PORT',
  'CLOUD_TASKS_EMULATOR_GRPC_PORT',
  'GMAIL_EMULATOR_PORT',
  'STORAGE_EMULATOR_PORT',
  'AUTH_EMULATOR_PORT',
  'ACI_PORT',
  'WORKER_PORT',
  'NOTIFY_PORT',
  'PUBSUB_EMULATOR_PORT',
] as const;
