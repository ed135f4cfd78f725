// Reading DOCX/PPTX/EPUB containers without trusting them (spec §7, zip bombs). The central directory is
// checked before anything is inflated: the declared uncompressed total must fit `maxUncompressedBytes` and no
// sizeable entry may claim a compression ratio above `maxCompressionRatio`. Inflation is then capped at the
// declared size of the entry, so an entry whose header lies stops at that size instead of filling memory.
import { crc32, inflateRawSync } from 'node:zlib';
import { PermanentProcessingError } from '../../errors.js';
import type { ExtractLimits } from '../extract.js';

interface ZipEntry {
  name: string;
  flags: number;
  method: number;
  crc: number;
  compressedSize: number;
  uncompressedSize: number;
  localHeaderOffset: number;
}

const EOCD_SIGNATURE = 0x06054b50;
const ZIP64_LOCATOR_SIGNATURE = 0x07064b50;
const ZIP64_EOCD_SIGNATURE = 0x06064b50;
const CENTRAL_SIGNATURE = 0x02014b50;
const LOCAL_SIGNATURE = 0x04034b50;
const UINT16_MAX = 0xffff;
const UINT32_MAX = 0xffffffff;
const METHOD_STORED = 0;
const METHOD_DEFLATE = 8;
const FLAG_ENCRYPTED = 0x1;
/** Entries up to this size are exempt from the ratio check: a small part that compresses well is no bomb. */
const RATIO_CHECK_MIN_BYTES = 1024 * 1024;

const BOMB_MESSAGE = 'Document archive expands beyond the allowed size';

function sizeText(bytes: number): string {
  const megabytes = bytes / (1024 * 1024);
  return megabytes < 1 ? `${bytes} bytes` : `${Math.round(megabytes * 10) / 10} MB`;
}

function invalid(detail: string): PermanentProcessingError {
  return new PermanentProcessingError(`Unreadable document archive: ${detail}`);
}

/** A zip archive whose directory passed the size and ratio checks. */
export class ZipArchive {
  readonly #bytes: Buffer;
  readonly #entries: Map<string, ZipEntry>;

  private constructor(bytes: Buffer, entries: Map<string, ZipEntry>) {
    this.#bytes = bytes;
    this.#entries = entries;
  }

  /** Reads the central directory; PermanentProcessingError for a non-zip or a bomb. */
  static open(bytes: Buffer, limits: ExtractLimits): ZipArchive {
    const entries = readDirectory(bytes);
    let declaredTotal = 0;
    for (const entry of entries.values()) declaredTotal += entry.uncompressedSize;
    if (declaredTotal > limits.maxUncompressedBytes) {
      throw new PermanentProcessingError(
        `${BOMB_MESSAGE}: ${sizeText(declaredTotal)} uncompressed (limit ${sizeText(limits.maxUncompressedBytes)})`,
      );
    }
    for (const entry of entries.values()) {
      const ratio = entry.uncompressedSize / Math.max(1, entry.compressedSize);
      if (entry.uncompressedSize > RATIO_CHECK_MIN_BYTES && ratio > limits.maxCompressionRatio) {
        throw new PermanentProcessingError(
          `${BOMB_MESSAGE}: ${entry.name} expands ${Math.round(ratio)}:1 (limit ${limits.maxCompressionRatio}:1)`,
        );
      }
    }
    return new ZipArchive(bytes, entries);
  }

  /** Entry names in directory order (folders left out). */
  names(): string[] {
    return [...this.#entries.keys()].filter((name) => !name.endsWith('/'));
  }

  has(name: string): boolean {
    return this.#entries.has(name);
  }

  /** The uncompressed bytes of entry `name`, or undefined when there is none. */
  read(name: string): Buffer | undefined {
    const entry = this.#entries.get(name);
    return entry === undefined ? undefined : this.#inflate(entry);
  }

  /** Entry `name` decoded as UTF-8 (BOM dropped), or undefined when there is none. */
  text(name: string): string | undefined {
    const bytes = this.read(name);
    return bytes === undefined ? undefined : new TextDecoder('utf-8').decode(bytes);
  }

  #inflate(entry: ZipEntry): Buffer {
    if (entry.flags & FLAG_ENCRYPTED) throw new PermanentProcessingError('Encrypted document');
    const bytes = this.#bytes;
    const local = entry.localHeaderOffset;
    if (local + 30 > bytes.length || bytes.readUInt32LE(local) !== LOCAL_SIGNATURE) {
      throw invalid(`corrupt entry ${entry.name}`);
    }
    const start = local + 30 + bytes.readUInt16LE(local + 26) + bytes.readUInt16LE(local + 28);
    const end = start + entry.compressedSize;
    if (end > bytes.length) throw invalid(`truncated entry ${entry.name}`);
    const compressed = bytes.subarray(start, end);
    let output: Buffer;
    if (entry.method === METHOD_STORED) {
      // a copy, so a picture handed on does not keep the whole archive in memory
      output = Buffer.from(compressed);
    } else if (entry.method === METHOD_DEFLATE) {
      try {
        // never more than the directory declared (and the limits accepted): a lying header stops here
        output = inflateRawSync(compressed, { maxOutputLength: Math.max(1, entry.uncompressedSize) });
      } catch (error) {
        if ((error as { code?: unknown }).code === 'ERR_BUFFER_TOO_LARGE') {
          throw new PermanentProcessingError(`${BOMB_MESSAGE}: ${entry.name} is larger than declared`);
        }
        throw invalid(`corrupt data in ${entry.name}`);
      }
    } else {
      throw invalid(`unsupported compression method ${entry.method} in ${entry.name}`);
    }
    if (output.length !== entry.uncompressedSize || crc32(output) !== entry.crc) {
      throw invalid(`corrupt data in ${entry.name}`);
    }
    return output;
  }
}

function uint64(bytes: Buffer, offset: number): number {
  return bytes.readUInt32LE(offset) + bytes.readUInt32LE(offset + 4) * 2 ** 32;
}

function findEndOfCentralDirectory(bytes: Buffer): number {
  const lowest = Math.max(0, bytes.length - 22 - UINT16_MAX);
  for (let offset = bytes.length - 22; offset >= lowest; offset--) {
    if (bytes.readUInt32LE(offset) === EOCD_SIGNATURE) return offset;
  }
  throw invalid('not a zip archive');
}

function readDirectory(bytes: Buffer): Map<string, ZipEntry> {
  const end = findEndOfCentralDirectory(bytes);
  let count = bytes.readUInt16LE(end + 10);
  let offset = bytes.readUInt32LE(end + 16);
  if ((count === UINT16_MAX || offset === UINT32_MAX) && end >= 20) {
    const locator = end - 20;
    if (bytes.readUInt32LE(locator) === ZIP64_LOCATOR_SIGNATURE) {
      const zip64End = uint64(bytes, locator + 8);
      if (zip64End + 56 > bytes.length || bytes.readUInt32LE(zip64End) !== ZIP64_EOCD_SIGNATURE) {
        throw invalid('corrupt zip64 directory');
      }
      count = uint64(bytes, zip64End + 32);
      offset = uint64(bytes, zip64End + 48);
    }
  }
  const decoder = new TextDecoder('utf-8');
  const entries = new Map<string, ZipEntry>();
  for (let index = 0; index < count; index++) {
    if (offset + 46 > bytes.length || bytes.readUInt32LE(offset) !== CENTRAL_SIGNATURE) {
      throw invalid('corrupt directory');
    }
    const nameLength = bytes.readUInt16LE(offset + 28);
    const extraLength = bytes.readUInt16LE(offset + 30);
    const commentLength = bytes.readUInt16LE(offset + 32);
    const entry: ZipEntry = {
      name: decoder.decode(bytes.subarray(offset + 46, offset + 46 + nameLength)),
      flags: bytes.readUInt16LE(offset + 8),
      method: bytes.readUInt16LE(offset + 10),
      crc: bytes.readUInt32LE(offset + 16),
      compressedSize: bytes.readUInt32LE(offset + 20),
      uncompressedSize: bytes.readUInt32LE(offset + 24),
      localHeaderOffset: bytes.readUInt32LE(offset + 42),
    };
    applyZip64Extra(bytes, offset + 46 + nameLength, extraLength, entry);
    entries.set(entry.name, entry);
    offset += 46 + nameLength + extraLength + commentLength;
  }
  return entries;
}

/** Sizes and offsets stored as 0xFFFFFFFF are in the zip64 extra field, in this order. */
function applyZip64Extra(bytes: Buffer, start: number, length: number, entry: ZipEntry): void {
  const end = Math.min(start + length, bytes.length);
  let offset = start;
  while (offset + 4 <= end) {
    const id = bytes.readUInt16LE(offset);
    const size = bytes.readUInt16LE(offset + 2);
    if (id === 0x0001) {
      let field = offset + 4;
      if (entry.uncompressedSize === UINT32_MAX && field + 8 <= end) {
        entry.uncompressedSize = uint64(bytes, field);
        field += 8;
      }
      if (entry.compressedSize === UINT32_MAX && field + 8 <= end) {
        entry.compressedSize = uint64(bytes, field);
        field += 8;
      }
      if (entry.localHeaderOffset === UINT32_MAX && field + 8 <= end) {
        entry.localHeaderOffset = uint64(bytes, field);
      }
      return;
    }
    offset += 4 + size;
  }
}
