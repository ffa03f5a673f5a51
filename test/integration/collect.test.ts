/**
 * FetchAction=Collect end to end, into the Cloud Storage emulator: a 1,000-message mailbox
 * copied object for object, byte for byte as the Gmail emulator serves it raw; Identifiers and
 * their results; what is already there is not written again; bad input is a 400 that writes
 * nothing; and Stop, Cancel and a killed worker during a Collect leave no partial object visible.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { simpleParser } from 'mailparser';
import pLimit from 'p-limit';
import { encodeIdentifier } from '../../functions/src/aci/identifiers.js';
import { testGmail } from '../support/gmail.js';
import { writeMailbox } from '../support/mail.js';
import { startTestStack, type TestStack } from '../support/stack.js';

type Json = Record<string, unknown>;
const BULK = 'bulk@collect.example';
const ANN = 'ann@collect.example';
const BIG = 'big@collect.example';
const ATT = 'att@collect.example';
const BUCKET = 'collect-archive';

/** Adds `<address>.mbox` to `dir`: `count` messages of about `size` bytes of base64 text each. */
function writeLargeMailbox(dir: string, address: string, count: number, size: number): void {
  const parts: string[] = [];
  for (let i = 0; i < count; i++) {
    const date = new Date(Date.UTC(2025, 1, 1) + i * 60_000);
    const body = (randomBytes(Math.ceil((size * 3) / 4)).toString('base64').match(/.{1,76}/g) ?? []).join('\n');
    parts.push(
      [
        `From 1790000000000${String(i).padStart(6, '0')}@xxx ${date.toUTCString().replace(/^(\w+), (\d+) (\w+) (\d+) ([\d:]+) GMT$/, '$1 $3 $2 $5 +0000 $4')}`,
        `X-GM-THRID: ${(1790000000000000000n + BigInt(i)).toString()}`,
        'X-Gmail-Labels: Inbox',
        `Message-ID: <large${i}@test.example.com>`,
        `Date: ${date.toUTCString()}`,
        'From: sender@example.org',
        `To: ${address}`,
        `Subject: Large ${i}`,
        'MIME-Version: 1.0',
        'Content-Type: application/octet-stream',
        'Content-Transfer-Encoding: base64',
        '',
        body,
        '',
      ].join('\n'),
    );
  }
  writeFileSync(join(dir, `${address}.mbox`), parts.join('\n'));
}

/** The attachments each message of writeAttachmentMailbox carries: the name it is sent with, the object name it must get, its bytes. */
function attachmentsOf(i: number): { sent: string; header: string; stored: string; bytes: Buffer; type: string }[] {
  const bytes = (k: number, n: number) => Buffer.from(Array.from({ length: n }, (_, j) => (j * 31 + k * 7 + i) % 256));
  return [
    { sent: 'report.pdf', header: 'filename="report.pdf"', stored: 'report.pdf', bytes: bytes(1, 70_000), type: 'application/pdf' },
    // The same name twice: the second gets " (2)".
    { sent: 'report.pdf', header: 'filename="report.pdf"', stored: 'report (2).pdf', bytes: bytes(2, 3000), type: 'application/pdf' },
    // A path in the name: never leaves the message's folder.
    { sent: '../../etc/passwd', header: 'filename="../../etc/passwd"', stored: '_.._etc_passwd', bytes: bytes(3, 100), type: 'text/plain' },
    // An RFC 2231 encoded UTF-8 name.
    { sent: 'Résumé ü.txt', header: `filename*=UTF-8''${encodeURIComponent('Résumé ü.txt')}`, stored: 'Résumé ü.txt', bytes: bytes(4, 512), type: 'text/plain' },
    // No name at all.
    { sent: '', header: '', stored: 'attachment-5', bytes: bytes(5, 2048), type: 'application/octet-stream' },
  ];
}

/** Adds `<address>.mbox` to `dir`: `count` multipart messages, each with the attachments of attachmentsOf. */
function writeAttachmentMailbox(dir: string, address: string, count: number): void {
  const parts: string[] = [];
  for (let i = 0; i < count; i++) {
    const date = new Date(Date.UTC(2025, 2, 1) + i * 60_000);
    const lines = [
      `From 1791000000000${String(i).padStart(6, '0')}@xxx ${date.toUTCString().replace(/^(\w+), (\d+) (\w+) (\d+) ([\d:]+) GMT$/, '$1 $3 $2 $5 +0000 $4')}`,
      `X-GM-THRID: ${(1791000000000000000n + BigInt(i)).toString()}`,
      'X-Gmail-Labels: Inbox',
      `Message-ID: <att${i}@test.example.com>`,
      `Date: ${date.toUTCString()}`,
      'From: sender@example.org',
      `To: ${address}`,
      `Subject: With attachments ${i}`,
      'MIME-Version: 1.0',
      'Content-Type: multipart/mixed; boundary="b-outer"',
      '',
      '--b-outer',
      'Content-Type: text/plain; charset=utf-8',
      '',
      `Body of message ${i}.`,
    ];
    for (const a of attachmentsOf(i)) {
      lines.push('--b-outer', `Content-Type: ${a.type}${a.sent && !a.header.includes('*') ? `; name="${a.sent}"` : ''}`, `Content-Disposition: attachment${a.header ? `; ${a.header}` : ''}`, 'Content-Transfer-Encoding: base64', '');
      lines.push(...(a.bytes.toString('base64').match(/.{1,76}/g) ?? []));
    }
    lines.push('--b-outer--', '');
    parts.push(lines.join('\n'));
  }
  writeFileSync(join(dir, `${address}.mbox`), parts.join('\n'));
}

function dataOf(r: { json: unknown }): Json {
  return ((r.json as Json).autnresponse as Json).responsedata as Json;
}

/** Every visible object under `prefix` must be exactly its message's raw bytes; returns how many. */
async function checkObjects(stack: TestStack, prefix: string, address: string): Promise<number> {
  const g = testGmail(stack.gmail.url);
  const base = `${prefix}/${address}/`;
  // The messages' own objects (attachments are one folder further down).
  const objects = stack.storage.objects(BUCKET).filter((o) => o.name.startsWith(base) && !o.name.slice(base.length).includes('/'));
  const limit = pLimit(32);
  await Promise.all(
    objects.map((o) =>
      limit(async () => {
        const id = o.name.slice(`${prefix}/${address}/`.length).replace(/\.eml$/, '');
        const res = await g.users.messages.get({ userId: address, id, format: 'raw' });
        const raw = Buffer.from(res.data.raw ?? '', 'base64url');
        const got = readFileSync(o.path);
        assert.ok(raw.length > 0 && got.equals(raw), `${o.name}: ${got.length} bytes, Gmail's raw has ${raw.length}`);
        assert.equal(o.contentType, 'message/rfc822');
      }),
    ),
  );
  return objects.length;
}

async function collect(stack: TestStack, params: Record<string, string>): Promise<string> {
  const r = await stack.aci({ action: 'Fetch', FetchAction: 'Collect', ...params });
  assert.equal(r.status, 200, r.text);
  return dataOf(r).token as string;
}

async function statusOf(stack: TestStack, token: string, extra: Record<string, string> = {}): Promise<Json> {
  const r = await stack.aci({ action: 'QueueInfo', QueueName: 'fetch', QueueAction: 'GetStatus', Token: token, ...extra });
  assert.equal(r.status, 200, r.text);
  return ((dataOf(r).actions as Json).action as Json[])[0] as Json;
}

const list = (v: unknown): unknown[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

describe('FetchAction=Collect', () => {
  let stack: TestStack;
  const COUNT = 16;

  before(async () => {
    const { dir } = writeMailbox(BULK, 1000, { prefix: 'k' });
    writeMailbox(ANN, 12, { dir, prefix: 'a' });
    writeLargeMailbox(dir, BIG, COUNT, 1_500_000);
    writeAttachmentMailbox(dir, ATT, 6);
    // The worker runs as a child process, so that the last test can kill it.
    stack = await startTestStack({
      mailDir: dir,
      collectBuckets: [BUCKET, 'other-bucket'],
      workerProcess: true,
      env: { WORKER_LEASE_S: '2' },
      connector: {
        gmail: { quotaUnitsPerUserPerMinute: 1_000_000 },
        tasks: { BULK: { users: [BULK] }, ANN: { users: [ANN] }, BIG: { users: [BIG] }, ATT: { users: [ATT] } },
      },
    });
  });

  after(async () => {
    await stack?.close();
  });

  it('copies every message of a 1,000-message mailbox, byte for byte as Gmail serves it raw', async () => {
    const token = await collect(stack, { TaskSections: 'bulk', Destination: `gs://${BUCKET}/run1/` });
    const a = await stack.waitFor(token, ['Finished', 'Error'], 180_000);
    assert.equal(a.status, 'Finished', a.error ?? '');
    const view = await statusOf(stack, token, { MaxResults: '1000' });
    assert.equal(view.fetchaction, 'COLLECT');
    assert.deepEqual((view.documentcounts as Json).documentcount, [{ '@task': 'BULK', '@collected': '1000', '@unchanged': '0', '@attachments': '0', '@errors': '0' }]);
    assert.equal(list((view.tasks as Json).success).length, 1000);
    assert.equal(list((view.tasks as Json).failed).length, 0);
    assert.equal(await checkObjects(stack, 'run1', BULK), 1000);
  });

  it('collects what Identifiers name, reports each, and does not rewrite an object already there', async () => {
    const g = testGmail(stack.gmail.url);
    const listed = await g.users.messages.list({ userId: ANN, maxResults: 500 });
    const ids = (listed.data.messages ?? []).map((m) => m.id as string).slice(0, 5);
    const identifiers = ids.map((messageId) => encodeIdentifier({ task: 'ANN', address: ANN, messageId }));
    const missing = encodeIdentifier({ task: 'ANN', address: ANN, messageId: 'ffffffffffff0000' });
    const token = await collect(stack, { Identifiers: [...identifiers, missing].join(','), Destination: `gs://${BUCKET}/ids` });
    const a = await stack.waitFor(token, ['Finished', 'Error'], 60_000);
    assert.equal(a.status, 'Error');
    const view = await statusOf(stack, token);
    assert.deepEqual(list((view.tasks as Json).success), identifiers);
    const failed = list((view.tasks as Json).failed) as Json[];
    assert.equal(failed.length, 1);
    assert.equal(failed[0]?.$, missing);
    assert.match(String(failed[0]?.['@message']), /not found|404/i);
    assert.equal(await checkObjects(stack, 'ids', ANN), 5);
    const generations = new Map(stack.storage.objects(BUCKET).map((o) => [o.name, o.generation]));

    // Again, as IdentifiersXML: the same bytes are there, so nothing is written.
    const xml = `<identifiersXML>${identifiers.map((i) => `<identifier value="${i}"/>`).join('')}</identifiersXML>`;
    const again = await collect(stack, { IdentifiersXML: xml, Destination: `gs://${BUCKET}/ids` });
    const b = await stack.waitFor(again, ['Finished', 'Error'], 60_000);
    assert.equal(b.status, 'Finished', b.error ?? '');
    const view2 = await statusOf(stack, again);
    assert.deepEqual((view2.documentcounts as Json).documentcount, [{ '@task': 'ANN', '@collected': '0', '@unchanged': '5', '@attachments': '0', '@errors': '0' }]);
    for (const o of stack.storage.objects(BUCKET)) assert.equal(o.generation, generations.get(o.name), o.name);
  });

  it('CollectAttachments=true copies each attachment beside its message, safely named, once', async () => {
    const token = await collect(stack, { TaskSections: 'ATT', Destination: `gs://${BUCKET}/att`, CollectAttachments: 'true' });
    const a = await stack.waitFor(token, ['Finished', 'Error'], 60_000);
    assert.equal(a.status, 'Finished', a.error ?? '');
    const view = await statusOf(stack, token);
    assert.deepEqual((view.documentcounts as Json).documentcount, [{ '@task': 'ATT', '@collected': '6', '@unchanged': '0', '@attachments': '30', '@errors': '0' }]);
    const g = testGmail(stack.gmail.url);
    const listed = await g.users.messages.list({ userId: ATT, maxResults: 500 });
    const objects = stack.storage.objects(BUCKET).filter((o) => o.name.startsWith(`att/${ATT}/`));
    assert.equal(objects.length, 6 + 6 * 5);
    for (const m of listed.data.messages ?? []) {
      const raw = await g.users.messages.get({ userId: ATT, id: m.id as string, format: 'raw' });
      const i = Number(/With attachments (\d+)/.exec(Buffer.from(raw.data.raw ?? '', 'base64url').toString())?.[1]);
      const mine = objects.filter((o) => o.name.startsWith(`att/${ATT}/${m.id}/`)).map((o) => o.name.slice(`att/${ATT}/${m.id}/`.length)).sort();
      assert.deepEqual(mine, attachmentsOf(i).map((x) => x.stored).sort());
      for (const x of attachmentsOf(i)) {
        const o = objects.find((y) => y.name === `att/${ATT}/${m.id}/${x.stored}`);
        assert.ok(o && readFileSync(o.path).equals(x.bytes), `${x.stored} of message ${i}`);
        assert.equal(o.contentType, x.type);
      }
    }
    assert.equal(await checkObjects(stack, 'att', ATT), 6);

    // Again: everything is there with the same bytes, so nothing is written.
    const generations = new Map(objects.map((o) => [o.name, o.generation]));
    const again = await collect(stack, { TaskSections: 'ATT', Destination: `gs://${BUCKET}/att`, CollectAttachments: 'true' });
    const b = await stack.waitFor(again, ['Finished', 'Error'], 60_000);
    assert.equal(b.status, 'Finished', b.error ?? '');
    const view2 = await statusOf(stack, again);
    assert.deepEqual((view2.documentcounts as Json).documentcount, [{ '@task': 'ATT', '@collected': '0', '@unchanged': '6', '@attachments': '0', '@errors': '0' }]);
    const after = stack.storage.objects(BUCKET).filter((o) => o.name.startsWith(`att/${ATT}/`));
    assert.equal(after.length, objects.length);
    for (const o of after) assert.equal(o.generation, generations.get(o.name), o.name);
  });

  it('refuses bad input with a 400 and writes nothing', async () => {
    const count = async () => (await stack.db.collection('actions').count().get()).data().count;
    const before = await count();
    const objects = stack.storage.objects(BUCKET).length;
    const good = encodeIdentifier({ task: 'ANN', address: ANN, messageId: 'abc' });
    const cases: [Record<string, string>, RegExp][] = [
      [{ TaskSections: 'ANN' }, /Destination/],
      [{ TaskSections: 'ANN', Destination: `s3://${BUCKET}/x` }, /Destination.*gs:\/\/bucket/],
      [{ TaskSections: 'ANN', Destination: 'gs://Bad_Bucket/x' }, /Destination/],
      [{ TaskSections: 'ANN', Destination: `gs://${BUCKET}/../x` }, /Destination/],
      [{ TaskSections: 'ANN', Destination: 'gs://no-such-bucket/x' }, /no-such-bucket/],
      [{ Identifiers: encodeIdentifier({ task: 'NOPE', address: ANN, messageId: 'abc' }), Destination: `gs://${BUCKET}` }, /configured task.*NOPE/],
      [{ Identifiers: encodeIdentifier({ task: 'ANN', address: BULK, messageId: 'abc' }), Destination: `gs://${BUCKET}` }, /mailboxes/],
      [{ Identifiers: 'not-an-identifier', Destination: `gs://${BUCKET}` }, /Identifiers/],
      [{ Identifiers: good, TaskSections: 'ANN', Destination: `gs://${BUCKET}` }, /TaskSections/],
      [{ Identifiers: good, IdentifiersXML: '<identifiersXML/>', Destination: `gs://${BUCKET}` }, /IdentifiersXML/],
      [{ Destination: `gs://${BUCKET}` }, /TaskSections/],
      [{ TaskSections: 'ANN', Destination: `gs://${BUCKET}`, CollectAttachments: 'maybe' }, /CollectAttachments/],
    ];
    for (const [params, message] of cases) {
      const r = await stack.aci({ action: 'Fetch', FetchAction: 'Collect', ...params });
      assert.equal(r.status, 400, `${JSON.stringify(params)}: ${r.text}`);
      assert.match(r.text, message, JSON.stringify(params));
    }
    assert.equal(await count(), before);
    assert.equal(stack.storage.objects(BUCKET).length, objects);
  });

  /** Waits until an upload is on its way, so that what follows interrupts it. */
  async function uploading(): Promise<void> {
    const until = Date.now() + 60_000;
    while (stack.storage.uploadsInProgress() === 0) {
      if (Date.now() > until) throw new Error('no upload started');
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  it('Stop during a Collect leaves no partial object', async () => {
    const token = await collect(stack, { TaskSections: 'BIG', Destination: `gs://${BUCKET}/stop` });
    await uploading();
    const r = await stack.aci({ action: 'QueueInfo', QueueName: 'fetch', QueueAction: 'Stop', Token: token });
    assert.equal(r.status, 200, r.text);
    const a = await stack.waitFor(token, ['Stopped', 'Finished'], 30_000);
    assert.equal(a.status, 'Stopped');
    await new Promise((res) => setTimeout(res, 300));
    // Copies already under way may finish; whatever is visible is whole.
    await checkObjects(stack, 'stop', BIG);
  });

  it('Cancel of a Collect leaves nothing written, or only whole objects', async () => {
    const token = await collect(stack, { TaskSections: 'BIG', Destination: `gs://${BUCKET}/cancel` });
    const r = await stack.aci({ action: 'QueueInfo', QueueName: 'fetch', QueueAction: 'Cancel', Token: token });
    if (r.status === 409) await stack.aci({ action: 'QueueInfo', QueueName: 'fetch', QueueAction: 'Stop', Token: token });
    else assert.equal(r.status, 200, r.text);
    await stack.waitFor(token, ['Cancelled', 'Stopped'], 30_000);
    await new Promise((res) => setTimeout(res, 300));
    await checkObjects(stack, 'cancel', BIG);
  });

  it('a worker killed during a Collect leaves no partial object, and the Collect then completes', async () => {
    const token = await collect(stack, { TaskSections: 'BIG', Destination: `gs://${BUCKET}/kill` });
    await uploading();
    await stack.worker.kill();
    await new Promise((res) => setTimeout(res, 300));
    const partial = await checkObjects(stack, 'kill', BIG);
    assert.ok(partial < COUNT);
    await stack.worker.start();
    const a = await stack.waitFor(token, ['Finished', 'Error'], 90_000);
    assert.equal(a.status, 'Finished', a.error ?? '');
    assert.equal(await checkObjects(stack, 'kill', BIG), COUNT);
  });

  it('a worker killed while attachments stream leaves only whole attachment objects, and the Collect then completes', async () => {
    const token = await collect(stack, { TaskSections: 'BIG', Destination: `gs://${BUCKET}/killatt`, CollectAttachments: 'true' });
    await uploading();
    await stack.worker.kill();
    await new Promise((res) => setTimeout(res, 300));
    const g = testGmail(stack.gmail.url);
    /** Every attachment object visible now is its message's attachment, whole; returns how many. */
    const wholeAttachments = async (): Promise<number> => {
      const base = `killatt/${BIG}/`;
      const objects = stack.storage.objects(BUCKET).filter((o) => o.name.startsWith(base) && o.name.slice(base.length).includes('/'));
      for (const o of objects) {
        const [id, name] = o.name.slice(base.length).split('/') as [string, string];
        const res = await g.users.messages.get({ userId: BIG, id, format: 'raw' });
        const parsed = await simpleParser(Buffer.from(res.data.raw ?? '', 'base64url'));
        assert.equal(parsed.attachments.length, 1);
        assert.equal(name, 'attachment-1');
        assert.ok(readFileSync(o.path).equals(parsed.attachments[0]?.content as Buffer), `${o.name} is whole`);
      }
      return objects.length;
    };
    assert.ok((await wholeAttachments()) < COUNT);
    await stack.worker.start();
    const a = await stack.waitFor(token, ['Finished', 'Error'], 90_000);
    assert.equal(a.status, 'Finished', a.error ?? '');
    assert.equal(await checkObjects(stack, 'killatt', BIG), COUNT);
    assert.equal(await wholeAttachments(), COUNT);
  });
});
