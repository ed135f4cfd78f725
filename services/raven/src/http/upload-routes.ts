// POST /upload/ (multipart, streamed with busboy) and PUT /upload/{filename} (raw body), spec §3.9.
// Checks in order: rate limit → fields known before the file → size cap and type while streaming →
// remaining fields → empty file → store. Any rejection leaves nothing behind (the session is aborted).
import type { Readable } from 'node:stream';
import { paceStreamedBytes } from '@quintet/kernel/memory';
import { describeRule } from '@quintet/kernel/rate-limit';
import { isRedisUnavailable } from '@quintet/kernel/redis';
import busboy from 'busboy';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { decodeMultipartFilename, sanitizeFilename } from '../domain/filename.js';
import {
  type UploadOptions,
  type UploadReceipt,
  UploadRefusedError,
  type UploadSession,
} from '../domain/service-types.js';
import { mimeAllowed, SNIFF_WINDOW_BYTES, sniffMime } from '../domain/sniff.js';
import {
  fileAsFieldEntry,
  fileTooLargeMessage,
  missingFileEntry,
  parseIntField,
  passwordEntry,
  type ValidationEntry,
  type ValidationLoc,
  validationErrorBody,
} from '../domain/validation.js';
import { baseUrl, clientIdentity } from './client.js';
import type { RavenContext } from './context.js';
import { SERVICE_UNAVAILABLE } from './errors.js';

const MULTIPART_SLACK_BYTES = 1024 * 1024;

/** What the route answers: status, body, headers. */
interface Answer {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

const detail = (status: number, text: unknown, headers?: Record<string, string>): Answer => ({
  status,
  body: { detail: text },
  ...(headers ? { headers } : {}),
});
const unavailable = (): Answer => detail(503, SERVICE_UNAVAILABLE, { 'retry-after': '5' });

function refusalAnswer(error: unknown, context: RavenContext, request: FastifyRequest): Answer {
  if (!(error instanceof UploadRefusedError)) {
    if (isRedisUnavailable(error)) return unavailable();
    request.log.error({ err: error }, 'upload_failed');
    return detail(500, 'Internal Server Error');
  }
  const refusal = error.refusal;
  switch (refusal.kind) {
    case 'too_large':
      return detail(400, fileTooLargeMessage(refusal.receivedBytes, context.config.maxFileSize));
    case 'type_not_allowed':
      return detail(400, `File type not supported: ${refusal.mimeType}`);
    case 'empty':
      return detail(400, 'File is empty');
    case 'storage_full':
      return detail(507, 'Insufficient storage: the file could not be stored');
    default:
      return unavailable();
  }
}

function fieldEntries(
  fields: ReadonlyMap<string, string>,
  context: RavenContext,
  loc: 'body' | 'query',
  password: { raw: string | undefined; loc: ValidationLoc },
): { entries: ValidationEntry[]; options: UploadOptions } {
  const { config } = context;
  const entries: ValidationEntry[] = [];
  const expiry = parseIntField('expiry', fields.get('expiry'), { min: 1, max: config.maxExpiryMinutes, loc });
  const uses = parseIntField('uses', fields.get('uses'), { min: 1, max: config.maxUses, loc });
  if (expiry.error) entries.push(expiry.error);
  if (uses.error) entries.push(uses.error);
  const passwordError = passwordEntry(password.raw, password.loc);
  if (passwordError) entries.push(passwordError);
  return {
    entries,
    options: {
      expiryMinutes: expiry.value ?? config.defaultExpiryMinutes,
      uses: uses.value ?? config.defaultUses,
      password: password.raw === undefined || password.raw === '' ? null : password.raw,
    },
  };
}

/** The 201 body (spec §3.9). */
function receiptBody(receipt: UploadReceipt, base: string): Record<string, unknown> {
  return {
    key: receipt.key,
    preview_url: `${base}/preview/${receipt.key}`,
    download_url: `${base}/download/${receipt.key}`,
    expiry: receipt.expiresAt.toISOString(),
    uses: receipt.uses,
    filename: receipt.filename,
    size: receipt.size,
    created_at: receipt.createdAt.toISOString(),
    sha256: receipt.sha256,
    share_url: `${base}/d#${receipt.key}`,
    status_url: `${base}/status/${receipt.key}`,
    delete_url: `${base}/files/${receipt.key}`,
    expires_in_seconds: Math.max(
      0,
      Math.round((receipt.expiresAt.getTime() - receipt.createdAt.getTime()) / 1000),
    ),
    password_protected: receipt.passwordProtected,
  };
}

/**
 * Feeds one file's bytes into an upload session: cap, sniff window, backpressure. `fail` is called once with
 * the refusal; `done()` resolves when every accepted chunk has been written.
 */
class FileFeed {
  received = 0;
  readonly #window: Buffer[] = [];
  #windowBytes = 0;
  #pending: Promise<void> = Promise.resolve();
  #session: Promise<UploadSession>;
  failed = false;

  constructor(
    readonly context: RavenContext,
    session: Promise<UploadSession>,
    readonly fail: (answer: Answer | unknown) => void,
  ) {
    this.#session = session;
    session.catch((error: unknown) => this.#refuse(error));
  }

  #refuse(error: unknown): void {
    if (this.failed) return;
    this.failed = true;
    this.fail(error);
  }

  /** Consumes `stream` into the session; resolves when the stream ended and all writes are done. */
  consume(stream: Readable): Promise<void> {
    return new Promise<void>((resolve) => {
      stream.on('data', (chunk: Buffer) => {
        paceStreamedBytes(chunk.length);
        if (this.failed) return;
        this.received += chunk.length;
        const max = this.context.config.maxFileSize;
        if (this.received > max) {
          this.failed = true;
          this.fail(detail(400, fileTooLargeMessage(this.received, max)));
          stream.resume();
          return;
        }
        if (this.#windowBytes < SNIFF_WINDOW_BYTES) {
          this.#window.push(chunk);
          this.#windowBytes += chunk.length;
        }
        stream.pause();
        this.#pending = this.#pending
          .then(() => this.#session)
          .then((session) => session.write(chunk))
          .then(
            () => {
              stream.resume();
            },
            (error: unknown) => {
              this.#refuse(error);
              stream.resume();
            },
          );
      });
      stream.on('error', () => resolve());
      stream.on('end', () => {
        this.#pending.then(() => {
          // A small file's type is known only now: refuse it before the remaining field checks.
          if (!this.failed && this.received > 0 && this.received < SNIFF_WINDOW_BYTES) {
            const mime = sniffMime(Buffer.concat(this.#window), true);
            if (!mimeAllowed(mime, this.context.config.allowedMimeTypes)) {
              this.failed = true;
              this.fail(detail(400, `File type not supported: ${mime}`));
            }
          }
          resolve();
        });
      });
    });
  }

  async session(): Promise<UploadSession> {
    return this.#session;
  }

  async abort(): Promise<void> {
    try {
      await (await this.#session).abort();
    } catch {
      // the session never started, or is already gone
    }
  }
}

/** Streams one upload request and decides the answer. */
function receive(
  request: FastifyRequest,
  context: RavenContext,
  mode: 'multipart' | 'raw',
  rawFilename: string,
): Promise<Answer | null> {
  const raw = request.raw;
  const { config, service, metrics } = context;
  return new Promise<Answer | null>((resolve) => {
    let settled = false;
    let feed: FileFeed | null = null;
    let idle: NodeJS.Timeout | undefined;
    const armIdle = () => {
      clearTimeout(idle);
      idle = setTimeout(
        () => settle(detail(408, 'Upload timed out')),
        config.uploadIdleTimeoutSeconds * 1000,
      );
      idle.unref();
    };
    metrics.activeUploads.inc();
    const settle = (outcome: Answer | unknown | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(idle);
      metrics.activeUploads.dec();
      raw.off('data', armIdle);
      let answer: Answer | null;
      if (outcome === null) answer = null;
      else if (typeof outcome === 'object' && outcome !== null && 'status' in outcome && 'body' in outcome) {
        answer = outcome as Answer;
      } else answer = refusalAnswer(outcome, context, request);
      if (answer === null || answer.status !== 201) {
        void feed?.abort();
        // Stop parsing; the rest of the body is read and discarded so the client can read the answer.
        raw.unpipe();
        raw.resume();
      }
      resolve(answer);
    };
    raw.on('data', armIdle);
    armIdle();
    raw.on('close', () => {
      if (!raw.complete) settle(null);
    });

    const finish = async (
      fields: Map<string, string>,
      fileFieldValue: string | undefined,
      loc: 'body' | 'query',
      password: { raw: string | undefined; loc: ValidationLoc },
    ) => {
      if (settled) return;
      const { entries, options } = fieldEntries(fields, context, loc, password);
      if (feed === null) {
        entries.push(fileFieldValue === undefined ? missingFileEntry() : fileAsFieldEntry(fileFieldValue));
      }
      if (entries.length > 0) return settle({ status: 422, body: validationErrorBody(entries) });
      if (feed === null) return settle({ status: 422, body: validationErrorBody([missingFileEntry()]) });
      if (feed.received === 0) return settle(detail(400, 'File is empty'));
      try {
        const session = await feed.session();
        const receipt = await session.finish(options, sanitizeFilename(rawFilename));
        settle({ status: 201, body: receipt });
      } catch (error) {
        settle(error);
      }
    };

    const startFeed = () => {
      feed = new FileFeed(context, service.beginUpload(), (outcome) => settle(outcome));
      return feed;
    };

    if (mode === 'raw') {
      const query = request.query as Record<string, unknown>;
      const fields = new Map<string, string>();
      for (const name of ['expiry', 'uses']) {
        const value = query[name];
        if (typeof value === 'string') fields.set(name, value);
        else if (Array.isArray(value) && typeof value[0] === 'string') fields.set(name, value[0]);
      }
      const header = request.headers['x-password'];
      const password = { raw: Array.isArray(header) ? header[0] : header, loc: 'header' as ValidationLoc };
      const early = fieldEntries(fields, context, 'query', password);
      if (early.entries.length > 0) return settle({ status: 422, body: validationErrorBody(early.entries) });
      startFeed()
        .consume(raw)
        .then(() => finish(fields, undefined, 'query', password));
      return;
    }

    let parser: busboy.Busboy;
    try {
      parser = busboy({ headers: raw.headers, defParamCharset: 'utf8' });
    } catch {
      return settle(detail(400, 'There was an error parsing the body'));
    }
    const fields = new Map<string, string>();
    let fileFieldValue: string | undefined;
    let fileDone: Promise<void> = Promise.resolve();
    parser.on('field', (name, value) => {
      if (name === 'file') {
        if (feed === null && fileFieldValue === undefined) fileFieldValue = value;
        return;
      }
      if (!fields.has(name)) fields.set(name, value);
    });
    parser.on('file', (name, stream, info) => {
      if (name !== 'file' || feed !== null || settled) {
        stream.resume();
        return;
      }
      const passwordNow = { raw: fields.get('password'), loc: 'body' as ValidationLoc };
      const early = fieldEntries(fields, context, 'body', passwordNow);
      if (early.entries.length > 0) {
        stream.resume();
        settle({ status: 422, body: validationErrorBody(early.entries) });
        return;
      }
      rawFilename = decodeMultipartFilename(info.filename ?? '');
      fileDone = startFeed().consume(stream);
    });
    parser.on('error', () => settle(detail(400, 'There was an error parsing the body')));
    parser.on('close', () => {
      fileDone.then(() =>
        finish(fields, fileFieldValue, 'body', { raw: fields.get('password'), loc: 'body' }),
      );
    });
    raw.pipe(parser);
  });
}

async function handleUpload(
  request: FastifyRequest,
  reply: FastifyReply,
  context: RavenContext,
  mode: 'multipart' | 'raw',
): Promise<FastifyReply> {
  const { config, metrics } = context;
  const client = clientIdentity(request, context);
  const answerWith = (answer: Answer, result: string) => {
    metrics.uploads.inc({ result });
    // Anything not read is discarded after the answer; the connection is closed rather than reused.
    if (!request.raw.complete) reply.header('connection', 'close');
    if (answer.headers) reply.headers(answer.headers);
    if (!request.raw.complete) request.raw.resume();
    return reply.code(answer.status).type('application/json').send(answer.body);
  };

  let decision: Awaited<ReturnType<RavenContext['limiter']['hit']>>;
  try {
    decision = await context.limiter.hit('upload', client, config.uploadRateLimit);
  } catch (error) {
    if (!isRedisUnavailable(error)) throw error;
    return answerWith(unavailable(), 'unavailable');
  }
  reply.headers({
    'x-ratelimit-limit': String(decision.limit),
    'x-ratelimit-remaining': String(decision.remaining),
    'x-ratelimit-reset': String(decision.resetEpochSeconds),
  });
  if (!decision.allowed) {
    metrics.rateLimited.inc({ bucket: 'upload' });
    request.log.warn({ bucket: 'upload' }, 'rate_limited');
    return answerWith(
      detail(429, `Rate limit exceeded: ${describeRule(config.uploadRateLimit)}`, {
        'retry-after': String(decision.retryAfterSeconds),
      }),
      'rate_limited',
    );
  }

  const declared = Number(request.headers['content-length']);
  const allowance = mode === 'multipart' ? config.maxFileSize + MULTIPART_SLACK_BYTES : config.maxFileSize;
  if (request.headers['content-length'] !== undefined && Number.isFinite(declared) && declared > allowance) {
    return answerWith(detail(400, fileTooLargeMessage(declared, config.maxFileSize)), 'too_large');
  }
  if (mode === 'multipart' && !/^multipart\/form-data/i.test(request.headers['content-type'] ?? '')) {
    return answerWith({ status: 422, body: validationErrorBody([missingFileEntry()]) }, 'invalid');
  }

  const params = request.params as { filename?: string };
  const answer = await receive(request, context, mode, params.filename ?? '');
  if (answer === null) {
    metrics.uploads.inc({ result: 'aborted' });
    return reply;
  }
  if (answer.status === 201) {
    const receipt = answer.body as UploadReceipt;
    const body = receiptBody(receipt, baseUrl(request, context));
    metrics.uploads.inc({ result: 'stored' });
    metrics.bytesUploaded.inc(receipt.size);
    return reply.code(201).header('location', String(body.status_url)).type('application/json').send(body);
  }
  const result =
    answer.status === 422
      ? 'invalid'
      : answer.status === 400
        ? 'rejected'
        : answer.status >= 500
          ? 'error'
          : 'refused';
  return answerWith(answer, result);
}

/** Registers the upload routes (with and without the trailing slash). */
export function registerUploadRoutes(app: FastifyInstance, context: RavenContext): void {
  void app.register(async (scope) => {
    // The routes read the body themselves (streamed); Fastify must not buffer or parse it.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', (_request, _payload, done) => done(null));
    for (const url of ['/upload', '/upload/']) {
      scope.post(url, (request, reply) => handleUpload(request, reply, context, 'multipart'));
    }
    for (const url of ['/upload/:filename', '/upload/:filename/']) {
      scope.put(url, (request, reply) => handleUpload(request, reply, context, 'raw'));
    }
  });
}
