// Writes a deterministic, Google-Takeout-style mbox file of varied, realistic mail.
//
//   npx tsx scripts/generate-mbox.ts <output.mbox> <count> <seed> <address>
//   npx tsx scripts/generate-mbox.ts test/fixtures/demo/demo@example.com.mbox 1000 42 demo@example.com
//
// Like Takeout: "From <gmail id in decimal>@xxx <date> +0000 <year>" separators, CRLF lines,
// X-GM-THRID and X-Gmail-Labels headers, mboxrd escaping of "From " lines. The mail varies:
// plain text, HTML only, multipart/alternative, attachments (a few over 100 KB), forwarded
// messages, RFC 2047 encoded subjects and names (UTF-8 B and Q, ISO-8859-1), bodies in
// ISO-8859-1, windows-1252, KOI8-R, Shift_JIS, GBK and ISO-8859-2, threads, drafts, spam,
// trash, user labels and categories; and one message in fifty is messy (no Message-ID,
// broken header lines, truncated MIME, raw 8-bit headers, bad encoded words, a multipart
// without boundary, LF-only lines, no headers at all).
//
// The same arguments always give the same bytes. Output is streamed: memory does not grow
// with the count.

import { createWriteStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import iconv from 'iconv-lite';
import libmime from 'libmime';
import * as libqp from 'libqp';

export interface GenerateOptions {
  output: string;
  count: number;
  seed: number;
  address: string;
  /**
   * When set, every message is a text part and one PDF attachment of this many bytes, and none is
   * messy: the mailbox of large messages of the memory benchmark.
   */
  attachmentBytes?: number;
}

// ---- randomness -------------------------------------------------------------------------

class Random {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    this.a = 0x9e3779b9 ^ seed;
    this.b = 0x243f6a88 + seed;
    this.c = 0xb7e15162 ^ (seed << 7);
    this.d = seed | 0;
    for (let i = 0; i < 15; i++) this.next();
  }

  next(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return (t >>> 0) / 4294967296;
  }

  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)] as T;
  }

  bytes(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i += 4) {
      const v = (this.next() * 4294967296) >>> 0;
      out[i] = v & 0xff;
      if (i + 1 < n) out[i + 1] = (v >>> 8) & 0xff;
      if (i + 2 < n) out[i + 2] = (v >>> 16) & 0xff;
      if (i + 3 < n) out[i + 3] = (v >>> 24) & 0xff;
    }
    return out;
  }
}

// ---- material ---------------------------------------------------------------------------

interface Contact {
  name: string;
  address: string;
  kind: 'person' | 'promotions' | 'social' | 'updates' | 'forums';
}

const CONTACTS: readonly Contact[] = [
  { name: 'Alice Martin', address: 'alice.martin@example.org', kind: 'person' },
  { name: 'Bob Stone', address: 'bob@example.net', kind: 'person' },
  { name: 'Jörg Müller', address: 'joerg.mueller@beispiel.de', kind: 'person' },
  { name: 'Zoë Ångström', address: 'zoe@exemple.fr', kind: 'person' },
  { name: 'Łukasz Wiśniewski', address: 'lukasz@przyklad.pl', kind: 'person' },
  { name: '田中 太郎', address: 'tanaka@example.jp', kind: 'person' },
  { name: 'Ольга Иванова', address: 'olga@primer.ru', kind: 'person' },
  { name: 'Müller, Hans', address: 'hans.mueller@beispiel.de', kind: 'person' },
  { name: "O'Brien, Siobhán", address: 'siobhan@example.ie', kind: 'person' },
  { name: '', address: 'noname@example.com', kind: 'person' },
  { name: 'Carol Nguyen', address: 'carol.nguyen@example.com', kind: 'person' },
  { name: 'Dave Okafor', address: 'dave.okafor@example.com', kind: 'person' },
  { name: 'Shop Deals', address: 'deals@shop.example.com', kind: 'promotions' },
  { name: 'Café Crème Newsletter', address: 'news@cafe.example.fr', kind: 'promotions' },
  { name: 'FriendFeed', address: 'notify@social.example.com', kind: 'social' },
  { name: 'Build Bot', address: 'ci@builds.example.net', kind: 'updates' },
  { name: 'Bank Alerts', address: 'alerts@bank.example.com', kind: 'updates' },
  { name: 'Forum Digest', address: 'digest@forum.example.org', kind: 'forums' },
];

const SUBJECTS: readonly string[] = [
  'Quarterly report',
  'Lunch on Friday?',
  'Réunion budget 2024',
  'Änderungen an der Präsentation',
  'Встреча в пятницу',
  '会議の議事録',
  'Café ☕ tomorrow?',
  'Invoice #{n}',
  'Your order #{n} has shipped',
  '🎉 Launch day',
  'Build #{n} failed on main',
  'Weekly digest: 12 new topics',
  'Re-scheduling our call',
  'Photos from the trip',
  'Contract draft v{n}',
  'Zażółć gęślą jaźń',
  'Question about the API',
  'Welcome to the team!',
];

const USER_LABELS: readonly string[] = ['Work', 'Personal/Finance', 'Travel', 'Receipts', 'Projekt Ärger', 'Clients, Key'];

const WORDS = (
  'the a project meeting update team budget plan review draft schedule client report design ' +
  'deadline notes idea question answer travel invoice order release version data server test ' +
  'next week today tomorrow please thanks regards agenda call follow up attached document ' +
  'quarter numbers results feedback launch customer support issue fix change proposal'
).split(' ');

interface CharsetSample {
  charset: string;
  text: string;
}

const CHARSET_SAMPLES: readonly CharsetSample[] = [
  { charset: 'ISO-8859-1', text: 'Grüße aus München! Die Größe der Datei ist ähnlich. Schöne Woche, Jörg.' },
  { charset: 'windows-1252', text: 'Café naïve – “quoted” text costs 12 € in Zürich; déjà vu, señor.' },
  { charset: 'KOI8-R', text: 'Привет! Встреча завтра в 10:00. Пожалуйста, подтвердите участие.' },
  { charset: 'Shift_JIS', text: 'お世話になっております。会議の件でご連絡いたしました。よろしくお願いします。' },
  { charset: 'GBK', text: '你好，明天上午十点开会，请准时参加。谢谢！' },
  { charset: 'ISO-8859-2', text: 'Zażółć gęślą jaźń. Dziękuję za spotkanie, Łukasz.' },
];

const TZ_OFFSETS: readonly number[] = [0, 60, 120, -300, -480, 540, 330, -240];
const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

// ---- encoding helpers -------------------------------------------------------------------

const CRLF = '\r\n';

function pad2(n: number): string {
  return String(n).padStart(2, '0');
}

/** RFC 2822 date in the given zone (minutes east of UTC). */
function rfc2822(ms: number, offsetMin: number): string {
  const d = new Date(ms + offsetMin * 60_000);
  const sign = offsetMin < 0 ? '-' : '+';
  const abs = Math.abs(offsetMin);
  return (
    `${DAYS[d.getUTCDay()]}, ${d.getUTCDate()} ${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()} ` +
    `${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}:${pad2(d.getUTCSeconds())} ` +
    `${sign}${pad2(Math.floor(abs / 60))}${pad2(abs % 60)}`
  );
}

/** Takeout's separator date: "Wed Nov 22 09:13:09 +0000 2023". */
function fromLineDate(ms: number): string {
  const d = new Date(ms);
  return (
    `${DAYS[d.getUTCDay()]} ${MONTHS[d.getUTCMonth()]} ${pad2(d.getUTCDate())} ` +
    `${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}:${pad2(d.getUTCSeconds())} +0000 ${d.getUTCFullYear()}`
  );
}

function isAscii(text: string): boolean {
  return /^[\x20-\x7e]*$/.test(text);
}

function isLatin1(text: string): boolean {
  return /^[\x20-\x7e\xa0-\xff]*$/.test(text);
}

/** RFC 2047 Q encoding of ISO-8859-1 text. */
function latin1Word(text: string): string {
  let out = '';
  for (const b of Buffer.from(text, 'latin1')) {
    if (b === 0x20) out += '_';
    else if (/[A-Za-z0-9!*+\-/]/.test(String.fromCharCode(b))) out += String.fromCharCode(b);
    else out += `=${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return `=?ISO-8859-1?Q?${out}?=`;
}

type WordStyle = 'B' | 'Q' | 'latin1';

/** Encodes non-ASCII header text as RFC 2047 words, folded between words. */
function encodeText(text: string, style: WordStyle): string {
  if (isAscii(text)) return text;
  if (style === 'latin1' && isLatin1(text)) return latin1Word(text);
  return libmime.encodeWord(text, style === 'Q' ? 'Q' : 'B', 40).split(' ').join(`${CRLF} `);
}

function quoteName(name: string): string {
  return /[",;:<>@()[\]\\.']/.test(name) ? `"${name.replace(/[\\"]/g, (c) => `\\${c}`)}"` : name;
}

function mailbox(c: { name: string; address: string }, style: WordStyle): string {
  if (c.name === '') return c.address;
  const shown = isAscii(c.name) ? quoteName(c.name) : encodeText(c.name, style);
  return `${shown} <${c.address}>`;
}

function base64Lines(data: Buffer): string {
  const b64 = data.toString('base64');
  const lines: string[] = [];
  for (let i = 0; i < b64.length; i += 76) lines.push(b64.slice(i, i + 76));
  return lines.join(CRLF);
}

function qp(data: Buffer): string {
  return libqp.wrap(libqp.encode(data), 76);
}

function wrapText(text: string, width = 72): string {
  const out: string[] = [];
  for (const para of text.split('\n')) {
    let line = '';
    for (const word of para.split(' ')) {
      if (line !== '' && line.length + 1 + word.length > width) {
        out.push(line);
        line = word;
      } else line = line === '' ? word : `${line} ${word}`;
    }
    out.push(line);
  }
  return out.join(CRLF);
}

function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** mboxrd: one more ">" on every line that is ">*From ". */
function escapeFromLines(text: Buffer): Buffer {
  const s = text.toString('latin1');
  if (!/(^|\n)>*From /.test(s)) return text;
  return Buffer.from(s.replace(/(^|\n)(>*From )/g, '$1>$2'), 'latin1');
}

// ---- message building -------------------------------------------------------------------

interface Part {
  headers: string[];
  body: string; // already transfer-encoded, CRLF lines
}

function renderPart(p: Part): string {
  return `${p.headers.join(CRLF)}${CRLF}${CRLF}${p.body}`;
}

function multipart(type: string, boundary: string, parts: Part[], closed = true): Part {
  const body =
    parts.map((p) => `--${boundary}${CRLF}${renderPart(p)}${CRLF}`).join('') + (closed ? `--${boundary}--${CRLF}` : '');
  return { headers: [`Content-Type: ${type}; boundary="${boundary}"`], body };
}

function textPart(text: string, subtype: 'plain' | 'html', rng: Random): Part {
  const data = Buffer.from(text, 'utf8');
  const ascii = isAscii(text.replace(/\r?\n/g, ''));
  if (ascii && subtype === 'plain' && rng.chance(0.6)) {
    return { headers: [`Content-Type: text/${subtype}; charset="UTF-8"`, 'Content-Transfer-Encoding: 7bit'], body: text.replace(/\r?\n/g, CRLF) };
  }
  if (rng.chance(0.5)) {
    return { headers: [`Content-Type: text/${subtype}; charset="UTF-8"`, 'Content-Transfer-Encoding: quoted-printable'], body: qp(data) };
  }
  return { headers: [`Content-Type: text/${subtype}; charset="UTF-8"`, 'Content-Transfer-Encoding: base64'], body: base64Lines(data) };
}

function paragraph(rng: Random, words: number): string {
  const out: string[] = [];
  for (let i = 0; i < words; i++) out.push(rng.pick(WORDS));
  const s = out.join(' ');
  return `${s.charAt(0).toUpperCase()}${s.slice(1)}.`;
}

function bodyText(rng: Random, greeting: string, signer: string, paragraphs: number): string {
  const paras = [`Hi ${greeting},`];
  for (let i = 0; i < paragraphs; i++) paras.push(paragraph(rng, rng.int(12, 40)));
  // Lines that an mbox writer must escape, and one already escaped.
  if (rng.chance(0.15)) paras.push('From my point of view, the numbers look fine.');
  if (rng.chance(0.05)) paras.push('>From the archive: nothing new.');
  paras.push(`Best regards,\n${signer}`);
  return paras.map((p) => wrapText(p)).join(`${CRLF}${CRLF}`) + CRLF;
}

function htmlOf(text: string, title: string): string {
  const paras = text
    .split(/\r\n\r\n/)
    .map((p) => `<p>${escapeHtml(p).replace(/\r\n/g, '<br>')}</p>`)
    .join(CRLF);
  return (
    `<!DOCTYPE html>${CRLF}<html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head>${CRLF}` +
    `<body style="font-family: Arial">${CRLF}${paras}${CRLF}<p><a href="https://example.com/u?id=1">Unsubscribe</a> ` +
    `<img src="https://example.com/pixel.gif" alt=""></p>${CRLF}</body></html>${CRLF}`
  );
}

function attachmentPart(rng: Random, index: number, large: boolean, largeBytes?: number): Part {
  const kind = large ? 'pdf' : rng.pick(['txt', 'csv', 'pdf', 'png', 'intl'] as const);
  let data: Buffer;
  let type: string;
  let name: string;
  switch (kind) {
    case 'txt':
      data = Buffer.from(`Notes ${index}\r\n${paragraph(rng, 30)}\r\n`, 'utf8');
      type = 'text/plain; charset="UTF-8"';
      name = `notes-${index}.txt`;
      break;
    case 'csv': {
      const rows = ['date,amount,currency'];
      for (let i = 0; i < rng.int(3, 20); i++) rows.push(`2023-0${rng.int(1, 9)}-1${rng.int(0, 9)},${rng.int(1, 9999)}.${rng.int(10, 99)},EUR`);
      data = Buffer.from(rows.join('\r\n') + '\r\n', 'utf8');
      type = 'text/csv';
      name = `statement-${index}.csv`;
      break;
    }
    case 'png':
      data = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), rng.bytes(rng.int(200, 1500))]);
      type = 'image/png';
      name = `photo_${index}.png`;
      break;
    default: {
      const size = large ? (largeBytes ?? rng.int(105_000, 140_000)) : rng.int(300, 2000);
      data = Buffer.concat([Buffer.from('%PDF-1.4\n%\xe2\xe3\xcf\xd3\n', 'latin1'), rng.bytes(size)]);
      type = 'application/pdf';
      name = kind === 'intl' ? `Präsentation Q${(index % 4) + 1} – final.pdf` : `report-${index}.pdf`;
    }
  }
  let disposition: string;
  let typeLine: string;
  if (isAscii(name)) {
    disposition = `Content-Disposition: attachment; filename="${name}"`;
    typeLine = `Content-Type: ${type}; name="${name}"`;
  } else {
    // RFC 2231 for the filename, RFC 2047 in name= as many mailers still write it.
    const params = libmime.buildHeaderParam('filename', name, 40);
    disposition = `Content-Disposition: attachment;${params.map((p) => `${CRLF} ${p.key}=${p.value.startsWith(' ') ? `"${p.value}"` : p.value}`).join(';')}`;
    typeLine = `Content-Type: ${type};${CRLF} name="${libmime.encodeWord(name, 'Q')}"`;
  }
  return { headers: [typeLine, disposition, 'Content-Transfer-Encoding: base64'], body: base64Lines(data) };
}

function charsetPart(sample: CharsetSample, rng: Random): Part {
  const data = iconv.encode(`${sample.text}\r\n\r\n${sample.text}\r\n`, sample.charset);
  if (sample.charset === 'ISO-8859-1' || sample.charset === 'ISO-8859-2' || sample.charset === 'windows-1252') {
    if (rng.chance(0.5)) {
      return { headers: [`Content-Type: text/plain; charset=${sample.charset}`, 'Content-Transfer-Encoding: 8bit'], body: data.toString('latin1') };
    }
    return { headers: [`Content-Type: text/plain; charset=${sample.charset}`, 'Content-Transfer-Encoding: quoted-printable'], body: qp(data) };
  }
  return { headers: [`Content-Type: text/plain; charset="${sample.charset}"`, 'Content-Transfer-Encoding: base64'], body: base64Lines(data) };
}

interface ThreadState {
  thrid: bigint;
  subject: string;
  contact: Contact;
  refs: string[];
  size: number;
}

class Generator {
  private readonly rng: Random;
  private readonly owner: Contact;
  private date = Date.UTC(2022, 0, 3, 8, 0, 0);
  private readonly gap: number;
  private readonly threads: ThreadState[] = [];

  constructor(private readonly opts: GenerateOptions) {
    this.rng = new Random(opts.seed);
    const local = opts.address.split('@')[0] ?? 'user';
    const name = local
      .split(/[._-]+/)
      .map((w) => w.charAt(0).toUpperCase() + w.slice(1))
      .join(' ');
    this.owner = { name: name.includes(' ') ? name : `${name} User`, address: opts.address, kind: 'person' };
    this.gap = (730 * 86_400_000) / Math.max(1, opts.count);
  }

  message(i: number): { fromLine: string; body: Buffer; lineEnding: string } {
    const rng = this.rng;
    this.date += Math.max(1000, Math.round(this.gap * (0.2 + rng.next() * 1.6)));
    const received = this.date;
    const msgId = (BigInt(received) << 20n) | BigInt(rng.int(0, 0xfffff));

    const sized = this.opts.attachmentBytes !== undefined;
    const messyKind = !sized && i % 50 === 7 ? Math.floor(i / 50) % 9 : -1;
    const large = sized || i % 200 === 123;
    const bigHtml = i % 500 === 311;

    // Thread: reply into an open thread, or start one.
    let thread: ThreadState | undefined;
    if (this.threads.length > 0 && rng.chance(0.35)) thread = rng.pick(this.threads);
    const sent = rng.chance(0.15);
    const contact = thread ? thread.contact : rng.pick(CONTACTS);
    let subject: string;
    if (thread) subject = thread.subject.startsWith('Re: ') ? thread.subject : `Re: ${thread.subject}`;
    else subject = rng.pick(SUBJECTS).replace('{n}', String(rng.int(100, 99999)));
    if (!thread && rng.chance(0.05)) subject = `Fwd: ${subject}`;
    const thrid = thread ? thread.thrid : msgId;

    // Labels, as Takeout names them.
    const labels: string[] = [];
    const spam = !sent && rng.chance(0.03);
    const trash = !spam && rng.chance(0.03);
    const draft = sent && !thread && rng.chance(0.06);
    if (draft) labels.push('Drafts');
    else if (sent) labels.push('Sent');
    if (spam) labels.push('Spam');
    else if (trash) labels.push('Trash');
    else if (!sent) labels.push(rng.chance(0.75) ? 'Inbox' : 'Archived');
    if (!sent && !spam && rng.chance(0.2)) labels.push('Important');
    if (rng.chance(0.05)) labels.push('Starred');
    if (!sent && !spam && !trash && contact.kind !== 'person') {
      labels.push(`Category ${contact.kind.charAt(0).toUpperCase()}${contact.kind.slice(1)}`);
    } else if (!sent && rng.chance(0.3)) labels.push('Category Personal');
    if (rng.chance(0.2)) {
      const l = rng.pick(USER_LABELS);
      labels.push(l.includes(',') ? `"${l}"` : isAscii(l) ? l : libmime.encodeWord(l, 'Q'));
    }
    labels.push(!sent && rng.chance(0.25) ? 'Unread' : 'Opened');

    const style: WordStyle = rng.pick(['B', 'Q', 'latin1'] as const);
    const from = sent ? this.owner : contact;
    const to = sent ? contact : this.owner;
    const headers: string[] = [];
    headers.push(`X-GM-THRID: ${thrid}`);
    headers.push(`X-Gmail-Labels: ${labels.join(',')}`);
    if (!sent) {
      headers.push(`Delivered-To: ${this.opts.address}`);
      headers.push(
        `Received: from mail.${from.address.split('@')[1]} (mail.${from.address.split('@')[1]} [192.0.2.${rng.int(1, 254)}])${CRLF}` +
          `        by mx.google.com with ESMTPS id ${rng.int(100000, 999999)}${CRLF}        for <${this.opts.address}>; ${rfc2822(received, 0)}`,
      );
    }
    headers.push('MIME-Version: 1.0');
    const zone = rng.pick(TZ_OFFSETS);
    headers.push(`Date: ${rfc2822(received - rng.int(0, 120) * 1000, zone)}`);
    const rfcId = `<${msgId.toString(36)}.${i}@${from.address.split('@')[1]}>`;
    headers.push(`Message-ID: ${rfcId}`);
    headers.push(`Subject: ${encodeText(subject, style)}`);
    headers.push(`From: ${mailbox(from, style)}`);
    const toList = [mailbox(to, style)];
    if (rng.chance(0.2)) toList.push(mailbox(rng.pick(CONTACTS), style));
    headers.push(`To: ${toList.join(`,${CRLF} `)}`);
    if (rng.chance(0.15)) headers.push(`Cc: ${mailbox(rng.pick(CONTACTS), style)}`);
    if (thread) {
      headers.push(`In-Reply-To: ${thread.refs[thread.refs.length - 1]}`);
      headers.push(`References: ${thread.refs.join(`${CRLF} `)}`);
    }

    // Body.
    const greeting = to.name.split(/[ ,]/)[0] || 'there';
    const signer = from.name || from.address;
    const text = bodyText(rng, greeting, signer, bigHtml ? 3 : rng.int(1, 4));
    let root: Part;
    const shape = rng.next();
    if (bigHtml) {
      const filler = Array.from({ length: 1000 }, (_, k) => `<tr><td>Item ${k}</td><td>${paragraph(rng, 6)}</td></tr>`).join(CRLF);
      root = textPart(`${htmlOf(text, subject)}<table>${CRLF}${filler}${CRLF}</table>${CRLF}`, 'html', rng);
    } else if (contact.kind === 'promotions' && !sent) {
      root = rng.chance(0.5)
        ? textPart(htmlOf(text, subject), 'html', rng)
        : multipart('multipart/alternative', `alt_${i}_${rng.int(1000, 9999)}`, [textPart(text, 'plain', rng), textPart(htmlOf(text, subject), 'html', rng)]);
    } else if (shape < 0.3) {
      root = textPart(text, 'plain', rng);
    } else if (shape < 0.4) {
      root = textPart(htmlOf(text, subject), 'html', rng);
    } else if (shape < 0.6) {
      root = multipart('multipart/alternative', `alt_${i}_${rng.int(1000, 9999)}`, [textPart(text, 'plain', rng), textPart(htmlOf(text, subject), 'html', rng)]);
    } else if (shape < 0.7) {
      root = charsetPart(rng.pick(CHARSET_SAMPLES), rng);
    } else if (shape < 0.75) {
      const inner = [
        `From: ${mailbox(rng.pick(CONTACTS), 'B')}`,
        `To: ${this.opts.address}`,
        `Subject: ${encodeText(rng.pick(SUBJECTS).replace('{n}', '7'), 'Q')}`,
        `Date: ${rfc2822(received - 86_400_000, 0)}`,
        `Message-ID: <fwd.${i}@example.org>`,
        'Content-Type: text/plain; charset=UTF-8',
        '',
        paragraph(rng, 20),
        '',
      ].join(CRLF);
      root = multipart('multipart/mixed', `mix_${i}`, [
        textPart('Forwarding this, see below.\r\n', 'plain', rng),
        { headers: ['Content-Type: message/rfc822', 'Content-Disposition: attachment'], body: inner },
      ]);
    } else {
      const body = rng.chance(0.5)
        ? textPart(text, 'plain', rng)
        : multipart('multipart/alternative', `alt_${i}_${rng.int(1000, 9999)}`, [textPart(text, 'plain', rng), textPart(htmlOf(text, subject), 'html', rng)]);
      const atts: Part[] = [];
      for (let k = 0; k < rng.int(1, 3); k++) atts.push(attachmentPart(rng, i * 10 + k, false));
      root = multipart('multipart/mixed', `mix_${i}_${rng.int(1000, 9999)}`, [body, ...atts]);
    }
    if (large) {
      root = multipart('multipart/mixed', `big_${i}`, [textPart(text, 'plain', rng), attachmentPart(rng, i, true, this.opts.attachmentBytes)]);
    }

    let lineEnding: '\r\n' | '\n' = '\r\n';
    let all = [...headers, ...root.headers];
    let bodyText_ = root.body;
    switch (messyKind) {
      case 0: // no Message-ID
        all = all.filter((h) => !h.startsWith('Message-ID:'));
        break;
      case 1: // a line in the header block that is not a header, and an empty header name
        all.splice(4, 0, 'This line is not a header', ': no name');
        break;
      case 2: {
        // truncated MIME: no closing boundary, base64 cut in the middle of a quantum
        const b = `trunc_${i}`;
        const att = attachmentPart(rng, i, false);
        const cut = att.body.slice(0, Math.max(10, Math.floor(att.body.length / 2)) | 1);
        const m = multipart('multipart/mixed', b, [textPart(text, 'plain', rng), { headers: att.headers, body: cut }], false);
        all = [...headers, ...m.headers];
        bodyText_ = m.body.replace(/\r\n$/, '');
        break;
      }
      case 3: // raw 8-bit Latin-1 in headers
        all = all.map((h) => (h.startsWith('Subject:') ? 'Subject: Grüße aus Köln – Ärger mit Übergrößen' : h));
        all = all.map((h) => (h.startsWith('From:') ? `From: Jörg Brösel <${from.address}>` : h));
        break;
      case 4: // bad encoded words and an unknown charset
        all = all.map((h) => (h.startsWith('Subject:') ? 'Subject: =?UTF-8?B?###broken###?= and =?x-unknown?Q?caf=E9?= ok' : h));
        break;
      case 5: // multipart without a boundary parameter
        all = [...headers, 'Content-Type: multipart/mixed'];
        bodyText_ = `This says multipart but has no boundary.${CRLF}--nothing${CRLF}`;
        break;
      case 6: // LF-only lines, no Date header, junk Content-Type and transfer encoding
        all = [...headers.filter((h) => !h.startsWith('Date:')), 'Content-Type: text', 'Content-Transfer-Encoding: x-unknown'];
        bodyText_ = `Plain words with bare LF line ends.${CRLF}From here on it is fine.${CRLF}`;
        lineEnding = '\n';
        break;
      case 7: // no header block at all (Takeout labels are lost with it)
        all = [];
        bodyText_ = `just a body line without any headers${CRLF}and another${CRLF}`;
        break;
      case 8: // a very long unfolded header and a header folded many times
        all.push(`X-Long: ${'x'.repeat(2000)}`);
        all.push(`X-Folded: a${`${CRLF}\tb`.repeat(50)}`);
        break;
      default:
        break;
    }

    let message = messyKind === 7 ? bodyText_ : `${all.join(CRLF)}${CRLF}${CRLF}${bodyText_}`;
    if (!message.endsWith('\n')) message += CRLF;
    // The message text is UTF-8 except for the already-binary parts (8-bit charsets, raw Latin-1 headers).
    let bytes = messyKind === 3 || /charset=(ISO-8859-[12]|windows-1252)\r\nContent-Transfer-Encoding: 8bit/.test(message)
      ? Buffer.from(message, 'latin1')
      : Buffer.from(message, 'utf8');
    if (lineEnding === '\n') bytes = Buffer.from(bytes.toString('latin1').replace(/\r\n/g, '\n'), 'latin1');

    // Thread bookkeeping (bounded).
    if (thread) {
      thread.refs.push(rfcId);
      if (thread.refs.length > 8) thread.refs.splice(1, 1);
      thread.size++;
      if (thread.size >= 6) this.threads.splice(this.threads.indexOf(thread), 1);
    } else if (!draft && !spam) {
      this.threads.push({ thrid, subject, contact, refs: [rfcId], size: 1 });
      if (this.threads.length > 40) this.threads.shift();
    }

    return { fromLine: `From ${msgId}@xxx ${fromLineDate(received)}`, body: escapeFromLines(bytes), lineEnding };
  }
}

export async function generateMbox(opts: GenerateOptions): Promise<{ messages: number; bytes: number }> {
  if (!Number.isInteger(opts.count) || opts.count < 0) throw new Error('count must be a whole number');
  if (!/^[^@\s]+@[^@\s]+$/.test(opts.address)) throw new Error(`not an address: ${opts.address}`);
  await mkdir(dirname(opts.output), { recursive: true });
  const out = createWriteStream(opts.output);
  const gen = new Generator(opts);
  let bytes = 0;
  const write = async (buf: Buffer): Promise<void> => {
    bytes += buf.length;
    if (!out.write(buf)) await once(out, 'drain');
  };
  try {
    for (let i = 0; i < opts.count; i++) {
      const m = gen.message(i);
      await write(Buffer.from(`${m.fromLine}${m.lineEnding}`, 'latin1'));
      await write(m.body);
      await write(Buffer.from(m.lineEnding, 'latin1'));
    }
  } finally {
    out.end();
    await once(out, 'close');
  }
  return { messages: opts.count, bytes };
}

async function main(argv: string[]): Promise<void> {
  const [output, count, seed, address] = argv;
  if (!output || !count || !seed || !address) {
    process.stderr.write('usage: tsx scripts/generate-mbox.ts <output.mbox> <count> <seed> <address>\n');
    process.exit(2);
  }
  const result = await generateMbox({ output, count: Number(count), seed: Number(seed), address });
  process.stdout.write(`${output}: ${result.messages} messages, ${result.bytes} bytes\n`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
