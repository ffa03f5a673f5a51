/**
 * Collect: the original of each message, byte for byte as Gmail serves it with `format=raw`,
 * copied to Cloud Storage as `<prefix>/<address>/<messageId>.eml` under `Destination=gs://bucket/prefix`.
 * The messages are those the `Identifiers` or `IdentifiersXML` name (one unit per mailbox they
 * name), or every message of the task sections' mailboxes (`TaskSections`, one unit per mailbox).
 * Results, read with QueueInfo GetStatus, are `<tasks><success>ID</success><failed message="why">ID</failed></tasks>`.
 * With `CollectAttachments=true` each attachment is also copied, beside its message, as
 * `<prefix>/<address>/<messageId>/<name>` (names made safe by fetch/shared/attachments.ts), from the
 * same read of the message: its bytes are split out of the stream as they pass.
 *
 * Streamed: Gmail's answer is read as it arrives, the `raw` field's base64 decoded piece by
 * piece straight into the upload, so no message is ever held whole, let alone a mailbox. An
 * upload creates its object only once all of it has arrived (Cloud Storage never shows part of
 * an upload), so a Stop, a Cancel or a killed worker leaves no partial object under its name.
 * An object already there with the same bytes (same MD5) is not written again; one with other
 * bytes is left as it is and the message fails with that reason (Collect only ever creates).
 * Uploads are conditional on the object not existing, so two copies never overwrite each other.
 *
 * One unit per mailbox, without the mailbox's lock (it only reads Gmail). Each batch of results
 * is committed with the checkpoint it leads to; a take-over resumes after the last committed
 * batch, and the messages of an uncommitted batch are found already there, not written twice.
 */
import { createHash } from 'node:crypto';
import { Readable, Transform, Writable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { File } from '@google-cloud/storage';
import pLimit from 'p-limit';
import { decodeIdentifier, encodeIdentifier } from '../aci/identifiers.js';
import { badParameter, missingParameter } from '../aci/errors.js';
import { parseBoolParam, type AciParams } from '../aci/request.js';
import type { Config } from '../config.js';
import { GMAIL_SCOPES } from '../gmail/client.js';
import { PermanentGmailError, classify } from '../gmail/errors.js';
import { RunAborted, sleep } from '../gmail/pacing.js';
import { RawMessageScanner } from '../gmail/raw.js';
import type { Checkpoint } from '../store/model.js';
import { MAX_RESULT_BATCH, ResultStore, type ResultEntry } from '../store/results.js';
import { AttachmentSplitter, Fork, type AttachmentOut } from './shared/attachments.js';
import { namedMailboxes, namedOf, parseNamed } from './shared/named.js';
import { cloneProgress, listingCheckpoint, listNextPage, pastItems, saveProgress } from './shared/listing.js';
import type { FetchActionSpec, FetchParams, UnitContext, UnitOutcome } from './spec.js';
import { errorMessage } from '../error-message.js';

/** Results committed together; the run's end is checked between batches. */
const BATCH = MAX_RESULT_BATCH;
/** Messages copied at once per mailbox: each streams, so memory stays a few buffers per copy. */
const CONCURRENCY = 8;
/** Tries of one message's copy when Cloud Storage or the stream fails transiently. */
const TRIES = 3;
/** The longest one message's copy may take before it is abandoned and tried again. */
const COPY_TIMEOUT_MS = 10 * 60_000;

/** `gs://bucket[/prefix]`: the bucket and the prefix without slashes at either end. */
export function parseDestination(raw: string): { bucket: string; prefix: string } | undefined {
  const m = /^gs:\/\/([a-z0-9][a-z0-9._-]{1,220}[a-z0-9])(?:\/(.*))?$/.exec(raw.trim());
  if (!m) return undefined;
  const prefix = (m[2] ?? '').replace(/^\/+|\/+$/g, '');
  if (prefix.split('/').some((s) => s === '.' || s === '..') || /[\r\n\u0000]/.test(prefix) || Buffer.byteLength(prefix) > 512) return undefined;
  return { bucket: m[1] as string, prefix };
}

/** The object a message is copied to. */
export function objectName(prefix: string, address: string, messageId: string): string {
  return `${prefix ? `${prefix}/` : ''}${address}/${messageId}.eml`;
}

/** The object an attachment of a message is copied to (`name` made safe by safeAttachmentName). */
export function attachmentObjectName(prefix: string, address: string, messageId: string, name: string): string {
  return `${prefix ? `${prefix}/` : ''}${address}/${messageId}/${name}`;
}

function parse(p: AciParams, config: Config): FetchParams {
  const raw = p.get('Destination');
  if (raw === undefined || raw.trim() === '') throw missingParameter('Destination', 'gs://bucket[/prefix]');
  const dest = parseDestination(raw);
  if (!dest) throw badParameter('Destination', raw, 'gs://bucket[/prefix], a Cloud Storage bucket name and an optional object prefix');
  if (!config.collectBuckets.includes(dest.bucket)) {
    const known = config.collectBuckets.length ? `one of ${config.collectBuckets.join(', ')}` : 'none is configured (COLLECT_BUCKETS)';
    throw badParameter('Destination', raw, `a bucket Collect may write to: bucket ${dest.bucket} is not one of them (${known})`);
  }
  const attachments = parseBoolParam(p, 'CollectAttachments', false);
  const named = parseNamed(p, config);
  return { bucket: dest.bucket, prefix: dest.prefix, ...(attachments ? { attachments } : {}), ...(named ? { identifiers: JSON.stringify(named) } : {}) };
}

/**
 * Turns Gmail's JSON answer, as it streams, into the bytes of its `raw` field, decoded a few
 * kilobytes at a time by the scanner Synchronize reads messages with (gmail/raw.ts).
 * `check` throws when the copy must end (Stop, lease lost, budget).
 */
class RawExtractor extends Transform {
  private readonly scanner = new RawMessageScanner();
  private readonly text = new TextDecoder('utf-8');
  private bytes = 0;

  constructor(private readonly check: () => void) {
    super();
  }

  private pass(pieces: Buffer[]): void {
    for (const p of pieces) {
      this.bytes += p.length;
      this.push(p);
    }
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      this.check();
      this.pass(this.scanner.feed(this.text.decode(chunk, { stream: true })));
      cb();
    } catch (e) {
      cb(e as Error);
    }
  }

  override _flush(cb: TransformCallback): void {
    try {
      this.pass(this.scanner.feed(this.text.decode()));
      this.pass([this.scanner.end().last].filter((b) => b.length > 0));
      cb(this.bytes > 0 ? undefined : new Error('Gmail answered without the raw message'));
    } catch (e) {
      cb(e as Error);
    }
  }
}

/** Gmail's `format=raw` answer for a message, as a stream (nothing read yet). */
async function rawAnswer(ctx: UnitContext, id: string): Promise<Readable> {
  const res = await ctx.caller.call('messages.get', `messages.get ${id} of ${ctx.user}`, (o) =>
    ctx.gmail.users.messages.get({ userId: ctx.user, id, format: 'raw' }, { ...o, responseType: 'stream' }),
  );
  const data = res.data as unknown;
  if (data instanceof Readable) return data;
  if (data && typeof (data as ReadableStream).getReader === 'function') return Readable.fromWeb(data as never);
  throw new Error('Gmail answered a raw message that is not a stream');
}

/** A failure of Cloud Storage or of a stream that may pass when tried again. */
class CopyFailed extends Error {
  override readonly name = 'CopyFailed';
  constructor(
    message: string,
    readonly transient: boolean,
    readonly status?: number,
  ) {
    super(message);
  }
}

function storageStatus(e: unknown): number | undefined {
  const x = e as { code?: unknown; status?: unknown; response?: { status?: unknown } };
  for (const v of [x?.code, x?.status, x?.response?.status]) if (typeof v === 'number') return v;
  return undefined;
}

function storageFailure(e: unknown, what: string): CopyFailed {
  const status = storageStatus(e);
  const message = `${what}: ${status ? `${status} ` : ''}${errorMessage(e)}`;
  return new CopyFailed(message, status === undefined || status === 408 || status === 429 || status >= 500, status);
}

type Copied = 'collected' | 'unchanged';
/** What copying one message did: its original, and how many attachment objects it wrote. */
interface CopyResult {
  copied: Copied;
  attachments: number;
}

/**
 * Copies one attachment (as it streams out of its message) to its object beside the message,
 * unless an object with the same bytes is there already; one with other bytes fails the message.
 */
async function storeAttachment(ctx: UnitContext, file: File, id: string, a: AttachmentOut): Promise<boolean> {
  const name = attachmentObjectName(String(ctx.params['prefix'] ?? ''), ctx.user, id, a.name);
  const target = file.bucket.file(name);
  const where = `gs://${file.bucket.name}/${name}`;
  const content = a.content as Readable;
  let existing: string | undefined;
  try {
    const [m] = await target.getMetadata();
    existing = String(m.md5Hash ?? '');
  } catch (e) {
    if (storageStatus(e) !== 404) throw storageFailure(e, `reading ${where}`);
  }
  if (existing !== undefined) {
    const md5 = createHash('md5');
    for await (const c of content) md5.update(c as Buffer);
    if (md5.digest('base64') === existing) return false;
    throw new CopyFailed(`${where} already holds other bytes; it is left as it is`, false);
  }
  const out = target.createWriteStream({
    resumable: false,
    contentType: a.contentType,
    metadata: { metadata: { gmailMessageId: id, mailbox: ctx.user } },
    preconditionOpts: { ifGenerationMatch: 0 },
    validation: 'md5',
  });
  try {
    await pipeline(content, out);
  } catch (e) {
    if (e instanceof CopyFailed || storageStatus(e) === undefined) throw e;
    throw storageFailure(e, `writing ${where}`);
  }
  return true;
}

/**
 * Copies one message (or finds it there already), and with `CollectAttachments=true` each of
 * its attachments beside it, all from one read of the message. Throws RunAborted,
 * PermanentGmailError, CopyFailed.
 */
async function copyOnce(ctx: UnitContext, file: File, id: string, end: () => void): Promise<CopyResult> {
  let existing: { md5Hash: string } | undefined;
  try {
    const [m] = await file.getMetadata();
    existing = { md5Hash: String(m.md5Hash ?? '') };
  } catch (e) {
    if (storageStatus(e) !== 404) throw storageFailure(e, `reading gs://${file.bucket.name}/${file.name}`);
  }
  const deadline = AbortSignal.timeout(COPY_TIMEOUT_MS);
  const check = () => {
    end();
    if (deadline.aborted) throw new CopyFailed(`copying message ${id} took over ${COPY_TIMEOUT_MS / 1000} s`, true);
  };
  let attachments = 0;
  const splitter =
    ctx.params['attachments'] === true
      ? new AttachmentSplitter(async (a) => {
          if (await storeAttachment(ctx, file, id, a)) attachments += 1;
        })
      : undefined;
  const alongside = (w: Writable): Writable => (splitter ? new Fork([w, splitter]) : w);
  if (existing) {
    const md5 = createHash('md5');
    await streamed(ctx, id, check, alongside(new Writable({ write: (c: Buffer, _e, cb) => (md5.update(c), cb()) })));
    if (md5.digest('base64') === existing.md5Hash) return { copied: 'unchanged', attachments };
    // Collect never replaces an object (its grant has no delete, which a replacement needs).
    throw new CopyFailed(`gs://${file.bucket.name}/${file.name} already holds other bytes; it is left as it is`, false);
  }
  const out = file.createWriteStream({
    resumable: false,
    contentType: 'message/rfc822',
    metadata: { metadata: { gmailMessageId: id, mailbox: ctx.user } },
    preconditionOpts: { ifGenerationMatch: 0 },
    validation: 'md5',
  });
  await streamed(ctx, id, check, alongside(out), `writing gs://${file.bucket.name}/${file.name}`);
  return { copied: 'collected', attachments };
}

/** Streams message `id`'s raw bytes into `sink`; a failure destroys the sink, so no upload completes. */
async function streamed(ctx: UnitContext, id: string, check: () => void, sink: Writable, what?: string): Promise<void> {
  const source = await rawAnswer(ctx, id);
  try {
    await pipeline(source, new RawExtractor(check), sink);
  } catch (e) {
    if (e instanceof RunAborted || ctx.shouldEnd()) throw new RunAborted();
    if (e instanceof CopyFailed) throw e;
    if (what !== undefined && storageStatus(e) !== undefined) throw storageFailure(e, what);
    throw new CopyFailed(`reading message ${id} of ${ctx.user}: ${errorMessage(e)}`, true);
  }
}

/** One message's result; `undefined` when the run must end first. */
async function collectOne(ctx: UnitContext, identifier: string, id: string): Promise<{ entry: ResultEntry; copied?: CopyResult } | undefined> {
  const bucket = String(ctx.params['bucket']);
  const name = objectName(String(ctx.params['prefix'] ?? ''), ctx.user, id);
  if (!ctx.storage) throw new Error('Collect runs in the worker only, which has Cloud Storage');
  const file = ctx.storage.bucket(bucket).file(name);
  const end = () => {
    if (ctx.shouldEnd()) throw new RunAborted();
  };
  for (let attempt = 1; ; attempt++) {
    try {
      const copied = await copyOnce(ctx, file, id, end);
      return { entry: { id: identifier, name: `gs://${bucket}/${name}` }, copied };
    } catch (e) {
      if (e instanceof RunAborted || ctx.shouldEnd()) return undefined;
      if (e instanceof CopyFailed) {
        // The bucket is gone or closed to this worker: no message of the unit can be copied.
        if (e.status === 401 || e.status === 403 || (e.status === 404 && /^writing/.test(e.message))) {
          throw new PermanentGmailError(`Cloud Storage bucket ${bucket} cannot be written: ${e.message}`, e.status);
        }
        // 412: another copy of this message was written meanwhile; compare again.
        if ((e.transient || e.status === 412) && attempt < TRIES) {
          await sleep(200 * attempt);
          continue;
        }
        return { entry: { id: identifier, name: '', attributes: { message: e.message } } };
      }
      const err = classify(e, `message ${id} of ${ctx.user}`);
      if (err instanceof PermanentGmailError && (err.status === 401 || err.status === 403)) throw err;
      if (err instanceof PermanentGmailError) return { entry: { id: identifier, name: '', attributes: { message: err.message } } };
      throw err;
    }
  }
}

async function run(ctx: UnitContext): Promise<UnitOutcome> {
  const results = new ResultStore(ctx.db);
  const limit = pLimit(CONCURRENCY);
  const named = namedOf(ctx);
  try {
    if (ctx.progress.checkpoint === null) {
      const next = cloneProgress(ctx.progress);
      next.checkpoint = listingCheckpoint(named);
      if (named) next.total = named.length;
      await saveProgress(ctx, next);
    }
    for (;;) {
      if (ctx.shouldEnd()) return { kind: 'interrupted' };
      const cp = ctx.progress.checkpoint as Checkpoint;
      if (cp.phase === 'done' || (cp.phase === 'fetching' && cp.items.length === 0)) {
        const p = ctx.progress;
        if (p.messageErrors.length > 0) {
          return { kind: 'failed', error: `${p.counts['errors'] ?? 0} messages could not be collected: ${p.messageErrors.slice(0, 5).join('; ')}` };
        }
        return { kind: 'finished' };
      }
      if (cp.phase === 'listing') {
        await listNextPage(ctx, cp);
        continue;
      }
      // Items are message ids when listed, identifiers as sent when named.
      const batch = cp.items.slice(cp.done, cp.done + BATCH).map((item) => {
        if (!named) return { identifier: encodeIdentifier({ task: ctx.task, address: ctx.user, messageId: item }), id: item };
        return { identifier: item, id: decodeIdentifier(item).messageId };
      });
      const got = await Promise.all(batch.map((m) => limit(() => (ctx.shouldEnd() ? undefined : collectOne(ctx, m.identifier, m.id)))));
      const cut = got.findIndex((g) => g === undefined);
      const ready = (cut === -1 ? got : got.slice(0, cut)) as { entry: ResultEntry; copied?: CopyResult }[];
      if (ready.length === 0) return { kind: 'interrupted' };
      const next = cloneProgress(ctx.progress);
      const first = next.messages;
      next.messages += ready.length;
      for (const r of ready) {
        const counter = r.copied?.copied ?? 'errors';
        next.counts[counter] = (next.counts[counter] ?? 0) + 1;
        if (r.copied) next.counts['attachments'] = (next.counts['attachments'] ?? 0) + r.copied.attachments;
        if (!r.copied) next.messageErrors.push(`${r.entry.attributes?.['message'] ?? 'failed'}`);
      }
      pastItems(next, cp, ready.length);
      const expireAt = ctx.expireWhileRunning();
      await saveProgress(ctx, next, (b) => results.write(b, ctx.token, ctx.index, first, ready.map((r) => r.entry), expireAt));
    }
  } catch (e) {
    if (e instanceof PermanentGmailError) return { kind: 'failed', error: e.message };
    if (e instanceof RunAborted) return { kind: 'interrupted' };
    throw e;
  }
}

export const collectAction: FetchActionSpec = {
  name: 'Collect',
  summary: 'copies each message, byte for byte as Gmail keeps it, to Cloud Storage (Destination=gs://bucket/prefix)',
  parameters: ['Destination', 'Identifiers', 'IdentifiersXML', 'CollectAttachments'],
  parse,
  units: 'identifiers',
  namedMailboxes,
  lock: false,
  coalesces: false,
  scopes: GMAIL_SCOPES,
  methods: ['messages.list', 'messages.get'],
  counters: ['collected', 'unchanged', 'attachments', 'errors'],
  run,
  results: 'tasks',
};
