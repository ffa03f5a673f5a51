// Streaming reader for mbox files (mboxo and mboxrd, as Google Takeout writes them).
//
// A message starts after a "From " separator line and runs up to the next one. A separator
// is a "From <sender> <ctime date>" line (Takeout writes "From <id>@xxx Wed Nov 22 09:13:09
// +0000 2023"), or, right after a blank line, any "From <sender>" line with a time or with
// nothing after the sender. The blank line that the writer puts between two messages is not
// part of the message, and lines that the writer escaped (">From ", ">>From ", ... at the
// start of a line) are unescaped by removing one ">" (mboxrd; for mboxo files this is the
// same for the usual single ">").
//
// The reader never holds more than the message being read: it yields each message with
// its byte range in the file so that callers can keep a small index and read the bytes
// again on demand with readMessageBytes().

import { createReadStream } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';

export interface MboxEntry {
  /** 0-based position of the message in the file. */
  index: number;
  /** The separator line without its line ending, e.g. "From 1783…@xxx Wed Nov 22 09:13:09 +0000 2023". */
  fromLine: string;
  /** Byte offset in the file of the first byte of the message (after the separator line). */
  offset: number;
  /** Bytes the message takes in the file (escaped form, separator blank line excluded). */
  fileLength: number;
  /** Whether the file bytes contain escaped "From " lines that readMessageBytes() must unescape. */
  escaped: boolean;
  /** The message as it was written before escaping: the bytes a client gets back. */
  raw: Buffer;
}

const LF = 0x0a;
const CR = 0x0d;
const GT = 0x3e;
const FROM_ = Buffer.from('From ');

// "From <sender> Wed Nov 22 09:13:09 +0000 2023" (Takeout) or "... Wed Nov 22 09:13:09 2023" (ctime).
const STRICT_FROM_LINE =
  /^From \S+\s+(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)\s+(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)\s+\d{1,2}\s+\d{1,2}:\d{2}(?::\d{2})?\s/;
// After a blank line, also a separator with some other date form, or with none ("From MAILER-DAEMON").
const LOOSE_FROM_LINE = /^From \S+(?:.*\d{1,2}:\d{2}|\s*$)/;

function isBlankLine(line: Buffer): boolean {
  return line.length === 1 ? line[0] === LF : line.length === 2 && line[0] === CR && line[1] === LF;
}

function startsWithFrom(line: Buffer, at = 0): boolean {
  return line.length - at >= 5 && line.compare(FROM_, 0, 5, at, at + 5) === 0;
}

/** Number of leading ">" when the line is an escaped "From " line, else 0. */
function escapeDepth(line: Buffer): number {
  let i = 0;
  while (i < line.length && line[i] === GT) i++;
  return i > 0 && startsWithFrom(line, i) ? i : 0;
}

function lineText(line: Buffer): string {
  let end = line.length;
  if (end > 0 && line[end - 1] === LF) end--;
  if (end > 0 && line[end - 1] === CR) end--;
  return line.toString('latin1', 0, end);
}

/**
 * Reads the messages of an mbox file one at a time.
 * Content before the first separator line (a file that does not start with "From ") is
 * yielded as a message with an empty fromLine, so nothing in the file is ever dropped.
 */
export async function* readMbox(path: string, chunkSize = 1 << 20): AsyncGenerator<MboxEntry> {
  let index = 0;
  let cur: { fromLine: string; offset: number; lines: Buffer[]; fileLength: number; escaped: boolean } | null = null;
  let prevBlank = true; // the start of the file counts as after a blank line
  let lastLineLength = 0; // file length of the last line of the current message

  const finish = (): MboxEntry | null => {
    if (cur === null) return null;
    const { lines } = cur;
    let fileLength = cur.fileLength;
    // The blank line written after every message is the separator's, not the message's.
    const last = lines[lines.length - 1];
    if (last !== undefined && isBlankLine(last)) {
      lines.pop();
      fileLength -= lastLineLength;
    }
    const entry: MboxEntry = {
      index: index++,
      fromLine: cur.fromLine,
      offset: cur.offset,
      fileLength,
      escaped: cur.escaped,
      raw: Buffer.concat(lines),
    };
    cur = null;
    return entry;
  };

  const stream = createReadStream(path, { highWaterMark: chunkSize });
  let pending: Buffer | null = null;
  let base = 0; // file offset of pending[0] (or of the next chunk when pending is null)
  const out: MboxEntry[] = [];

  const handleLine = (line: Buffer, offset: number): void => {
    if (startsWithFrom(line)) {
      const text = lineText(line);
      if (STRICT_FROM_LINE.test(text) || (prevBlank && LOOSE_FROM_LINE.test(text))) {
        const done = finish();
        if (done) out.push(done);
        cur = { fromLine: text, offset: offset + line.length, lines: [], fileLength: 0, escaped: false };
        prevBlank = false;
        lastLineLength = 0;
        return;
      }
    }
    if (cur === null) cur = { fromLine: '', offset, lines: [], fileLength: 0, escaped: false };
    cur.fileLength += line.length;
    lastLineLength = line.length;
    if (escapeDepth(line) > 0) {
      cur.lines.push(line.subarray(1));
      cur.escaped = true;
    } else {
      cur.lines.push(line);
    }
    prevBlank = isBlankLine(line);
  };

  for await (const chunk of stream as AsyncIterable<Buffer>) {
    const buf: Buffer = pending ? Buffer.concat([pending, chunk]) : chunk;
    let pos = 0;
    for (;;) {
      const nl = buf.indexOf(LF, pos);
      if (nl === -1) break;
      handleLine(buf.subarray(pos, nl + 1), base + pos);
      pos = nl + 1;
    }
    base += pos;
    pending = pos < buf.length ? buf.subarray(pos) : null;
    while (out.length > 0) yield out.shift() as MboxEntry;
  }
  if (pending) handleLine(pending, base);
  const done = finish();
  if (done) out.push(done);
  while (out.length > 0) yield out.shift() as MboxEntry;
}

/** Undoes mboxrd escaping: removes one ">" from every line that is ">…>From ". */
export function unescapeMboxrd(buf: Buffer): Buffer {
  const parts: Buffer[] = [];
  let pos = 0;
  let start = 0;
  while (pos < buf.length) {
    const nl = buf.indexOf(LF, pos);
    const end = nl === -1 ? buf.length : nl + 1;
    if (buf[pos] === GT && escapeDepth(buf.subarray(pos, end)) > 0) {
      parts.push(buf.subarray(start, pos));
      start = pos + 1;
    }
    pos = end;
  }
  if (start === 0) return buf;
  parts.push(buf.subarray(start));
  return Buffer.concat(parts);
}

/** Escapes a message for writing into an mboxrd file (adds one ">" to every ">*From " line). */
export function escapeMboxrd(buf: Buffer): Buffer {
  const parts: Buffer[] = [];
  let pos = 0;
  let start = 0;
  while (pos < buf.length) {
    const nl = buf.indexOf(LF, pos);
    const end = nl === -1 ? buf.length : nl + 1;
    let i = pos;
    while (i < end && buf[i] === GT) i++;
    if (startsWithFrom(buf.subarray(0, end), i)) {
      parts.push(buf.subarray(start, pos), Buffer.from('>'));
      start = pos;
    }
    pos = end;
  }
  if (parts.length === 0) return buf;
  parts.push(buf.subarray(start));
  return Buffer.concat(parts);
}

/** Reads a message back from the file, unescaped, as readMbox() yielded it. */
export async function readMessageBytes(
  fh: FileHandle,
  entry: { offset: number; fileLength: number; escaped: boolean },
): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(entry.fileLength);
  let done = 0;
  while (done < entry.fileLength) {
    const { bytesRead } = await fh.read(buf, done, entry.fileLength - done, entry.offset + done);
    if (bytesRead === 0) throw new Error(`mbox file ended before the message at byte ${entry.offset}`);
    done += bytesRead;
  }
  return entry.escaped ? unescapeMboxrd(buf) : buf;
}

const MONTHS: Record<string, number> = {
  jan: 0, feb: 1, mar: 2, apr: 3, may: 4, jun: 5, jul: 6, aug: 7, sep: 8, oct: 9, nov: 10, dec: 11,
};

export interface FromLine {
  /** The envelope sender field, e.g. "1783474712482234839@xxx" in Takeout files. */
  sender: string;
  /** The date of the separator line in epoch ms, or null when it cannot be read. */
  date: number | null;
}

/** Parses a "From " separator line (Takeout's "+0000 2023" order and plain ctime order). */
export function parseFromLine(line: string): FromLine {
  const m = /^From\s+(\S+)\s*(.*)$/.exec(line);
  if (!m) return { sender: '', date: null };
  const sender = m[1] ?? '';
  const rest = m[2] ?? '';
  const d =
    /(?:[A-Za-z]{3},?\s+)?([A-Za-z]{3})\s+(\d{1,2})\s+(\d{1,2}):(\d{2})(?::(\d{2}))?\s+(?:([+-]\d{4}|[A-Z]{1,5})\s+)?(\d{4})(?:\s+([+-]\d{4}))?/.exec(
      rest,
    );
  if (!d) return { sender, date: null };
  const month = MONTHS[(d[1] ?? '').toLowerCase()];
  if (month === undefined) return { sender, date: null };
  const zone = /^[+-]\d{4}$/.test(d[6] ?? '') ? (d[6] as string) : /^[+-]\d{4}$/.test(d[8] ?? '') ? (d[8] as string) : '+0000';
  const sign = zone.startsWith('-') ? -1 : 1;
  const offsetMin = sign * (Number(zone.slice(1, 3)) * 60 + Number(zone.slice(3, 5)));
  const utc = Date.UTC(Number(d[7]), month, Number(d[2]), Number(d[3]), Number(d[4]), Number(d[5] ?? 0));
  if (!Number.isFinite(utc)) return { sender, date: null };
  return { sender, date: utc - offsetMin * 60_000 };
}
