/**
 * Document identifiers, as IDOL connectors write them: standard base64 (with `=`
 * padding) of one short XML element,
 *
 *     <id s="TASK" r="address/messageId"><p n="name" v="value"/>...</id>
 *
 * where `s` is the task section name and `r` is the mailbox address (lower-cased)
 * and the Gmail message id (lower-case hex), joined by the last `/`. Optional
 * `<p>` children carry extra properties. An IDOL client reads one with any base64
 * decoder and XML parser. Also parses the `Identifiers` (comma-separated) and
 * `IdentifiersXML` action parameters. Pure: no I/O.
 *
 * Decoding is strict, and every refusal is an {@link IdentifierError} whose message
 * says what is wrong:
 * - Only the standard base64 alphabet, with padding, in canonical form: the
 *   URL-safe alphabet (`-`, `_`) is refused, because IDOL never writes it and one
 *   spelling per identifier keeps identifiers usable as keys.
 * - The bytes must be UTF-8, and the XML well-formed, with no DOCTYPE, processing
 *   instruction, comment or CDATA section (an XML declaration at the very start is
 *   allowed). Only the five predefined entities and character references are
 *   decoded, by this module, so nothing can expand.
 * - Names, values and structure are checked exactly; whitespace between elements
 *   is the only text allowed.
 * - Values may not hold control characters U+0000–U+001F (XML cannot carry most of
 *   them, and parsers turn tabs and newlines in attributes into spaces), lone
 *   surrogates, U+FFFE or U+FFFF; {@link encodeIdentifier} refuses them too.
 * - Inputs over 1 MiB, and requests naming more than {@link MAX_IDENTIFIERS}
 *   identifiers, are refused.
 */
import { XMLBuilder, XMLParser, XMLValidator } from 'fast-xml-parser';
import { errorMessage } from '../error-message.js';

/** Most identifiers one `Identifiers` or `IdentifiersXML` parameter may name. */
export const MAX_IDENTIFIERS = 10000;

/** Most bytes (UTF-8) of an identifier, `Identifiers` or `IdentifiersXML` value: 1 MiB. */
export const MAX_INPUT_BYTES = 1024 * 1024;

/** One document: a message of a mailbox, fetched by a task. */
export interface Identifier {
  /** The task section name: letters, digits, `_` and `-`, 1–64 characters. */
  readonly task: string;
  /** The mailbox address, lower-cased. */
  readonly address: string;
  /** The Gmail message id: 1–32 lower-case hex digits. */
  readonly messageId: string;
  /** Extra properties; absent when there are none. */
  readonly props?: Readonly<Record<string, string>>;
}

/** One entry of `IdentifiersXML`: an identifier (still encoded) and its metadata. */
export interface IdentifierWithMetadata {
  readonly identifier: string;
  readonly metadata: Record<string, string>;
}

/** The one error this module throws; `message` says what is wrong. */
export class IdentifierError extends Error {
  override readonly name = 'IdentifierError';
}

const TASK = /^[A-Za-z0-9_-]{1,64}$/;
const MESSAGE_ID = /^[0-9a-f]{1,32}$/;
// RFC 5322 dot-atom local part (no quoted strings), then a DNS name of two or more labels.
const ATEXT = "[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+";
const EMAIL = new RegExp(
  `^(?=.{3,254}$)(?=.{1,64}@)${ATEXT}(?:\\.${ATEXT})*@(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$`,
  'i',
);
const PREDEFINED_ENTITIES = new Map([['lt', '<'], ['gt', '>'], ['amp', '&'], ['quot', '"'], ['apos', "'"]]);
const UNSAFE_CHAR = /[\u0000-\u001F\uFFFE\uFFFF]|\p{Cs}/u;

const builder = new XMLBuilder({
  ignoreAttributes: false,
  attributeNamePrefix: '@',
  suppressEmptyNode: true,
  suppressBooleanAttributes: false,
});

const parser = new XMLParser({
  preserveOrder: true,
  ignoreAttributes: false,
  attributeNamePrefix: '',
  trimValues: false,
  parseTagValue: false,
  parseAttributeValue: false,
  processEntities: false,
  ignoreDeclaration: true,
});

/** Encodes an identifier; throws {@link IdentifierError} when a part is not valid. */
export function encodeIdentifier(id: {
  task: string;
  address: string;
  messageId: string;
  props?: Record<string, string>;
}): string {
  const address = id.address.toLowerCase();
  checkParts(id.task, address, id.messageId, 'task', 'address', 'message id');
  const props = Object.entries(id.props ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  props.forEach(([n, v], i) => checkProp(n, v, `property ${i + 1}`));
  const p = props.map(([n, v]) => ({ '@n': n, '@v': v }));
  const xml = builder.build({ id: { '@s': id.task, '@r': `${address}/${id.messageId}`, ...(p.length ? { p } : {}) } }) as string;
  return Buffer.from(xml, 'utf8').toString('base64');
}

/** Decodes and checks an identifier; throws {@link IdentifierError} saying what is wrong. */
export function decodeIdentifier(value: string): Identifier {
  if (value === '') throw new IdentifierError('identifier is empty');
  checkSize(value, 'identifier');
  const root = readXml(utf8(base64(value)));
  if (root.name !== 'id') throw new IdentifierError(`root element must be <id>, got <${root.name}>`);
  const { s, r } = attributes(root, '<id>', ['s', 'r']);
  const slash = r.lastIndexOf('/');
  if (slash < 0) throw new IdentifierError('attribute r must be "address/messageId"');
  const address = r.slice(0, slash).toLowerCase();
  const messageId = r.slice(slash + 1);
  checkParts(s, address, messageId, 'attribute s', 'address in attribute r', 'message id in attribute r');
  const props: [string, string][] = [];
  root.children.forEach((child, i) => {
    const where = `<p> ${i + 1}`;
    if (child.name !== 'p') throw new IdentifierError(`<id> may contain only <p> elements, got <${child.name}>`);
    if (child.children.length) throw new IdentifierError(`${where} must be empty`);
    const { n, v } = attributes(child, where, ['n', 'v']);
    checkProp(n, v, where);
    if (props.some(([name]) => name === n)) throw new IdentifierError(`property ${JSON.stringify(n)} is given twice`);
    props.push([n, v]);
  });
  return { task: s, address, messageId, ...(props.length ? { props: Object.fromEntries(props) } : {}) };
}

/** The identifiers of an `Identifiers` value (already percent-decoded): comma-separated, trimmed, empties dropped. */
export function parseIdentifierList(raw: string): string[] {
  checkSize(raw, 'Identifiers');
  const ids = raw.split(',').map((s) => s.trim()).filter((s) => s !== '');
  checkCount(ids.length);
  return ids;
}

/** The entries of an `IdentifiersXML` value: `<identifiersXML><identifier value="ID"><metadata name="n" value="v"/>…`. */
export function parseIdentifiersXml(xml: string): IdentifierWithMetadata[] {
  checkSize(xml, 'IdentifiersXML');
  const root = readXml(xml);
  if (root.name !== 'identifiersXML') throw new IdentifierError(`root element must be <identifiersXML>, got <${root.name}>`);
  attributes(root, '<identifiersXML>', []);
  checkCount(root.children.length);
  return root.children.map((el, i) => {
    const where = `identifier ${i + 1}`;
    if (el.name !== 'identifier') throw new IdentifierError(`<identifiersXML> may contain only <identifier> elements, got <${el.name}>`);
    const identifier = (el.attrs.get('value') ?? '').trim();
    if (identifier === '') throw new IdentifierError(`${where} has no value`);
    attributes(el, where, ['value']);
    const metadata: [string, string][] = [];
    el.children.forEach((child, j) => {
      const what = `${where}: metadata ${j + 1}`;
      if (child.name !== 'metadata') throw new IdentifierError(`${where} may contain only <metadata> elements, got <${child.name}>`);
      if (child.children.length) throw new IdentifierError(`${what} must be empty`);
      const { name, value } = attributes(child, what, ['name', 'value']);
      checkProp(name, value, what);
      if (metadata.some(([n]) => n === name)) throw new IdentifierError(`${where} has metadata ${JSON.stringify(name)} twice`);
      metadata.push([name, value]);
    });
    return { identifier, metadata: Object.fromEntries(metadata) };
  });
}

function checkParts(task: string, address: string, messageId: string, ...labels: [string, string, string]): void {
  if (!TASK.test(task)) throw new IdentifierError(`${labels[0]} must be a task name: letters, digits, _ and -, 1-64 characters`);
  if (!EMAIL.test(address)) throw new IdentifierError(`${labels[1]} must be an email address, got ${JSON.stringify(address)}`);
  if (!MESSAGE_ID.test(messageId)) throw new IdentifierError(`${labels[2]} must be 1-32 lower-case hex digits, got ${JSON.stringify(messageId)}`);
}

function checkProp(name: string, value: string, where: string): void {
  if (name === '') throw new IdentifierError(`${where} has an empty name`);
  for (const [label, text] of [['name', name], ['value', value]] as const) {
    const bad = UNSAFE_CHAR.exec(text)?.[0];
    if (bad !== undefined) throw new IdentifierError(`${where}: ${label} holds ${codePoint(bad)}, which identifiers cannot carry`);
  }
}

function checkSize(text: string, what: string): void {
  if (text.length > MAX_INPUT_BYTES || Buffer.byteLength(text, 'utf8') > MAX_INPUT_BYTES) throw new IdentifierError(`${what} is over 1 MiB`);
}

function checkCount(count: number): void {
  if (count > MAX_IDENTIFIERS) throw new IdentifierError(`too many identifiers: ${count}, at most ${MAX_IDENTIFIERS}`);
}

function codePoint(ch: string): string {
  return `U+${(ch.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0')}`;
}

function base64(value: string): Buffer {
  const bad = /[^A-Za-z0-9+/=]/.exec(value);
  if (bad) {
    const hint = bad[0] === '-' || bad[0] === '_' ? ' (URL-safe base64 is not accepted)' : '';
    throw new IdentifierError(`not base64: character ${JSON.stringify(bad[0])} at offset ${bad.index}${hint}`);
  }
  if (!/^[^=]*={0,2}$/.test(value)) throw new IdentifierError('not base64: misplaced padding');
  if (value.length % 4 !== 0) throw new IdentifierError(`not base64: length ${value.length} is not a multiple of 4`);
  const bytes = Buffer.from(value, 'base64');
  if (bytes.toString('base64') !== value) throw new IdentifierError('not base64: non-zero bits after the last byte');
  return bytes;
}

function utf8(bytes: Buffer): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new IdentifierError('not UTF-8');
  }
}

/** An element as read: its name, attribute values (entities decoded) and child elements. */
interface Element {
  readonly name: string;
  readonly attrs: Map<string, string>;
  readonly children: Element[];
}

/** Reads a document of exactly one root element, with no text but whitespace. */
function readXml(text: string): Element {
  // Every '<' must start a tag; what else may follow one is refused here, before parsing.
  const body = text.replace(/^\uFEFF?<\?xml\s[^<>?]*\?>/, '');
  for (const m of body.matchAll(/<[^A-Za-z_:/\u0080-\uFFFF]/g)) {
    const at = body.slice(m.index);
    if (/^<!DOCTYPE/i.test(at)) throw new IdentifierError('DOCTYPE is not allowed');
    if (at.startsWith('<?')) throw new IdentifierError('processing instructions are not allowed');
    if (at.startsWith('<!--')) throw new IdentifierError('comments are not allowed');
    if (at.startsWith('<![CDATA[')) throw new IdentifierError('CDATA sections are not allowed');
    throw new IdentifierError(`not XML: ${JSON.stringify(at.slice(0, 2))} does not start a tag`);
  }
  let nodes: unknown;
  try {
    const valid = XMLValidator.validate(text, { allowBooleanAttributes: false });
    if (valid !== true) {
      const { msg, line, col } = valid.err;
      throw new IdentifierError(`not XML: ${msg} (line ${line}${col === undefined ? '' : `, column ${col}`})`);
    }
    // The parser drops text after the last element, so look for it here.
    if (!/>[ \t\r\n]*$/.test(body)) throw new IdentifierError('not XML: text after the root element');
    nodes = parser.parse(text);
  } catch (e) {
    if (e instanceof IdentifierError) throw e;
    throw new IdentifierError(`not XML: ${errorMessage(e)}`);
  }
  const roots = elements(nodes, 'the document');
  if (roots.length !== 1) throw new IdentifierError(`the document must have exactly one root element, got ${roots.length}`);
  return roots[0]!;
}

/** Converts the parser's preserve-order nodes to elements, refusing text that is not whitespace. */
function elements(nodes: unknown, parent: string): Element[] {
  const out: Element[] = [];
  for (const node of Array.isArray(nodes) ? (nodes as Record<string, unknown>[]) : []) {
    const name = Object.keys(node).find((k) => k !== ':@');
    if (name === undefined) continue;
    if (name === '#text') {
      if (/[^ \t\r\n]/.test(String(node[name]))) throw new IdentifierError(`${parent} must not contain text`);
      continue;
    }
    const attrs = new Map<string, string>();
    for (const [k, v] of Object.entries((node[':@'] ?? {}) as Record<string, unknown>)) attrs.set(k, entities(String(v), name, k));
    out.push({ name, attrs, children: elements(node[name], `<${name}>`) });
  }
  return out;
}

/** Decodes an attribute value's predefined entities and character references; anything else is refused. */
function entities(raw: string, element: string, attr: string): string {
  if (raw.includes('<')) throw new IdentifierError(`not XML: "<" in attribute ${attr} of <${element}>`);
  return raw.replace(/&([^;&]*);?/g, (ref, body: string) => {
    const code = /^#x[0-9a-fA-F]{1,6}$/.test(body) ? parseInt(body.slice(2), 16) : /^#[0-9]{1,7}$/.test(body) ? Number(body.slice(1)) : -1;
    const named = PREDEFINED_ENTITIES.get(body);
    if (ref.endsWith(';') && named !== undefined) return named;
    if (ref.endsWith(';') && code >= 0 && code <= 0x10ffff) return String.fromCodePoint(code);
    throw new IdentifierError(`not XML: bad entity reference ${JSON.stringify(ref)} in attribute ${attr} of <${element}>`);
  });
}

/** The named attributes of an element, all required; any other attribute is refused. */
function attributes<K extends string>(el: Element, where: string, names: readonly K[]): Record<K, string> {
  const out = {} as Record<K, string>;
  for (const key of el.attrs.keys()) {
    if (!(names as readonly string[]).includes(key)) throw new IdentifierError(`${where} has unexpected attribute ${JSON.stringify(key)}`);
  }
  for (const key of names) {
    const value = el.attrs.get(key);
    if (value === undefined) throw new IdentifierError(`${where} has no attribute ${key}`);
    out[key] = value;
  }
  return out;
}
