// A small zip reader for the run result: entries are listed from the central directory (authoritative even
// when local headers defer sizes to data descriptors, as streamed zips do) and inflated with the
// browser's DecompressionStream('deflate-raw'). Supports stored and deflated entries and zip64 sizes.

const EOCD_SIGNATURE = 0x06054b50;
const ZIP64_EOCD_LOCATOR_SIGNATURE = 0x07064b50;
const ZIP64_EOCD_SIGNATURE = 0x06064b50;
const CENTRAL_SIGNATURE = 0x02014b50;
const LOCAL_SIGNATURE = 0x04034b50;
const ZIP64_EXTRA_ID = 0x0001;
const MAX_COMMENT = 0xffff;

export class ZipFormatError extends Error {
  constructor(message) {
    super(message);
    this.name = 'ZipFormatError';
  }
}

function findEndOfCentralDirectory(view) {
  const last = view.byteLength - 22;
  const first = Math.max(0, last - MAX_COMMENT);
  for (let offset = last; offset >= first; offset--) {
    if (view.getUint32(offset, true) === EOCD_SIGNATURE) return offset;
  }
  throw new ZipFormatError('not a zip archive (no end of central directory)');
}

function readUint64(view, offset) {
  const value = view.getBigUint64(offset, true);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new ZipFormatError('zip64 value out of range');
  return Number(value);
}

/** Central directory location and entry count, following the zip64 locator when the classic fields overflow. */
function centralDirectory(view) {
  const eocd = findEndOfCentralDirectory(view);
  let count = view.getUint16(eocd + 10, true);
  let offset = view.getUint32(eocd + 16, true);
  const locator = eocd - 20;
  if ((count === 0xffff || offset === 0xffffffff) && locator >= 0) {
    if (view.getUint32(locator, true) === ZIP64_EOCD_LOCATOR_SIGNATURE) {
      const record = readUint64(view, locator + 8);
      if (view.getUint32(record, true) !== ZIP64_EOCD_SIGNATURE) throw new ZipFormatError('bad zip64 record');
      count = readUint64(view, record + 32);
      offset = readUint64(view, record + 48);
    }
  }
  return { count, offset };
}

/** Applies a central-directory zip64 extra field to the sizes and offset that overflowed. */
function applyZip64Extra(view, start, length, entry) {
  let cursor = start;
  const end = start + length;
  while (cursor + 4 <= end) {
    const id = view.getUint16(cursor, true);
    const size = view.getUint16(cursor + 2, true);
    if (id === ZIP64_EXTRA_ID) {
      let field = cursor + 4;
      if (entry.size === 0xffffffff) {
        entry.size = readUint64(view, field);
        field += 8;
      }
      if (entry.compressedSize === 0xffffffff) {
        entry.compressedSize = readUint64(view, field);
        field += 8;
      }
      if (entry.localOffset === 0xffffffff) entry.localOffset = readUint64(view, field);
      return;
    }
    cursor += 4 + size;
  }
}

/**
 * Lists the entries of a zip archive, in central-directory order.
 * @param {Uint8Array} bytes
 * @returns {{name: string, method: number, compressedSize: number, size: number, localOffset: number}[]}
 */
export function listZipEntries(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const { count, offset: start } = centralDirectory(view);
  const decoder = new TextDecoder();
  const entries = [];
  let offset = start;
  for (let index = 0; index < count; index++) {
    if (offset + 46 > view.byteLength || view.getUint32(offset, true) !== CENTRAL_SIGNATURE) {
      throw new ZipFormatError('corrupt central directory');
    }
    const nameLength = view.getUint16(offset + 28, true);
    const extraLength = view.getUint16(offset + 30, true);
    const commentLength = view.getUint16(offset + 32, true);
    const entry = {
      name: decoder.decode(bytes.subarray(offset + 46, offset + 46 + nameLength)),
      method: view.getUint16(offset + 10, true),
      compressedSize: view.getUint32(offset + 20, true),
      size: view.getUint32(offset + 24, true),
      localOffset: view.getUint32(offset + 42, true),
    };
    applyZip64Extra(view, offset + 46 + nameLength, extraLength, entry);
    entries.push(entry);
    offset += 46 + nameLength + extraLength + commentLength;
  }
  return entries;
}

async function inflateRaw(data) {
  const stream = new Blob([data]).stream().pipeThrough(new DecompressionStream('deflate-raw'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/**
 * Reads every entry of a zip archive.
 * @param {ArrayBuffer | Uint8Array} input
 * @returns {Promise<{names: string[], files: Map<string, Uint8Array>}>}
 */
export async function readZip(input) {
  const bytes = input instanceof Uint8Array ? input : new Uint8Array(input);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const files = new Map();
  const names = [];
  for (const entry of listZipEntries(bytes)) {
    const local = entry.localOffset;
    if (local + 30 > view.byteLength || view.getUint32(local, true) !== LOCAL_SIGNATURE) {
      throw new ZipFormatError(`corrupt local header for ${entry.name}`);
    }
    const dataStart = local + 30 + view.getUint16(local + 26, true) + view.getUint16(local + 28, true);
    const data = bytes.subarray(dataStart, dataStart + entry.compressedSize);
    let content;
    if (entry.method === 0) content = data.slice();
    else if (entry.method === 8) content = await inflateRaw(data);
    else throw new ZipFormatError(`unsupported compression method ${entry.method} for ${entry.name}`);
    if (content.byteLength !== entry.size) throw new ZipFormatError(`size mismatch for ${entry.name}`);
    names.push(entry.name);
    files.set(entry.name, content);
  }
  return { names, files };
}
