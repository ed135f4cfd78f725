// A zip written as a stream: entries flow to the reader one after another with backpressure, so an archive of
// large files never sits in memory. Compression is the native zlib: small entries are deflated in one call
// (no JS-heap garbage, no thread-pool round trip), large files are deflated as a stream.
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { PassThrough, type Readable } from 'node:stream';
import { constants, crc32, createDeflateRaw, deflateRawSync } from 'node:zlib';

/** Files up to this size are read and deflated in one piece. */
const WHOLE_FILE_LIMIT = 4 * 1024 * 1024;
const ZIP32_LIMIT = 0xffffffff;
const FIXED_MTIME = new Date('2000-01-01T00:00:00Z');

export interface ZipEntryOptions {
  /** deflate level 0-9 (default 6) */
  level?: number;
  /** entry time (default a fixed date, so equal inputs give equal archives) */
  mtime?: Date;
}

interface CentralRecord {
  name: Buffer;
  crc: number;
  compressedSize: number;
  size: number;
  offset: number;
  dosTime: number;
  dosDate: number;
  usesDescriptor: boolean;
}

function dosDateTime(date: Date): { dosTime: number; dosDate: number } {
  return {
    dosTime: (date.getUTCHours() << 11) | (date.getUTCMinutes() << 5) | Math.floor(date.getUTCSeconds() / 2),
    dosDate: ((date.getUTCFullYear() - 1980) << 9) | ((date.getUTCMonth() + 1) << 5) | date.getUTCDate(),
  };
}

/** Builds a zip entry by entry; read the archive from `stream`. Add entries one at a time, then call end(). */
export class ZipStreamWriter {
  readonly stream: Readable;
  private readonly output = new PassThrough({ highWaterMark: 256 * 1024 });
  private readonly records: CentralRecord[] = [];
  private offset = 0;

  constructor() {
    this.stream = this.output;
  }

  /** Adds a file from disk; resolves once its data has been handed to the stream. */
  async addFile(path: string, name: string, options: ZipEntryOptions = {}): Promise<void> {
    const { size } = await stat(path);
    if (size <= WHOLE_FILE_LIMIT) {
      const chunks: Buffer[] = [];
      for await (const chunk of createReadStream(path)) chunks.push(chunk as Buffer);
      await this.writeEntry(Buffer.concat(chunks), name, options);
      return;
    }
    await this.streamEntry(path, name, options);
  }

  /** Adds an entry from memory. */
  addBuffer(data: Uint8Array, name: string, options: ZipEntryOptions = {}): Promise<void> {
    return this.writeEntry(data, name, options);
  }

  /** Writes the central directory and ends the stream. */
  async end(): Promise<void> {
    const start = this.offset;
    for (const record of this.records) {
      const header = Buffer.alloc(46);
      header.writeUInt32LE(0x02014b50, 0);
      header.writeUInt16LE(20, 4); // made by: version 2.0
      header.writeUInt16LE(20, 6); // needed to extract
      header.writeUInt16LE(0x0800 | (record.usesDescriptor ? 0x0008 : 0), 8); // UTF-8 names (+ descriptor)
      header.writeUInt16LE(8, 10); // deflate
      header.writeUInt16LE(record.dosTime, 12);
      header.writeUInt16LE(record.dosDate, 14);
      header.writeUInt32LE(record.crc, 16);
      header.writeUInt32LE(record.compressedSize, 20);
      header.writeUInt32LE(record.size, 24);
      header.writeUInt16LE(record.name.length, 28);
      header.writeUInt32LE((0o100644 << 16) >>> 0, 38); // external attributes: a regular file, rw-r--r--
      header.writeUInt32LE(record.offset, 42);
      await this.write(Buffer.concat([header, record.name]));
    }
    const end = Buffer.alloc(22);
    end.writeUInt32LE(0x06054b50, 0);
    end.writeUInt16LE(this.records.length, 8);
    end.writeUInt16LE(this.records.length, 10);
    end.writeUInt32LE(this.offset - start, 12);
    end.writeUInt32LE(start, 16);
    await this.write(end);
    this.output.end();
  }

  private localHeader(record: CentralRecord): Buffer {
    const header = Buffer.alloc(30);
    header.writeUInt32LE(0x04034b50, 0);
    header.writeUInt16LE(20, 4);
    header.writeUInt16LE(0x0800 | (record.usesDescriptor ? 0x0008 : 0), 6);
    header.writeUInt16LE(8, 8);
    header.writeUInt16LE(record.dosTime, 10);
    header.writeUInt16LE(record.dosDate, 12);
    if (!record.usesDescriptor) {
      header.writeUInt32LE(record.crc, 14);
      header.writeUInt32LE(record.compressedSize, 18);
      header.writeUInt32LE(record.size, 22);
    }
    header.writeUInt16LE(record.name.length, 26);
    return Buffer.concat([header, record.name]);
  }

  private newRecord(name: string, options: ZipEntryOptions, usesDescriptor: boolean): CentralRecord {
    if (this.records.length >= 0xffff) throw new Error('too many zip entries');
    return {
      name: Buffer.from(name, 'utf8'),
      crc: 0,
      compressedSize: 0,
      size: 0,
      offset: this.offset,
      ...dosDateTime(options.mtime ?? FIXED_MTIME),
      usesDescriptor,
    };
  }

  private async writeEntry(data: Uint8Array, name: string, options: ZipEntryOptions): Promise<void> {
    const record = this.newRecord(name, options, false);
    const compressed = deflateRawSync(data, { level: options.level ?? constants.Z_DEFAULT_COMPRESSION });
    record.crc = crc32(data);
    record.size = data.length;
    record.compressedSize = compressed.length;
    this.records.push(record);
    await this.write(this.localHeader(record));
    await this.write(compressed);
  }

  private async streamEntry(path: string, name: string, options: ZipEntryOptions): Promise<void> {
    const record = this.newRecord(name, options, true);
    this.records.push(record);
    await this.write(this.localHeader(record));
    const deflate = createDeflateRaw({ level: options.level ?? constants.Z_DEFAULT_COMPRESSION });
    const source = createReadStream(path, { highWaterMark: 256 * 1024 });
    source.on('data', (chunk) => {
      record.crc = crc32(chunk as Buffer, record.crc);
      record.size += chunk.length;
    });
    source.on('error', (error) => deflate.destroy(error));
    source.pipe(deflate);
    for await (const chunk of deflate) {
      record.compressedSize += (chunk as Buffer).length;
      await this.write(chunk as Buffer);
    }
    if (record.size > ZIP32_LIMIT || record.compressedSize > ZIP32_LIMIT)
      throw new Error('zip entry over 4 GiB');
    const descriptor = Buffer.alloc(16);
    descriptor.writeUInt32LE(0x08074b50, 0);
    descriptor.writeUInt32LE(record.crc, 4);
    descriptor.writeUInt32LE(record.compressedSize, 8);
    descriptor.writeUInt32LE(record.size, 12);
    await this.write(descriptor);
  }

  /** Writes and waits while the reader is behind, so memory stays bounded; fails once the reader is gone. */
  private write(chunk: Buffer): Promise<void> {
    if (this.output.destroyed) return Promise.reject(new Error('zip stream closed'));
    if (this.offset + chunk.length > ZIP32_LIMIT) return Promise.reject(new Error('zip archive over 4 GiB'));
    this.offset += chunk.length;
    if (this.output.write(chunk)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const onDrain = () => {
        this.output.off('close', onClose);
        resolve();
      };
      const onClose = () => {
        this.output.off('drain', onDrain);
        reject(new Error('zip stream closed'));
      };
      this.output.once('drain', onDrain);
      this.output.once('close', onClose);
    });
  }
}
