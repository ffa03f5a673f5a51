/**
 * The Cloud Storage emulator through the real @google-cloud/storage client, as the functions use
 * it: buckets, the three upload kinds with their checksums, downloads with ranges, listing with
 * prefix, delimiter and pages, deletes, preconditions, Google's error bodies, the bearer token,
 * and a resumable upload interrupted and then resumed.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import type { Storage } from '@google-cloud/storage';
import { createStorageClient } from '../../functions/src/storage/client.js';
import { startStorageEmulator, type StorageEmulator } from './storage/index.js';

let emulator: StorageEmulator;
let storage: Storage;

before(async () => {
  emulator = await startStorageEmulator({ buckets: ['archive'], readOnlyBuckets: ['read-only'] });
  storage = createStorageClient({ project: 'storage-test', emulatorHost: emulator.host, timeoutMs: 10_000 });
});

after(async () => {
  await emulator?.close();
});

const statusOf = (e: unknown) => (e as { code?: number }).code;

describe('Cloud Storage emulator', () => {
  it('creates and reads buckets; a second bucket of the same name is 409, an unknown one 404', async () => {
    const [b] = await storage.createBucket('fresh-bucket');
    assert.equal(b.name, 'fresh-bucket');
    assert.equal((await storage.bucket('fresh-bucket').exists())[0], true);
    assert.equal((await storage.bucket('no-such-bucket').exists())[0], false);
    await assert.rejects(storage.createBucket('fresh-bucket'), (e) => statusOf(e) === 409);
    await assert.rejects(storage.bucket('no-such-bucket').getMetadata(), (e) => statusOf(e) === 404 && /bucket does not exist/.test((e as Error).message));
  });

  it('stores media, multipart and resumable uploads byte for byte, with the hashes the client checks', async () => {
    const body = randomBytes(700_000);
    const bucket = storage.bucket('archive');
    await bucket.file('m/simple.bin').save(body, { resumable: false, validation: 'crc32c' });
    await bucket.file('m/resumable.bin').save(body, { resumable: true, validation: 'md5' });
    for (const name of ['m/simple.bin', 'm/resumable.bin']) {
      const [got] = await bucket.file(name).download();
      assert.ok(got.equals(body), name);
      const [meta] = await bucket.file(name).getMetadata();
      assert.equal(meta.size, String(body.length));
    }
    // A ranged read.
    const [part] = await bucket.file('m/simple.bin').download({ start: 10, end: 19 });
    assert.ok(part.equals(body.subarray(10, 20)));
    // Uploads by media, with a declared hash that does not match: refused, nothing stored.
    const url = `${emulator.url}/upload/storage/v1/b/archive/o?uploadType=media&name=m%2Fbad.bin`;
    const bad = await fetch(url, { method: 'POST', body: 'abc', headers: { authorization: 'Bearer owner', 'x-goog-hash': 'crc32c=AAAAAA==' }, signal: AbortSignal.timeout(5000) });
    assert.equal(bad.status, 400);
    assert.match(((await bad.json()) as { error: { message: string } }).error.message, /CRC32C/);
    assert.equal((await bucket.file('m/bad.bin').exists())[0], false);
    const good = await fetch(url.replace('bad', 'good'), { method: 'POST', body: '123456789', headers: { authorization: 'Bearer owner', 'x-goog-hash': 'crc32c=4waSgw==' }, signal: AbortSignal.timeout(5000) });
    assert.equal(good.status, 200, await good.text());
  });

  it('lists with prefix, delimiter and pages', async () => {
    const bucket = storage.bucket('archive');
    for (const n of ['l/a/1', 'l/a/2', 'l/b/1', 'l/c', 'l/d', 'l/e']) await bucket.file(n).save(n, { resumable: false });
    const [all] = await bucket.getFiles({ prefix: 'l/' });
    assert.deepEqual(all.map((f) => f.name), ['l/a/1', 'l/a/2', 'l/b/1', 'l/c', 'l/d', 'l/e']);
    const names: string[] = [];
    let query: { prefix: string; maxResults: number; autoPaginate: false; pageToken?: string } | null = { prefix: 'l/', maxResults: 2, autoPaginate: false };
    let pages = 0;
    while (query) {
      const res = await bucket.getFiles(query);
      names.push(...res[0].map((f) => f.name));
      pages++;
      const next = res[1] as { pageToken?: string } | null;
      query = next?.pageToken ? { prefix: 'l/', maxResults: 2, autoPaginate: false, pageToken: next.pageToken } : null;
    }
    assert.deepEqual(names, all.map((f) => f.name));
    assert.equal(pages, 3);
    const [files, , raw] = await bucket.getFiles({ prefix: 'l/', delimiter: '/', autoPaginate: false });
    assert.deepEqual(files.map((f) => f.name), ['l/c', 'l/d', 'l/e']);
    assert.deepEqual((raw as { prefixes?: string[] }).prefixes, ['l/a/', 'l/b/']);
  });

  it('deletes; honours generation preconditions; answers Google error bodies', async () => {
    const file = storage.bucket('archive').file('p/x');
    await file.save('one', { resumable: false, preconditionOpts: { ifGenerationMatch: 0 } });
    await assert.rejects(file.save('two', { resumable: false, preconditionOpts: { ifGenerationMatch: 0 } }), (e) => statusOf(e) === 412);
    const [meta] = await file.getMetadata();
    await file.save('two', { resumable: false, preconditionOpts: { ifGenerationMatch: Number(meta.generation) } });
    assert.equal((await file.download())[0].toString(), 'two');
    await file.delete();
    await assert.rejects(file.getMetadata(), (e) => statusOf(e) === 404 && /No such object: archive\/p\/x/.test((e as Error).message));
    await assert.rejects(storage.bucket('read-only').file('x').save('y', { resumable: false }), (e) => statusOf(e) === 403);
  });

  it('refuses calls without a bearer token', async () => {
    const r = await fetch(`${emulator.url}/storage/v1/b/archive`, { signal: AbortSignal.timeout(5000) });
    assert.equal(r.status, 401);
    const body = (await r.json()) as { error: { code: number; errors: { reason: string }[] } };
    assert.equal(body.error.code, 401);
    assert.equal(body.error.errors[0]?.reason, 'required');
  });

  it('resumes an interrupted resumable upload; nothing is visible before the last byte', async () => {
    const body = randomBytes(1_500_000);
    const file = storage.bucket('archive').file('r/resumed.bin');
    const [uri] = await file.createResumableUpload({ metadata: { contentType: 'application/octet-stream' } });
    // Half the bytes arrive, then the connection drops.
    const cut = 600_000;
    await new Promise<void>((res) => {
      const req = request(uri, { method: 'PUT', headers: { authorization: 'Bearer owner', 'content-range': `bytes 0-${body.length - 1}/${body.length}` } });
      req.on('error', () => res());
      req.write(body.subarray(0, cut), () => setTimeout(() => {
        req.destroy();
        res();
      }, 200));
    });
    assert.equal((await file.exists())[0], false);
    const status = await fetch(uri, { method: 'PUT', headers: { authorization: 'Bearer owner', 'content-range': `bytes */${body.length}` }, signal: AbortSignal.timeout(5000) });
    assert.equal(status.status, 308);
    const received = Number(/bytes=0-(\d+)/.exec(status.headers.get('range') ?? '')?.[1] ?? -1) + 1;
    assert.ok(received > 0 && received <= cut, `received ${received}`);
    // The client asks where the upload stands and sends the rest.
    await new Promise<void>((res, rej) => {
      const out = file.createWriteStream({ uri, resumable: true, validation: false });
      out.on('error', rej).on('finish', () => res());
      out.end(body);
    });
    const [got] = await file.download();
    assert.ok(got.equals(body));
    assert.equal(emulator.unfinishedSessions(), 0);
  });
});
