/**
 * Plain-text tables for the CLI: columns padded to their widest cell. Free text (a subject, an
 * error) longer than 60 characters is cut; the columns named `whole` (identifiers, tokens,
 * document ids: values a user copies into another command) never are, so a long row wraps.
 */
const MAX = 60;

export function table(head: string[], rows: string[][], whole: readonly number[] = []): string {
  const cut = (s: string, i: number) => (!whole.includes(i) && s.length > MAX ? `${s.slice(0, MAX - 1)}…` : s).replace(/\s+/g, ' ');
  const all = [head, ...rows].map((r) => r.map(cut));
  const widths = head.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ').trimEnd();
  return [...all.map(line), ...(rows.length === 0 ? ['(none)'] : [])].join('\n');
}
