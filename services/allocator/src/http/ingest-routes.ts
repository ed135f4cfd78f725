// POST /api/v1/ingest (spec §3.4) and GET /api/v1/ingest/{job_id}/status (§3.5). Multipart uploads stream to
// TMP_DIR while hashed and typed; the request cap aborts at once; problems are answered in the spec's order
// and leave nothing behind (spool removed, no rows).
import { createHash, randomUUID } from 'node:crypto';
import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { isDatabaseUnavailable } from '@quintet/kernel/db';
import type { HttpError } from '@quintet/kernel/errors';
import { isRedisUnavailable } from '@quintet/kernel/redis';
import busboy from 'busboy';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { DETECTION_HEAD_BYTES, type DetectedType, detectFileType, sizeClass } from '../domain/detect.js';
import {
  acceptIngest,
  discardSpooledFiles,
  type IngestAccepted,
  IngestProblem,
  type IngestRequest,
  itemLimit,
  itemTooLargeMessage,
  jobStatusBody,
  jsonDocumentsOf,
  parseJsonDocuments,
  type SpooledFile,
} from '../domain/ingest.js';
import { QueueUnavailableError } from '../domain/jobs.js';
import { InsufficientStorageError } from '../domain/storage.js';
import { callbackUrlProblem } from '../domain/webhooks.js';
import type { AllocatorRuntime } from '../runtime.js';
import { parseId, sendJson } from './conventions.js';
import { apiError, type ErrorCode, type ValidationIssue, validationError } from './errors.js';

const FILE_FIELDS = new Set(['files', 'files[]', 'file']);
const TEXT_FIELDS = [
  'payload',
  'owner',
  'comments',
  'collection_name',
  'tags',
  'idempotency_key',
  'priority',
  'callback_url',
];
const IDEMPOTENCY_KEY = /^[\x20-\x7e]{1,255}$/;

/** The raw fields of an ingest, from a form or a JSON body. */
interface IngestFields {
  payload: unknown;
  payloadIsText: boolean;
  owner: unknown;
  comments: unknown;
  collection_name: unknown;
  tags: unknown;
  idempotency_key: unknown;
  priority: unknown;
  callback_url: unknown;
}

function problem(
  status: number,
  code: ErrorCode,
  detail: string,
  details?: readonly (string | ValidationIssue)[],
): HttpError {
  return apiError(status, code, detail, details);
}

/** Streams a multipart body: files spooled under one request directory, text fields collected. */
async function receiveForm(
  request: FastifyRequest,
  runtime: AllocatorRuntime,
  spoolDir: string,
): Promise<{ fields: Map<string, string>; files: SpooledFile[]; unsupported: string[] }> {
  const { config } = runtime;
  const declared = Number(request.headers['content-length']);
  if (Number.isFinite(declared) && declared > config.maxRequestBytes)
    throw problem(413, 'payload_too_large', `Request body exceeds maximum ${config.maxRequestBytes} bytes`);
  await mkdir(spoolDir, { recursive: true });
  return new Promise((resolve, reject) => {
    const fields = new Map<string, string>();
    const files: SpooledFile[] = [];
    const unsupported: string[] = [];
    const pending: Promise<void>[] = [];
    const openStreams = new Set<WriteStream>();
    let received = 0;
    let fileCount = 0;
    let settled = false;
    let parser: busboy.Busboy;
    try {
      parser = busboy({
        headers: request.headers,
        limits: { fieldSize: config.maxJsonBytes + 1, fieldNameSize: 200, fields: 100 },
      });
    } catch {
      reject(problem(400, 'bad_request', 'Malformed multipart request: missing or invalid boundary'));
      return;
    }
    const fail = (error: unknown) => {
      if (settled) return;
      settled = true;
      request.raw.unpipe(parser);
      parser.removeAllListeners();
      parser.on('error', () => {});
      for (const stream of openStreams) stream.destroy();
      // Drain the rest so the client reads the answer instead of a reset connection.
      request.raw.resume();
      reject(error);
    };
    request.raw.on('data', (chunk: Buffer) => {
      received += chunk.length;
      if (received > config.maxRequestBytes)
        fail(
          problem(413, 'payload_too_large', `Request body exceeds maximum ${config.maxRequestBytes} bytes`),
        );
    });
    request.raw.on('aborted', () => fail(new Error('client disconnected')));
    parser.on('field', (name, value, info) => {
      if (info.valueTruncated && name === 'payload') {
        fail(problem(413, 'payload_too_large', `payload exceeds maximum ${config.maxJsonBytes} bytes`));
        return;
      }
      if (TEXT_FIELDS.includes(name)) fields.set(name, value);
    });
    parser.on('file', (name, stream, info) => {
      if (!FILE_FIELDS.has(name)) {
        stream.resume();
        return;
      }
      const index = fileCount++;
      if (fileCount > config.maxFilesPerRequest) {
        stream.resume();
        fail(
          problem(
            413,
            'payload_too_large',
            `Too many files: at most ${config.maxFilesPerRequest} per request`,
          ),
        );
        return;
      }
      const filename = info.filename;
      const label = filename ?? `file_${index}`;
      const tempPath = join(spoolDir, `part_${index}`);
      const hash = createHash('sha256');
      const output = createWriteStream(tempPath);
      openStreams.add(output);
      let size = 0;
      let head = Buffer.alloc(0);
      let detected: DetectedType | null | undefined;
      let limit = Number.POSITIVE_INFINITY;
      let kind = '';
      const detect = async () => {
        detected = await detectFileType(head, info.mimeType, filename);
        if (detected === null) unsupported.push(`Unsupported file type: ${label}`);
        else {
          kind = sizeClass(detected);
          limit = itemLimit(config, kind as never);
        }
      };
      const work = (async () => {
        for await (const chunk of stream as AsyncIterable<Buffer>) {
          if (settled) return;
          size += chunk.length;
          hash.update(chunk);
          if (detected === undefined) {
            head = Buffer.concat([head, chunk]).subarray(0, DETECTION_HEAD_BYTES);
            if (head.length >= DETECTION_HEAD_BYTES) await detect();
          }
          if (size > limit) {
            fail(
              problem(413, 'payload_too_large', itemTooLargeMessage(label, size, limit, kind), [
                itemTooLargeMessage(label, size, limit, kind),
              ]),
            );
            return;
          }
          if (!output.write(chunk))
            await new Promise<void>((drained) => output.once('drain', () => drained()));
        }
        if (detected === undefined) await detect();
        if (size > limit) {
          fail(
            problem(413, 'payload_too_large', itemTooLargeMessage(label, size, limit, kind), [
              itemTooLargeMessage(label, size, limit, kind),
            ]),
          );
          return;
        }
        await new Promise<void>((done, failed) => {
          output.once('error', failed);
          output.end(() => done());
        });
        openStreams.delete(output);
        if (detected !== null && detected !== undefined)
          files[index] = {
            tempPath,
            filename,
            declaredMime: info.mimeType,
            sizeBytes: size,
            sha256: hash.digest('hex'),
            detected,
          };
      })();
      output.on('error', (error) => fail(error));
      pending.push(work.catch(fail));
    });
    parser.on('error', () => fail(problem(400, 'bad_request', 'Malformed multipart request body')));
    parser.on('close', () => {
      Promise.all(pending).then(() => {
        if (settled) return;
        settled = true;
        resolve({ fields, files: files.filter((file) => file !== undefined), unsupported });
      }, fail);
    });
    request.raw.pipe(parser);
  });
}

/** §3.4 step 2: field shapes → 422 issues. */
function checkFields(
  fields: IngestFields,
  runtime: AllocatorRuntime,
): { issues: ValidationIssue[]; values: Omit<IngestRequest, 'files' | 'payload' | 'batchId'> } {
  const issues: ValidationIssue[] = [];
  const text = (name: keyof IngestFields, max: number): string | null => {
    const value = fields[name];
    if (value === undefined || value === null) return null;
    if (typeof value !== 'string') {
      issues.push({ loc: ['body', name], msg: 'Input should be a valid string', type: 'string_type' });
      return null;
    }
    if (value.length > max)
      issues.push({
        loc: ['body', name],
        msg: `String should have at most ${max} characters`,
        type: 'string_too_long',
      });
    return value;
  };
  const owner = text('owner', 255);
  const comments = text('comments', 10_000);
  const collectionName = text('collection_name', 128);
  let tags: string[] = [];
  if (Array.isArray(fields.tags)) {
    if (fields.tags.some((tag) => typeof tag !== 'string'))
      issues.push({ loc: ['body', 'tags'], msg: 'Input should be a list of strings', type: 'list_type' });
    else tags = fields.tags as string[];
  } else if (typeof fields.tags === 'string') tags = fields.tags.split(',');
  else if (fields.tags !== undefined && fields.tags !== null)
    issues.push({
      loc: ['body', 'tags'],
      msg: 'Input should be a comma-separated string or a list',
      type: 'value_error',
    });
  tags = tags.map((tag) => tag.trim()).filter((tag) => tag !== '');
  const key = fields.idempotency_key;
  let requestId: string | null = null;
  if (key !== undefined && key !== null && key !== '') {
    if (typeof key !== 'string' || !IDEMPOTENCY_KEY.test(key))
      issues.push({
        loc: ['body', 'idempotency_key'],
        msg: 'At most 255 printable ASCII characters',
        type: 'value_error',
      });
    else requestId = key;
  }
  let priority = 0;
  const rawPriority = fields.priority;
  if (rawPriority !== undefined && rawPriority !== null && rawPriority !== '') {
    const value =
      typeof rawPriority === 'number'
        ? rawPriority
        : /^[+-]?\d+$/.test(String(rawPriority).trim())
          ? Number(rawPriority)
          : Number.NaN;
    if (!Number.isInteger(value) || value < -10 || value > 10)
      issues.push({
        loc: ['body', 'priority'],
        msg: 'Input should be an integer between -10 and 10',
        type: 'int_range',
      });
    else priority = value;
  }
  let callbackUrl: string | null = null;
  const rawCallback = fields.callback_url;
  if (rawCallback !== undefined && rawCallback !== null && rawCallback !== '') {
    const problemText =
      typeof rawCallback === 'string'
        ? callbackUrlProblem(rawCallback, runtime.config.webhookAllowedHosts)
        : 'callback_url must be a string';
    if (problemText !== null)
      issues.push({ loc: ['body', 'callback_url'], msg: problemText, type: 'value_error' });
    else callbackUrl = rawCallback as string;
  }
  return { issues, values: { requestId, owner, comments, collectionName, tags, priority, callbackUrl } };
}

function payloadDocuments(fields: IngestFields, runtime: AllocatorRuntime): Record<string, unknown>[] | null {
  const { payload } = fields;
  if (payload === undefined || payload === null || payload === '') return null;
  if (typeof payload === 'string') {
    if (Buffer.byteLength(payload) > runtime.config.maxJsonBytes)
      throw problem(413, 'payload_too_large', `payload exceeds maximum ${runtime.config.maxJsonBytes} bytes`);
    return parseJsonDocuments(payload);
  }
  if (!fields.payloadIsText && Buffer.byteLength(JSON.stringify(payload)) > runtime.config.maxJsonBytes)
    throw problem(413, 'payload_too_large', `payload exceeds maximum ${runtime.config.maxJsonBytes} bytes`);
  return jsonDocumentsOf(payload);
}

function requestTypeOf(files: number, payload: boolean): 'media' | 'json' | 'mixed' {
  if (files > 0 && payload) return 'mixed';
  return files > 0 ? 'media' : 'json';
}

function toHttp(error: unknown): unknown {
  if (error instanceof IngestProblem)
    return apiError(error.status, error.code as ErrorCode, error.message, error.details);
  if (error instanceof InsufficientStorageError || (error as NodeJS.ErrnoException)?.code === 'ENOSPC')
    return apiError(503, 'service_unavailable', 'insufficient storage');
  if (isDatabaseUnavailable(error) || isRedisUnavailable(error) || error instanceof QueueUnavailableError)
    return apiError(503, 'service_unavailable', 'Service unavailable: a dependency cannot be reached');
  return error;
}

function acceptedBody(accepted: IngestAccepted): Record<string, unknown> {
  return {
    job_id: accepted.jobId,
    system_ids: accepted.systemIds,
    status: 'accepted',
    message: accepted.replayed
      ? 'Duplicate request (idempotency key)'
      : `Job ${accepted.jobId} accepted for processing`,
    request_id: accepted.requestId,
    created_at: accepted.createdAt.toISOString(),
  };
}

async function handleIngest(
  request: FastifyRequest,
  reply: FastifyReply,
  runtime: AllocatorRuntime,
): Promise<FastifyReply> {
  const started = performance.now();
  const contentType = (request.headers['content-type'] ?? '').toLowerCase();
  const isMultipart = contentType.startsWith('multipart/form-data');
  const isJson = contentType.startsWith('application/json');
  let requestType: 'media' | 'json' | 'mixed' = 'json';
  const spoolDir = join(runtime.config.tmpDir, `ingest-${randomUUID()}`);
  let files: SpooledFile[] = [];
  try {
    if (!isMultipart && !isJson)
      throw problem(
        415,
        'unsupported_media_type',
        'Content-Type must be multipart/form-data or application/json',
      );
    let fields: IngestFields;
    let unsupported: string[] = [];
    if (isMultipart) {
      const form = await receiveForm(request, runtime, spoolDir);
      files = form.files;
      unsupported = form.unsupported;
      const get = (name: string) => form.fields.get(name);
      fields = {
        payload: get('payload'),
        payloadIsText: true,
        owner: get('owner'),
        comments: get('comments'),
        collection_name: get('collection_name'),
        tags: get('tags'),
        idempotency_key: get('idempotency_key') ?? request.headers['idempotency-key'],
        priority: get('priority'),
        callback_url: get('callback_url'),
      };
    } else {
      const body = request.body as Record<string, unknown> | null;
      if (body === null || typeof body !== 'object' || Array.isArray(body))
        throw problem(400, 'bad_request', 'A JSON object body is required');
      if (!('payload' in body)) throw problem(400, 'bad_request', "A JSON body must contain 'payload'");
      fields = {
        payload: body.payload,
        payloadIsText: typeof body.payload === 'string',
        owner: body.owner,
        comments: body.comments,
        collection_name: body.collection_name,
        tags: body.tags,
        idempotency_key: body.idempotency_key ?? request.headers['idempotency-key'],
        priority: body.priority,
        callback_url: body.callback_url,
      };
    }
    const { issues, values } = checkFields(fields, runtime);
    if (issues.length > 0) throw validationError(issues);
    const hasPayload = fields.payload !== undefined && fields.payload !== null && fields.payload !== '';
    if (files.length === 0 && unsupported.length === 0 && !hasPayload)
      throw problem(400, 'bad_request', "Either 'files' or 'payload' must be provided");
    requestType = requestTypeOf(files.length + unsupported.length, hasPayload);
    if (unsupported.length > 0)
      throw problem(
        415,
        'unsupported_media_type',
        `${unsupported.length} file(s) have an unsupported type`,
        unsupported,
      );
    const payload = payloadDocuments(fields, runtime);
    for (const file of files) {
      if (file.detected.kind !== 'json') continue;
      const { readFile } = await import('node:fs/promises');
      file.documents = parseJsonDocuments(
        await readFile(file.tempPath, 'utf8'),
        `file ${file.filename ?? 'upload'}`,
      );
    }
    const accepted = await acceptIngest(runtime, { ...values, files, payload, batchId: null });
    files = [];
    runtime.metrics.ingestRequests.inc({ request_type: accepted.jobType, status: 'success' });
    runtime.metrics.ingestLatency.observe(
      { request_type: accepted.jobType },
      (performance.now() - started) / 1000,
    );
    if (accepted.replayed) reply.header('idempotent-replayed', 'true');
    reply.header('location', `/api/v1/ingest/${accepted.jobId}/status`);
    return sendJson(reply, 202, acceptedBody(accepted));
  } catch (error) {
    runtime.metrics.ingestRequests.inc({ request_type: requestType, status: 'failure' });
    runtime.metrics.ingestLatency.observe(
      { request_type: requestType },
      (performance.now() - started) / 1000,
    );
    throw toHttp(error);
  } finally {
    await discardSpooledFiles(files);
    await rm(spoolDir, { recursive: true, force: true });
  }
}

export function registerIngestRoutes(app: FastifyInstance, runtime: AllocatorRuntime): void {
  // Multipart bodies are streamed by the route itself; the framework must leave them unread.
  app.addContentTypeParser('multipart/form-data', (_request, _payload, done) => done(null, undefined));

  app.post('/api/v1/ingest', (request, reply) => handleIngest(request, reply, runtime));

  app.get<{ Params: { job_id: string } }>('/api/v1/ingest/:job_id/status', async (request, reply) => {
    const jobId = parseId(request.params.job_id, 'job id');
    const body = await jobStatusBody(runtime, jobId);
    if (body === null) throw apiError(404, 'not_found', `Job ${jobId} not found`);
    return sendJson(reply, 200, body);
  });
}
