// Objects routes (spec §3.10) and the duplicates listing (§3.15). File content is streamed from disk with
// conditional (If-None-Match) and single-range (Range) support; it is never read into memory whole.

import { createReadStream } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { open } from 'node:fs/promises';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { parseByteRange } from '../domain/byte-range.js';
import {
  deleteObject,
  listChunks,
  listDuplicateGroups,
  listLineage,
  loadObject,
  ObjectConflictError,
  ObjectKindError,
  ObjectNotFoundError,
  type ObjectRecord,
  storedContent,
  thumbnailUri,
} from '../domain/objects.js';
import { StorageError } from '../domain/storage.js';
import type { AllocatorRuntime } from '../runtime.js';
import { isoTime, parseId, QueryReader, sendJson } from './conventions.js';
import { apiError, badRequest, conflict, notFound } from './errors.js';

type Params = { id: string };

const OBJECTS = '/api/v1/objects';
const DUPLICATE_TYPES = ['exact', 'near'] as const;
const MAX_PAGE = 500;

/** Domain errors → the spec's statuses. */
function translate(error: unknown): never {
  if (error instanceof ObjectNotFoundError) throw notFound(error.message);
  if (error instanceof ObjectConflictError) throw conflict(error.message);
  throw error;
}

async function guarded<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    return translate(error);
  }
}

/** The §3.10 body of an object: common fields, then the fields of its kind. */
function objectJson(record: ObjectRecord): Record<string, unknown> {
  const { asset } = record;
  const body: Record<string, unknown> = {
    id: asset.id,
    kind: asset.kind,
    uri: asset.uri,
    content_type: asset.content_type,
    size_bytes: asset.size_bytes,
    sha256: asset.sha256,
    owner: asset.owner,
    comments: asset.comments,
    created_at: isoTime(asset.created_at),
    updated_at: isoTime(asset.updated_at),
    status: asset.status,
    error_message: asset.error_message,
    tags: asset.tags,
    metadata: asset.metadata,
    parent_asset_id: asset.parent_asset_id,
    children: record.childIds,
  };
  if (asset.kind === 'media') {
    body.embedding = { dimension: asset.embedding_dimension, model: asset.embedding_model };
    body.cluster = record.cluster;
    body.raw_asset = record.rawAsset;
    body.thumbnail_uri = asset.thumbnail_uri;
    body.content_url = `${OBJECTS}/${asset.id}/content`;
    body.thumbnail_url = asset.thumbnail_uri === null ? null : `${OBJECTS}/${asset.id}/thumbnail`;
    body.duplicate_of = asset.duplicate_of;
    body.duplicate_type = asset.duplicate_type;
  } else if (asset.kind === 'document') {
    body.chunks_url = `${OBJECTS}/${asset.id}/chunks`;
    body.content_url = `${OBJECTS}/${asset.id}/content`;
  } else {
    body.schema = record.schema;
    body.storage_location = record.schema?.name ?? null;
    body.storage_id = asset.storage_id;
    body.document = record.document;
  }
  return body;
}

/** The opaque part of each entity tag in an If-None-Match / If-Range value (`W/` prefixes dropped). */
function entityTags(header: string): string[] {
  const quoted = [...header.matchAll(/(?:W\/)?"([^"]*)"/g)].map((match) => match[1] as string);
  if (quoted.length > 0) return quoted;
  // Lenient with clients that send bare tags.
  return header
    .split(',')
    .map((tag) => tag.trim())
    .filter((tag) => tag !== '');
}

/** RFC 9110 §13.1.2: `*` or any listed tag equal to ours under weak comparison. */
export function ifNoneMatchHits(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  if (header.trim() === '*') return true;
  const own = etag.replace(/^W\//, '').replace(/^"|"$/g, '');
  return entityTags(header).includes(own);
}

/** `inline; filename="<ascii>"`, plus `filename*` (RFC 8187) carrying the exact name whenever the quoted form had to change it (non-ASCII, `"`, `\`). */
export function inlineDisposition(filename: string): string {
  const ascii = filename.replace(/[^\x20-\x7e]/g, '_').replace(/["\\]/g, '_');
  if (ascii === filename) return `inline; filename="${ascii}"`;
  const encoded = encodeURIComponent(filename).replace(
    /['()*]/g,
    (character) => `%${character.charCodeAt(0).toString(16).toUpperCase()}`,
  );
  return `inline; filename="${ascii}"; filename*=UTF-8''${encoded}`;
}

interface FileResponse {
  path: string;
  contentType: string;
  etag: string | null;
  disposition: string | null;
  missingDetail: string;
}

async function openStored(path: string, missingDetail: string): Promise<FileHandle> {
  try {
    return await open(path, 'r');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'EISDIR' || code === 'ENOTDIR') throw notFound(missingDetail);
    throw error;
  }
}

/** Streams a stored file: 304 on an If-None-Match hit, 206 for one satisfiable range, 416 otherwise. */
async function sendFile(
  request: FastifyRequest,
  reply: FastifyReply,
  file: FileResponse,
): Promise<FastifyReply> {
  const handle = await openStored(file.path, file.missingDetail);
  let streaming = false;
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw notFound(file.missingDetail);
    const size = info.size;
    reply.header('accept-ranges', 'bytes');
    reply.header('x-content-type-options', 'nosniff');
    if (file.etag !== null) reply.header('etag', file.etag);
    if (file.etag !== null && ifNoneMatchHits(header(request, 'if-none-match'), file.etag))
      return reply.code(304).send();
    let rangeHeader = header(request, 'range');
    const ifRange = header(request, 'if-range');
    // A Range made for another version of the file is ignored (If-Range with a strong tag, RFC 9110 §13.1.5).
    if (
      rangeHeader !== undefined &&
      ifRange !== undefined &&
      (file.etag === null || ifRange.trim() !== file.etag)
    )
      rangeHeader = undefined;
    const range = parseByteRange(rangeHeader, size);
    if (range === 'unsatisfiable')
      throw apiError(
        416,
        'range_not_satisfiable',
        `Requested range not satisfiable for ${size} bytes`,
        undefined,
        {
          'content-range': `bytes */${size}`,
        },
      );
    reply.type(file.contentType);
    if (file.disposition !== null) reply.header('content-disposition', file.disposition);
    const start = range === 'none' ? 0 : range.start;
    const end = range === 'none' ? size - 1 : range.end;
    reply.header('content-length', String(Math.max(0, end - start + 1)));
    if (range !== 'none') reply.code(206).header('content-range', `bytes ${start}-${end}/${size}`);
    else reply.code(200);
    if (size === 0) return reply.send('');
    const stream = createReadStream(file.path, { fd: handle, start, end, autoClose: true });
    streaming = true;
    return reply.send(stream);
  } finally {
    if (!streaming) await handle.close().catch(() => undefined);
  }
}

function header(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value.join(', ') : value;
}

/** Resolves a stored URI; a URI that does not resolve inside storage is treated as a missing file. */
function resolveStored(runtime: AllocatorRuntime, uri: string, missingDetail: string): string {
  try {
    return runtime.storage.resolve(uri);
  } catch (error) {
    if (error instanceof StorageError) throw notFound(missingDetail);
    throw error;
  }
}

/** Registers GET/DELETE /api/v1/objects/{id}, its content, thumbnail, chunks and lineage, and GET /api/v1/duplicates. */
export function registerObjectRoutes(app: FastifyInstance, runtime: AllocatorRuntime): void {
  const { catalog } = runtime;

  app.get<{ Params: Params }>(`${OBJECTS}/:id`, async (request, reply) => {
    const id = parseId(request.params.id);
    const record = await loadObject(catalog, id);
    if (record === null) throw notFound(`Object ${id} not found`);
    return sendJson(reply, 200, objectJson(record));
  });

  app.get<{ Params: Params }>(`${OBJECTS}/:id/content`, async (request, reply) => {
    const id = parseId(request.params.id);
    const content = await guarded(async () => {
      try {
        return await storedContent(catalog, id);
      } catch (error) {
        if (error instanceof ObjectKindError) throw notFound(error.message);
        throw error;
      }
    });
    const missing = `The stored file of object ${id} is missing`;
    if (content === null) throw notFound(missing);
    const extension = /\.[A-Za-z0-9]{1,16}$/.exec(content.uri)?.[0] ?? '';
    return sendFile(request, reply, {
      path: resolveStored(runtime, content.uri, missing),
      contentType: content.contentType,
      etag: `"${content.sha256}"`,
      disposition: inlineDisposition(content.originalFilename ?? `${id}${extension}`),
      missingDetail: missing,
    });
  });

  app.get<{ Params: Params }>(`${OBJECTS}/:id/thumbnail`, async (request, reply) => {
    const id = parseId(request.params.id);
    const uri = await guarded(() => thumbnailUri(catalog, id));
    if (uri === null) throw notFound(`Object ${id} has no thumbnail`);
    const missing = `The thumbnail of object ${id} is missing`;
    return sendFile(request, reply, {
      path: resolveStored(runtime, uri, missing),
      contentType: 'image/jpeg',
      etag: null,
      disposition: null,
      missingDetail: missing,
    });
  });

  app.get<{ Params: Params }>(`${OBJECTS}/:id/chunks`, async (request, reply) => {
    const id = parseId(request.params.id);
    const query = new QueryReader(request.query as Record<string, unknown>);
    const limit = query.int('limit', 100, 1, MAX_PAGE);
    const offset = query.int('offset', 0, 0, Number.MAX_SAFE_INTEGER);
    query.finish();
    const page = await guarded(async () => {
      try {
        return await listChunks(catalog, id, { limit, offset });
      } catch (error) {
        if (error instanceof ObjectKindError) throw badRequest(error.message);
        throw error;
      }
    });
    return sendJson(reply, 200, { asset_id: id, chunks: page.chunks, total: page.total });
  });

  app.get<{ Params: Params }>(`${OBJECTS}/:id/lineage`, async (request, reply) => {
    const id = parseId(request.params.id);
    const entries = await guarded(() => listLineage(catalog, id));
    return sendJson(reply, 200, {
      asset_id: id,
      entries: entries.map((entry) => ({
        id: entry.id,
        request_id: entry.request_id,
        stage: entry.stage,
        detail: entry.detail,
        success: entry.success,
        error_message: entry.error_message,
        created_at: isoTime(entry.created_at),
      })),
    });
  });

  app.delete<{ Params: Params }>(`${OBJECTS}/:id`, async (request, reply) => {
    const id = parseId(request.params.id);
    await guarded(() => deleteObject(runtime, id, request.id));
    return sendJson(reply, 200, { id, deleted: true });
  });

  app.get('/api/v1/duplicates', async (request, reply) => {
    const query = new QueryReader(request.query as Record<string, unknown>);
    const rawType = query.string('type');
    const limit = query.int('limit', 50, 1, MAX_PAGE);
    query.finish();
    let type: (typeof DUPLICATE_TYPES)[number] | undefined;
    if (rawType !== undefined && rawType !== '') {
      if (!(DUPLICATE_TYPES as readonly string[]).includes(rawType))
        throw badRequest(`Invalid duplicate type '${rawType}': expected exact or near`);
      type = rawType as (typeof DUPLICATE_TYPES)[number];
    }
    const groups = await listDuplicateGroups(catalog, { type, limit });
    return sendJson(reply, 200, { groups, count: groups.length });
  });
}
