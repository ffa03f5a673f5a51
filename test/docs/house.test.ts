/**
 * The rules of functions/src that lint does not hold (docs/architecture.md):
 * - no two files have names one letter apart (`hold.ts` beside `holds.ts`);
 * - one helper turns an unknown error into its message (error-message.ts);
 * - the entry files, one per Cloud Function, sit together in entry/;
 * - every path the architecture page names is a file or folder of the repository.
 * The layers themselves and the absence of import circles are checked by `npm run lint`.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { distance } from 'fastest-levenshtein';
import { codeSpans, read, ROOT } from './markdown.js';

const SRC = resolve(ROOT, 'functions/src');

function sources(dir = SRC): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? sources(p) : f.endsWith('.ts') ? [p] : [];
  });
}

describe('the house', () => {
  it('no two files of functions/src have names one letter apart', () => {
    const names = [...new Set(sources().map((f) => basename(f, '.ts')))].sort();
    const near = names.flatMap((a, i) => names.slice(i + 1).filter((b) => distance(a, b) === 1).map((b) => `${a}.ts / ${b}.ts`));
    assert.deepEqual(near, []);
  });

  it('one helper turns an unknown error into its message', () => {
    const spelled = sources()
      .filter((f) => !f.endsWith('error-message.ts'))
      .flatMap((f) =>
        readFileSync(f, 'utf8')
          .split('\n')
          .map((line, i) => ({ line, at: `${relative(ROOT, f)}:${i + 1}` }))
          .filter(({ line }) => /\(\w+ as Error\)\.message|(\w+) instanceof Error \? \1\.message/.test(line))
          .map(({ at }) => at),
      );
    assert.deepEqual(spelled, [], 'use errorMessage() of functions/src/error-message.ts');
  });

  it('each Cloud Function registered has its entry file in entry/', () => {
    const register = readFileSync(resolve(SRC, 'entry/register.ts'), 'utf8');
    const registered = [...register.matchAll(/functions\.http\('(\w+)', outsideDomain\((\w+)\(deps\)\)\)/g)].map((m) => m[2]);
    assert.equal(registered.length, 3);
    for (const factory of registered) {
      const home = readdirSync(resolve(SRC, 'entry')).filter((f) => readFileSync(resolve(SRC, 'entry', f), 'utf8').includes(`export function ${factory}(`));
      assert.equal(home.length, 1, `${factory} is defined in one file of entry/`);
    }
  });

  it('every path the architecture page names exists', () => {
    const page = read('docs/architecture.md');
    const paths = codeSpans(page).filter((s) => /^(functions|test|scripts|cli|infra|bench|docs)\/[\w./-]*$/.test(s));
    assert.ok(paths.length > 20, `${paths.length} paths named`);
    assert.deepEqual(paths.filter((p) => !existsSync(resolve(ROOT, p.replace(/\/\*\*.*$/, '')))), []);
  });
});
