/**
 * The documentation's examples, run as a reader runs them: `npm start` (the demo stack, as the
 * README says), then the README's walkthrough and every block marked `<!-- check: demo -->` in
 * the pages, in order, in one shell per page (a page's `prelude` block first). The blocks marked
 * `demo-writes` run against a second stack, started with `CONNECTOR_CONFIG=config/demo-writes.json`.
 *
 * Only the ports change: the stack runs on free ports, and each default port in a block
 * (`127.0.0.1:7700` and the emulators') is replaced by the stack's. `npx gmail-connector` runs this
 * repository's CLI. A block fails the test when a command fails (`set -euo pipefail`), or when an
 * ACI answer is an error and the block is not marked `errors`.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, describe, it } from 'node:test';
import { portsFor } from '../support/ports.js';
import { checkedBlocks, read, ROOT } from './markdown.js';

const PAGES = ['README.md', 'docs/getting-started.md', 'docs/using.md'];
const STACKS: Record<string, NodeJS.ProcessEnv> = {
  demo: {},
  'demo-writes': { CONNECTOR_CONFIG: resolve(ROOT, 'config/demo-writes.json') },
};
/** Each default port the examples name, and the variable that moves it. */
const DEFAULT_PORTS: Record<string, string> = {
  '7700': 'ACI_PORT',
  '8080': 'FIRESTORE_EMULATOR_PORT',
  '8124': 'GMAIL_EMULATOR_PORT',
  '8125': 'STORAGE_EMULATOR_PORT',
};
const OTHER_PORTS = ['WORKER_PORT', 'NOTIFY_PORT', 'CLOUD_TASKS_EMULATOR_PORT', 'CLOUD_TASKS_EMULATOR_GRPC_PORT', 'AUTH_EMULATOR_PORT', 'PUBSUB_EMULATOR_PORT'];
const ERROR_ANSWER = /<response>ERROR<\/response>|"response":"ERROR"|"response":\{"\$":"ERROR"\}/;

interface Stack {
  ports: Record<string, string>;
  stop(): Promise<void>;
}

/** `npm start`, as the README says, on free ports; resolves once it printed `ready`. */
async function npmStart(extra: NodeJS.ProcessEnv): Promise<Stack> {
  const ports = await portsFor([...Object.values(DEFAULT_PORTS), ...OTHER_PORTS]);
  const env: NodeJS.ProcessEnv = { ...process.env, ...ports, ...extra, RECONCILE_INTERVAL_S: '0' };
  delete env['FIRESTORE_EMULATOR_HOST'];
  delete env['PUBSUB_EMULATOR_HOST'];
  const npm: ChildProcess = spawn('npm', ['start'], { cwd: ROOT, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  npm.stderr?.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-20_000)));
  const exited = new Promise<void>((res) => npm.on('exit', () => res()));
  await new Promise<void>((res, rej) => {
    npm.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (/^ready: /m.test(out)) res();
    });
    void exited.then(() => rej(new Error(`npm start exited before ready:\n${err}`)));
  });
  return {
    ports,
    async stop() {
      npm.kill('SIGINT');
      await exited;
    },
  };
}

/** One page's blocks for one stack, as one script: the ports moved, a marker before each block. */
function scriptOf(page: string, stack: string, ports: Record<string, string>): { script: string; blocks: { line: number; errors: boolean }[] } {
  const all = checkedBlocks(read(page));
  const chosen = all.filter((b) => b.stack === stack);
  const prelude = all.filter((b) => b.stack === 'prelude').map((b) => b.script);
  const move = (text: string) => text.replace(/127\.0\.0\.1:(7700|8080|8124|8125)\b/g, (_, p: string) => `127.0.0.1:${ports[DEFAULT_PORTS[p] ?? ''] ?? p}`);
  const shim = `npx() { if [ "$1" = gmail-connector ]; then shift; node ${JSON.stringify(resolve(ROOT, 'cli/gmail-connector.mjs'))} "$@"; else command npx "$@"; fi; }`;
  const body = chosen.map((b) => `echo "::block ${b.line}::"\n${move(b.script)}`).join('\n');
  return { script: ['set -euo pipefail', shim, ...prelude.map(move), body, 'echo "::end::"'].join('\n'), blocks: chosen };
}

/** Runs a script with bash in a folder of its own; answers its exit code and output. */
function bash(script: string, env: NodeJS.ProcessEnv): Promise<{ code: number | null; out: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'doc-examples-'));
  const file = join(dir, 'examples.sh');
  writeFileSync(file, script);
  return new Promise((res, rej) => {
    const child = spawn('bash', [file], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', rej);
    child.on('close', (code) => {
      rmSync(dir, { recursive: true, force: true });
      res({ code, out });
    });
  });
}

/** The output of each block, by the line of its script in the page. */
function outputs(out: string): Map<number, string> {
  const parts = new Map<number, string>();
  const pieces = out.split(/^::block (\d+)::$/m);
  for (let i = 1; i < pieces.length; i += 2) parts.set(Number(pieces[i]), (pieces[i + 1] ?? '').replace(/::end::\s*$/, ''));
  return parts;
}

for (const [stack, extra] of Object.entries(STACKS)) {
  const pages = PAGES.filter((p) => checkedBlocks(read(p)).some((b) => b.stack === stack));
  describe(`the examples on the ${stack} stack`, { timeout: 900_000 }, () => {
    let started: Promise<Stack> | undefined;
    const up = () => (started ??= npmStart(extra));
    after(async () => {
      if (started) await (await started).stop();
    });

    for (const page of pages) {
      it(`${page}: every checked block runs as written`, { timeout: 600_000 }, async () => {
        const { ports } = await up();
        const { script, blocks } = scriptOf(page, stack, ports);
        const env = { ...process.env, GMAIL_CONNECTOR_ENDPOINT: `http://127.0.0.1:${ports['ACI_PORT']}/`, FIRESTORE_EMULATOR_HOST: `127.0.0.1:${ports['FIRESTORE_EMULATOR_PORT']}` };
        const r = await bash(script, env);
        const parts = outputs(r.out);
        const last = [...parts.keys()].at(-1);
        assert.equal(r.code, 0, `${page}: the block at line ${last} failed (exit ${r.code}):\n${r.out.slice(-4000)}`);
        assert.match(r.out, /::end::\s*$/);
        for (const b of blocks) {
          const text = parts.get(b.line) ?? '';
          if (!b.errors) assert.doesNotMatch(text, ERROR_ANSWER, `${page}, the block at line ${b.line} got an ACI error:\n${text.slice(-3000)}`);
        }
        if (process.env['DOC_EXAMPLES_OUT']) writeFileSync(`${process.env['DOC_EXAMPLES_OUT']}/${page.replace(/\//g, '_')}.${stack}.out`, r.out);
      });
    }
  });
}
