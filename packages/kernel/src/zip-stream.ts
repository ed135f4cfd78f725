// A zip written as a stream: entries are deflated chunk by chunk as they are added and flow to the reader with
// backpressure, so an archive of large files never sits in memory. Deflate runs synchronously on small
// chunks (fflate): for the small entries typical of reports that is far cheaper than a thread-pool round trip
// per entry, and a large file yields to the event loop between chunks.
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import { Zip, ZipDeflate } from 'fflate';

const FIXED_MTIME = new Date('2000-01-01T00:00:00Z');

export interface ZipEntryOptions {
  /** deflate level 0-9 (default 6) */
  level?: 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9;
  /** entry time (default a fixed date, so equal inputs give equal archives) */
  mtime?: Date;
}

/** Builds a zip entry by entry; read the archive from `stream`. Add entries one at a time, then call end(). */
export class ZipStreamWriter {
  readonly stream: Readable;
  private readonly zip: Zip;
  private waiter: { resolve: () => void; reject: (error: Error) => void } | null = null;
  private failed: Error | null = null;

  constructor() {
    this.stream = new Readable({
      read: () => {
        const waiter = this.waiter;
        this.waiter = null;
        waiter?.resolve();
      },
    });
    // A reader that goes away must not leave an entry writer waiting forever.
    this.stream.on('close', () => {
      const waiter = this.waiter;
      this.waiter = null;
      waiter?.reject(this.failed ?? new Error('zip stream closed'));
    });
    this.zip = new Zip((error, chunk, final) => {
      if (error) {
        this.failed = error;
        this.stream.destroy(error);
        return;
      }
      this.stream.push(chunk);
      if (final) this.stream.push(null);
    });
  }

  /** Adds a file from disk, reading and deflating it in chunks; resolves once its data has been handed on. */
  async addFile(path: string, name: string, options: ZipEntryOptions = {}): Promise<void> {
    const entry = this.newEntry(name, options);
    let pending: Buffer | null = null;
    for await (const chunk of createReadStream(path, { highWaterMark: 256 * 1024 })) {
      if (pending) {
        entry.push(pending);
        await this.backpressure();
      }
      pending = chunk as Buffer;
    }
    entry.push(pending ?? new Uint8Array(0), true);
    await this.backpressure();
  }

  /** Adds an entry from memory. */
  addBuffer(data: Uint8Array, name: string, options: ZipEntryOptions = {}): void {
    this.newEntry(name, options).push(data, true);
  }

  /** Writes the central directory and ends the stream. */
  end(): void {
    this.zip.end();
  }

  private newEntry(name: string, options: ZipEntryOptions): ZipDeflate {
    if (this.failed) throw this.failed;
    const entry = new ZipDeflate(name, { level: options.level ?? 6 });
    entry.mtime = options.mtime ?? FIXED_MTIME;
    this.zip.add(entry);
    return entry;
  }

  /** Waits while the reader is behind (or gone), so memory stays bounded by one chunk. */
  private backpressure(): Promise<void> {
    if (this.stream.destroyed) return Promise.reject(this.failed ?? new Error('zip stream closed'));
    if (this.stream.readableLength < this.stream.readableHighWaterMark) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }
}
