// Cloud Storage emulator: the JSON API routes that @google-cloud/storage calls (buckets insert,
// get and delete; objects upload by media, multipart and resumable, get with alt=media and
// ranges, list with prefix, delimiter and paging, delete), with Google's error bodies. Object
// bytes live in files under a temporary folder, never in memory; an object becomes visible under
// its name only once its upload is complete, as in Cloud Storage. See README.md.
//
//   const storage = await startStorageEmulator({ buckets: ['archive'] });
//   // STORAGE_EMULATOR_HOST=storage.url for the functions; tests: createStorageClient(...)
//   await storage.close();

import { createHash, randomBytes, type Hash } from 'node:crypto';
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, mkdtemp, open, rename, rm, stat, unlink } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Crc32c } from './crc32c.js';

export interface StorageEmulatorOptions {
  /** Port to listen on; 0 (the default) picks a free one. */
  port?: number;
  /** Buckets that exist from the start. */
  buckets?: string[];
  /** Buckets that exist but refuse writes with 403 (as a bucket the caller may only read). */
  readOnlyBuckets?: string[];
}

export interface StoredObject {
  bucket: string;
  name: string;
  generation: string;
  size: number;
  md5Hash: string;
  crc32c: string;
  contentType: string;
  metadata?: Record<string, string>;
  timeCreated: string;
  /** The file holding the bytes. */
  path: string;
}

export interface StorageEmulator {
  /** `http://127.0.0.1:PORT` (what STORAGE_EMULATOR_HOST takes). */
  url: string;
  host: string;
  port: number;
  /** The temporary folder holding objects and upload sessions; removed by close(). */
  dir: string;
  createBucket(name: string): void;
  /** The visible objects of a bucket, by name. */
  objects(bucket: string): StoredObject[];
  /** How many upload requests are receiving bytes now (a media or multipart upload, or a resumable session's request). */
  uploadsInProgress(): number;
  /** How many resumable upload sessions were begun and not completed (Cloud Storage keeps them a week). */
  unfinishedSessions(): number;
  /** Fails the next `times` upload requests (any kind) with `status`. */
  injectFault(status: number, times?: number): void;
  close(): Promise<void>;
}

class ApiError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly reason: string,
  ) {
    super(message);
  }
}

const BUCKET_NAME = /^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$/;
const MAX_NAME_BYTES = 1024;
const PAGE_DEFAULT = 1000;

interface Bucket {
  name: string;
  timeCreated: string;
  readOnly: boolean;
  objects: Map<string, StoredObject>;
}

interface Session {
  id: string;
  bucket: string;
  name: string;
  contentType: string;
  metadata?: Record<string, string>;
  md5Hash?: string;
  crc32c?: string;
  preconditions: Preconditions;
  path: string;
  offset: number;
  done?: StoredObject;
  busy: boolean;
}

interface Preconditions {
  ifGenerationMatch?: string;
  ifGenerationNotMatch?: string;
}

function send(res: ServerResponse, status: number, body?: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const text = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, { ...(text ? { 'content-type': 'application/json; charset=UTF-8' } : {}), ...headers });
  res.end(text);
}

function sendError(res: ServerResponse, e: ApiError): void {
  send(res, e.code, { error: { code: e.code, message: e.message, errors: [{ message: e.message, domain: 'global', reason: e.reason }] } });
}

function preconditionsOf(q: URLSearchParams): Preconditions {
  const p: Preconditions = {};
  for (const k of ['ifGenerationMatch', 'ifGenerationNotMatch'] as const) {
    const v = q.get(k);
    if (v !== null) {
      if (!/^\d+$/.test(v)) throw new ApiError(400, `Invalid argument for ${k}: ${v}`, 'invalid');
      p[k] = v;
    }
  }
  return p;
}

function check(p: Preconditions, current: StoredObject | undefined): void {
  const gen = current?.generation ?? '0';
  if (p.ifGenerationMatch !== undefined && p.ifGenerationMatch !== gen) {
    throw new ApiError(412, 'At least one of the pre-conditions you specified did not hold.', 'conditionNotMet');
  }
  if (p.ifGenerationNotMatch !== undefined && p.ifGenerationNotMatch === gen) {
    throw new ApiError(304, 'Not modified', 'notModified');
  }
}

/** Hashes while writing to a file. */
class Sink {
  readonly md5: Hash = createHash('md5');
  readonly crc = new Crc32c();
  size = 0;
  private readonly out: WriteStream;
  constructor(readonly path: string, append = false) {
    this.out = createWriteStream(path, { flags: append ? 'a' : 'w' });
  }
  async write(chunk: Buffer): Promise<void> {
    this.md5.update(chunk);
    this.crc.update(chunk);
    this.size += chunk.length;
    if (!this.out.write(chunk)) await new Promise<void>((r) => this.out.once('drain', r));
  }
  end(): Promise<void> {
    return new Promise((res, rej) => {
      this.out.once('error', rej);
      this.out.end(() => res());
    });
  }
}

/** Hashes of a whole file (a resumable upload's bytes arrive over several requests). */
async function hashFile(path: string): Promise<{ md5: string; crc32c: string; size: number }> {
  const md5 = createHash('md5');
  const crc = new Crc32c();
  let size = 0;
  for await (const chunk of createReadStream(path)) {
    md5.update(chunk as Buffer);
    crc.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { md5: md5.digest('base64'), crc32c: crc.base64(), size };
}

/** The hashes an `X-Goog-Hash` header declares. */
function declaredHashes(req: IncomingMessage): { md5?: string; crc32c?: string } {
  const out: { md5?: string; crc32c?: string } = {};
  const raw = req.headers['x-goog-hash'];
  for (const part of (Array.isArray(raw) ? raw.join(',') : (raw ?? '')).split(',')) {
    const m = /^\s*(md5|crc32c)=(\S+)\s*$/.exec(part);
    if (m) out[m[1] as 'md5' | 'crc32c'] = m[2] as string;
  }
  return out;
}

function verify(got: { md5: string; crc32c: string }, want: { md5?: string; crc32c?: string }): void {
  if (want.crc32c !== undefined && want.crc32c !== got.crc32c) {
    throw new ApiError(400, `Provided CRC32C "${want.crc32c}" doesn't match calculated CRC32C "${got.crc32c}".`, 'invalid');
  }
  if (want.md5 !== undefined && want.md5 !== got.md5) {
    throw new ApiError(400, `Provided MD5 hash "${want.md5}" doesn't match calculated MD5 hash "${got.md5}".`, 'invalid');
  }
}

function metadataOf(o: StoredObject, base: string): Record<string, unknown> {
  const path = `${encodeURIComponent(o.bucket)}/o/${encodeURIComponent(o.name)}`;
  return {
    kind: 'storage#object',
    id: `${o.bucket}/${o.name}/${o.generation}`,
    selfLink: `${base}/storage/v1/b/${path}`,
    mediaLink: `${base}/download/storage/v1/b/${path}?generation=${o.generation}&alt=media`,
    name: o.name,
    bucket: o.bucket,
    generation: o.generation,
    metageneration: '1',
    contentType: o.contentType,
    storageClass: 'STANDARD',
    size: String(o.size),
    md5Hash: o.md5Hash,
    crc32c: o.crc32c,
    etag: Buffer.from(o.generation).toString('base64'),
    timeCreated: o.timeCreated,
    updated: o.timeCreated,
    timeStorageClassUpdated: o.timeCreated,
    ...(o.metadata ? { metadata: o.metadata } : {}),
  };
}

function checkName(name: string | undefined | null): string {
  if (!name) throw new ApiError(400, 'Required', 'required');
  if (Buffer.byteLength(name) > MAX_NAME_BYTES || /[\r\n]/.test(name) || name === '.' || name === '..') {
    throw new ApiError(400, `The specified object name is not valid.`, 'invalid');
  }
  return name;
}

async function readJson(req: IncomingMessage, limit = 1 << 20): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of req) {
    n += (c as Buffer).length;
    if (n > limit) throw new ApiError(413, 'Metadata part is too large.', 'uploadTooLarge');
    chunks.push(c as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (!text) return {};
  try {
    const v = JSON.parse(text) as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object');
    return v as Record<string, unknown>;
  } catch {
    throw new ApiError(400, 'Parse Error', 'parseError');
  }
}

function stringRecord(v: unknown): Record<string, string> | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  return Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, String(x)]));
}

export async function startStorageEmulator(opts: StorageEmulatorOptions = {}): Promise<StorageEmulator> {
  const dir = await mkdtemp(join(tmpdir(), 'storage-emulator-'));
  await mkdir(join(dir, 'objects'));
  await mkdir(join(dir, 'uploads'));
  const buckets = new Map<string, Bucket>();
  const sessions = new Map<string, Session>();
  const inFlight = new Set<string>();
  let faults: { status: number; times: number } = { status: 503, times: 0 };
  let generation = BigInt(Date.now()) * 1000n;
  const nextGeneration = () => String(++generation);
  const tempPath = (kind: 'objects' | 'uploads') => join(dir, kind, randomBytes(12).toString('hex'));
  let base = '';

  const addBucket = (name: string, readOnly = false) => {
    if (!BUCKET_NAME.test(name)) throw new ApiError(400, `Invalid bucket name: '${name}'`, 'invalid');
    if (buckets.has(name)) throw new ApiError(409, 'Your previous request to create the named bucket succeeded and you already own it.', 'conflict');
    buckets.set(name, { name, timeCreated: new Date().toISOString(), readOnly, objects: new Map() });
  };
  for (const b of opts.buckets ?? []) addBucket(b);
  for (const b of opts.readOnlyBuckets ?? []) addBucket(b, true);

  const bucketOf = (name: string): Bucket => {
    const b = buckets.get(name);
    if (!b) throw new ApiError(404, 'The specified bucket does not exist.', 'notFound');
    return b;
  };
  const writable = (name: string): Bucket => {
    const b = bucketOf(name);
    if (b.readOnly) throw new ApiError(403, `The caller does not have storage.objects.create access to the Google Cloud Storage object. Permission 'storage.objects.create' denied on resource (or it may not exist).`, 'forbidden');
    return b;
  };
  const objectOf = (bucket: string, name: string): StoredObject => {
    const o = bucketOf(bucket).objects.get(name);
    if (!o) throw new ApiError(404, `No such object: ${bucket}/${name}`, 'notFound');
    return o;
  };
  const bucketView = (b: Bucket) => ({
    kind: 'storage#bucket',
    id: b.name,
    selfLink: `${base}/storage/v1/b/${b.name}`,
    name: b.name,
    projectNumber: '0',
    metageneration: '1',
    location: 'US',
    storageClass: 'STANDARD',
    etag: 'CAE=',
    timeCreated: b.timeCreated,
    updated: b.timeCreated,
  });

  /** Makes a finished upload the object's current generation: the one moment it becomes visible. */
  async function publish(
    bucket: string,
    name: string,
    path: string,
    hashes: { md5: string; crc32c: string; size: number },
    meta: { contentType: string; metadata?: Record<string, string> | undefined; preconditions: Preconditions },
  ): Promise<StoredObject> {
    const b = writable(bucket);
    const old = b.objects.get(name);
    check(meta.preconditions, old);
    const final = tempPath('objects');
    await rename(path, final);
    const o: StoredObject = {
      bucket,
      name,
      generation: nextGeneration(),
      size: hashes.size,
      md5Hash: hashes.md5,
      crc32c: hashes.crc32c,
      contentType: meta.contentType,
      ...(meta.metadata ? { metadata: meta.metadata } : {}),
      timeCreated: new Date().toISOString(),
      path: final,
    };
    b.objects.set(name, o);
    if (old) await unlink(old.path).catch(() => {});
    return o;
  }

  /** Streams a request body into a temporary file; the file is removed if the body does not arrive whole. */
  async function receive(req: IncomingMessage, path: string, append = false, skip = 0): Promise<Sink> {
    const sink = new Sink(path, append);
    let toSkip = skip;
    try {
      for await (const c of req) {
        let chunk = c as Buffer;
        if (toSkip > 0) {
          const n = Math.min(toSkip, chunk.length);
          chunk = chunk.subarray(n);
          toSkip -= n;
        }
        if (chunk.length) await sink.write(chunk);
      }
    } finally {
      await sink.end();
    }
    if (!req.complete) throw new ApiError(400, 'The request body was cut off.', 'badRequest');
    return sink;
  }

  async function mediaUpload(req: IncomingMessage, res: ServerResponse, bucket: string, q: URLSearchParams): Promise<void> {
    const name = checkName(q.get('name'));
    const preconditions = preconditionsOf(q);
    writable(bucket);
    check(preconditions, buckets.get(bucket)?.objects.get(name));
    const path = tempPath('uploads');
    inFlight.add(path);
    try {
      const sink = await receive(req, path);
      const hashes = { md5: sink.md5.digest('base64'), crc32c: sink.crc.base64(), size: sink.size };
      verify(hashes, declaredHashes(req));
      const o = await publish(bucket, name, path, hashes, { contentType: String(req.headers['content-type'] ?? 'application/octet-stream'), preconditions });
      send(res, 200, metadataOf(o, base));
    } finally {
      inFlight.delete(path);
      await rm(path, { force: true });
    }
  }

  /** multipart/related: a JSON metadata part, then the media part, streamed to a file (the closing delimiter held back). */
  async function multipartUpload(req: IncomingMessage, res: ServerResponse, bucket: string, q: URLSearchParams): Promise<void> {
    const type = String(req.headers['content-type'] ?? '');
    const m = /boundary="?([^";]+)"?/i.exec(type);
    if (!/^multipart\/related/i.test(type) || !m) throw new ApiError(400, 'Invalid multipart request with 0 mime parts.', 'invalid');
    const boundary = m[1] as string;
    writable(bucket);
    const path = tempPath('uploads');
    inFlight.add(path);
    try {
      let head = Buffer.alloc(0);
      let meta: Record<string, unknown> | undefined;
      let mediaType = 'application/octet-stream';
      let sink: Sink | undefined;
      let tail = Buffer.alloc(0);
      const closing = Buffer.from(`\r\n--${boundary}--`);
      const keep = closing.length + 4;
      for await (const c of req) {
        const chunk = c as Buffer;
        if (!sink) {
          head = Buffer.concat([head, chunk]);
          if (head.length > 2 << 20) throw new ApiError(400, 'Metadata part is too large.', 'invalid');
          // Needs: --b CRLF headers CRLF CRLF json CRLF --b CRLF headers CRLF CRLF
          const delim = Buffer.from(`--${boundary}`);
          const p1 = head.indexOf(delim);
          if (p1 < 0) continue;
          const h1 = head.indexOf('\r\n\r\n', p1);
          if (h1 < 0) continue;
          const p2 = head.indexOf(Buffer.from(`\r\n--${boundary}`), h1);
          if (p2 < 0) continue;
          const h2 = head.indexOf('\r\n\r\n', p2 + 2);
          if (h2 < 0) continue;
          try {
            meta = JSON.parse(head.subarray(h1 + 4, p2).toString('utf8')) as Record<string, unknown>;
          } catch {
            throw new ApiError(400, 'Parse Error', 'parseError');
          }
          const partHeaders = head.subarray(p2, h2).toString('utf8');
          mediaType = /content-type:\s*([^\r\n]+)/i.exec(partHeaders)?.[1]?.trim() ?? mediaType;
          sink = new Sink(path);
          tail = head.subarray(h2 + 4);
          head = Buffer.alloc(0);
        } else {
          tail = Buffer.concat([tail, chunk]);
        }
        if (tail.length > keep) {
          await sink.write(tail.subarray(0, tail.length - keep));
          tail = Buffer.from(tail.subarray(tail.length - keep));
        }
      }
      if (!req.complete) throw new ApiError(400, 'The request body was cut off.', 'badRequest');
      if (!sink || !meta) throw new ApiError(400, 'Invalid multipart request with 0 mime parts.', 'invalid');
      const end = tail.lastIndexOf(closing);
      if (end < 0) {
        await sink.end();
        throw new ApiError(400, 'Invalid multipart request: missing closing delimiter.', 'invalid');
      }
      await sink.write(tail.subarray(0, end));
      await sink.end();
      const hashes = { md5: sink.md5.digest('base64'), crc32c: sink.crc.base64(), size: sink.size };
      verify(hashes, { ...(typeof meta['md5Hash'] === 'string' ? { md5: meta['md5Hash'] } : {}), ...(typeof meta['crc32c'] === 'string' ? { crc32c: meta['crc32c'] } : {}), ...declaredHashes(req) });
      const name = checkName(typeof meta['name'] === 'string' ? meta['name'] : q.get('name'));
      const o = await publish(bucket, name, path, hashes, {
        contentType: typeof meta['contentType'] === 'string' ? meta['contentType'] : mediaType,
        metadata: stringRecord(meta['metadata']),
        preconditions: preconditionsOf(q),
      });
      send(res, 200, metadataOf(o, base));
    } finally {
      inFlight.delete(path);
      await rm(path, { force: true });
    }
  }

  async function startResumable(req: IncomingMessage, res: ServerResponse, bucket: string, q: URLSearchParams): Promise<void> {
    const meta = await readJson(req);
    const name = checkName(typeof meta['name'] === 'string' ? meta['name'] : q.get('name'));
    const preconditions = preconditionsOf(q);
    writable(bucket);
    check(preconditions, buckets.get(bucket)?.objects.get(name));
    const id = randomBytes(16).toString('base64url');
    const path = tempPath('uploads');
    await open(path, 'w').then((f) => f.close());
    sessions.set(id, {
      id,
      bucket,
      name,
      contentType: typeof meta['contentType'] === 'string' ? meta['contentType'] : String(req.headers['x-upload-content-type'] ?? 'application/octet-stream'),
      ...(stringRecord(meta['metadata']) ? { metadata: stringRecord(meta['metadata']) } : {}),
      ...(typeof meta['md5Hash'] === 'string' ? { md5Hash: meta['md5Hash'] } : {}),
      ...(typeof meta['crc32c'] === 'string' ? { crc32c: meta['crc32c'] } : {}),
      preconditions,
      path,
      offset: 0,
      busy: false,
    });
    const location = `${base}/upload/storage/v1/b/${encodeURIComponent(bucket)}/o?uploadType=resumable&name=${encodeURIComponent(name)}&upload_id=${id}`;
    send(res, 200, undefined, { location, 'x-guploader-uploadid': id });
  }

  const incomplete = (res: ServerResponse, s: Session) => send(res, 308, undefined, s.offset > 0 ? { range: `bytes=0-${s.offset - 1}` } : {});

  async function continueResumable(req: IncomingMessage, res: ServerResponse, id: string): Promise<void> {
    const s = sessions.get(id);
    if (!s) throw new ApiError(404, 'No such upload session.', 'notFound');
    if (s.done) {
      req.resume();
      send(res, 200, metadataOf(s.done, base));
      return;
    }
    // A request that was cut off may still be settling: wait for it, as a new request supersedes it.
    for (let i = 0; s.busy && i < 200; i++) await new Promise((r) => setTimeout(r, 25));
    if (s.busy) throw new ApiError(409, 'Another request is writing to this upload session.', 'conflict');
    const range = String(req.headers['content-range'] ?? '');
    let start = 0;
    let total: number | undefined;
    let hasBody = true;
    // `bytes */*`: a status query; `bytes S-E/T`: a chunk; `bytes S-*/*`: the rest, ending with this request.
    let endsHere = !range;
    const m = /^bytes (?:(\d+)-(\d+|\*)|\*)\/(\d+|\*)$/.exec(range.trim());
    if (range) {
      if (!m) throw new ApiError(400, `Invalid Content-Range: ${range}`, 'invalid');
      if (m[3] !== '*') total = Number(m[3]);
      if (m[1] === undefined) hasBody = false;
      else start = Number(m[1]);
      if (m[2] === '*' && m[3] === '*') endsHere = true;
    } else {
      total = undefined; // the whole object in this one request
    }
    if (!hasBody) {
      req.resume();
      if (total !== undefined && total === s.offset) {
        await finish(res, s, req);
        return;
      }
      incomplete(res, s);
      return;
    }
    if (start > s.offset) throw new ApiError(400, `Invalid request. According to the Content-Range header, the upload offset is ${start} byte(s), which exceeds already uploaded size of ${s.offset} byte(s).`, 'invalid');
    s.busy = true;
    try {
      let sink: Sink | undefined;
      try {
        sink = await receive(req, s.path, true, s.offset - start);
      } finally {
        // Whatever arrived is kept, as Cloud Storage persists what it received of an interrupted request.
        s.offset = (await stat(s.path)).size;
      }
      void sink;
      if (endsHere) total = s.offset;
      if (total !== undefined && s.offset > total) throw new ApiError(400, 'The upload is larger than the declared total.', 'invalid');
      if (total !== undefined && s.offset === total) await finish(res, s, req);
      else incomplete(res, s);
    } finally {
      s.busy = false;
    }
  }

  async function finish(res: ServerResponse, s: Session, req: IncomingMessage): Promise<void> {
    const hashes = await hashFile(s.path);
    try {
      verify(hashes, { ...(s.md5Hash ? { md5: s.md5Hash } : {}), ...(s.crc32c ? { crc32c: s.crc32c } : {}), ...declaredHashes(req) });
    } catch (e) {
      sessions.delete(s.id);
      await rm(s.path, { force: true });
      throw e;
    }
    try {
      s.done = await publish(s.bucket, s.name, s.path, hashes, { contentType: s.contentType, metadata: s.metadata, preconditions: s.preconditions });
    } catch (e) {
      sessions.delete(s.id);
      await rm(s.path, { force: true });
      throw e;
    }
    send(res, 200, metadataOf(s.done, base));
  }

  async function download(req: IncomingMessage, res: ServerResponse, o: StoredObject): Promise<void> {
    const headers: Record<string, string> = {
      'content-type': o.contentType,
      'x-goog-hash': `crc32c=${o.crc32c},md5=${o.md5Hash}`,
      'x-goog-generation': o.generation,
      'x-goog-metageneration': '1',
      'x-goog-stored-content-length': String(o.size),
      'x-goog-stored-content-encoding': 'identity',
      'accept-ranges': 'bytes',
      etag: `"${o.md5Hash}"`,
    };
    const range = /^bytes=(\d*)-(\d*)$/.exec(String(req.headers['range'] ?? '').trim());
    let start = 0;
    let end = o.size - 1;
    let status = 200;
    if (range && (range[1] || range[2])) {
      if (range[1]) {
        start = Number(range[1]);
        if (range[2]) end = Math.min(end, Number(range[2]));
      } else {
        start = Math.max(0, o.size - Number(range[2]));
      }
      if (start >= o.size || start > end) {
        send(res, 416, { error: { code: 416, message: 'The requested range cannot be satisfied.', errors: [{ message: 'Request range not satisfiable', domain: 'global', reason: 'requestedRangeNotSatisfiable' }] } }, { 'content-range': `bytes */${o.size}` });
        return;
      }
      status = 206;
      headers['content-range'] = `bytes ${start}-${end}/${o.size}`;
      delete headers['x-goog-hash'];
    }
    headers['content-length'] = String(Math.max(0, end - start + 1));
    res.writeHead(status, headers);
    if (req.method === 'HEAD' || o.size === 0) {
      res.end();
      return;
    }
    const stream = createReadStream(o.path, { start, end });
    stream.on('error', () => res.destroy());
    stream.pipe(res);
  }

  function list(res: ServerResponse, bucket: string, q: URLSearchParams): void {
    const b = bucketOf(bucket);
    const prefix = q.get('prefix') ?? '';
    const delimiter = q.get('delimiter') ?? '';
    const max = Math.max(1, Math.min(PAGE_DEFAULT, Number(q.get('maxResults') ?? PAGE_DEFAULT) || PAGE_DEFAULT));
    const after = q.get('pageToken') ? Buffer.from(q.get('pageToken') as string, 'base64url').toString('utf8') : '';
    const names = [...b.objects.keys()].filter((n) => n.startsWith(prefix) && n > after).sort();
    const items: StoredObject[] = [];
    const prefixes: string[] = [];
    let last = '';
    for (const n of names) {
      if (items.length + prefixes.length >= max) {
        send(res, 200, { kind: 'storage#objects', items: items.map((o) => metadataOf(o, base)), prefixes, nextPageToken: Buffer.from(last).toString('base64url') });
        return;
      }
      if (delimiter) {
        const cut = n.indexOf(delimiter, prefix.length);
        if (cut >= 0) {
          const p = n.slice(0, cut + delimiter.length);
          if (prefixes[prefixes.length - 1] !== p) prefixes.push(p);
          // Every name under this prefix is one entry: skip past them all.
          last = `${p}\u{10FFFF}`;
          continue;
        }
      }
      items.push(b.objects.get(n) as StoredObject);
      last = n;
    }
    // Entries collapsed into a prefix after `last` were skipped by `n > after` on the next page.
    send(res, 200, { kind: 'storage#objects', ...(items.length ? { items: items.map((o) => metadataOf(o, base)) } : {}), ...(prefixes.length ? { prefixes } : {}) });
  }

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const q = url.searchParams;
    const method = req.method ?? 'GET';
    const auth = String(req.headers['authorization'] ?? '');
    if (!/^Bearer\s+\S+/i.test(auth)) {
      req.resume();
      throw new ApiError(401, 'Anonymous caller does not have storage.objects.get access to the Google Cloud Storage object. Permission denied.', 'required');
    }
    // With STORAGE_EMULATOR_HOST in its environment the client leaves out `/storage/v1`: serve both.
    const path = /^\/b(\/|$)/.test(url.pathname) ? `/storage/v1${url.pathname}` : url.pathname;
    let m: RegExpExecArray | null;
    if ((m = /^\/upload\/storage\/v1\/b\/([^/]+)\/o$/.exec(path))) {
      const bucket = decodeURIComponent(m[1] as string);
      if (faults.times > 0) {
        faults.times--;
        req.resume();
        throw new ApiError(faults.status, 'Injected fault.', 'backendError');
      }
      const id = q.get('upload_id');
      if (id && method === 'PUT') return continueResumable(req, res, id);
      if (id && method === 'DELETE') {
        const s = sessions.get(id);
        sessions.delete(id);
        if (s) await rm(s.path, { force: true });
        send(res, 499, undefined);
        return;
      }
      if (method !== 'POST') throw new ApiError(405, 'Method not allowed.', 'methodNotAllowed');
      const type = q.get('uploadType');
      if (type === 'media') return mediaUpload(req, res, bucket, q);
      if (type === 'multipart') return multipartUpload(req, res, bucket, q);
      if (type === 'resumable') return startResumable(req, res, bucket, q);
      throw new ApiError(400, `Invalid upload type: ${String(type)}`, 'invalid');
    }
    if (path === '/storage/v1/b' && method === 'POST') {
      const body = await readJson(req);
      if (!q.get('project')) throw new ApiError(400, 'Required parameter: project', 'required');
      const name = String(body['name'] ?? '');
      addBucket(name);
      send(res, 200, bucketView(bucketOf(name)));
      return;
    }
    if ((m = /^\/storage\/v1\/b\/([^/]+)$/.exec(path))) {
      const name = decodeURIComponent(m[1] as string);
      req.resume();
      if (method === 'GET') return send(res, 200, bucketView(bucketOf(name)));
      if (method === 'DELETE') {
        if (bucketOf(name).objects.size) throw new ApiError(409, 'The bucket you tried to delete is not empty.', 'conflict');
        buckets.delete(name);
        return send(res, 204);
      }
      throw new ApiError(405, 'Method not allowed.', 'methodNotAllowed');
    }
    if ((m = /^\/storage\/v1\/b\/([^/]+)\/o$/.exec(path)) && method === 'GET') {
      req.resume();
      return list(res, decodeURIComponent(m[1] as string), q);
    }
    if ((m = /^\/(?:download\/)?storage\/v1\/b\/([^/]+)\/o\/(.+)$/.exec(path))) {
      req.resume();
      const bucket = decodeURIComponent(m[1] as string);
      const name = decodeURIComponent(m[2] as string);
      const o = objectOf(bucket, name);
      const gen = q.get('generation');
      if (gen !== null && gen !== o.generation) throw new ApiError(404, `No such object: ${bucket}/${name}`, 'notFound');
      check(preconditionsOf(q), o);
      if (method === 'DELETE') {
        writable(bucket);
        bucketOf(bucket).objects.delete(name);
        await unlink(o.path).catch(() => {});
        return send(res, 204);
      }
      if (method !== 'GET' && method !== 'HEAD') throw new ApiError(405, 'Method not allowed.', 'methodNotAllowed');
      if (q.get('alt') === 'media') return download(req, res, o);
      return send(res, 200, metadataOf(o, base));
    }
    req.resume();
    throw new ApiError(404, 'Not Found', 'notFound');
  }

  const server: Server = createServer((req, res) => {
    route(req, res).catch((e: unknown) => {
      if (e instanceof ApiError) sendError(res, e);
      else sendError(res, new ApiError(500, e instanceof Error ? e.message : String(e), 'backendError'));
    });
  });
  await new Promise<void>((res, rej) => {
    server.once('error', rej);
    server.listen(opts.port ?? 0, '127.0.0.1', () => res());
  });
  const port = (server.address() as AddressInfo).port;
  base = `http://127.0.0.1:${port}`;
  return {
    url: base,
    host: `127.0.0.1:${port}`,
    port,
    dir,
    createBucket: (name) => addBucket(name),
    objects: (bucket) => [...bucketOf(bucket).objects.values()].sort((a, b) => (a.name < b.name ? -1 : 1)),
    uploadsInProgress: () => inFlight.size + [...sessions.values()].filter((s) => s.busy).length,
    unfinishedSessions: () => [...sessions.values()].filter((s) => !s.done).length,
    injectFault(status, times = 1) {
      faults = { status, times };
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      await rm(dir, { recursive: true, force: true });
    },
  };
}
