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
 * Pure: no I/O. Every refusal is an {@link InsertXmlError} naming the item and what is wrong;
 * nothing is half-read, so a refused request changes nothing.
 */
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
  /** The message's Message-ID header (angle brackets included), when its bytes are in the request. */
  messageId?: string;
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

/** The header block of an RFC 822 message: its Message-ID, or why it is not a message. */
export function messageIdOf(raw: Buffer): { messageId: string | undefined } | { error: string } {
  const end = raw.indexOf('\r\n\r\n') >= 0 ? raw.indexOf('\r\n\r\n') : raw.indexOf('\n\n');
  const head = raw.subarray(0, end < 0 ? Math.min(raw.length, 256 * 1024) : end).toString('latin1');
  if (!/^[!-9;-~]+:/.test(head)) return { error: 'it is not an RFC 822 message (it does not start with a header)' };
  const m = /^message-id:[ \t]*((?:.|\r?\n[ \t])*)/im.exec(head);
  const id = m?.[1]?.replace(/\r?\n[ \t]+/g, ' ').trim().match(/<[^<>\s]+>/)?.[0];
  return { messageId: id };
}

function base64Message(text: string, where: string): Buffer {
  const b64 = text.replace(/\s+/g, '');
  if (b64 === '') throw new InsertXmlError(`${where}: <content> is empty`);
  if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(b64) || b64.replace(/=+$/, '').length % 4 === 1) {
    throw new InsertXmlError(`${where}: <content> is not base64`);
  }
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
    if (type === 'content') {
      const raw = base64Message(text(file['content'], `${where}: <file>`, 'content'), where);
      const head = messageIdOf(raw);
      if ('error' in head) throw new InsertXmlError(`${where}: the decoded <content> ${head.error}`);
      if (head.messageId === undefined) throw new InsertXmlError(`${where}: the message has no Message-ID header, which Insert needs to find an earlier attempt and never import a message twice`);
      messageId = head.messageId;
      source = { kind: 'content', raw };
    } else if (type === 'file') {
      const path = text(file['path'], `${where}: <file>`, 'path');
      const gs = parseGsPath(path);
      if (!gs) throw new InsertXmlError(`${where}: <path> must be gs://bucket/object, got ${JSON.stringify(path.slice(0, 200))}`);
      source = { kind: 'gs', ...gs };
    } else {
      throw new InsertXmlError(`${where}: <type> must be content (base64 in <content>) or file (gs://bucket/object in <path>), got ${JSON.stringify(type)}`);
    }
    return { reference, user, labels, method, source, ...(messageId ? { messageId } : {}) };
  });
}
