// The CSV body of `POST /api/batches` and `POST /api/chemistry/fit` (spec §3.5): `text/csv` (query fields) or
// `multipart/form-data` (`file`, optional `permit` as text or file part, other fields). The byte limit is enforced
// while streaming and a larger Content-Length is refused before reading. Small CSVs stay in memory; larger ones
// are streamed to a workspace `owsc-upload-<random>` under OW_SC_TMP_DIR so that a job process can read them by
// path. Every workspace is removed by `release()`, on every failure, and by the sweeper after a crash.
import { randomBytes } from 'node:crypto';
import { createWriteStream, type WriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { finished } from 'node:stream/promises';
import type { HttpError } from '@quintet/kernel/errors';
import {
  discardRequestBody,
  MultipartFormatError,
  MultipartLimitError,
  receiveMultipart,
} from '@quintet/kernel/multipart';
import { WorkspaceRegistry } from '@quintet/kernel/tmp';
import { JobAbortedError } from '@quintet/kernel/workers';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { CsvSource } from '../jobs/job-child.js';
import { storageFailure } from './api-params.js';
import { detailError, validationError } from './conventions.js';

/** Prefix of the upload workspaces in OW_SC_TMP_DIR (swept at start-up). */
export const UPLOAD_WORKSPACE_PREFIX = 'owsc-upload-';
/** Uploads up to this size are kept in memory; larger ones go to a workspace file. */
export const IN_MEMORY_UPLOAD_BYTES = 512 * 1024;
/** Room for boundaries, part headers and small fields around the CSV of a multipart body. */
const MULTIPART_OVERHEAD_BYTES = 64 * 1024;
const MAX_PARTS = 20;
const CSV_CONTENT_TYPES = new Set(['text/csv', 'application/csv', 'text/plain']);

export const UNSUPPORTED_MEDIA_TYPE = 'Unsupported Media Type: send text/csv or multipart/form-data';

/** The client went away before its body was read: nothing to answer, nothing stored. */
export class ClientAbortedError extends Error {
  override readonly name = 'ClientAbortedError';
  constructor() {
    super('client disconnected during the upload');
  }
}

export interface UploadLimits {
  maxCsvBytes: number;
  /** the `permit` part (text or file) */
  maxJsonBytes: number;
}

/** A received CSV with its fields; `release()` removes its temp files (call it in every case). */
export interface CsvUpload {
  source: CsvSource;
  bytes: number;
  /** the client's file name (multipart), or the `filename` query value; metadata only */
  filename: string | null;
  /** multipart text fields, or the query parameters of a text/csv body */
  fields: ReadonlyMap<string, string>;
  /** `body` for multipart fields, `query` for a text/csv body: the first element of 422 `loc` */
  fieldLocation: 'body' | 'query';
  /** the `permit` part as text (multipart only) */
  permit: string | undefined;
  release(): Promise<void>;
}

export function csvTooLargeMessage(maxBytes: number): string {
  return `CSV too large: more than ${maxBytes} bytes (OW_SC_MAX_CSV_BYTES)`;
}

function payloadTooLarge(message: string): HttpError {
  return detailError(413, message);
}

function mediaType(request: FastifyRequest): string {
  return (request.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
}

function clientGone(raw: IncomingMessage): boolean {
  return !raw.complete && (raw.destroyed || raw.socket?.destroyed === true);
}

/** Reads the upload bodies of one process; owns the upload workspaces under the temp directory. */
export class CsvUploadReader {
  readonly workspaces: WorkspaceRegistry;

  constructor(
    tmpDir: string,
    private readonly limits: UploadLimits,
  ) {
    this.workspaces = new WorkspaceRegistry({ root: tmpDir, prefix: UPLOAD_WORKSPACE_PREFIX });
  }

  /**
   * Reads the body. Throws HttpError 413/415/422/400/507, or ClientAbortedError when the client left. After an
   * error the rest of the body is discarded (so the client reads the answer) and the reply closes the connection.
   */
  async read(request: FastifyRequest, reply: FastifyReply): Promise<CsvUpload> {
    try {
      const type = mediaType(request);
      const multipart = type === 'multipart/form-data';
      if (!multipart && !CSV_CONTENT_TYPES.has(type)) {
        throw detailError(415, UNSUPPORTED_MEDIA_TYPE);
      }
      const declared = Number(request.headers['content-length']);
      const allowance = multipart
        ? this.limits.maxCsvBytes + this.limits.maxJsonBytes + MULTIPART_OVERHEAD_BYTES
        : this.limits.maxCsvBytes;
      if (
        request.headers['content-length'] !== undefined &&
        Number.isFinite(declared) &&
        declared > allowance
      ) {
        throw payloadTooLarge(csvTooLargeMessage(this.limits.maxCsvBytes));
      }
      return multipart ? await this.readMultipart(request) : await this.readText(request);
    } catch (error) {
      if (clientGone(request.raw)) throw new ClientAbortedError();
      if (!request.raw.complete) {
        reply.header('connection', 'close');
        discardRequestBody(request.raw);
      }
      throw storageFailure(error);
    }
  }

  private async newWorkspace(): Promise<string> {
    return this.workspaces.create(randomBytes(12).toString('hex'));
  }

  /** Removes a workspace; a failure to remove is left to the sweeper. */
  private async drop(workspace: string | null): Promise<void> {
    if (workspace === null) return;
    await this.workspaces.remove(workspace).catch(() => {});
  }

  private async readText(request: FastifyRequest): Promise<CsvUpload> {
    const query = request.query as Record<string, unknown>;
    const fields = new Map<string, string>();
    for (const [name, value] of Object.entries(query ?? {})) {
      const first = Array.isArray(value) ? value[0] : value;
      if (typeof first === 'string') fields.set(name, first);
    }
    const max = this.limits.maxCsvBytes;
    const chunks: Buffer[] = [];
    let bytes = 0;
    let workspace: string | null = null;
    let file: WriteStream | null = null;
    let writeError: Error | null = null;
    try {
      for await (const chunk of request.raw as AsyncIterable<Buffer>) {
        bytes += chunk.length;
        if (bytes > max) throw payloadTooLarge(csvTooLargeMessage(max));
        if (file === null) {
          chunks.push(chunk);
          if (bytes <= IN_MEMORY_UPLOAD_BYTES) continue;
          // Past the in-memory size: spill what arrived so far to a workspace file, then stream into it.
          workspace = await this.newWorkspace();
          file = createWriteStream(join(workspace, 'upload-file'));
          file.on('error', (error) => {
            writeError = error;
          });
          for (const buffered of chunks.splice(0)) file.write(buffered);
        } else if (!file.write(chunk)) {
          await new Promise<void>((resolve) => {
            file?.once('drain', resolve);
            file?.once('error', () => resolve());
          });
        }
        if (writeError) throw writeError;
      }
      if (file !== null) {
        file.end();
        await finished(file);
        const path = join(workspace as string, 'upload-file');
        return this.upload({ path }, bytes, fields, 'query', undefined, workspace);
      }
      return this.upload({ data: Buffer.concat(chunks) }, bytes, fields, 'query', undefined, null);
    } catch (error) {
      file?.destroy();
      await this.drop(workspace);
      throw error;
    }
  }

  private async readMultipart(request: FastifyRequest): Promise<CsvUpload> {
    const workspace = await this.newWorkspace();
    try {
      const received = await receiveMultipart(request.raw, {
        fileFields: ['file', 'permit'],
        directory: workspace,
        maxFileBytes: this.limits.maxCsvBytes,
        maxFieldBytes: this.limits.maxJsonBytes,
        maxParts: MAX_PARTS,
      }).catch((error: unknown) => {
        throw this.multipartError(error);
      });
      const fields = new Map(received.fields);
      fields.delete('file');
      const csv = received.files.get('file');
      if (csv === undefined) {
        throw validationError([
          { loc: ['body', 'file'], msg: 'field required', type: 'value_error.missing' },
        ]);
      }
      let permit = fields.get('permit');
      fields.delete('permit');
      const permitFile = received.files.get('permit');
      if (permitFile !== undefined) {
        if (permitFile.bytes > this.limits.maxJsonBytes) {
          throw payloadTooLarge(permitTooLargeMessage(this.limits.maxJsonBytes));
        }
        permit = await readFile(permitFile.path, 'utf8');
      }
      const filename = csv.filename === '' ? null : csv.filename;
      if (csv.bytes <= IN_MEMORY_UPLOAD_BYTES) {
        const data = await readFile(csv.path);
        await this.drop(workspace);
        return this.upload({ data }, csv.bytes, fields, 'body', permit, null, filename);
      }
      return this.upload({ path: csv.path }, csv.bytes, fields, 'body', permit, workspace, filename);
    } catch (error) {
      await this.drop(workspace);
      throw error;
    }
  }

  private multipartError(error: unknown): unknown {
    if (error instanceof MultipartLimitError) {
      if (error.kind === 'parts') return payloadTooLarge(`too many parts: more than ${MAX_PARTS}`);
      if (error.field === 'file') return payloadTooLarge(csvTooLargeMessage(this.limits.maxCsvBytes));
      return payloadTooLarge(
        error.field === 'permit'
          ? permitTooLargeMessage(this.limits.maxJsonBytes)
          : `field ${error.field} too large: more than ${error.maxBytes} bytes`,
      );
    }
    if (error instanceof MultipartFormatError) {
      return detailError(400, 'There was an error parsing the body');
    }
    return error;
  }

  private upload(
    source: CsvSource,
    bytes: number,
    fields: Map<string, string>,
    fieldLocation: 'body' | 'query',
    permit: string | undefined,
    workspace: string | null,
    filename: string | null = fields.get('filename') ?? null,
  ): CsvUpload {
    let released = false;
    return {
      source,
      bytes,
      filename,
      fields,
      fieldLocation,
      permit,
      release: async () => {
        if (released) return;
        released = true;
        await this.drop(workspace);
      },
    };
  }
}

export function permitTooLargeMessage(maxBytes: number): string {
  return `permit too large: more than ${maxBytes} bytes (OW_SC_MAX_JSON_BYTES)`;
}

/** What `withCsvUpload` returns when the client disconnected: there is nobody to answer. */
export const CLIENT_GONE = Symbol('client gone');

/**
 * Reads the upload, runs `handle` with it and a signal that aborts when the client disconnects, and removes
 * the upload's temp files in every case. Returns CLIENT_GONE (after counting nothing as done) when the client
 * left during the upload or the job.
 */
export async function withCsvUpload<T>(
  reader: CsvUploadReader,
  request: FastifyRequest,
  reply: FastifyReply,
  handle: (upload: CsvUpload, signal: AbortSignal) => Promise<T>,
): Promise<T | typeof CLIENT_GONE> {
  const disconnected = new AbortController();
  const onClose = () => {
    if (!reply.raw.writableFinished) disconnected.abort(new ClientAbortedError());
  };
  reply.raw.once('close', onClose);
  let upload: CsvUpload | undefined;
  try {
    upload = await reader.read(request, reply);
    const result = await handle(upload, disconnected.signal);
    return disconnected.signal.aborted ? CLIENT_GONE : result;
  } catch (error) {
    if (
      error instanceof ClientAbortedError ||
      error instanceof JobAbortedError ||
      disconnected.signal.aborted
    ) {
      return CLIENT_GONE;
    }
    throw error;
  } finally {
    reply.raw.off('close', onClose);
    await upload?.release();
  }
}
