/**
 * docs/CONTRACT.md and the pages of docs/ held to the code, without a server:
 *
 * - every ACI parameter the code reads is in the contract's parameter table (§3), and declared as
 *   known for some request (functions/src/aci/parameters.ts, the fetch actions' `parameters`), so
 *   that no parameter the code reads is ever warned about as unknown; and no row of the table is
 *   a parameter nothing reads;
 * - every fetch action of FETCH_REGISTRY has its template in §4, whose parameters, lock, scopes,
 *   methods and counters are its module's;
 * - every environment variable that the functions, the local stack and the emulators read is in
 *   the one variable table (docs/configuration.md), and every variable there is read somewhere;
 *   §12 names config.ts's lists as they are;
 * - the identity matrix of docs/deploy.md is the one test/infra/identity.ts checks;
 * - every relative link between the Markdown pages reaches a file, and a heading of it;
 * - the README stays short, and gives the test command .ci/run relies on.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { ACTION_PARAMETERS, QUEUE_ACTION_PARAMETERS, STANDARD_PARAMETERS } from '../../functions/src/aci/parameters.js';
import { EMULATOR_ENV_VARS, OPTIONAL_ENV_VARS, PRODUCTION_ENV_VARS } from '../../functions/src/config.js';
import { FETCH_REGISTRY } from '../../functions/src/fetch/registry.js';
import { IDENTITY_MATRIX } from '../infra/identity.js';
import { anchors, cells, codeSpans, links, read, ROOT, section, tableRows } from './markdown.js';

const CONTRACT = 'docs/CONTRACT.md';

function filesUnder(dir: string, keep: (f: string) => boolean): string[] {
  return readdirSync(resolve(ROOT, dir)).flatMap((f) => {
    const path = join(dir, f);
    if (statSync(resolve(ROOT, path)).isDirectory()) return f === 'node_modules' || f === 'fixtures' || f === 'lib' ? [] : filesUnder(path, keep);
    return keep(path) ? [path] : [];
  });
}

const key = (name: string) => name.toLowerCase();

// --- parameters ---------------------------------------------------------------------------------

/**
 * The parameter names the functions' code reads or names in its errors, found in its text: the
 * readers of aci/request.ts (`p.get('X')`, `requireParam(p, 'X')`, `parseBoolParam(p, 'X', ...)`,
 * ...), the errors that name one (`missingParameter('X')`, `badParameter('X', ...)`), and the
 * lists the code reads in a loop (`['ConfigSection', 'TaskSections'].filter((n) => p.has(n))`,
 * `range('Queued-After', 'Queued-Before')`).
 */
export function parametersInCode(): Map<string, string[]> {
  const found = new Map<string, string[]>();
  const add = (name: string, where: string) => found.set(name, [...(found.get(name) ?? []), where]);
  const readers = 'requireParam|parseBoolParam|parseEnum|parseIntParam|timeParam|requiredEnum|parseDryRun';
  const patterns = [
    /\bp\.(?:get|has)\(\s*'([^']+)'/g,
    new RegExp(`\\b(?:${readers})\\(\\s*(?:p|params)\\s*,\\s*'([^']+)'`, 'g'),
    /\b(?:missingParameter|badParameter)\(\s*'([^']+)'/g,
    /\brange\(\s*'([^']+)'\s*,\s*'([^']+)'\s*\)/g,
  ];
  for (const file of filesUnder('functions/src', (f) => f.endsWith('.ts'))) {
    const text = read(file);
    for (const re of patterns) for (const m of text.matchAll(re)) for (const name of m.slice(1)) if (name) add(name, file);
    // Lists of names read one by one: SECTION_PARAMS, and [...].filter((n) => p.has(n)).
    for (const m of text.matchAll(/(?:SECTION_PARAMS\s*=\s*|)\[((?:\s*'[^']+',?)+)\s*\](?:\s*as const)?(?:;|\.filter\(\(\w+\) => p\.has)/g)) {
      if (!/SECTION_PARAMS|\.filter/.test(m[0])) continue;
      for (const n of (m[1] ?? '').matchAll(/'([^']+)'/g)) add(n[1] ?? '', file);
    }
  }
  return found;
}

/** Every parameter some request knows: the standard ones, each action's, each verb's, each fetch action's. */
function declaredParameters(): Set<string> {
  return new Set(
    [
      ...STANDARD_PARAMETERS,
      ...Object.values(ACTION_PARAMETERS).flat(),
      ...Object.values(QUEUE_ACTION_PARAMETERS).flat(),
      ...Object.values(FETCH_REGISTRY).flatMap((s) => s.parameters),
      'a',
    ].map(key),
  );
}

/** The names of the contract's parameter table (§3). */
export function contractParameters(contract = read(CONTRACT)): Set<string> {
  const rows = tableRows(section(contract, '3. Parameters'), /^\| parameter \| used by \| values \|$/);
  return new Set(rows.flatMap((r) => codeSpans(r[0] ?? '')).map(key));
}

describe('the contract names every parameter the code reads', () => {
  it('each parameter the code reads is in §3', () => {
    const table = contractParameters();
    const missing = [...parametersInCode()].filter(([name]) => !table.has(key(name))).map(([name, where]) => `${name} (${[...new Set(where)].join(', ')})`);
    assert.deepEqual(missing, [], `parameters the code reads that docs/CONTRACT.md §3 does not list: ${missing.join('; ')}`);
  });

  it('each parameter the code reads is known to some request, so it is never warned about', () => {
    const declared = declaredParameters();
    const undeclared = [...parametersInCode().keys()].filter((n) => !declared.has(key(n)));
    assert.deepEqual(undeclared, [], 'add them to aci/parameters.ts or to their fetch action\'s `parameters`');
  });

  it('each parameter of §3 is one some request knows (no row for a parameter nothing reads)', () => {
    const declared = declaredParameters();
    assert.deepEqual([...contractParameters()].filter((n) => !declared.has(n)), []);
  });

  it('the scan finds what it is meant to find', () => {
    const found = parametersInCode();
    for (const n of ['action', 'Token', 'TaskSections', 'ConfigSection', 'Queued-After', 'Finished-Before', 'Destination', 'InsertXML', 'Held', 'Permanent', 'IdentifiersXML']) {
      assert.ok(found.has(n), `${n} not found in functions/src`);
    }
  });
});

// --- fetch actions -------------------------------------------------------------------------------

/** The template of each fetch action in §4: its heading and its rows, by name. */
function templates(contract = read(CONTRACT)): Map<string, { heading: string; rows: Map<string, string> }> {
  const out = new Map<string, { heading: string; rows: Map<string, string> }>();
  const body = section(contract, 'Fetch actions');
  for (const m of body.matchAll(/^#### (.+)$/gm)) {
    const heading = m[1] ?? '';
    const rows = new Map(tableRows(section(body, heading)).map((r) => [r[0] ?? '', r[1] ?? ''] as const));
    for (const name of heading.replace(/[()]/g, ' ').split(/\s+/).filter((w) => /^[A-Z]/.test(w))) out.set(name, { heading, rows });
  }
  return out;
}

const SHORT_SCOPE = (s: string) => s.replace('https://www.googleapis.com/auth/', '');

describe('the contract describes each fetch action of the registry in its template', () => {
  const all = templates();
  for (const spec of Object.values(FETCH_REGISTRY)) {
    it(`${spec.name}`, () => {
      const t = all.get(spec.name);
      assert.ok(t, `docs/CONTRACT.md §4 has no "#### ${spec.name}" template`);
      const row = (k: string) => {
        const v = t.rows.get(k);
        assert.ok(v !== undefined, `the template of ${spec.name} has no "${k}" row`);
        return v;
      };
      for (const k of ['parameters', 'units', 'lock', 'scopes', 'counters', 'results', 'errors', 'example']) row(k);
      const params = codeSpans(row('parameters'));
      for (const p of spec.parameters) assert.ok(params.some((c) => c === p || c.startsWith(`${p}=`)), `${spec.name}: parameter ${p} is not in its template`);
      assert.deepEqual(codeSpans(row('counters').replace(/\(.*\)/, '')), [...spec.counters], `${spec.name}: counters`);
      assert.equal(row('lock').startsWith('takes the mailbox lock'), spec.lock, `${spec.name}: lock is "${row('lock')}"`);
      for (const scope of spec.scopes) assert.ok(codeSpans(row('scopes')).includes(SHORT_SCOPE(scope)), `${spec.name}: scope ${SHORT_SCOPE(scope)}`);
      if (spec.scopesFor) for (const scope of spec.scopesFor({ permanent: true })) assert.ok(codeSpans(row('scopes')).includes(SHORT_SCOPE(scope)), `${spec.name}: scope ${scope}`);
      for (const method of spec.methods) assert.ok(row('scopes').includes(`\`${method}\``), `${spec.name}: Gmail method ${method} is not in its scopes row`);
      assert.ok(t.heading === spec.name || row('example').includes(`FetchAction=${t.heading.split(' ')[0]}`), `${spec.name}: the example names FetchAction=${spec.name}`);
      if (t.heading === spec.name) assert.ok(row('example').includes(`FetchAction=${spec.name}`), `${spec.name}: the example names FetchAction=${spec.name}`);
    });
  }

  it('§3 lists every fetch action as a value of FetchAction', () => {
    const row = tableRows(section(read(CONTRACT), '3. Parameters'), /^\| parameter \|/).find((r) => r[0] === '`FetchAction`');
    assert.deepEqual(codeSpans(row?.[2] ?? ''), Object.keys(FETCH_REGISTRY));
  });
});

// --- environment variables ------------------------------------------------------------------------

/** The environment variables a file reads: `env.X`, `env['X']`, `reader(env, 'X')`, `intVar('X')`. */
function variablesIn(text: string): string[] {
  const out = new Set<string>();
  const patterns = [
    /\b(?:process\.)?env\??\.([A-Z][A-Z0-9_]{2,})\b/g,
    /\benv\[\s*['"]([A-Z][A-Z0-9_]{2,})['"]\s*\]/g,
    /\(\s*env\s*,\s*['"]([A-Z][A-Z0-9_]{2,})['"]/g,
    /\bintVar\(\s*['"]([A-Z][A-Z0-9_]{2,})['"]/g,
  ];
  for (const re of patterns) for (const m of text.matchAll(re)) out.add(m[1] ?? '');
  return [...out];
}

/** The variables the functions, the local stack and the emulators read. */
export function variablesInCode(): Map<string, string[]> {
  const found = new Map<string, string[]>();
  const files = [
    ...filesUnder('functions/src', (f) => f.endsWith('.ts')),
    'scripts/stack.ts',
    ...filesUnder('test/emulators', (f) => /\.(ts|mjs)$/.test(f) && !f.endsWith('.test.ts')),
  ];
  for (const file of files) for (const v of variablesIn(read(file))) found.set(v, [...(found.get(v) ?? []), file]);
  for (const v of [...PRODUCTION_ENV_VARS, ...OPTIONAL_ENV_VARS, ...EMULATOR_ENV_VARS]) found.set(v, [...(found.get(v) ?? []), 'functions/src/config.ts']);
  return found;
}

function variableTable(): string[] {
  const rows = tableRows(section(read('docs/configuration.md'), 'Variables'), /^\| variable \|/);
  return rows.flatMap((r) => codeSpans(r[0] ?? ''));
}

describe('the one variable table names every variable the code reads', () => {
  it('each variable the functions, the stack and the emulators read is in docs/configuration.md', () => {
    const table = new Set(variableTable());
    const missing = [...variablesInCode()].filter(([v]) => !table.has(v)).map(([v, where]) => `${v} (${[...new Set(where)].join(', ')})`);
    assert.deepEqual(missing, [], `variables missing from docs/configuration.md#variables: ${missing.join('; ')}`);
  });

  it('each variable of the table is read somewhere, and is listed once', () => {
    const table = variableTable();
    assert.deepEqual(table.filter((v, i) => table.indexOf(v) !== i), [], 'listed twice');
    const code = [...filesUnder('functions/src', (f) => f.endsWith('.ts')), ...filesUnder('scripts', () => true), ...filesUnder('cli', () => true), ...filesUnder('test', (f) => /\.(ts|mjs)$/.test(f)), ...filesUnder('bench', () => true)]
      .map((f) => read(f))
      .join('\n');
    assert.deepEqual(table.filter((v) => !code.includes(v)), [], 'variables in the table that no code reads');
  });

  it("§12 names config.ts's lists as they are", () => {
    const s12 = section(read(CONTRACT), '12. Variables the functions read');
    for (const [list, names] of [['PRODUCTION_ENV_VARS', PRODUCTION_ENV_VARS], ['OPTIONAL_ENV_VARS', OPTIONAL_ENV_VARS], ['EMULATOR_ENV_VARS', EMULATOR_ENV_VARS]] as const) {
      const bullet = (s12.split('\n- ').find((b) => b.startsWith(`\`${list}\``)) ?? '').split('\n\n')[0] ?? '';
      const named = codeSpans(bullet).filter((c) => /^[A-Z][A-Z0-9_]+$/.test(c) && c !== list);
      assert.deepEqual(new Set(named), new Set(names), `§12 ${list}`);
    }
  });
});

// --- identity matrix -------------------------------------------------------------------------------

describe('the identity matrix of docs/deploy.md is the one the Terraform tests check', () => {
  it('same accounts, grants, requirements and reasons', () => {
    const rows = tableRows(section(read('docs/deploy.md'), 'Identity matrix'), /^\| account \| grant \|/);
    const documented = rows.map((r) => ({ account: codeSpans(r[0] ?? '')[0], grant: codeSpans(r[1] ?? '')[0], covers: codeSpans(r[2] ?? ''), why: r[1]?.includes('`') ? r[3] : undefined }));
    // An account without grants has one row, whose grant is "none" (its why says what it is for).
    type Row = { account: string | undefined; grant: string | undefined; covers: string[]; why: string | undefined };
    const expected = Object.entries(IDENTITY_MATRIX).flatMap(([account, grants]): Row[] =>
      grants.length === 0 ? [{ account, grant: undefined, covers: [], why: undefined }] : grants.map((g) => ({ account, grant: g.grant, covers: [...g.covers], why: g.why })),
    );
    assert.deepEqual(documented, expected);
  });
});

// --- links, and the README ------------------------------------------------------------------------

describe('the Markdown pages', () => {
  const pages = ['README.md', 'infra/README.md', ...filesUnder('docs', (f) => f.endsWith('.md'))];

  for (const page of pages) {
    it(`${page}: every relative link reaches a file and one of its headings`, () => {
      const broken: string[] = [];
      for (const link of links(read(page))) {
        const [path, anchor] = link.split('#') as [string, string | undefined];
        const target = path === '' ? page : relative(ROOT, resolve(ROOT, dirname(page), path));
        if (!existsSync(resolve(ROOT, target))) broken.push(`${link}: no file ${target}`);
        else if (anchor !== undefined && target.endsWith('.md') && !anchors(read(target)).has(anchor)) broken.push(`${link}: no heading #${anchor} in ${target}`);
      }
      assert.deepEqual(broken, []);
    });
  }

  it('the README is one screen of about 200 lines, and gives `npm test`, which .ci/run runs', () => {
    const readme = read('README.md');
    assert.ok(readme.split('\n').length <= 200, `README.md has ${readme.split('\n').length} lines`);
    assert.match(readme, /^npm test\b/m);
    assert.match(read('.ci/run'), /^npm test$/m);
  });

  it('every page of docs/ is in the README\'s index', () => {
    const index = section(read('README.md'), 'Documentation');
    for (const page of filesUnder('docs', (f) => f.endsWith('.md'))) assert.ok(index.includes(`](${page})`), `${page} is not in the README's index`);
  });

  it('a table row never has more cells than its header (cells(), checked on itself)', () => {
    assert.deepEqual(cells('| `a|b` | c |'), ['`a|b`', 'c']);
  });
});
