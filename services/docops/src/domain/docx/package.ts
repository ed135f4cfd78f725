// Opening a .docx template safely (§7 "Inputs") and writing it back with unchanged parts preserved byte for
// byte (§3.3 step 7).
//
// The zip's central directory is read with yauzl; every entry is then inflated here with a hard output cap,
// because declared sizes can lie. Unchanged entries are written back with their original compressed bytes,
// so images and other untouched parts cost nothing to copy and stay identical.
import { open, readFile, stat, writeFile } from 'node:fs/promises';
import { posix } from 'node:path';
import { crc32, deflateRawSync, inflateRawSync } from 'node:zlib';
import yauzl from 'yauzl';
import { DocopsInputError } from '../types.js';
import { type Document, type Element, parseXml, serializeXml, XML_NS, XmlParseError } from './dom.js';

export const DEFAULT_MAX_ENTRIES = 10_000;
/** Maximum element nesting of an XML part. */
export const MAX_XML_DEPTH = 256;
/** The compression-ratio rule applies to entries inflating to more than this. */
const RATIO_MIN_BYTES = 1024 * 1024;
const MAX_RATIO = 1000;

const ZIP_MAGIC = [0x50, 0x4b, 0x03, 0x04] as const;
const OFFICE_DOCUMENT_REL =
  /^(http:\/\/schemas\.openxmlformats\.org\/officeDocument\/2006\/relationships|http:\/\/purl\.oclc\.org\/ooxml\/officeDocument\/relationships)\/officeDocument$/;
const REL_NS = 'http://schemas.openxmlformats.org/package/2006/relationships';

export interface OpenLimits {
  /** cap on the sum of the inflated sizes of all entries */
  maxUncompressedBytes: number;
  /** default 10,000 */
  maxEntries?: number;
}

/** A relationship of a part, with its target resolved to a part name (null for external targets). */
export interface Relationship {
  id: string;
  type: string;
  target: string;
  external: boolean;
  partName: string | null;
}

/** One zip entry as held in memory. */
export interface ZipEntry {
  name: string;
  isDirectory: boolean;
  /** original compressed bytes (a view into the template buffer) */
  raw: Uint8Array;
  method: number;
  crc32: number;
  data: Uint8Array;
  dosTime: number;
  dosDate: number;
  versionMadeBy: number;
  externalAttributes: number;
}

function notAZip(): DocopsInputError {
  return new DocopsInputError(415, 'INVALID_MEDIA_TYPE', 'template is not a .docx (zip) file', {
    field: 'template',
    reason: 'not_a_zip',
  });
}

function corruptZip(): DocopsInputError {
  return new DocopsInputError(415, 'INVALID_MEDIA_TYPE', 'template is not a readable zip file', {
    field: 'template',
    reason: 'corrupt_zip',
  });
}

function notAWordDocument(): DocopsInputError {
  return new DocopsInputError(415, 'INVALID_MEDIA_TYPE', 'template is not a Word document', {
    field: 'template',
    reason: 'not_a_word_document',
  });
}

function tooLarge(maxUncompressedBytes: number, part: string | null): DocopsInputError {
  const message =
    part === null
      ? 'template has too many zip entries'
      : 'template expands beyond the allowed uncompressed size';
  return new DocopsInputError(413, 'TEMPLATE_TOO_LARGE', message, {
    field: 'template',
    max_uncompressed_bytes: maxUncompressedBytes,
    part,
  });
}

function invalidTemplate(part: string, error: string): DocopsInputError {
  return new DocopsInputError(400, 'INVALID_TEMPLATE', 'template contains invalid XML', {
    field: 'template',
    part,
    error,
  });
}

/** True for entry names that could escape an extraction directory or are not portable zip names. */
function unsafeEntryName(name: string): boolean {
  return (
    name === '' ||
    name.includes('\\') ||
    name.includes('\0') ||
    name.startsWith('/') ||
    /^[A-Za-z]:/.test(name) ||
    name.split('/').includes('..')
  );
}

/** Reads every central-directory entry (no data yet). yauzl validates names, offsets and zip64 records. */
function readCentralDirectory(
  zipfile: yauzl.ZipFile,
  maxEntries: number,
  maxBytes: number,
): Promise<yauzl.Entry[]> {
  return new Promise((resolve, reject) => {
    const entries: yauzl.Entry[] = [];
    let declaredTotal = 0;
    let settled = false;
    const fail = (error: unknown): void => {
      if (settled) return;
      settled = true;
      zipfile.close();
      reject(error instanceof DocopsInputError ? error : corruptZip());
    };
    zipfile.on('error', fail);
    zipfile.on('end', () => {
      if (settled) return;
      settled = true;
      resolve(entries);
    });
    zipfile.on('entry', (entry: yauzl.Entry) => {
      if (settled) return;
      if (entries.length >= maxEntries) return fail(tooLarge(maxBytes, null));
      if (unsafeEntryName(entry.fileName)) return fail(corruptZip());
      declaredTotal += entry.uncompressedSize;
      if (declaredTotal > maxBytes) return fail(tooLarge(maxBytes, entry.fileName));
      if (
        entry.uncompressedSize > RATIO_MIN_BYTES &&
        entry.uncompressedSize > MAX_RATIO * entry.compressedSize
      ) {
        return fail(tooLarge(maxBytes, entry.fileName));
      }
      entries.push(entry);
      zipfile.readEntry();
    });
    zipfile.readEntry();
  });
}

function decodeXmlText(bytes: Uint8Array): { text: string; utf16: boolean } {
  if (
    bytes.length >= 2 &&
    ((bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff))
  ) {
    const encoding = bytes[0] === 0xff ? 'utf-16le' : 'utf-16be';
    return { text: new TextDecoder(encoding, { fatal: true }).decode(bytes), utf16: true };
  }
  return { text: new TextDecoder('utf-8', { fatal: true }).decode(bytes), utf16: false };
}

/** Resolves a relationship target against the part that owns the relationships. */
function resolveTarget(sourcePart: string, target: string): string | null {
  let path: string;
  try {
    path = decodeURIComponent(target.split('#')[0] ?? '');
  } catch {
    return null;
  }
  if (path === '') return null;
  const base = path.startsWith('/') ? '' : posix.dirname(sourcePart);
  const joined = posix.normalize(posix.join('/', base, path));
  return joined === '/' ? null : joined.slice(1);
}

/** The relationships part of a part: `word/document.xml` → `word/_rels/document.xml.rels`. */
export function relationshipsPartName(partName: string): string {
  const dir = posix.dirname(partName);
  return `${dir === '.' ? '' : `${dir}/`}_rels/${posix.basename(partName)}.rels`;
}

/** An opened .docx package: its parts in zip order, parsed XML on demand, written back preserving bytes. */
export class DocxPackage {
  readonly mainPartName: string;
  private readonly entries: ZipEntry[];
  private readonly byName = new Map<string, ZipEntry>();
  private readonly byLowerName = new Map<string, ZipEntry>();
  private readonly documents = new Map<string, { doc: Document; utf16: boolean }>();
  private readonly changed = new Set<string>();

  private constructor(entries: ZipEntry[]) {
    this.entries = entries;
    for (const entry of entries) {
      if (entry.isDirectory) continue;
      this.byName.set(entry.name, entry);
      this.byLowerName.set(entry.name.toLowerCase(), entry);
    }
    this.mainPartName = this.findMainPart();
  }

  /** @internal Used by openDocxPackage. */
  static fromEntries(entries: ZipEntry[]): DocxPackage {
    return new DocxPackage(entries);
  }

  /** Part names (files, not directories) in zip order. */
  partNames(): string[] {
    return this.entries.filter((entry) => !entry.isDirectory).map((entry) => entry.name);
  }

  /** The canonical name of a part (OPC part names are case-insensitive), or undefined. */
  resolvePartName(name: string): string | undefined {
    return (this.byName.get(name) ?? this.byLowerName.get(name.toLowerCase()))?.name;
  }

  hasPart(name: string): boolean {
    return this.resolvePartName(name) !== undefined;
  }

  /** The part's current bytes: the original bytes, or the serialised DOM of a changed part. */
  readPart(name: string): Uint8Array | undefined {
    const canonical = this.resolvePartName(name);
    if (canonical === undefined) return undefined;
    if (this.changed.has(canonical)) return this.serialize(canonical);
    return this.byName.get(canonical)?.data;
  }

  /**
   * The parsed XML of a part, parsed once and cached. Refuses DOCTYPE declarations (so no entity tricks),
   * malformed XML and nesting deeper than 256 with 400 INVALID_TEMPLATE.
   */
  xml(partName: string): Document {
    const canonical = this.resolvePartName(partName);
    if (canonical === undefined) throw new Error(`no such part: ${partName}`);
    const cached = this.documents.get(canonical);
    if (cached !== undefined) return cached.doc;
    const bytes = this.byName.get(canonical)?.data ?? new Uint8Array();
    let decoded: { text: string; utf16: boolean };
    try {
      decoded = decodeXmlText(bytes);
    } catch {
      throw invalidTemplate(canonical, 'the part is not valid UTF-8 or UTF-16 text');
    }
    let doc: Document;
    try {
      doc = parseXml(decoded.text, { maxDepth: MAX_XML_DEPTH });
    } catch (error) {
      if (!(error instanceof XmlParseError)) throw error;
      if (error.reason === 'depth')
        throw invalidTemplate(canonical, `XML nests deeper than ${MAX_XML_DEPTH} elements`);
      if (error.reason === 'doctype')
        throw invalidTemplate(canonical, 'DOCTYPE declarations are not allowed');
      throw invalidTemplate(canonical, `malformed XML: ${shortMessage(error)}`);
    }
    this.documents.set(canonical, { doc, utf16: decoded.utf16 });
    return doc;
  }

  /** Relationships of a part (empty when it has no relationships part). */
  relationships(partName: string): Relationship[] {
    const relsName = this.resolvePartName(relationshipsPartName(partName));
    if (relsName === undefined) return [];
    const root = this.xml(relsName).documentElement;
    const result: Relationship[] = [];
    for (const el of root?.children ?? []) {
      if (el.localName !== 'Relationship' || el.namespaceURI !== REL_NS) continue;
      const target = el.getAttribute('Target') ?? '';
      const external = (el.getAttribute('TargetMode') ?? '').toLowerCase() === 'external';
      const resolved = external ? null : resolveTarget(partName, target);
      result.push({
        id: el.getAttribute('Id') ?? '',
        type: el.getAttribute('Type') ?? '',
        target,
        external,
        partName: resolved === null ? null : (this.resolvePartName(resolved) ?? resolved),
      });
    }
    return result;
  }

  /** Marks a part whose DOM (from `xml()`) was modified; it is serialised on write. */
  markChanged(partName: string): void {
    const canonical = this.resolvePartName(partName);
    if (canonical === undefined || !this.documents.has(canonical)) {
      throw new Error(`part was not parsed, cannot mark it changed: ${partName}`);
    }
    this.changed.add(canonical);
  }

  changedParts(): string[] {
    return this.entries.filter((entry) => this.changed.has(entry.name)).map((entry) => entry.name);
  }

  /** The package as zip bytes: same entry order; unchanged entries keep their original compressed bytes. */
  toBytes(): Uint8Array {
    const chunks: Uint8Array[] = [];
    const central: Uint8Array[] = [];
    const encoder = new TextEncoder();
    let offset = 0;
    for (const entry of this.entries) {
      let raw = entry.raw;
      let method = entry.method;
      let crc = entry.crc32;
      let size = entry.data.length;
      if (this.changed.has(entry.name)) {
        const data = this.serialize(entry.name);
        raw = deflateRawSync(data, { level: 6 });
        method = 8;
        crc = crc32(data);
        size = data.length;
      }
      const name = encoder.encode(entry.name);
      // bit 11: the name is UTF-8 (only needed when it is not plain ASCII)
      const flags = name.length !== entry.name.length || /[^\x20-\x7e]/.test(entry.name) ? 0x0800 : 0;
      if (offset > 0xfffffffe || raw.length > 0xfffffffe || size > 0xfffffffe) {
        throw new Error('package too large for a zip without zip64 records');
      }
      const local = Buffer.alloc(30);
      local.writeUInt32LE(0x04034b50, 0);
      local.writeUInt16LE(20, 4);
      local.writeUInt16LE(flags, 6);
      local.writeUInt16LE(method, 8);
      local.writeUInt16LE(entry.dosTime, 10);
      local.writeUInt16LE(entry.dosDate, 12);
      local.writeUInt32LE(crc >>> 0, 14);
      local.writeUInt32LE(raw.length, 18);
      local.writeUInt32LE(size, 22);
      local.writeUInt16LE(name.length, 26);
      local.writeUInt16LE(0, 28);
      const header = Buffer.alloc(46);
      header.writeUInt32LE(0x02014b50, 0);
      header.writeUInt16LE(entry.versionMadeBy & 0xffff, 4);
      header.writeUInt16LE(20, 6);
      header.writeUInt16LE(flags, 8);
      header.writeUInt16LE(method, 10);
      header.writeUInt16LE(entry.dosTime, 12);
      header.writeUInt16LE(entry.dosDate, 14);
      header.writeUInt32LE(crc >>> 0, 16);
      header.writeUInt32LE(raw.length, 20);
      header.writeUInt32LE(size, 24);
      header.writeUInt16LE(name.length, 28);
      header.writeUInt32LE(entry.externalAttributes >>> 0, 38);
      header.writeUInt32LE(offset, 42);
      chunks.push(local, name, raw);
      central.push(header, name);
      offset += local.length + name.length + raw.length;
    }
    const centralSize = central.reduce((sum, chunk) => sum + chunk.length, 0);
    const end = Buffer.alloc(22);
    end.writeUInt32LE(0x06054b50, 0);
    end.writeUInt16LE(this.entries.length, 8);
    end.writeUInt16LE(this.entries.length, 10);
    end.writeUInt32LE(centralSize, 12);
    end.writeUInt32LE(offset, 16);
    return Buffer.concat([...chunks, ...central, end]);
  }

  /** Writes the package as a zip file (see `toBytes`). */
  async writeTo(path: string): Promise<void> {
    await writeFile(path, this.toBytes());
  }

  private serialize(partName: string): Uint8Array {
    const parsed = this.documents.get(partName);
    if (parsed === undefined) return this.byName.get(partName)?.data ?? new Uint8Array();
    let text = serializeXml(parsed.doc);
    // The output is always UTF-8; a UTF-16 part's declaration must say so.
    if (parsed.utf16) text = text.replace(/^(<\?xml[^>]*encoding=["'])UTF-16(["'])/i, '$1UTF-8$2');
    return new TextEncoder().encode(text);
  }

  private findMainPart(): string {
    if (!this.hasPart('_rels/.rels')) throw notAWordDocument();
    const rel = this.relationships('').find((r) => OFFICE_DOCUMENT_REL.test(r.type) && !r.external);
    const partName = rel?.partName;
    if (partName === undefined || partName === null || !this.hasPart(partName)) throw notAWordDocument();
    const root = this.xml(partName).documentElement;
    if (root === null || root.localName !== 'document') throw notAWordDocument();
    return this.resolvePartName(partName) ?? partName;
  }
}

function shortMessage(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const firstLine = (message.split('\n')[0] ?? '').replace(/\s+/g, ' ').trim();
  return firstLine.length > 200 ? `${firstLine.slice(0, 200)}…` : firstLine || 'parse error';
}

/** Inflates one entry, refusing more output than `maxOutput` bytes. */
function inflateEntry(raw: Uint8Array, maxOutput: number): Buffer | 'too_large' | 'corrupt' {
  try {
    // 64 KiB chunks: 4x faster than the 16 KiB default on highly compressed data
    return inflateRawSync(raw, { maxOutputLength: Math.max(1, maxOutput), chunkSize: 64 * 1024 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') return 'too_large';
    return 'corrupt';
  }
}

/**
 * Opens a .docx template under the limits of §7: zip magic, entry names, entry count, declared and actual
 * inflated sizes, compression ratio, main document part. All failures are DocopsInputError (§3.8.6 rows
 * 7, 18, 19, 20) whose detail never names a server path.
 */
export async function openDocxPackage(path: string, limits: OpenLimits): Promise<DocxPackage> {
  const maxBytes = limits.maxUncompressedBytes;
  const maxEntries = limits.maxEntries ?? DEFAULT_MAX_ENTRIES;

  const head = Buffer.alloc(4);
  const handle = await open(path, 'r');
  let fileSize: number;
  try {
    const { bytesRead } = await handle.read(head, 0, 4, 0);
    if (bytesRead < 4 || ZIP_MAGIC.some((byte, i) => head[i] !== byte)) throw notAZip();
    fileSize = (await stat(path)).size;
  } finally {
    await handle.close();
  }
  // Compressed data is never much larger than its inflated size; a file far above the cap cannot fit it.
  if (fileSize > maxBytes + Math.ceil(maxBytes / 64) + 64 * 1024 * 1024) throw tooLarge(maxBytes, null);
  const buffer = await readFile(path);

  let zipfile: yauzl.ZipFile;
  try {
    zipfile = await yauzl.fromBufferPromise(buffer, {
      lazyEntries: true,
      decodeStrings: true,
      strictFileNames: true,
      validateEntrySizes: true,
      autoClose: false,
    });
  } catch {
    throw corruptZip();
  }
  if (zipfile.entryCount > maxEntries) {
    zipfile.close();
    throw tooLarge(maxBytes, null);
  }
  const centralEntries = await readCentralDirectory(zipfile, maxEntries, maxBytes);

  const entries: ZipEntry[] = [];
  const seen = new Set<string>();
  let compressedTotal = 0;
  let inflatedTotal = 0;
  try {
    for (const entry of centralEntries) {
      const name = entry.fileName;
      if (seen.has(name.toLowerCase())) throw corruptZip();
      seen.add(name.toLowerCase());
      // Entries sharing compressed data (overlapping-entry bombs) or encrypted entries are not Word files.
      compressedTotal += entry.compressedSize;
      if (compressedTotal > buffer.length || entry.isEncrypted()) throw corruptZip();
      if (entry.compressionMethod !== 0 && entry.compressionMethod !== 8) throw corruptZip();
      let dataStart: number;
      try {
        dataStart = (await zipfile.readLocalFileHeaderPromise(entry, { minimal: true })).fileDataStart;
      } catch {
        throw corruptZip();
      }
      const raw = buffer.subarray(dataStart, dataStart + entry.compressedSize);
      // Inflation stops one byte past the least of: the entry's declared size (declared sizes are already
      // capped in total, but can lie), what is left of the total budget, and the ratio rule. So a lying
      // entry costs at most its declared size in time and memory.
      const limit = Math.min(
        entry.uncompressedSize,
        maxBytes - inflatedTotal,
        Math.max(RATIO_MIN_BYTES, MAX_RATIO * entry.compressedSize),
      );
      let data: Uint8Array;
      if (entry.compressionMethod === 0) {
        data = raw;
      } else {
        const inflated = inflateEntry(raw, limit);
        if (inflated === 'too_large') throw tooLarge(maxBytes, name);
        if (inflated === 'corrupt') throw corruptZip();
        data = inflated;
      }
      // more than declared: an expanding entry (a zip bomb's lie); less: a truncated or damaged entry
      if (data.length > limit && entry.compressionMethod !== 0) throw tooLarge(maxBytes, name);
      if (data.length !== entry.uncompressedSize || crc32(data) >>> 0 !== entry.crc32 >>> 0)
        throw corruptZip();
      inflatedTotal += data.length;
      entries.push({
        name,
        isDirectory: name.endsWith('/'),
        raw,
        method: entry.compressionMethod,
        crc32: entry.crc32,
        data,
        dosTime: entry.lastModFileTime,
        dosDate: entry.lastModFileDate,
        versionMadeBy: entry.versionMadeBy,
        externalAttributes: entry.externalFileAttributes,
      });
    }
  } finally {
    zipfile.close();
  }
  return DocxPackage.fromEntries(entries);
}

/** Sets `xml:space="preserve"` on a `w:t` whose text needs it (leading, trailing or repeated whitespace). */
export function preserveSpaceIfNeeded(t: Element, text: string): void {
  if (/^\s|\s$|\s\s/.test(text) && t.getAttributeNS(XML_NS, 'space') !== 'preserve') {
    t.setAttributeNS(XML_NS, 'xml:space', 'preserve');
  }
}
