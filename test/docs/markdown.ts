/**
 * Reading the project's Markdown for the documentation tests: sections, tables, links and the
 * anchors GitHub gives headings.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

export const ROOT = resolve(import.meta.dirname, '../..');

export function read(path: string): string {
  return readFileSync(resolve(ROOT, path), 'utf8');
}

/** The text from the heading that starts with `heading` to the next heading of its level or higher. */
export function section(md: string, heading: string): string {
  const lines = md.split('\n');
  const start = lines.findIndex((l) => /^#{1,6} /.test(l) && l.replace(/^#+ /, '').startsWith(heading));
  if (start < 0) throw new Error(`no heading "${heading}"`);
  const level = /^#+/.exec(lines[start] ?? '')?.[0].length ?? 1;
  const end = lines.findIndex((l, i) => i > start && new RegExp(`^#{1,${level}} `).test(l));
  return lines.slice(start, end < 0 ? undefined : end).join('\n');
}

/** The rows of the first table in `md` (after `after`, when given), as cells, header and separator left out. */
export function tableRows(md: string, after?: RegExp): string[][] {
  const lines = md.split('\n');
  let i = after ? lines.findIndex((l) => after.test(l)) : 0;
  if (i < 0) throw new Error(`no line matching ${String(after)}`);
  while (i < lines.length && !(lines[i] ?? '').startsWith('|')) i++;
  const rows: string[][] = [];
  for (i += 2; i < lines.length && (lines[i] ?? '').startsWith('|'); i++) rows.push(cells(lines[i] ?? ''));
  return rows;
}

/** The cells of one table row, trimmed (a `|` inside backticks does not split). */
export function cells(row: string): string[] {
  const out: string[] = [];
  let cell = '';
  let code = false;
  for (const c of row.trim().replace(/^\|/, '').replace(/\|$/, '')) {
    if (c === '`') code = !code;
    if (c === '|' && !code) {
      out.push(cell.trim());
      cell = '';
    } else cell += c;
  }
  out.push(cell.trim());
  return out;
}

/** The texts in backticks, in order. */
export function codeSpans(text: string): string[] {
  return [...text.matchAll(/`([^`]+)`/g)].map((m) => m[1] ?? '');
}

/** GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens. */
export function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

/** Every anchor of a Markdown file: its headings' slugs, the second of a name suffixed `-1`, and so on. */
export function anchors(md: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  let fence = false;
  for (const line of md.split('\n')) {
    if (/^\s*```/.test(line)) fence = !fence;
    if (fence) continue;
    const m = /^#{1,6} (.*)$/.exec(line);
    if (!m) continue;
    const base = slug(m[1] ?? '');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

/** The relative links of a Markdown file (outside code), as written. */
export function links(md: string): string[] {
  const out: string[] = [];
  let fence = false;
  for (const line of md.split('\n')) {
    if (/^\s*```/.test(line)) fence = !fence;
    if (fence) continue;
    for (const m of line.replace(/`[^`]*`/g, '').matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = m[1] ?? '';
      if (!/^[a-z]+:/i.test(target)) out.push(target);
    }
  }
  return out;
}

/**
 * The shell blocks marked to be run: a ```sh fence right after an HTML comment
 * `<!-- check: STACK -->` (STACK names the configuration the block runs against, or `prelude`
 * for a block every later block of the page needs), or `<!-- check: STACK errors -->` for a
 * block whose answers include ACI errors on purpose.
 */
export function checkedBlocks(md: string): { stack: string; errors: boolean; script: string; line: number }[] {
  const lines = md.split('\n');
  const out: { stack: string; errors: boolean; script: string; line: number }[] = [];
  lines.forEach((l, i) => {
    const m = /^<!-- check: ([\w-]+)( errors)? -->$/.exec(l.trim());
    if (!m) return;
    if (!/^```(sh|bash)$/.test((lines[i + 1] ?? '').trim())) throw new Error(`line ${i + 1}: a check marker must be followed by a sh block`);
    const end = lines.findIndex((x, j) => j > i + 1 && x.trim() === '```');
    out.push({ stack: m[1] ?? '', errors: m[2] !== undefined, script: lines.slice(i + 2, end).join('\n'), line: i + 3 });
  });
  return out;
}
