/**
 * Which push tasks include an address, and the label filter of its watch. A watch belongs to
 * an address, not a task: its filter is the union of the labels of the push tasks that include
 * the address, or none when one of them reads every label. No I/O.
 */
import type { ConnectorConfig, TaskConfig } from '../config.js';

/** Whether the task reads `address`: listed in its users, or in its domain. */
function includes(t: TaskConfig, address: string): boolean {
  if (t.users?.length) return t.users.some((u) => u.toLowerCase() === address);
  return t.domain !== undefined && address.endsWith(`@${t.domain.toLowerCase()}`);
}

/** The push tasks (`"push": true`) that include `address`, by configured name. */
export function pushTasksOf(connector: ConnectorConfig, address: string): string[] {
  const a = address.toLowerCase();
  return Object.entries(connector.tasks)
    .filter(([, t]) => t.push && includes(t, a))
    .map(([name]) => name);
}

/** The label ids the address's watch is limited to; empty: every change is notified. */
export function watchLabels(connector: ConnectorConfig, address: string): string[] {
  const tasks = pushTasksOf(connector, address).map((n) => connector.tasks[n] as TaskConfig);
  if (tasks.some((t) => t.labels.length === 0)) return [];
  return [...new Set(tasks.flatMap((t) => t.labels))].sort();
}
