/**
 * The `gmail-connector` CLI, run as a child process against a test stack: exit codes and `--json`
 * output of every command, a Synchronize followed to its end, a Stop seen by `--wait`, and the
 * credentials it sends (against a small recording server).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { writeMailbox } from '../support/mail.js';
import { startTestStack, type TestStack } from '../support/stack.js';

const ROOT = resolve(import.meta.dirname, '../..');
const BIN = resolve(ROOT, 'cli/gmail-connector.mjs');
const ANN = 'ann@cli.example';
const BOB = 'bob@cli.example';
const SLOW = 'slow@cli.example';
type Json = Record<string, unknown>;

let stack: TestStack;

before(async () => {
  const { dir } = writeMailbox(ANN, 25, { prefix: 'a' });
  writeMailbox(BOB, 15, { dir, prefix: 'b' });
  writeMailbox(SLOW, 400, { dir, prefix: 's' });
  stack = await startTestStack({
    mailDir: dir,
    connector: { gmail: { quotaUnitsPerUserPerMinute: 1_000_000 }, tasks: { TEAM: { users: [ANN, BOB] }, SLOW: { users: [SLOW] } } },
  });
});

after(async () => {
  await stack?.close();
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  json: Json;
}

/** Runs the CLI; `--endpoint` is the stack's unless given. */
function cli(args: string[], env: Record<string, string> = {}, timeoutMs = 120_000): Promise<Run> {
  return new Promise((res, rej) => {
    const child = spawn(process.execPath, [BIN, '--endpoint', stack.actionUrl, '--interval', '0.2', ...args], {
      cwd: ROOT,
      env: { ...process.env, FIRESTORE_EMULATOR_HOST: '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', rej);
    child.on('close', (code) => {
      clearTimeout(timer);
      let json: Json = {};
      try {
        json = JSON.parse(stdout) as Json;
      } catch {
        // Text output: the caller reads stdout.
      }
      res({ code: code ?? -1, stdout, stderr, json });
    });
  });
}

const ok = (r: Run, code = 0) => assert.equal(r.code, code, `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);

describe('gmail-connector against a test stack', () => {
  let token: string;
  let identifier: string;

  it('fetch synchronize --wait follows the action and exits 0 when it finished', async () => {
    const r = await cli(['--json', 'fetch', 'synchronize', 'team', '--wait']);
    ok(r);
    token = r.json.token as string;
    assert.match(token, /^[\w-]{22}$/);
    const a = r.json.action as Json;
    assert.equal(a.status, 'Finished');
    assert.equal((a.progress as Json).messages, '40');
  });

  it('status shows one action, and the queue, as JSON and as a table', async () => {
    const one = await cli(['--json', 'status', token]);
    ok(one);
    assert.equal(one.json.token, token);
    assert.equal(one.json.status, 'Finished');
    const all = await cli(['--json', 'status']);
    ok(all);
    assert.ok((all.json.actions as Json[]).some((a) => a.token === token));
    const text = await cli(['status', token, '--watch']);
    ok(text);
    assert.match(text.stdout, /^TOKEN\s+STATUS/);
    assert.match(text.stdout, new RegExp(`${token}\\s+Finished\\s+SYNCHRONIZE`));
  });

  it('progress lists one stage per mailbox', async () => {
    const r = await cli(['--json', 'progress', token]);
    ok(r);
    assert.equal(r.json.percent, '100');
    const stages = r.json.stage as Json[];
    assert.deepEqual(stages.map((s) => [s['@title'], s['@status'], s['@progress']]), [[ANN, 'Finished', '25'], [BOB, 'Finished', '15']]);
  });

  it('docs reads the sink through the Firestore emulator', async () => {
    const r = await cli(['--json', 'docs', 'team', '--user', BOB, '--limit', '100', '--project', stack.project], { FIRESTORE_EMULATOR_HOST: stack.firestore.host });
    ok(r);
    const docs = r.json.documents as Json[];
    assert.equal(docs.length, 15);
    assert.ok(docs.every((d) => d.user === BOB && String(d.id).startsWith(`TEAM:${BOB}:`)));
    const limited = await cli(['--json', 'docs', 'TEAM', '--limit', '3', '--project', stack.project], { FIRESTORE_EMULATOR_HOST: stack.firestore.host });
    ok(limited);
    assert.equal((limited.json.documents as Json[]).length, 3);
    const none = await cli(['docs', 'TEAM']);
    ok(none, 1);
    assert.match(none.stderr, /set FIRESTORE_EMULATOR_HOST/);
  });

  it('fetch identifiers lists every message, and view answers one', async () => {
    const r = await cli(['--json', 'fetch', 'identifiers', 'TEAM']);
    ok(r);
    const ids = r.json.identifiers as { id: string; name?: string }[];
    assert.equal(ids.length, 40);
    identifier = ids[0]?.id ?? '';
    const dir = mkdtempSync(join(tmpdir(), 'cli-view-'));
    const file = join(dir, 'm.eml');
    const raw = await cli(['view', identifier, '--out', file]);
    ok(raw);
    assert.match(readFileSync(file, 'latin1'), /^[\s\S]*Subject: /m);
    const meta = await cli(['--json', 'view', identifier]);
    ok(meta);
    assert.equal(meta.json.reference, identifier);
    assert.equal(((meta.json.metadata ?? {}) as Json).task, 'TEAM');
  });

  it('fetch identifiers prints every identifier whole, in a pipe and at any terminal width; status names its counters', async () => {
    const j = await cli(['--json', 'fetch', 'identifiers', 'TEAM']);
    ok(j);
    const ids = (j.json.identifiers as { id: string }[]).map((i) => i.id);
    for (const columns of ['40', '200']) {
      const r = await cli(['fetch', 'identifiers', 'TEAM'], { COLUMNS: columns });
      ok(r);
      assert.doesNotMatch(r.stdout, /…/);
      const printed = r.stdout.trim().split('\n').slice(1).map((l) => l.trim().split(/\s+/).at(-1));
      assert.deepEqual(new Set(printed), new Set(ids));
    }
    // The Identifiers action's own counters, by name: not a Synchronize's added/updated/deleted.
    const status = await cli(['status', String(j.json.token)]);
    ok(status);
    assert.match(status.stdout, /^TOKEN\s+STATUS\s+ACTION\s+QUEUED \(UTC\)\s+%\s+MESSAGES\s+COUNTS\s+ERROR$/m);
    assert.match(status.stdout, /TEAM: identifiers=40 errors=0/);
    assert.doesNotMatch(status.stdout, /[+~!]\d/);
    const sync = await cli(['status', token]);
    assert.match(sync.stdout, /TEAM: seen=40 added=40 updated=0 unchanged=0 deleted=0 errors=0/);
  });

  it('progress of an ended action gives no time left; docs prints no MetadataLookupWarning', async () => {
    const p = await cli(['progress', token]);
    ok(p);
    assert.match(p.stdout, /^100% processing \d+s\n/);
    assert.doesNotMatch(p.stdout, /left/);
    const d = await cli(['docs', 'TEAM', '--limit', '2', '--project', stack.project], { FIRESTORE_EMULATOR_HOST: stack.firestore.host });
    ok(d);
    assert.equal(d.stderr, '');
    assert.match(d.stdout, /^ID\s+DATE/);
    assert.match(d.stdout, new RegExp(`TEAM:${ANN}:[0-9a-f]+|TEAM:${BOB}:[0-9a-f]+`));
  });

  it('on a terminal, --wait draws bars whose every frame reads right: no total of 1, no ETA placeholder', async () => {
    // `script` gives the CLI a pseudo-terminal, as a user's shell does.
    const command = [process.execPath, BIN, '--endpoint', stack.actionUrl, '--interval', '0.2', 'fetch', 'synchronize', 'TEAM', '--wait'].map((a) => `'${a}'`).join(' ');
    const r = await new Promise<{ code: number | null; out: string }>((res, rej) => {
      // A terminal wide enough for a whole bar: cli-progress trims its last frame to the width.
      const child = spawn('script', ['-qefc', `stty cols 200 rows 50; exec ${command}`, '/dev/null'], { cwd: ROOT, env: { ...process.env, TERM: 'xterm' }, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (b: Buffer) => (out += b.toString()));
      child.stderr.on('data', (b: Buffer) => (out += b.toString()));
      child.on('error', rej);
      child.on('close', (code) => res({ code, out }));
    });
    assert.equal(r.code, 0, r.out);
    const frames = r.out.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '\n').split(/[\r\n]+/).filter((l) => l.includes(' messages | '));
    assert.ok(frames.length > 0, r.out);
    for (const f of frames) {
      assert.match(f, /\| (\d+|\d+\/\d+) messages \| (--|\d+\.\d) msg\/s \| ETA (--|\d+s|\d+m\d\ds|\d+h\d\dm) \| \w+/, f);
      assert.doesNotMatch(f, /\b\d+\/1 messages|NULL|LL|Infinity|NaN/, f);
    }
    // The last frame of each mailbox: ended, nothing left (a run after the first reads history: no total).
    assert.match(frames.at(-1) ?? '', /\d+(\/\d+)? messages .*ETA 0s \| Finished$/);
    // The first frame: a count, no rate yet, no estimate yet.
    assert.match(frames[0] ?? '', /\| \d+(\/\d+)? messages \| -- msg\/s \| ETA -- \|/);
  });

  it('refusals exit 1 with the ACI error in --json', async () => {
    const cancel = await cli(['--json', 'cancel', token]);
    ok(cancel, 1);
    assert.equal(cancel.json.errorid, 'GMAILCONNECTOR-CONFLICT');
    assert.equal(cancel.json.status, 409);
    const unknown = await cli(['--json', 'fetch', 'synchronize', 'NOPE']);
    ok(unknown, 1);
    assert.equal(unknown.json.errorid, 'GMAILCONNECTOR-BAD-PARAMETER');
    const badView = await cli(['view', 'not-an-identifier']);
    ok(badView, 1);
    assert.match(badView.stderr, /GMAILCONNECTOR-BAD-PARAMETER/);
  });

  it('pause and resume the queue', async () => {
    const p = await cli(['--json', 'pause']);
    ok(p);
    assert.deepEqual(p.json, { queue: 'fetch', paused: 'true' });
    const r = await cli(['resume']);
    ok(r);
    assert.equal(r.stdout.trim(), 'queue fetch paused=false');
  });

  it('stop ends a running action, and --wait then exits 3 with Stopped', async () => {
    // The run reads 20 messages, then the emulator holds it: it is running when the stop comes.
    const release = stack.gmail.holdCalls(SLOW, 'messages.get', 20);
    try {
      const waiting = cli(['--json', 'fetch', 'synchronize', 'SLOW', '--wait']);
      let t: string | undefined;
      for (let i = 0; i < 600 && !t; i++) {
        const open = await stack.db.collection('actions').where('status', '==', 'Processing').get();
        t = open.docs[0]?.id;
        if (!t) await new Promise((r) => setTimeout(r, 50));
      }
      assert.ok(t, 'the Synchronize never started');
      const stop = await cli(['--json', 'stop', t]);
      ok(stop);
      assert.equal(stop.json.token, t);
      const w = await waiting;
      ok(w, 3);
      assert.equal(w.json.token, t);
      assert.equal((w.json.action as Json).status, 'Stopped');
    } finally {
      release();
    }
  });

  it('usage errors exit 2; an endpoint that does not answer exits 1', async () => {
    ok(await cli(['frobnicate']), 2);
    ok(await cli(['stop']), 2);
    const down = await cli(['--endpoint', 'http://127.0.0.1:9/', 'status']);
    ok(down, 1);
    assert.match(down.stderr, /cannot reach http:\/\/127\.0\.0\.1:9\//);
  });
});

describe('gmail-connector credentials', () => {
  let server: Server;
  let url: string;
  const seen: IncomingHttpHeaders[] = [];

  before(async () => {
    server = createServer((req, res) => {
      seen.push(req.headers);
      res.setHeader('Content-Type', 'application/json; charset=utf-8');
      res.end(JSON.stringify({ autnresponse: { action: 'QUEUEINFO', response: 'SUCCESS', responsedata: { queue: 'fetch', paused: 'true' } } }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const a = server.address();
    url = `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}/`;
  });
  after(async () => {
    await new Promise((r) => server.close(r));
  });

  it('sends --secret as X-ACI-Secret and --id-token as a bearer token', async () => {
    ok(await cli(['--endpoint', url, '--secret', 's3cret-s3cret-s3cret', 'pause']));
    assert.equal(seen.at(-1)?.['x-aci-secret'], 's3cret-s3cret-s3cret');
    assert.equal(seen.at(-1)?.authorization, undefined);
    ok(await cli(['--endpoint', url, '--id-token', 'eyJ.test.token', 'pause']));
    assert.equal(seen.at(-1)?.authorization, 'Bearer eyJ.test.token');
    ok(await cli(['--endpoint', url, 'pause'], { GMAIL_CONNECTOR_SECRET: 'from-the-environment' }));
    assert.equal(seen.at(-1)?.['x-aci-secret'], 'from-the-environment');
  });
});
