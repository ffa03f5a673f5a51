/**
 * `gmail-connector`: a command-line client of the connector's ACI endpoint. Submits and watches
 * actions (a live progress bar per mailbox), lists the queue, stops, cancels, pauses and resumes,
 * lists identifiers, views a message, and reads the local sink through the Firestore emulator.
 *
 * Exit codes: 0 done; 1 the endpoint refused or could not be reached; 2 bad usage;
 * 3 the action ended other than Finished (`fetch ... --wait`).
 */
import { writeFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import cliProgress from 'cli-progress';
import { AciFailure, createAciClient, FINAL, list, type AciClient, type Json } from './aci.js';
import { table } from './table.js';

const EXIT_REFUSED = 1;
const EXIT_USAGE = 2;
const EXIT_NOT_FINISHED = 3;

interface Globals {
  endpoint: string;
  json?: boolean;
  idToken?: string;
  secret?: string;
  googleAuth?: boolean;
  interval: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const out = (s: string) => process.stdout.write(s.endsWith('\n') ? s : `${s}\n`);
const note = (s: string) => process.stderr.write(`${s}\n`);

class Cli {
  constructor(private readonly program: Command) {}
  get opts(): Globals {
    return this.program.opts<Globals>();
  }
  get json(): boolean {
    return this.opts.json === true;
  }
  get intervalMs(): number {
    const n = Number(this.opts.interval);
    if (!Number.isFinite(n) || n <= 0) throw new CommanderError(EXIT_USAGE, 'usage', `--interval must be a positive number of seconds, got "${this.opts.interval}"`);
    return n * 1000;
  }
  client(): AciClient {
    const o = this.opts;
    return createAciClient(o.endpoint, { idToken: o.idToken, secret: o.secret, googleAuth: o.googleAuth });
  }
  emit(value: unknown, human: () => string): void {
    out(this.json ? JSON.stringify(value) : human());
  }
}

const queueInfo = (c: AciClient, verb: string, extra: Record<string, string> = {}, post = false) =>
  c.call({ action: 'QueueInfo', QueueName: 'fetch', QueueAction: verb, ...extra }, { post });

async function actionOf(c: AciClient, token: string): Promise<Json> {
  const data = await queueInfo(c, 'GetStatus', { Token: token });
  const a = list((data.actions as Json | undefined)?.action)[0];
  if (!a) throw new AciFailure(`no action ${token}`, 404);
  return a;
}

/** One row of the status table. */
function statusRow(a: Json): string[] {
  const progress = (a.progress ?? {}) as Json;
  // Each fetch action has its own counters (Synchronize: added, updated...; Identifiers:
  // identifiers, errors): each is shown by its name.
  const counts = list((a.documentcounts as Json | undefined)?.documentcount)
    .map((d) => `${String(d['@task'])}: ${Object.entries(d).filter(([k]) => k.startsWith('@') && k !== '@task').map(([k, v]) => `${k.slice(1)}=${String(v)}`).join(' ')}`)
    .join('; ');
  return [
    String(a.token ?? ''),
    String(a.status ?? ''),
    String(a.fetchaction ?? ''),
    String(a.queued_time ?? ''),
    `${String(progress.percent ?? '0')}%`,
    String(progress.messages ?? '0'),
    counts,
    String(a.error ?? ''),
  ];
}
const STATUS_HEAD = ['TOKEN', 'STATUS', 'ACTION', 'QUEUED (UTC)', '%', 'MESSAGES', 'COUNTS', 'ERROR'];
/** The token and the counts are never cut. */
const STATUS_WHOLE = [0, 6];

/** How long `s` seconds is, as a bar shows it: `42s`, `3m05s`, `1h02m`. */
function duration(s: number): string {
  const t = Math.ceil(s);
  if (t < 60) return `${t}s`;
  if (t < 3600) return `${Math.floor(t / 60)}m${String(t % 60).padStart(2, '0')}s`;
  return `${Math.floor(t / 3600)}h${String(Math.floor((t % 3600) / 60)).padStart(2, '0')}m`;
}

/**
 * The fields of one mailbox's bar: `430/1000` (or `430` while the mailbox's total is not known),
 * the rate since the bar appeared (`--` in its first second), and the time left at that rate
 * (`--` until there is a rate and a total; `0s` once the mailbox has ended).
 */
function barFields(stage: Json, value: number, maximum: number, b: { started: number; first: number }, now: number): Record<string, string> {
  const secs = (now - b.started) / 1000;
  const rate = secs >= 1 ? (value - b.first) / secs : undefined;
  const status = String(stage['@status'] ?? '');
  const ended = FINAL.has(status);
  let left = '--';
  if (ended) left = '0s';
  else if (maximum > 0 && rate !== undefined && rate > 0) left = duration(Math.max(0, maximum - value) / rate);
  return {
    title: `${String(stage['@task'] ?? '')}/${String(stage['@title'] ?? '')}`,
    count: maximum > 0 ? `${value}/${maximum}` : String(value),
    rate: rate === undefined ? '--' : rate.toFixed(1),
    left,
    status,
  };
}

/**
 * Polls the action until it ends, drawing one bar per mailbox (messages, rate, ETA) on stderr
 * when it is a terminal. Answers the final action.
 */
async function watchAction(cli: Cli, c: AciClient, token: string): Promise<Json> {
  const live = process.stderr.isTTY === true && !cli.json;
  const multi = live
    ? new cliProgress.MultiBar(
        {
          // Our own fields (cli-progress's own `total` and `eta` would show a total not known yet
          // as 1, and an ETA it cannot compute as a placeholder).
          format: ' {title} |{bar}| {count} messages | {rate} msg/s | ETA {left} | {status}',
          hideCursor: true,
          clearOnComplete: false,
          etaBuffer: 20,
          stream: process.stderr,
        },
        cliProgress.Presets.shades_classic,
      )
    : undefined;
  const bars = new Map<string, { bar: cliProgress.SingleBar; started: number; first: number }>();
  let lastLine = '';
  try {
    for (;;) {
      // The action first: once it has ended, so have its mailboxes, and the bars' last frame says so.
      const action = await actionOf(c, token);
      const progress = ((await queueInfo(c, 'Progress', { Token: token })).progress ?? {}) as Json;
      const status = String(action.status);
      for (const stage of list(progress.stage)) {
        const title = `${String(stage['@task'] ?? '')}/${String(stage['@title'] ?? '')}`;
        const value = Number(stage['@progress'] ?? 0);
        const maximum = Number(stage['@maximum'] ?? 0);
        let b = bars.get(title);
        const now = Date.now();
        if (!b && multi) {
          const first = { started: now, first: value };
          b = { bar: multi.create(Math.max(maximum, value, 1), value, barFields(stage, value, maximum, first, now)), ...first };
          bars.set(title, b);
        }
        if (b) {
          b.bar.setTotal(Math.max(maximum, value, 1));
          b.bar.update(value, barFields(stage, value, maximum, b, now));
        }
      }
      if (!multi && !cli.json) {
        const line = `${token} ${status} ${String(progress.percent ?? 0)}% messages=${String((action.progress as Json | undefined)?.messages ?? 0)}`;
        if (line !== lastLine) note(line);
        lastLine = line;
      }
      if (FINAL.has(status)) return action;
      await sleep(cli.intervalMs);
    }
  } finally {
    multi?.stop();
  }
}

async function submit(cli: Cli, fetchAction: string, task: string, extra: Record<string, string> = {}): Promise<string> {
  const data = await cli.client().call({ action: 'Fetch', FetchAction: fetchAction, TaskSections: task, ...extra }, { post: true });
  return String(data.token);
}

/** Reads every identifier of a finished Identifiers action, a page at a time. */
async function identifiersOf(c: AciClient, token: string): Promise<{ name?: string; id: string }[]> {
  const all: { name?: string; id: string }[] = [];
  for (let start = 1; ; start += 1000) {
    const data = await queueInfo(c, 'GetStatus', { Token: token, Start: String(start), MaxResults: '1000' });
    const a = list((data.actions as Json | undefined)?.action)[0] ?? {};
    const page = list((a.identifiers as Json | undefined)?.identifier);
    for (const e of page) all.push(typeof e === 'string' ? { id: e } : { name: e['@name'] as string | undefined, id: String(e.$) });
    if (page.length < 1000) return all;
  }
}

export function buildProgram(): { program: Command; run(argv: string[]): Promise<number> } {
  const program = new Command('gmail-connector');
  const cli = new Cli(program);
  program
    .description('Client of the Gmail connector: ACI over HTTP (docs/CONTRACT.md).')
    .addOption(new Option('--endpoint <url>', 'the action endpoint').env('GMAIL_CONNECTOR_ENDPOINT').default('http://127.0.0.1:7700/'))
    .option('--json', 'print JSON (one document per answer) instead of text')
    .addOption(new Option('--id-token <token>', 'a Google identity token (gcloud auth print-identity-token)').env('GMAIL_CONNECTOR_ID_TOKEN'))
    .addOption(new Option('--secret <secret>', 'the shared secret, sent as X-ACI-Secret').env('GMAIL_CONNECTOR_SECRET'))
    .option('--google-auth', 'mint an ID token for the endpoint from service-account credentials (GOOGLE_APPLICATION_CREDENTIALS)')
    .option('--interval <seconds>', 'how often --wait and --watch poll', '1')
    .showHelpAfterError()
    .exitOverride();

  let code = 0;
  const fetchCmd = program.command('fetch').description('start a fetch action');
  fetchCmd
    .command('synchronize')
    .argument('<task>', 'task section(s), comma-separated')
    .option('--wait', 'watch until it ends (exit 0 only when Finished)')
    .description('submit a Synchronize; with --wait, a progress bar per mailbox')
    .action(async (task: string, o: { wait?: boolean }) => {
      const token = await submit(cli, 'Synchronize', task);
      if (!o.wait) return cli.emit({ token }, () => token);
      if (!cli.json) note(`token ${token}`);
      const a = await watchAction(cli, cli.client(), token);
      code = a.status === 'Finished' ? 0 : EXIT_NOT_FINISHED;
      cli.emit({ token, action: a }, () => table(STATUS_HEAD, [statusRow(a)], STATUS_WHOLE));
    });
  fetchCmd
    .command('identifiers')
    .argument('<task>', 'task section(s), comma-separated')
    .description('list the identifiers of every message of the task (waits for the action)')
    .action(async (task: string) => {
      const c = cli.client();
      const token = await submit(cli, 'Identifiers', task);
      const a = await watchAction(cli, c, token);
      if (a.status !== 'Finished') code = EXIT_NOT_FINISHED;
      const ids = await identifiersOf(c, token);
      cli.emit({ token, status: a.status, identifiers: ids }, () =>
        table(['NAME', 'IDENTIFIER'], ids.map((i) => [i.name ?? '', i.id]), [1]),
      );
    });

  program
    .command('status')
    .argument('[token]', 'one action (default: the queue)')
    .option('--watch', 'refresh until the action ends (or Ctrl-C)')
    .option('--max <n>', 'at most this many actions', '20')
    .description('the queue as a table')
    .action(async (token: string | undefined, o: { watch?: boolean; max: string }) => {
      const c = cli.client();
      for (;;) {
        const data = await queueInfo(c, 'GetStatus', token ? { Token: token } : { MaxResults: o.max });
        const actions = list((data.actions as Json | undefined)?.action);
        if (o.watch && !cli.json && process.stdout.isTTY) process.stdout.write('\x1b[2J\x1b[H');
        cli.emit(token ? actions[0] : { actions }, () => table(STATUS_HEAD, actions.map(statusRow), STATUS_WHOLE));
        if (!o.watch || (token && FINAL.has(String(actions[0]?.status)))) return;
        await sleep(cli.intervalMs);
      }
    });

  for (const [verb, needsToken, what] of [
    ['stop', true, 'stop a running action'],
    ['cancel', true, 'cancel a queued action'],
    ['pause', false, 'pause the queue'],
    ['resume', false, 'resume the queue'],
  ] as const) {
    const cmd = program.command(verb).description(what);
    if (needsToken) cmd.argument('<token>', 'the action');
    cmd.action(async (token?: string) => {
      const data = await queueInfo(cli.client(), verb[0]?.toUpperCase() + verb.slice(1), token && needsToken ? { Token: token } : {}, true);
      cli.emit(data, () => (needsToken ? `${String(data.token)} ${String(data.status)}` : `queue ${String(data.queue)} paused=${String(data.paused)}`));
    });
  }

  program
    .command('progress')
    .argument('<token>', 'the action')
    .description("an action's progress, per mailbox")
    .action(async (token: string) => {
      const p = ((await queueInfo(cli.client(), 'Progress', { Token: token })).progress ?? {}) as Json;
      cli.emit(p, () => {
        // The estimate is 0 once the action has ended, and absent while it cannot be made.
        const left = Number(p.estimated_time_remaining ?? 0);
        const head = `${String(p.percent ?? 0)}% processing ${String(p.time_processing ?? 0)}s` + (left > 0 ? `, about ${left}s left` : '');
        const rows = list(p.stage).map((s) => [String(s['@task'] ?? ''), String(s['@title'] ?? ''), String(s['@status'] ?? ''), `${String(s['@percent'] ?? 0)}%`, `${String(s['@progress'] ?? 0)}/${String(s['@maximum'] ?? '?')}`]);
        return `${head}\n${table(['TASK', 'MAILBOX', 'STATUS', '%', 'MESSAGES'], rows)}`;
      });
    });

  program
    .command('view')
    .argument('<identifier>', 'an identifier from `fetch identifiers`')
    .option('--out <file>', 'write the message (RFC 822) to this file')
    .description('one message: its bytes, or with --json its metadata')
    .action(async (identifier: string, o: { out?: string }) => {
      const c = cli.client();
      if (cli.json) {
        const data = await c.call({ action: 'View', Identifier: identifier, NoACI: 'false' });
        if (o.out) writeFileSync(o.out, Buffer.from(String(data.content ?? ''), 'base64'));
        out(JSON.stringify(o.out ? { ...data, content: undefined, out: o.out } : data));
        return;
      }
      const r = await c.raw({ action: 'View', Identifier: identifier, ResponseFormat: 'simplejson' });
      const bytes = Buffer.from(await r.arrayBuffer());
      if (o.out) {
        writeFileSync(o.out, bytes);
        note(`wrote ${bytes.length} bytes to ${o.out}`);
      } else process.stdout.write(bytes);
    });

  program
    .command('docs')
    .argument('<task>', 'the task section')
    .option('--user <address>', 'one mailbox')
    .option('--limit <n>', 'at most this many documents', '20')
    .option('--project <id>', 'the project id of the local stack', process.env.GCLOUD_PROJECT || 'demo-gmail-connector')
    .description('sink documents of the local stack (through FIRESTORE_EMULATOR_HOST)')
    .action(async (task: string, o: { user?: string; limit: string; project: string }) => {
      const { readSink } = await import('./sink.js');
      const limit = Number(o.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) throw new CommanderError(EXIT_USAGE, 'usage', `--limit must be a whole number from 1 to 10000, got "${o.limit}"`);
      const docs = await readSink({ project: o.project, task, user: o.user, limit });
      cli.emit({ documents: docs }, () =>
        table(['ID', 'DATE', 'FROM', 'SUBJECT', 'LABELS'], docs.map((d) => [d.id, d.date ?? '', String(d.from ?? ''), String(d.subject ?? ''), (d.labels ?? []).join(',')]), [0]),
      );
    });

  return {
    program,
    async run(argv) {
      try {
        await program.parseAsync(argv, { from: 'user' });
        return code;
      } catch (e) {
        if (e instanceof CommanderError) {
          if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.exitCode === 0) return 0;
          if (e.code === 'usage') note(`error: ${e.message}`);
          return EXIT_USAGE;
        }
        if (e instanceof AciFailure) {
          if (cli.json) out(JSON.stringify({ error: e.message, status: e.status, errorid: e.errorId }));
          else note(`error: ${e.message}`);
          return EXIT_REFUSED;
        }
        note(`error: ${(e as Error).message}`);
        return EXIT_REFUSED;
      }
    },
  };
}

process.exitCode = await buildProgram().run(process.argv.slice(2));
