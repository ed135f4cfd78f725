// Reading parts of OOXML/ODF archives without trusting them (spec §7, zip bombs): the central directory gives
// the declared sizes, which must fit the budget before anything is inflated, and inflation (fflate, streamed
// in small pieces) stops as soon as the real output would exceed what is left of the budget.
import { Inflate } from 'fflate';

export interface ZipEntry {
  name: string;
  method: number;
  flags: number;
  compressedSize: number;
  uncompressedSize: number;
  localHeaderOffset: number;
}

/** The default cap on the uncompressed bytes read from one document (spec §7: 200 MB). */
export const MAX_UNCOMPRESSED_BYTES = 200 * 1024 * 1024;

export class ZipFormatError extends Error {}

/** Raised when the parts read from one archive would exceed the uncompressed budget. */
export class ZipTooLargeError extends Error {}

const EOCD_SIGNATURE = 0x06054b50;
const ZIP64_LOCATOR_SIGNATURE = 0x07064b50;
const ZIP64_EOCD_SIGNATURE = 0x06064b50;
const CENTRAL_SIGNATURE = 0x02014b50;
const LOCAL_SIGNATURE = 0x04034b50;
const UINT32_MAX = 0xffffffff;
const INFLATE_PIECE = 16 * 1024;

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function uint64(data: DataView, offset: number): number {
  return data.getUint32(offset, true) + data.getUint32(offset + 4, true) * 2 ** 32;
}

function findEndOfCentralDirectory(data: DataView): number {
  const lowest = Math.max(0, data.byteLength - 22 - 0xffff);
  for (let offset = data.byteLength - 22; offset >= lowest; offset--) {
    if (data.getUint32(offset, true) === EOCD_SIGNATURE) return offset;
  }
  throw new ZipFormatError('Not a zip archive');
}

/** Entries of the archive's central directory by name. */
export function readZipDirectory(bytes: Uint8Array): Map<string, ZipEntry> {
  const data = view(bytes);
  const end = findEndOfCentralDirectory(data);
  let count = data.getUint16(end + 10, true);
  let directoryOffset = data.getUint32(end + 16, true);
  if ((count === 0xffff || directoryOffset === UINT32_MAX) && end >= 20) {
    const locator = end - 20;
    if (data.getUint32(locator, true) === ZIP64_LOCATOR_SIGNATURE) {
      const zip64End = uint64(data, locator + 8);
      if (zip64End + 56 > data.byteLength || data.getUint32(zip64End, true) !== ZIP64_EOCD_SIGNATURE) {
        throw new ZipFormatError('Corrupt zip64 directory');
      }
      count = uint64(data, zip64End + 32);
      directoryOffset = uint64(data, zip64End + 48);
    }
  }
  const decoder = new TextDecoder();
  const entries = new Map<string, ZipEntry>();
  let offset = directoryOffset;
  for (let index = 0; index < count; index++) {
    if (offset + 46 > data.byteLength || data.getUint32(offset, true) !== CENTRAL_SIGNATURE) {
      throw new ZipFormatError('Corrupt zip directory');
    }
    const nameLength = data.getUint16(offset + 28, true);
    const extraLength = data.getUint16(offset + 30, true);
    const commentLength = data.getUint16(offset + 32, true);
    const entry: ZipEntry = {
      name: decoder.decode(bytes.subarray(offset + 46, offset + 46 + nameLength)),
      flags: data.getUint16(offset + 8, true),
      method: data.getUint16(offset + 10, true),
      compressedSize: data.getUint32(offset + 20, true),
      uncompressedSize: data.getUint32(offset + 24, true),
      localHeaderOffset: data.getUint32(offset + 42, true),
    };
    applyZip64Extra(data, offset + 46 + nameLength, extraLength, entry);
    entries.set(entry.name, entry);
    offset += 46 + nameLength + extraLength + commentLength;
  }
  return entries;
}

/** Sizes and offsets stored as 0xFFFFFFFF are in the zip64 extra field, in this order. */
function applyZip64Extra(data: DataView, start: number, length: number, entry: ZipEntry): void {
  let offset = start;
  const end = Math.min(start + length, data.byteLength);
  while (offset + 4 <= end) {
    const id = data.getUint16(offset, true);
    const size = data.getUint16(offset + 2, true);
    if (id === 0x0001) {
      let field = offset + 4;
      if (entry.uncompressedSize === UINT32_MAX && field + 8 <= end) {
        entry.uncompressedSize = uint64(data, field);
        field += 8;
      }
      if (entry.compressedSize === UINT32_MAX && field + 8 <= end) {
        entry.compressedSize = uint64(data, field);
        field += 8;
      }
      if (entry.localHeaderOffset === UINT32_MAX && field + 8 <= end)
        entry.localHeaderOffset = uint64(data, field);
      return;
    }
    offset += 4 + size;
  }
}

/** Tracks the uncompressed bytes still allowed for one document. */
export class UncompressedBudget {
  #remaining: number;

  constructor(readonly limit: number = MAX_UNCOMPRESSED_BYTES) {
    this.#remaining = limit;
  }

  /** Refuses, before inflating, parts whose declared sizes already exceed the budget. */
  checkDeclared(entries: readonly ZipEntry[]): void {
    let declared = 0;
    for (const entry of entries) declared += entry.uncompressedSize;
    if (declared > this.#remaining) throw new ZipTooLargeError(this.#message());
  }

  take(bytes: number): void {
    this.#remaining -= bytes;
    if (this.#remaining < 0) throw new ZipTooLargeError(this.#message());
  }

  #message(): string {
    return `Document too large when uncompressed (limit ${Math.round(this.limit / (1024 * 1024))} MB)`;
  }
}

/** The uncompressed bytes of one entry; every produced byte is taken from `budget`. */
export function readZipEntry(bytes: Uint8Array, entry: ZipEntry, budget: UncompressedBudget): Uint8Array {
  if (entry.flags & 0x1) throw new ZipFormatError(`Encrypted zip entry: ${entry.name}`);
  const data = view(bytes);
  const local = entry.localHeaderOffset;
  if (local + 30 > data.byteLength || data.getUint32(local, true) !== LOCAL_SIGNATURE) {
    throw new ZipFormatError('Corrupt zip entry');
  }
  const start = local + 30 + data.getUint16(local + 26, true) + data.getUint16(local + 28, true);
  const end = start + entry.compressedSize;
  if (end > bytes.byteLength) throw new ZipFormatError('Truncated zip entry');
  const compressed = bytes.subarray(start, end);
  if (entry.method === 0) {
    budget.take(compressed.byteLength);
    return compressed;
  }
  if (entry.method !== 8) throw new ZipFormatError(`Unsupported zip compression method ${entry.method}`);
  const pieces: Uint8Array[] = [];
  let total = 0;
  const inflater = new Inflate((piece) => {
    budget.take(piece.byteLength);
    pieces.push(piece);
    total += piece.byteLength;
  });
  for (let offset = 0; offset < compressed.byteLength; offset += INFLATE_PIECE) {
    const next = Math.min(offset + INFLATE_PIECE, compressed.byteLength);
    inflater.push(compressed.subarray(offset, next), next === compressed.byteLength);
  }
  if (compressed.byteLength === 0) inflater.push(new Uint8Array(0), true);
  const output = new Uint8Array(total);
  let position = 0;
  for (const piece of pieces) {
    output.set(piece, position);
    position += piece.byteLength;
  }
  return output;
}
