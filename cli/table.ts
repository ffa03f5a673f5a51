/** Plain-text tables for the CLI: columns padded to their widest cell, long cells cut. */
const MAX = 60;

export function table(head: string[], rows: string[][]): string {
  const cut = (s: string) => (s.length > MAX ? `${s.slice(0, MAX - 1)}…` : s).replace(/\s+/g, ' ');
  const all = [head, ...rows].map((r) => r.map(cut));
  const widths = head.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ').trimEnd();
  return [...all.map(line), ...(rows.length === 0 ? ['(none)'] : [])].join('\n');
}
