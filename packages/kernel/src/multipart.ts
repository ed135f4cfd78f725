// Streamed multipart uploads: file parts go straight to disk under fixed names (client filenames are never
// used as paths), with the byte caps enforced while streaming; text parts are capped too.
import { createWriteStream } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import busboy from 'busboy';
import { paceStreamedBytes } from './memory.js';

export interface ReceivedFile {
  field: string;
  /** the filename the client sent (display only) */
  filename: string;
  /** the part's Content-Type as sent, lower-cased, parameters dropped ('' when absent) */
  mimeType: string;
  path: string;
  bytes: number;
  /** the first bytes of the content (magic-number checks) */
  head: Buffer;
}

export interface MultipartOptions {
  /** file parts to keep; other file parts are read and discarded */
  fileFields: readonly string[];
  /** where kept files are written, as `<directory>/upload-<field>` */
  directory: string;
  maxFileBytes: number;
  maxFieldBytes: number;
  maxParts: number;
}

export interface MultipartResult {
  files: Map<string, ReceivedFile>;
  fields: Map<string, string>;
  /** names of parts that appeared more than once, in order of their second appearance */
  duplicates: string[];
}

/** A cap crossed while streaming: a file or text part too large, or too many parts. */
export class MultipartLimitError extends Error {
  override readonly name = 'MultipartLimitError';
  constructor(
    readonly kind: 'file' | 'field' | 'parts',
    readonly field: string,
    readonly maxBytes: number,
    readonly receivedBytes: number,
  ) {
    super(kind === 'parts' ? 'too many parts' : `part ${field} is too large`);
  }
}

/** The body is not valid multipart (bad boundary, truncated). */
export class MultipartFormatError extends Error {
  override readonly name = 'MultipartFormatError';
}

const HEAD_BYTES = 8;

/**
 * Counts bytes through a stream, keeps the first few, and fails once `max` is crossed. `onLimit` hears of the
 * crossing at once: the pipeline's own rejection arrives only after its file has closed, so when several parts
 * cross the cap the first one in the body would otherwise not reliably be the one reported.
 */
class CappedCounter extends Transform {
  bytes = 0;
  head = Buffer.alloc(0);
  constructor(
    private readonly max: number,
    private readonly field: string,
    private readonly onLimit: (error: MultipartLimitError) => void,
  ) {
    super();
  }
  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.head.length < HEAD_BYTES)
      this.head = Buffer.concat([this.head, chunk.subarray(0, HEAD_BYTES - this.head.length)]);
    if (this.bytes > this.max) {
      const error = new MultipartLimitError('file', this.field, this.max, this.bytes);
      this.onLimit(error);
      callback(error);
      return;
    }
    callback(null, chunk);
  }
}

/**
 * Reads a multipart request. Rejects with MultipartLimitError as soon as a cap is crossed (the caller then
 * answers 413 and drains the rest with `discardRequestBody`), MultipartFormatError for a malformed body, or the
 * file system error (e.g. ENOSPC) of a write. Partially written files are left for the caller's workspace
 * cleanup.
 */
export function receiveMultipart(
  request: IncomingMessage,
  options: MultipartOptions,
): Promise<MultipartResult> {
  return new Promise((resolve, reject) => {
    const files = new Map<string, ReceivedFile>();
    const fields = new Map<string, string>();
    const duplicates: string[] = [];
    const seen = new Set<string>();
    const writes: Promise<void>[] = [];
    const openStreams = new Set<NodeJS.ReadableStream & { destroy(): void }>();
    let settled = false;

    let parser: busboy.Busboy;
    try {
      // busboy reports a limit as soon as it is reached, not when it is exceeded: a value of exactly
      // `fieldSize` bytes is flagged truncated and `partsLimit` fires once `parts` parts have been read. The caps
      // here are inclusive (a 65536-byte text part and 20 parts are allowed), hence the + 1.
      parser = busboy({
        headers: request.headers,
        limits: { parts: options.maxParts + 1, fieldSize: options.maxFieldBytes + 1, fieldNameSize: 200 },
      });
    } catch {
      reject(new MultipartFormatError('malformed multipart header'));
      return;
    }

    const fail = (error: unknown) => {
      if (settled) return;
      settled = true;
      request.unpipe(parser);
      parser.removeAllListeners();
      parser.on('error', () => {});
      // Close the files being written so no descriptor outlives the request.
      for (const stream of openStreams) stream.destroy();
      reject(error);
    };

    const noteName = (name: string): boolean => {
      if (seen.has(name)) {
        duplicates.push(name);
        return false;
      }
      seen.add(name);
      return true;
    };

    parser.on('file', (name, stream, info) => {
      openStreams.add(stream);
      stream.on('close', () => openStreams.delete(stream));
      const first = noteName(name);
      if (!first || !options.fileFields.includes(name)) {
        // Unknown or repeated parts still count against the cap, then are discarded.
        const counter = new CappedCounter(options.maxFileBytes, name, fail);
        writes.push(
          pipeline(stream, counter, async (source: AsyncIterable<Buffer>) => {
            for await (const _ of source);
          }),
        );
        writes.at(-1)?.catch(fail);
        return;
      }
      const path = join(options.directory, `upload-${name}`);
      const counter = new CappedCounter(options.maxFileBytes, name, fail);
      writes.push(
        pipeline(stream, counter, createWriteStream(path)).then(() => {
          files.set(name, {
            field: name,
            filename: info.filename ?? '',
            mimeType: (info.mimeType ?? '').split(';')[0]?.trim().toLowerCase() ?? '',
            path,
            bytes: counter.bytes,
            head: counter.head,
          });
        }),
      );
      // A failed write must stop the whole upload at once, not after the body has been read.
      writes.at(-1)?.catch(fail);
    });

    parser.on('field', (name, value, info) => {
      if (info.valueTruncated) {
        fail(new MultipartLimitError('field', name, options.maxFieldBytes, options.maxFieldBytes + 1));
        return;
      }
      if (noteName(name)) fields.set(name, value);
    });

    parser.on('partsLimit', () =>
      fail(new MultipartLimitError('parts', 'body', options.maxParts, options.maxParts + 1)),
    );
    parser.on('error', () => fail(new MultipartFormatError('malformed multipart body')));
    parser.on('close', () => {
      Promise.all(writes).then(() => {
        if (settled) return;
        settled = true;
        resolve({ files, fields, duplicates });
      }, fail);
    });
    request.on('error', fail);
    // Same tick as the pipe, so this listener sees every chunk and changes nothing about the flow.
    request.on('data', (chunk: Buffer) => paceStreamedBytes(chunk.length));
    request.pipe(parser);
  });
}

/**
 * After an early error response: keeps reading (and discarding) the request body, up to `maxBytes` more, so the
 * client receives the response instead of a connection reset; past that the connection is cut.
 */
export function discardRequestBody(request: IncomingMessage, maxBytes = 64 * 1024 * 1024): void {
  if (request.readableEnded) return;
  let discarded = 0;
  request.on('data', (chunk: Buffer) => {
    discarded += chunk.length;
    if (discarded > maxBytes) request.socket.destroy();
  });
  request.on('error', () => {});
  request.resume();
}
