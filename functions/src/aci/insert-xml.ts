/**
 * The `InsertXML` parameter of `FetchAction=Insert`, as IDOL connectors take it:
 *
 *     <insertXML>
 *       <insert>
 *         <reference>REF</reference>
 *         <property name="USER_ID" value="alice@example.com"/>
 *         <property name="LABEL_IDS" value="INBOX,UNREAD"/>
 *         <property name="INSERT_METHOD" value="import"/>
 *         <file><type>content</type><content>BASE64 OF THE RFC 822 MESSAGE</content></file>
 *       </insert>
 *     </insertXML>
 *
 * or, for a message kept in Cloud Storage, `<file><type>file</type><path>gs://bucket/object</path></file>`.
 * Pure: no I/O. A fault of the request's shape (not XML, an unknown element or property, too many
 * items, a reference given twice...) is an {@link InsertXmlError} naming the item and what is
 * wrong, and refuses the whole request. A fault of one message's content (not base64, not an
 * RFC 822 message) is that item's `fault`: the item fails alone and the others go on. A message
 * without a usable Message-ID is no fault: it is kept by a key of its own (see messageKey).
 */
import { createHash } from 'node:crypto';
import { XMLParser, XMLValidator } from 'fast-xml-parser';

/** Where one message comes from. */
export type InsertSource = { kind: 'content'; raw: Buffer } | { kind: 'gs'; bucket: string; object: string };

/** One `<insert>`. */
export interface InsertItem {
  /** `<reference>`: echoed as `insert_id` in the results. */
  reference: string;
  /** `USER_ID`, lower-cased: the mailbox the message goes to. */
  user: string;
  /** `LABEL_IDS`: label ids the message gets. */
  labels: string[];
  /** `INSERT_METHOD`: `import` (the default; Gmail scans and classifies it as received mail) or `insert` (as is). */
  method: 'import' | 'insert';
  source: InsertSource;
  /** The message's Message-ID (angle brackets included), when its bytes are in the request and it has a usable one. */
  messageId?: string;
  /** Why this item fails by itself: its content is not a message (the request's other items go on). */
  fault?: string;
}

export class InsertXmlError extends Error {
  override readonly name = 'InsertXmlError';
}

/** The most `<insert>` items one request may carry. */
export const MAX_INSERT_ITEMS = 500;
const EMAIL = /^[^@\s<>",;]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$/;
const PROPERTIES = new Set(['USER_ID', 'LABEL_IDS', 'INSERT_METHOD']);

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@',
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: true,
  processEntities: true,
  isArray: (name) => ['insert', 'property', 'file', 'reference'].includes(name),
});

/** A `gs://bucket/object` reference. */
export function parseGsPath(raw: string): { bucket: string; object: string } | undefined {
  const m = /^gs:\/\/([a-z0-9][a-z0-9._-]{1,220}[a-z0-9])\/(.+)$/.exec(raw.trim());
  if (!m || /[\r\n\u0000]/.test(m[2] as string)) return undefined;
  return { bucket: m[1] as string, object: m[2] as string };
}

/** Where the header block ends (the blank line), or -1. */
function headerEnd(raw: Buffer): number {
  const crlf = raw.indexOf('\r\n\r\n');
  const lf = raw.indexOf('\n\n');
  return crlf >= 0 && (lf < 0 || crlf < lf) ? crlf : lf;
}

/**
 * A Message-ID header's value as a message id Insert can look for: its `<left@right>`, once the
 * value is unfolded, with no white space inside the brackets; undefined for a malformed one (a
 * folded id with spaces inside, an unclosed bracket).
 */
export function usableMessageId(value: string): string | undefined {
  return value.replace(/\r?\n[ \t]+/g, ' ').trim().match(/<[^<>\s]+>/)?.[0];
}

/** The header block of an RFC 822 message: its usable Message-ID (none when missing or malformed), or why it is not a message. */
export function messageIdOf(raw: Buffer): { messageId: string | undefined } | { error: string } {
  const end = headerEnd(raw);
  const head = raw.subarray(0, end < 0 ? Math.min(raw.length, 256 * 1024) : end).toString('latin1');
  if (!/^[!-9;-~]+:/.test(head)) return { error: 'is not an RFC 822 message (it does not start with a header)' };
  const m = /^message-id:[ \t]*((?:.|\r?\n[ \t])*)/im.exec(head);
  return { messageId: m?.[1] === undefined ? undefined : usableMessageId(m[1]) };
}

/**
 * What Insert looks for a message by, to never import it twice: `id <message-id>` (lower case)
 * when it has a usable Message-ID; otherwise `sha256 <hex>` of its bytes, with line ends read as
 * LF and any Message-ID header left out, so that a copy Gmail stored with CRLF line ends or with
 * a Message-ID of its own still has the same key. The message's bytes are never changed.
 */
export function messageKey(raw: Buffer, messageId: string | undefined = undefined): string {
  if (messageId !== undefined) return `id ${messageId.toLowerCase()}`;
  const text = raw.toString('latin1').replace(/\r\n/g, '\n');
  const end = text.indexOf('\n\n');
  const head = (end < 0 ? text : text.slice(0, end + 1)).replace(/^message-id:.*(?:\n[ \t].*)*(?:\n|$)/gim, '');
  const body = end < 0 ? '' : text.slice(end + 1);
  return `sha256 ${createHash('sha256').update(head + body, 'latin1').digest('hex')}`;
}

/** The key of a message from its bytes (messageKey), or why it is not a message. */
export function keyOf(raw: Buffer): { key: string; messageId: string | undefined } | { error: string } {
  const head = messageIdOf(raw);
  if ('error' in head) return head;
  return { key: messageKey(raw, head.messageId), messageId: head.messageId };
}

/** The message's bytes, or why `<content>` holds none. */
function base64Message(text: string): Buffer | { fault: string } {
  const b64 = text.replace(/\s+/g, '');
  if (b64 === '') return { fault: '<content> is empty' };
  if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(b64) || b64.replace(/=+$/, '').length % 4 === 1) return { fault: '<content> is not base64' };
  return Buffer.from(b64, b64.includes('-') || b64.includes('_') ? 'base64url' : 'base64');
}

function text(v: unknown, where: string, what: string): string {
  if (v === undefined) throw new InsertXmlError(`${where} has no <${what}>`);
  if (Array.isArray(v)) {
    if (v.length !== 1) throw new InsertXmlError(`${where} has ${v.length} <${what}> elements, not one`);
    return text(v[0], where, what);
  }
  if (typeof v === 'string') return v;
  if (typeof v === 'object' && v !== null && Object.keys(v).length === 0) return '';
  throw new InsertXmlError(`${where}: <${what}> must hold text only`);
}

function onlyKeys(o: Record<string, unknown>, allowed: string[], where: string): void {
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) throw new InsertXmlError(`${where} has unexpected ${k.startsWith('@') ? `attribute ${k.slice(1)}` : `<${k}>`}`);
  }
}

/** Reads the items of an `InsertXML` value; throws {@link InsertXmlError} naming the item and the fault. */
export function parseInsertXml(xml: string): InsertItem[] {
  if (/<!DOCTYPE|<!ENTITY/i.test(xml)) throw new InsertXmlError('DOCTYPE and entity declarations are not allowed');
  const valid = XMLValidator.validate(xml);
  if (valid !== true) throw new InsertXmlError(`not XML: ${valid.err.msg} (line ${valid.err.line})`);
  const doc = parser.parse(xml) as Record<string, unknown>;
  const rootNames = Object.keys(doc).filter((k) => k !== '?xml');
  if (rootNames.length !== 1 || rootNames[0] !== 'insertXML') throw new InsertXmlError(`the root element must be <insertXML>, got ${rootNames.map((n) => `<${n}>`).join(', ') || 'none'}`);
  const root = doc['insertXML'];
  const rootObj = typeof root === 'object' && root !== null ? (root as Record<string, unknown>) : {};
  onlyKeys(rootObj, ['insert'], '<insertXML>');
  const inserts = (rootObj['insert'] ?? []) as unknown[];
  if (inserts.length === 0) throw new InsertXmlError('<insertXML> has no <insert>');
  if (inserts.length > MAX_INSERT_ITEMS) throw new InsertXmlError(`${inserts.length} <insert> items: at most ${MAX_INSERT_ITEMS}; send several Inserts`);
  const refs = new Set<string>();
  return inserts.map((raw, i) => {
    const where = `<insert> ${i + 1}`;
    if (typeof raw !== 'object' || raw === null) throw new InsertXmlError(`${where} is empty`);
    const el = raw as Record<string, unknown>;
    onlyKeys(el, ['reference', 'property', 'file'], where);
    const reference = text(el['reference'], where, 'reference').trim();
    if (reference === '' || reference.length > 256 || /[\u0000-\u001f]/.test(reference)) throw new InsertXmlError(`${where}: <reference> must be 1-256 characters, no control characters`);
    if (refs.has(reference)) throw new InsertXmlError(`${where}: reference ${JSON.stringify(reference)} is given twice`);
    refs.add(reference);
    const props = new Map<string, string>();
    for (const p of (el['property'] ?? []) as Record<string, unknown>[]) {
      onlyKeys(p, ['@name', '@value'], `${where}: <property>`);
      const name = String(p['@name'] ?? '').toUpperCase();
      if (!PROPERTIES.has(name)) throw new InsertXmlError(`${where}: unknown property ${JSON.stringify(p['@name'] ?? '')}; known: ${[...PROPERTIES].join(', ')}`);
      if (props.has(name)) throw new InsertXmlError(`${where}: property ${name} is given twice`);
      props.set(name, String(p['@value'] ?? '').trim());
    }
    const user = (props.get('USER_ID') ?? '').toLowerCase();
    if (!EMAIL.test(user)) throw new InsertXmlError(`${where}: property USER_ID must be the mailbox's address, got ${JSON.stringify(props.get('USER_ID') ?? '')}`);
    const labels = (props.get('LABEL_IDS') ?? '').split(',').map((l) => l.trim()).filter((l) => l !== '');
    const method = (props.get('INSERT_METHOD') ?? 'import').toLowerCase();
    if (method !== 'import' && method !== 'insert') throw new InsertXmlError(`${where}: INSERT_METHOD must be import or insert, got ${JSON.stringify(method)}`);
    const files = (el['file'] ?? []) as unknown[];
    if (files.length !== 1) throw new InsertXmlError(`${where} must have exactly one <file>, has ${files.length}`);
    const file = (typeof files[0] === 'object' && files[0] !== null ? files[0] : {}) as Record<string, unknown>;
    onlyKeys(file, ['type', 'content', 'path'], `${where}: <file>`);
    const type = text(file['type'], `${where}: <file>`, 'type').trim().toLowerCase();
    let source: InsertSource;
    let messageId: string | undefined;
    let fault: string | undefined;
    if (type === 'content') {
      const raw = base64Message(text(file['content'], `${where}: <file>`, 'content'));
      const head = Buffer.isBuffer(raw) ? messageIdOf(raw) : { error: raw.fault };
      if ('error' in head) fault = Buffer.isBuffer(raw) ? `the decoded <content> ${head.error}` : head.error;
      else messageId = head.messageId;
      source = { kind: 'content', raw: Buffer.isBuffer(raw) ? raw : Buffer.alloc(0) };
    } else if (type === 'file') {
      const path = text(file['path'], `${where}: <file>`, 'path');
      const gs = parseGsPath(path);
      if (!gs) throw new InsertXmlError(`${where}: <path> must be gs://bucket/object, got ${JSON.stringify(path.slice(0, 200))}`);
      source = { kind: 'gs', ...gs };
    } else {
      throw new InsertXmlError(`${where}: <type> must be content (base64 in <content>) or file (gs://bucket/object in <path>), got ${JSON.stringify(type)}`);
    }
    return { reference, user, labels, method, source, ...(messageId ? { messageId } : {}), ...(fault ? { fault } : {}) };
  });
}
