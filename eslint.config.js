// Typed lint: the rule that matters most here is no-floating-promises, since an
// un-awaited Firestore write is lost when a function returns. The layers of
// functions/src (docs/architecture.md) are held by no-restricted-imports below;
// import circles are refused by dpdm in `npm run lint`.
import tseslint from 'typescript-eslint';

/** An import of `what` from inside functions/src/<folder>/ (one folder deep): `../what/...`. */
const folder = (what, message, allowTypeImports = false) => ({ regex: `^\\.\\./${what}(/|\\.js$)`, message, allowTypeImports });

const IO_MODULES = ['node:fs', 'node:fs/promises', 'node:net', 'node:http', 'node:https', 'node:http2', 'node:child_process', 'node:dns'];
const ENTRY = folder('entry', 'entry/ holds the Cloud Functions themselves: nothing imports them.');

/** The layers: what each folder of functions/src may not import. */
const LAYERS = [
  {
    files: ['functions/src/aci/**/*.ts'],
    paths: IO_MODULES.map((name) => ({ name, message: 'aci/ parses and renders: no I/O.' })),
    patterns: [
      folder('store', 'aci/ renders plain records: import their types only (import type).', true),
      folder('config', 'aci/ takes what it needs of the configuration as arguments: import its types only.', true),
      ...['app', 'engine', 'fetch', 'gmail', 'queue', 'push', 'storage', 'page', 'auth', 'deps', 'log'].map((f) =>
        folder(f, `aci/ is the protocol alone: it parses requests and renders answers; ${f} is for the layers above it (app/, engine/).`),
      ),
      { regex: '^(@google-cloud/(?!firestore$)|googleapis)', message: 'aci/ parses and renders: no Google client.' },
      { regex: '^@google-cloud/firestore$', message: 'aci/ may name Firestore types only (import type).', allowTypeImports: true },
      ENTRY,
    ],
  },
  {
    files: ['functions/src/store/**/*.ts', 'functions/src/gmail/**/*.ts'],
    patterns: ['aci', 'app', 'engine', 'fetch', 'queue', 'push', 'page'].map((f) => folder(f, `store/ and gmail/ know no protocol and no fetch action: ${f} sits above them.`)).concat([ENTRY]),
  },
  {
    files: ['functions/src/fetch/*.ts'],
    ignores: ['functions/src/fetch/registry.ts'],
    patterns: [
      { regex: '^\\./(?!spec\\.js$|shared/)', message: 'A fetch action module imports spec.ts (types) and shared/ only, never another fetch action or the registry.' },
      ...['app', 'engine', 'queue', 'push', 'page'].map((f) => folder(f, `A fetch action runs one unit as the engine asks; ${f} is not its business.`)),
      ENTRY,
    ],
  },
  {
    files: ['functions/src/fetch/shared/*.ts'],
    patterns: [
      { regex: '^\\.\\./(?!spec\\.js$)[^/]+$', message: 'shared/ is what fetch action modules share: it imports spec.ts, never a fetch action or the registry.' },
      ...['app', 'engine', 'queue', 'push', 'page', 'entry'].map((f) => ({ regex: `^\\.\\./\\.\\./${f}/`, message: `shared/ helps fetch actions; ${f} is not its business.` })),
    ],
  },
  {
    files: ['functions/src/app/**/*.ts'],
    patterns: [folder('engine', 'app/ answers requests; the worker engine runs deliveries: app/ never calls it.'), ENTRY],
  },
  {
    files: ['functions/src/engine/**/*.ts'],
    patterns: [folder('app', 'The worker engine never answers ACI requests: app/ is above it.'), folder('aci', 'The worker engine speaks no ACI.'), ENTRY],
  },
  {
    files: ['functions/src/queue/**/*.ts', 'functions/src/push/**/*.ts', 'functions/src/page/**/*.ts', 'functions/src/storage/**/*.ts', 'functions/src/auth/**/*.ts'],
    patterns: [folder('app', 'app/ is above this folder.'), folder('engine', 'engine/ is above this folder.'), ENTRY],
  },
].map(({ files, ignores, paths = [], patterns }) => ({
  files,
  ...(ignores ? { ignores } : {}),
  rules: { 'no-restricted-imports': 'off', '@typescript-eslint/no-restricted-imports': ['error', { paths, patterns }] },
}));

export default tseslint.config(
  { ignores: ['**/node_modules/**', 'functions/lib/**', 'eslint.config.js', 'scripts/*.mjs', 'bench/lib/*.mjs', 'scratch/**'] },
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': [
        'error',
        // node:test's describe/it/test promises are tracked by the runner itself.
        { allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['describe', 'it', 'test', 'suite'] }] },
      ],
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false } }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
  ...LAYERS,
  {
    // Top-level modules (config, deps, log) sit below every folder but entry/.
    files: ['functions/src/*.ts'],
    ignores: ['functions/src/index.ts'],
    rules: { '@typescript-eslint/no-restricted-imports': ['error', { patterns: [{ regex: '^\\./entry/', message: 'entry/ holds the Cloud Functions themselves: nothing imports them.' }] }] },
  },
);
