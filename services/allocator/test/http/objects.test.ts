// Objects API (spec §3.10) against a whole allocator: real uploads through the pipeline, then the object view,
// streamed content with ETag/Range/If-None-Match, thumbnails, chunks, lineage and deletion (acceptance 13, 31,
// 45), JSON reconstruction for staged and stored documents.
import { createHash, randomUUID } from 'node:crypto';
import { readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { namedLogger } from '@quintet/kernel/log';
import { createHttpApp } from '@quintet/kernel/service';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import { sql } from 'kysely';
import { PDFDocument } from 'pdf-lib';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerConventions, requestIdFor } from '../../src/http/conventions.js';
import { renderAllocatorError } from '../../src/http/errors.js';
import { ifNoneMatchHits, inlineDisposition, registerObjectRoutes } from '../../src/http/object-routes.js';
import { solidPng, startTestAllocator, type TestAllocator, type UploadFile } from '../harness.js';

const ISO_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

type Inject = (options: InjectOptions) => Promise<LightMyRequestResponse>;

/** The allocator's own app when it serves the objects routes, else those routes mounted on the same runtime. */
async function objectsApi(t: TestAllocator): Promise<{ inject: Inject; close: () => Promise<void> }> {
  if (t.app.hasRoute({ method: 'GET', url: '/api/v1/objects/:id' }))
    return { inject: (options) => t.app.inject(options), close: async () => {} };
  const app: FastifyInstance = createHttpApp({
    logger: namedLogger(t.runtime.logger, 'allocator.http'),
    renderError: renderAllocatorError,
    requestIdHeader: 'x-request-id',
    newRequestId: requestIdFor as () => string,
  });
  registerConventions(app, t.runtime.config);
  registerObjectRoutes(app, t.runtime);
  await app.ready();
  return { inject: (options) => app.inject(options), close: () => app.close() };
}

function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Every file below `dir`, relative with forward slashes. */
async function filesBelow(dir: string): Promise<string[]> {
  if (!(await exists(dir))) return [];
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((entry) => entry.isFile())
    .map((entry) =>
      join(entry.parentPath, entry.name)
        .slice(dir.length + 1)
        .replaceAll('\\', '/'),
    );
}

let t: TestAllocator;
let api: Awaited<ReturnType<typeof objectsApi>>;

const get = (url: string, headers: Record<string, string> = {}) =>
  api.inject({ method: 'GET', url, headers });
const del = (url: string) => api.inject({ method: 'DELETE', url });

/** Uploads files in one request, waits for the job and returns the system ids. */
async function ingestDone(files: UploadFile[], fields: Record<string, string> = {}): Promise<string[]> {
  const response = await t.ingest(files, fields);
  expect(response.statusCode).toBe(202);
  const body = response.json() as { job_id: string; system_ids: string[] };
  const job = await t.waitForJob(body.job_id);
  expect(job.status).toBe('done');
  return body.system_ids;
}

async function ingestPng(name: string, data: Buffer): Promise<string> {
  const [id] = await ingestDone([{ filename: name, data, contentType: 'image/png' }]);
  return id as string;
}

function storagePath(uri: string): string {
  expect(uri.startsWith('fs://')).toBe(true);
  return join(t.storageDir, uri.slice('fs://'.length));
}

async function object(id: string): Promise<Record<string, unknown>> {
  const response = await get(`/api/v1/objects/${id}`);
  expect(response.statusCode).toBe(200);
  return response.json() as Record<string, unknown>;
}

beforeAll(async () => {
  t = await startTestAllocator();
  api = await objectsApi(t);
});

afterAll(async () => {
  await api?.close();
  await t?.close();
});

describe('GET /api/v1/objects/{id} for media', () => {
  it('shows every media field with the stored values', async () => {
    const png = await solidPng([10, 180, 20], { seed: 3 });
    const id = await ingestPng('green leaf.png', png);
    const body = await object(id);
    const asset = await t.runtime.catalog
      .selectFrom('asset')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirstOrThrow();
    const clusterId = asset.cluster_id as string;
    const cluster = await t.runtime.catalog
      .selectFrom('cluster')
      .selectAll()
      .where('id', '=', clusterId)
      .executeTakeFirstOrThrow();
    const raw = await t.runtime.catalog
      .selectFrom('asset_raw')
      .selectAll()
      .where('id', '=', asset.raw_asset_id as string)
      .executeTakeFirstOrThrow();

    expect(Object.keys(body)).toEqual([
      'id',
      'kind',
      'uri',
      'content_type',
      'size_bytes',
      'sha256',
      'owner',
      'comments',
      'created_at',
      'updated_at',
      'status',
      'error_message',
      'tags',
      'metadata',
      'parent_asset_id',
      'children',
      'embedding',
      'cluster',
      'raw_asset',
      'thumbnail_uri',
      'content_url',
      'thumbnail_url',
      'duplicate_of',
      'duplicate_type',
    ]);
    expect(body).toMatchObject({
      id,
      kind: 'media',
      uri: `fs://media/clusters/${clusterId}/${id}.png`,
      content_type: 'image/png',
      size_bytes: png.length,
      sha256: sha256(png),
      owner: null,
      comments: null,
      status: 'done',
      error_message: null,
      tags: asset.tags,
      parent_asset_id: null,
      children: [],
      embedding: { dimension: 512, model: 'builtin-visual-v1' },
      cluster: { id: clusterId, name: cluster.name, provisional: true },
      raw_asset: { id: raw.id, uri: raw.uri, request_id: raw.request_id, part_id: raw.part_id },
      thumbnail_uri: `fs://media/derived/${clusterId}/${id}/thumb.jpg`,
      content_url: `/api/v1/objects/${id}/content`,
      thumbnail_url: `/api/v1/objects/${id}/thumbnail`,
      duplicate_of: null,
      duplicate_type: null,
    });
    expect((body.metadata as Record<string, unknown>).original_filename).toBe('green leaf.png');
    expect(body.created_at).toMatch(ISO_MS);
    expect(body.updated_at).toMatch(ISO_MS);
    expect(raw.uri.startsWith('fs://incoming/')).toBe(true);
  });

  it('answers 400 invalid_id for a malformed id and 404 for an unknown one on every route', async () => {
    for (const suffix of ['', '/content', '/thumbnail', '/chunks', '/lineage']) {
      const malformed = await get(`/api/v1/objects/not-a-uuid${suffix}`);
      expect(malformed.statusCode).toBe(400);
      expect(malformed.json()).toMatchObject({
        error: 'invalid_id',
        request_id: malformed.headers['x-request-id'],
      });
      const unknown = await get(`/api/v1/objects/${randomUUID()}${suffix}`);
      expect(unknown.statusCode).toBe(404);
      expect(unknown.json()).toMatchObject({ error: 'not_found' });
    }
    expect((await del('/api/v1/objects/not-a-uuid')).json()).toMatchObject({ error: 'invalid_id' });
    const unknownDelete = await del(`/api/v1/objects/${randomUUID()}`);
    expect(unknownDelete.statusCode).toBe(404);
    expect(unknownDelete.json()).toMatchObject({ error: 'not_found' });
  });
});

describe('acceptance 13: the same bytes uploaded twice', () => {
  it('marks the second asset an exact duplicate sharing the first one’s file', async () => {
    const png = await solidPng([200, 40, 160], { seed: 13, noise: 8 });
    const first = await ingestPng('first.png', png);
    const second = await ingestPng('second.png', png);
    const original = await object(first);
    const duplicate = await object(second);
    expect(duplicate).toMatchObject({
      duplicate_type: 'exact',
      duplicate_of: first,
      uri: original.uri,
      thumbnail_uri: original.thumbnail_uri,
      sha256: sha256(png),
      status: 'done',
    });
    expect((duplicate.cluster as { id: string }).id).toBe((original.cluster as { id: string }).id);
    const stored = await filesBelow(join(t.storageDir, 'media', 'clusters'));
    expect(stored.filter((path) => path.includes(first))).toHaveLength(1);
    expect(stored.filter((path) => path.includes(second))).toHaveLength(0);
    expect(await readFile(storagePath(original.uri as string))).toEqual(png);
    // The duplicate's own upload was removed rather than kept a second time.
    const raw = duplicate.raw_asset as { uri: string };
    expect(await exists(storagePath(raw.uri))).toBe(false);
  });
});

describe('acceptance 31: GET /api/v1/objects/{id}/content', () => {
  let id: string;
  let png: Buffer;

  beforeAll(async () => {
    png = await solidPng([30, 60, 220], { seed: 31, noise: 20, width: 80, height: 60 });
    id = await ingestPng('blue sky.png', png);
  });

  it('streams the stored bytes with type, length, ETag, disposition and Accept-Ranges', async () => {
    const response = await get(`/api/v1/objects/${id}/content`);
    expect(response.statusCode).toBe(200);
    expect(response.rawPayload).toEqual(png);
    expect(response.headers['content-type']).toBe('image/png');
    expect(response.headers['content-length']).toBe(String(png.length));
    expect(response.headers.etag).toBe(`"${sha256(png)}"`);
    expect(response.headers['accept-ranges']).toBe('bytes');
    expect(response.headers['content-disposition']).toBe('inline; filename="blue sky.png"');
  });

  it('answers Range: bytes=0-3 with 206 and the first four bytes', async () => {
    const response = await get(`/api/v1/objects/${id}/content`, { range: 'bytes=0-3' });
    expect(response.statusCode).toBe(206);
    expect(response.rawPayload).toEqual(png.subarray(0, 4));
    expect(response.headers['content-range']).toBe(`bytes 0-3/${png.length}`);
    expect(response.headers['content-length']).toBe('4');
    const suffix = await get(`/api/v1/objects/${id}/content`, { range: 'bytes=-5' });
    expect(suffix.statusCode).toBe(206);
    expect(suffix.rawPayload).toEqual(png.subarray(png.length - 5));
    expect(suffix.headers['content-range']).toBe(`bytes ${png.length - 5}-${png.length - 1}/${png.length}`);
  });

  it('answers a matching If-None-Match with 304 and no body', async () => {
    const etag = `"${sha256(png)}"`;
    for (const value of [etag, `W/${etag}`, `"other", ${etag}`, '*']) {
      const response = await get(`/api/v1/objects/${id}/content`, { 'if-none-match': value });
      expect(response.statusCode, value).toBe(304);
      expect(response.rawPayload.length).toBe(0);
      expect(response.headers.etag).toBe(etag);
    }
    const miss = await get(`/api/v1/objects/${id}/content`, { 'if-none-match': '"something-else"' });
    expect(miss.statusCode).toBe(200);
    expect(miss.rawPayload).toEqual(png);
  });

  it('answers an unsatisfiable range with 416, Content-Range bytes */size and the error body', async () => {
    const response = await get(`/api/v1/objects/${id}/content`, { range: `bytes=${png.length}-` });
    expect(response.statusCode).toBe(416);
    expect(response.headers['content-range']).toBe(`bytes */${png.length}`);
    expect(response.json()).toMatchObject({
      error: 'range_not_satisfiable',
      request_id: response.headers['x-request-id'],
    });
  });

  it('serves the thumbnail as a JPEG of at most 256 px', async () => {
    const response = await get(`/api/v1/objects/${id}/thumbnail`);
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toBe('image/jpeg');
    const info = await sharp(response.rawPayload).metadata();
    expect(info.format).toBe('jpeg');
    expect(Math.max(info.width ?? 0, info.height ?? 0)).toBeLessThanOrEqual(256);
  });

  it('answers 404 with a clear detail when the stored file is missing on disk', async () => {
    const other = await ingestPng('gone.png', await solidPng([250, 250, 10], { seed: 32, noise: 15 }));
    const body = await object(other);
    await rm(storagePath(body.uri as string));
    const response = await get(`/api/v1/objects/${other}/content`);
    expect(response.statusCode).toBe(404);
    expect(response.json()).toMatchObject({
      error: 'not_found',
      detail: `The stored file of object ${other} is missing`,
    });
  });
});

describe('content helpers', () => {
  it('quotes file names safely and adds filename* for non-ASCII names', () => {
    expect(inlineDisposition('report.pdf')).toBe('inline; filename="report.pdf"');
    expect(inlineDisposition('a"b\\c.png')).toBe(
      `inline; filename="a_b_c.png"; filename*=UTF-8''a%22b%5Cc.png`,
    );
    expect(inlineDisposition('café (1).png')).toBe(
      `inline; filename="caf_ (1).png"; filename*=UTF-8''caf%C3%A9%20%281%29.png`,
    );
  });

  it('compares If-None-Match weakly, in lists and with *', () => {
    expect(ifNoneMatchHits('"abc"', '"abc"')).toBe(true);
    expect(ifNoneMatchHits('W/"abc"', '"abc"')).toBe(true);
    expect(ifNoneMatchHits('"x", W/"abc" , "y"', '"abc"')).toBe(true);
    expect(ifNoneMatchHits('*', '"abc"')).toBe(true);
    expect(ifNoneMatchHits('"abcd"', '"abc"')).toBe(false);
    expect(ifNoneMatchHits(undefined, '"abc"')).toBe(false);
  });
});

describe('GET /api/v1/objects/{id}/lineage', () => {
  it('lists the entries in the order they were written', async () => {
    const id = await ingestPng('lineage.png', await solidPng([120, 20, 20], { seed: 41, noise: 25 }));
    const response = await get(`/api/v1/objects/${id}/lineage`);
    expect(response.statusCode).toBe(200);
    const body = response.json() as { asset_id: string; entries: Record<string, unknown>[] };
    expect(body.asset_id).toBe(id);
    expect(body.entries.map((entry) => entry.stage)).toEqual([
      'ingest_accepted',
      'raw_stored',
      'processing_start',
      'clustered',
      'processing_complete',
    ]);
    const times = body.entries.map((entry) => entry.created_at as string);
    for (const time of times) expect(time).toMatch(ISO_MS);
    expect([...times].sort()).toEqual(times);
    expect(Object.keys(body.entries[0] as object)).toEqual([
      'id',
      'request_id',
      'stage',
      'detail',
      'success',
      'error_message',
      'created_at',
    ]);
    const complete = body.entries[4] as { detail: Record<string, unknown>; success: boolean };
    expect(complete.success).toBe(true);
    expect(complete.detail.final_uri).toBe((await object(id)).uri);
  });
});

describe('documents', () => {
  const paragraph =
    'Lanterns glow along the quiet harbour while fishermen mend their nets. ' +
    'Gulls circle above the masts, and the tide slowly returns to the shore. ';
  const markdown = `# Heading\n\n${paragraph.repeat(14)}\n`;
  let id: string;

  beforeAll(async () => {
    [id] = (await ingestDone([{ filename: 'harbour.md', data: markdown, contentType: 'text/markdown' }])) as [
      string,
    ];
  });

  it('shows chunks_url and content_url and serves the Markdown bytes', async () => {
    const body = await object(id);
    expect(body).toMatchObject({
      kind: 'document',
      content_type: 'text/markdown',
      uri: `fs://documents/${id}/${id}.md`,
      chunks_url: `/api/v1/objects/${id}/chunks`,
      content_url: `/api/v1/objects/${id}/content`,
    });
    expect(body).not.toHaveProperty('embedding');
    const content = await get(`/api/v1/objects/${id}/content`);
    expect(content.statusCode).toBe(200);
    expect(content.body).toBe(markdown);
    expect(content.headers['content-disposition']).toBe('inline; filename="harbour.md"');
    expect((await get(`/api/v1/objects/${id}/thumbnail`)).statusCode).toBe(404);
  });

  it('pages through the chunks in order', async () => {
    const all = await get(`/api/v1/objects/${id}/chunks`);
    expect(all.statusCode).toBe(200);
    const body = all.json() as { asset_id: string; chunks: Record<string, unknown>[]; total: number };
    expect(body.asset_id).toBe(id);
    expect(body.total).toBeGreaterThanOrEqual(4);
    expect(body.chunks).toHaveLength(body.total);
    expect(body.chunks.map((chunk) => chunk.chunk_index)).toEqual([...Array(body.total).keys()]);
    for (const chunk of body.chunks) {
      expect(Object.keys(chunk)).toEqual([
        'id',
        'chunk_index',
        'text',
        'parent_heading',
        'page_number',
        'element_type',
      ]);
      expect(chunk.parent_heading).toBe('Heading');
      expect((chunk.text as string).length).toBeLessThanOrEqual(512);
    }
    const page = (await get(`/api/v1/objects/${id}/chunks?limit=2&offset=1`)).json() as typeof body;
    expect(page.total).toBe(body.total);
    expect(page.chunks.map((chunk) => chunk.chunk_index)).toEqual([1, 2]);
    expect(page.chunks[0]?.text).toBe(body.chunks[1]?.text);
  });

  it('validates the paging parameters and refuses chunks of other kinds', async () => {
    for (const query of ['limit=0', 'limit=501', 'offset=-1', 'limit=abc']) {
      const response = await get(`/api/v1/objects/${id}/chunks?${query}`);
      expect(response.statusCode, query).toBe(422);
      expect(response.json()).toMatchObject({ error: 'validation_error' });
    }
    expect((await get(`/api/v1/objects/${id}/chunks?limit=500`)).statusCode).toBe(200);
    const media = await ingestPng('not-a-doc.png', await solidPng([5, 5, 90], { seed: 51, noise: 30 }));
    const response = await get(`/api/v1/objects/${media}/chunks`);
    expect(response.statusCode).toBe(400);
    expect(response.json()).toMatchObject({ error: 'bad_request' });
  });

  it('deletes the document with its chunks and its folder', async () => {
    const folder = join(t.storageDir, 'documents', id);
    expect(await exists(folder)).toBe(true);
    const response = await del(`/api/v1/objects/${id}`);
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ id, deleted: true });
    expect(await exists(folder)).toBe(false);
    const chunks = await t.runtime.catalog
      .selectFrom('document_chunk')
      .select('id')
      .where('asset_id', '=', id)
      .execute();
    expect(chunks).toHaveLength(0);
    expect((await get(`/api/v1/objects/${id}`)).statusCode).toBe(404);
  });
});

describe('a document with an embedded image', () => {
  it('lists the child, and deleting the document removes the child with its files', async () => {
    const jpeg = await sharp({
      create: { width: 120, height: 80, channels: 3, background: { r: 30, g: 200, b: 220 } },
    })
      .jpeg({ quality: 90 })
      .toBuffer();
    const pdf = await PDFDocument.create();
    const page = pdf.addPage([400, 300]);
    page.drawText('Survey photo of the cyan water tank', { x: 20, y: 260, size: 14 });
    page.drawImage(await pdf.embedJpg(jpeg), { x: 20, y: 20, width: 120, height: 80 });
    const [documentId] = (await ingestDone([
      { filename: 'survey.pdf', data: Buffer.from(await pdf.save()), contentType: 'application/pdf' },
    ])) as [string];
    const document = await object(documentId);
    const [childId] = document.children as [string];
    expect(document.children).toHaveLength(1);
    const child = await object(childId);
    expect(child).toMatchObject({
      kind: 'media',
      parent_asset_id: documentId,
      sha256: sha256(jpeg),
      status: 'done',
    });
    const childFile = storagePath(child.uri as string);
    const childThumbnail = storagePath(child.thumbnail_uri as string);
    expect(await exists(childFile)).toBe(true);

    const deleted: string[] = [];
    const stop = t.runtime.changes.onChange((event) => {
      if (event.kind === 'deleted') deleted.push(...event.assetIds);
    });
    expect((await del(`/api/v1/objects/${documentId}`)).statusCode).toBe(200);
    stop();
    expect(deleted).toEqual([documentId, childId]);
    expect((await get(`/api/v1/objects/${childId}`)).statusCode).toBe(404);
    expect(await exists(childFile)).toBe(false);
    expect(await exists(childThumbnail)).toBe(false);
    expect(await exists(join(t.storageDir, 'documents', documentId))).toBe(false);
    const lineage = (await get(`/api/v1/objects/${childId}/lineage`)).json() as {
      entries: { stage: string; detail: Record<string, unknown> }[];
    };
    expect(lineage.entries.at(-1)).toMatchObject({
      stage: 'asset_deleted',
      detail: { deleted_with: documentId },
    });
  });
});

describe('acceptance 45: DELETE /api/v1/objects/{id}', () => {
  async function clusterCount(clusterId: string): Promise<number> {
    const response = await t.app.inject({ method: 'GET', url: `/api/v1/admin/clusters/${clusterId}` });
    expect(response.statusCode).toBe(200);
    return (response.json() as { asset_count: number }).asset_count;
  }

  it('removes the file and thumbnail, decrements the cluster and recomputes its centroid', async () => {
    const [keep, remove] = (await ingestDone([
      {
        filename: 'teal-1.png',
        data: await solidPng([0, 128, 128], { seed: 61, noise: 6 }),
        contentType: 'image/png',
      },
      {
        filename: 'teal-2.png',
        data: await solidPng([0, 128, 128], { seed: 62, noise: 6 }),
        contentType: 'image/png',
      },
    ])) as [string, string];
    const removed = await object(remove);
    const clusterId = (removed.cluster as { id: string }).id;
    expect(((await object(keep)).cluster as { id: string }).id).toBe(clusterId);
    expect(await clusterCount(clusterId)).toBe(2);
    const file = storagePath(removed.uri as string);
    const thumbnail = storagePath(removed.thumbnail_uri as string);
    expect(await exists(file)).toBe(true);

    const deleted: string[] = [];
    const stop = t.runtime.changes.onChange((event) => {
      if (event.kind === 'deleted') deleted.push(...event.assetIds);
    });
    const response = await del(`/api/v1/objects/${remove}`);
    stop();
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ id: remove, deleted: true });
    expect(deleted).toEqual([remove]);
    expect(await exists(file)).toBe(false);
    expect(await exists(thumbnail)).toBe(false);
    expect(await exists(join(t.storageDir, 'media', 'derived', clusterId, remove))).toBe(false);
    expect(await clusterCount(clusterId)).toBe(1);
    expect((await get(`/api/v1/objects/${remove}`)).statusCode).toBe(404);
    expect(await exists(storagePath((await object(keep)).uri as string))).toBe(true);

    // The centroid is the remaining member's embedding (normalised mean of one vector).
    const centroid = await sql<{ distance: number }>`
      select (c.centroid <=> a.embedding)::float8 as distance
      from cluster c join asset a on a.id = ${keep} where c.id = ${clusterId}`.execute(t.runtime.catalog);
    expect(centroid.rows[0]?.distance).toBeLessThan(1e-5);

    // Lineage survives the asset and ends with asset_deleted.
    const lineage = (await get(`/api/v1/objects/${remove}/lineage`)).json() as {
      entries: { stage: string; request_id: string }[];
    };
    expect(lineage.entries.at(-1)).toMatchObject({
      stage: 'asset_deleted',
      request_id: response.headers['x-request-id'],
    });
  });

  it('keeps the file for the duplicates when an exact-duplicate original is deleted', async () => {
    const png = await solidPng([90, 60, 10], { seed: 71, noise: 12 });
    const original = await ingestPng('brown.png', png);
    const heir = await ingestPng('brown-again.png', png);
    const third = await ingestPng('brown-third.png', png);
    const uri = (await object(original)).uri as string;
    const clusterId = ((await object(original)).cluster as { id: string }).id;
    expect(await object(third)).toMatchObject({ duplicate_of: original, duplicate_type: 'exact' });
    expect(await clusterCount(clusterId)).toBe(3);

    expect((await del(`/api/v1/objects/${original}`)).statusCode).toBe(200);
    expect(await exists(storagePath(uri))).toBe(true);
    expect(await object(heir)).toMatchObject({
      duplicate_of: null,
      duplicate_type: null,
      uri,
      status: 'done',
    });
    expect(await object(third)).toMatchObject({ duplicate_of: heir, duplicate_type: 'exact', uri });
    expect(await clusterCount(clusterId)).toBe(2);
    const content = await get(`/api/v1/objects/${heir}/content`);
    expect(content.statusCode).toBe(200);
    expect(content.rawPayload).toEqual(png);
    // The heir now carries the cluster's centroid on its own.
    const centroid = await sql<{
      centroid: string | null;
    }>`select centroid::text as centroid from cluster where id = ${clusterId}`.execute(t.runtime.catalog);
    expect(centroid.rows[0]?.centroid).not.toBeNull();

    // Deleting a duplicate keeps the shared file; deleting the last holder removes it.
    expect((await del(`/api/v1/objects/${third}`)).statusCode).toBe(200);
    expect(await exists(storagePath(uri))).toBe(true);
    expect((await del(`/api/v1/objects/${heir}`)).statusCode).toBe(200);
    expect(await exists(storagePath(uri))).toBe(false);
    expect(await clusterCount(clusterId)).toBe(0);
  });

  it('answers 409 while the asset is queued or processing', async () => {
    const id = await ingestPng('busy.png', await solidPng([255, 128, 0], { seed: 81, noise: 9 }));
    const uri = (await object(id)).uri as string;
    for (const status of ['queued', 'processing'] as const) {
      await t.runtime.catalog.updateTable('asset').set({ status }).where('id', '=', id).execute();
      const response = await del(`/api/v1/objects/${id}`);
      expect(response.statusCode).toBe(409);
      expect(response.json()).toMatchObject({ error: 'conflict' });
      expect((response.json() as { detail: string }).detail).toContain(status);
    }
    await t.runtime.catalog.updateTable('asset').set({ status: 'done' }).where('id', '=', id).execute();
    expect(await exists(storagePath(uri))).toBe(true);
    expect((await del(`/api/v1/objects/${id}`)).statusCode).toBe(200);
  });
});

describe('JSON objects', () => {
  it('shows a staged document with its provisional schema and has no file content', async () => {
    const [id] = (await ingestDone([], {
      payload: JSON.stringify({ name: 'John', age: 30, city: 'NYC' }),
    })) as [string];
    const body = await object(id);
    const asset = await t.runtime.catalog
      .selectFrom('asset')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirstOrThrow();
    const schema = await t.runtime.catalog
      .selectFrom('schema_def')
      .selectAll()
      .where('id', '=', asset.schema_id as string)
      .executeTakeFirstOrThrow();
    expect(body).toMatchObject({
      kind: 'json',
      status: 'pending_review',
      schema: {
        id: schema.id,
        name: schema.name,
        storage_choice: 'sql',
        status: 'provisional',
        ddl: schema.ddl,
      },
      storage_location: schema.name,
      storage_id: null,
      document: { name: 'John', age: 30, city: 'NYC' },
    });
    const content = await get(`/api/v1/objects/${id}/content`);
    expect(content.statusCode).toBe(404);
    expect(content.json()).toMatchObject({ error: 'not_found' });

    expect((await del(`/api/v1/objects/${id}`)).statusCode).toBe(200);
    const staged = await t.runtime.catalog
      .selectFrom('json_staging')
      .select('asset_id')
      .where('asset_id', '=', id)
      .execute();
    expect(staged).toHaveLength(0);
  });
});

describe('JSON objects stored with AUTO_MIGRATE=true', () => {
  let stored: TestAllocator;
  let storedApi: Awaited<ReturnType<typeof objectsApi>>;

  beforeAll(async () => {
    stored = await startTestAllocator({ AUTO_MIGRATE: 'true' });
    storedApi = await objectsApi(stored);
  });

  afterAll(async () => {
    await storedApi?.close();
    await stored?.close();
  });

  it('reconstructs the document from its table row, and deleting removes the row', async () => {
    const response = await stored.ingest([], {
      payload: JSON.stringify({ name: 'Ada', age: 36, city: 'London' }),
    });
    const { job_id: jobId, system_ids: ids } = response.json() as { job_id: string; system_ids: string[] };
    await stored.waitForJob(jobId);
    const id = ids[0] as string;
    const asset = await stored.runtime.catalog
      .selectFrom('asset')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirstOrThrow();
    expect(asset.status).toBe('done');
    const schema = await stored.runtime.catalog
      .selectFrom('schema_def')
      .selectAll()
      .where('id', '=', asset.schema_id as string)
      .executeTakeFirstOrThrow();
    const table = sql.table(`json_data.${schema.name}`);
    // The view reads the row, not the document as received.
    await sql`update ${table} set city = 'Paris' where id = ${asset.storage_id}`.execute(
      stored.runtime.catalog,
    );
    const view = (await storedApi.inject({ method: 'GET', url: `/api/v1/objects/${id}` })).json() as Record<
      string,
      unknown
    >;
    expect(view).toMatchObject({
      kind: 'json',
      status: 'done',
      uri: `sql://${schema.name}/${asset.storage_id}`,
      schema: { id: schema.id, name: schema.name, storage_choice: 'sql', status: 'active' },
      storage_location: schema.name,
      storage_id: asset.storage_id,
      document: { name: 'Ada', age: 36, city: 'Paris' },
    });

    const deleted = await storedApi.inject({ method: 'DELETE', url: `/api/v1/objects/${id}` });
    expect(deleted.statusCode).toBe(200);
    const rows = await sql<{ n: number }>`select count(*)::int as n from ${table}`.execute(
      stored.runtime.catalog,
    );
    expect(rows.rows[0]?.n).toBe(0);
  });
});
