/**
 * Proto3 JSON as the Cloud Tasks REST API reads and writes it.
 *
 * Owns the scalar encodings: timestamps (RFC 3339, kept as integer microseconds, the precision
 * Cloud Tasks keeps), durations ("1.5s", kept as milliseconds), enums (numbers, as the client
 * library sends them, or names, as `gcloud` does), int32 and double values (numbers or numeric
 * strings), bytes (base64), and message objects whose field names may be lowerCamelCase or
 * snake_case. Everything malformed is an INVALID_ARGUMENT naming the field.
 */
import { invalidArgument } from './errors.js';

/** Microseconds since the epoch. */
export type Micros = number;

export const nowMicros = (): Micros => Date.now() * 1000;

const TIMESTAMP =
  /^(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})$/;

/** Reads an RFC 3339 timestamp, truncated to microseconds. */
export function parseTimestamp(value: unknown, field: string): Micros {
  const match = typeof value === 'string' ? TIMESTAMP.exec(value) : null;
  const zone = match?.[4] === 'z' ? 'Z' : match?.[4];
  const seconds = match ? Date.parse(`${match[1]}T${match[2]}${zone}`) : NaN;
  if (!match || Number.isNaN(seconds)) {
    throw invalidArgument(
      `Invalid value at '${field}' (type.googleapis.com/google.protobuf.Timestamp), ${JSON.stringify(value)}`,
    );
  }
  const micros = Number((match[3] ?? '').padEnd(9, '0').slice(0, 6));
  return seconds * 1000 + micros;
}

/** Writes a timestamp with 0, 3 or 6 fractional digits, as proto3 JSON does. */
export function formatTimestamp(micros: Micros): string {
  const whole = Math.floor(micros / 1_000_000);
  const fraction = micros - whole * 1_000_000;
  const base = new Date(whole * 1000).toISOString().slice(0, 19);
  if (fraction === 0) return `${base}Z`;
  if (fraction % 1000 === 0) return `${base}.${String(fraction / 1000).padStart(3, '0')}Z`;
  return `${base}.${String(fraction).padStart(6, '0')}Z`;
}

const DURATION = /^(-)?(\d+)(?:\.(\d{1,9}))?s$/;

/** Reads a duration string ("600s", "0.100s") as milliseconds. */
export function parseDuration(value: unknown, field: string): number {
  const match = typeof value === 'string' ? DURATION.exec(value) : null;
  if (!match) {
    throw invalidArgument(
      `Invalid value at '${field}' (type.googleapis.com/google.protobuf.Duration), ${JSON.stringify(value)}`,
    );
  }
  const nanos = Number((match[3] ?? '').padEnd(9, '0'));
  const ms = Number(match[2]) * 1000 + nanos / 1e6;
  return match[1] ? -ms : ms;
}

/** Writes milliseconds as a duration with 0, 3, 6 or 9 fractional digits. */
export function formatDuration(ms: number): string {
  const totalNanos = Math.round(ms * 1e6);
  const seconds = Math.trunc(totalNanos / 1e9);
  const nanos = Math.abs(totalNanos - seconds * 1e9);
  const sign = totalNanos < 0 && seconds === 0 ? '-' : '';
  if (nanos === 0) return `${sign}${seconds}s`;
  let digits = String(nanos).padStart(9, '0');
  if (digits.endsWith('000000')) digits = digits.slice(0, 3);
  else if (digits.endsWith('000')) digits = digits.slice(0, 6);
  return `${sign}${seconds}.${digits}s`;
}

/** Reads an enum given as its number or its name; `names[i]` is the name of value i. */
export function parseEnum<T extends string>(value: unknown, names: readonly T[], field: string): T {
  if (typeof value === 'number' && Number.isInteger(value)) {
    const name = names[value];
    if (name !== undefined) return name;
  }
  if (typeof value === 'string') {
    if ((names as readonly string[]).includes(value)) return value as T;
    if (/^\d+$/.test(value)) {
      const name = names[Number(value)];
      if (name !== undefined) return name;
    }
  }
  throw invalidArgument(`Invalid value at '${field}', ${JSON.stringify(value)}`);
}

/** Writes an enum as a number when the caller asked for `enum-encoding=int`, else as its name. */
export function formatEnum<T extends string>(name: T, names: readonly T[], numeric: boolean): T | number {
  return numeric ? names.indexOf(name) : name;
}

/** Reads an int32 given as a number or a decimal string. */
export function parseInt32(value: unknown, field: string): number {
  const n = typeof value === 'string' && /^-?\d+$/.test(value.trim()) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < -2147483648 || n > 2147483647) {
    throw invalidArgument(`Invalid value at '${field}' (TYPE_INT32), ${JSON.stringify(value)}`);
  }
  return n;
}

/** Reads a finite double given as a number or a numeric string. */
export function parseDouble(value: unknown, field: string): number {
  const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isFinite(n)) {
    throw invalidArgument(`Invalid value at '${field}' (TYPE_DOUBLE), ${JSON.stringify(value)}`);
  }
  return n;
}

export function parseString(value: unknown, field: string): string {
  if (typeof value !== 'string') {
    throw invalidArgument(`Invalid value at '${field}' (TYPE_STRING), ${JSON.stringify(value)}`);
  }
  return value;
}

const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;

/** Reads bytes in standard or URL-safe base64, padded or not. */
export function parseBytes(value: unknown, field: string): Buffer {
  if (typeof value !== 'string' || !BASE64.test(value) || value.replace(/=+$/, '').length % 4 === 1) {
    throw invalidArgument(`Invalid value at '${field}' (TYPE_BYTES), Base64 decoding failed`);
  }
  return Buffer.from(value, 'base64');
}

export const snakeToCamel = (name: string): string =>
  name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());

/**
 * Reads a JSON object as a message with the given (lowerCamelCase) fields. Field names may be
 * written in snake_case too; `null` means absent; an unknown name is an error, as on Google.
 */
export function readMessage<F extends string>(
  value: unknown,
  where: string,
  fields: readonly F[],
): Partial<Record<F, unknown>> {
  if (value === null || value === undefined) return {};
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw invalidArgument(`Invalid value at '${where}', expected an object`);
  }
  const out: Partial<Record<F, unknown>> = {};
  for (const [key, field] of Object.entries(value as Record<string, unknown>)) {
    const name = snakeToCamel(key);
    if (!(fields as readonly string[]).includes(name)) {
      throw invalidArgument(
        `Invalid JSON payload received. Unknown name "${key}" at '${where}': Cannot find field.`,
      );
    }
    if (field === null) continue;
    if (Object.hasOwn(out, name)) {
      throw invalidArgument(`Invalid JSON payload received. Field "${name}" at '${where}' is given twice.`);
    }
    out[name as F] = field;
  }
  return out;
}
