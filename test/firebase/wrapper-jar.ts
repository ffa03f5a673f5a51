/**
 * firebase-tools 14.27.0 starts the Firestore emulator from `cloud-firestore-emulator-v1.19.8.jar`
 * in its emulators folder, and downloads it when absent. This makes that file offline: a small
 * jar (a zip holding only a manifest) whose `Main-Class` is the emulator's and whose `Class-Path`
 * is the real emulator jar the project already finds (test/emulators/firestore.ts), so
 * `java -jar` on it runs that jar.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { crc32 } from 'node:zlib';

/** The file name firebase-tools 14.27.0 looks for. */
export const FIREBASE_FIRESTORE_JAR = 'cloud-firestore-emulator-v1.19.8.jar';
export const FIRESTORE_MAIN_CLASS = 'com.google.cloud.datastore.emulator.firestore.CloudFirestore';

/** A manifest's lines are at most 72 bytes; longer ones continue on lines that start with a space. */
export function manifest(fields: Record<string, string>): string {
  const lines: string[] = [];
  for (const [k, v] of Object.entries(fields)) {
    let rest = `${k}: ${v}`;
    lines.push(rest.slice(0, 72));
    rest = rest.slice(72);
    while (rest.length > 0) {
      lines.push(` ${rest.slice(0, 71)}`);
      rest = rest.slice(71);
    }
  }
  return `${lines.join('\r\n')}\r\n\r\n`;
}

/** A zip archive of uncompressed (stored) entries. */
export function storedZip(entries: { name: string; data: Buffer }[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    const name = Buffer.from(e.name, 'utf8');
    const crc = crc32(e.data) >>> 0;
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(10, 4); // version needed
    local.writeUInt16LE(0x0800, 6); // names are UTF-8
    local.writeUInt16LE(0, 8); // stored
    local.writeUInt32LE(0x00210000, 10); // 1980-01-01 00:00, so the bytes never vary
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(e.data.length, 18);
    local.writeUInt32LE(e.data.length, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(0, 28);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4);
    central.writeUInt16LE(10, 6);
    central.writeUInt16LE(0x0800, 8);
    central.writeUInt16LE(0, 10);
    central.writeUInt32LE(0x00210000, 12);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(e.data.length, 20);
    central.writeUInt32LE(e.data.length, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE(offset, 42);
    locals.push(local, name, e.data);
    centrals.push(central, name);
    offset += local.length + name.length + e.data.length;
  }
  const dir = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(dir.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, dir, end]);
}

/** Writes the wrapper jar for `realJar` into `dir`; answers its path. */
export function writeWrapperJar(dir: string, realJar: string): string {
  mkdirSync(dir, { recursive: true });
  const mf = manifest({
    'Manifest-Version': '1.0',
    'Main-Class': FIRESTORE_MAIN_CLASS,
    // An absolute file: URL, percent-encoded, as Class-Path entries are URLs.
    'Class-Path': pathToFileURL(realJar).href,
    'Created-By': 'gmail-connector test/firebase/wrapper-jar.ts',
  });
  const path = join(dir, FIREBASE_FIRESTORE_JAR);
  writeFileSync(path, storedZip([{ name: 'META-INF/MANIFEST.MF', data: Buffer.from(mf, 'utf8') }]));
  return path;
}
