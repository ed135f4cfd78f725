import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHttpApp } from '@quintet/kernel/service';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toVectorLiteral } from '../../src/domain/database.js';
import { createSearchIndex } from '../../src/domain/search-index.js';
import { registerConventions, requestIdFor } from '../../src/http/conventions.js';
import { renderAllocatorError } from '../../src/http/errors.js';
import { registerSearchRoutes } from '../../src/http/search-routes.js';
import { solidPng, startTestAllocator, type TestAllocator } from '../harness.js';
import { writeTinyClipModel } from '../models/tiny-models.js';

const DIM = 512;
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

interface SearchHarness {
  allocator: TestAllocator;
  /** the app serving the search routes: the allocator's own once it wires them, else one over its runtime */
  app: FastifyInstance;
  close(): Promise<void>;
}

async function startSearchHarness(env: Record<string, string> = {}): Promise<SearchHarness> {
  const allocator = await startTestAllocator(env);
  if (allocator.app.hasRoute({ method: 'GET', url: '/api/v1/search' }))
    return { allocator, app: allocator.app, close: () => allocator.close() };
  const index = await createSearchIndex(allocator.runtime, { pollIntervalMs: 100 });
  const app = createHttpApp({
    logger: allocator.runtime.logger,
    renderError: renderAllocatorError,
    requestIdHeader: 'x-request-id',
    newRequestId: requestIdFor as () => string,
  });
  registerConventions(app, allocator.runtime.config);
  registerSearchRoutes(app, allocator.runtime, index);
  await app.ready();
  return {
    allocator,
    app,
    close: async () => {
      await app.close();
      await index.close();
      await allocator.close();
    },
  };
}

/** A unit 512-d vector with the given weights on the given axes. */
function vector(weights: Record<number, number>): Float32Array {
  const values = new Float32Array(DIM);
  for (const [axis, weight] of Object.entries(weights)) values[Number(axis)] = weight;
  const norm = Math.hypot(...values);
  return values.map((value) => value / norm);
}

interface AssetSpec {
  kind?: 'media' | 'json' | 'document';
  status?: 'queued' | 'done';
  owner?: string | null;
  comments?: string | null;
  tags?: string[];
  clusterId?: string | null;
  duplicateType?: 'exact' | 'near' | null;
  duplicateOf?: string | null;
  metadata?: Record<string, unknown>;
  document?: Record<string, unknown> | null;
  embedding?: Float32Array | null;
  embeddingModel?: string;
  createdAt?: Date;
  thumbnail?: boolean;
}

async function insertAsset(harness: SearchHarness, spec: AssetSpec = {}): Promise<string> {
  const id = randomUUID();
  const kind = spec.kind ?? 'media';
  await harness.allocator.runtime.catalog
    .insertInto('asset')
    .values({
      id,
      kind,
      uri: kind === 'json' ? `jsonb://docs/${id}` : `fs://media/clusters/c/${id}.png`,
      sha256: randomUUID().replaceAll('-', ''),
      content_type:
        kind === 'json' ? 'application/json' : kind === 'document' ? 'text/markdown' : 'image/png',
      size_bytes: 1234,
      owner: spec.owner ?? null,
      comments: spec.comments ?? null,
      status: spec.status ?? 'done',
      cluster_id: spec.clusterId ?? null,
      tags: spec.tags ?? [],
      duplicate_type: spec.duplicateType ?? null,
      duplicate_of: spec.duplicateOf ?? null,
      thumbnail_uri: spec.thumbnail ? `fs://media/derived/c/${id}/thumb.jpg` : null,
      embedding:
        spec.embedding === undefined || spec.embedding === null ? null : toVectorLiteral(spec.embedding),
      embedding_model: spec.embedding === undefined ? null : (spec.embeddingModel ?? 'builtin-visual-v1'),
      metadata: JSON.stringify(spec.metadata ?? {}),
      document: spec.document === undefined || spec.document === null ? null : JSON.stringify(spec.document),
      created_at: spec.createdAt ?? new Date(),
      updated_at: new Date(),
    })
    .execute();
  harness.allocator.runtime.changes.assetsChanged([id]);
  return id;
}

async function insertCluster(harness: SearchHarness, name: string): Promise<string> {
  const id = randomUUID();
  await harness.allocator.runtime.catalog
    .insertInto('cluster')
    .values({ id, name, centroid: null, threshold: 0.72, metadata: '{}' })
    .execute();
  return id;
}

function get(harness: SearchHarness, url: string): Promise<LightMyRequestResponse> {
  return harness.app.inject({ method: 'GET', url });
}

/** Repeats a search until `check` passes: the index applies change events asynchronously. */
async function searchUntil(
  harness: SearchHarness,
  url: string,
  check: (body: SearchBody) => void,
  timeoutMs = 5000,
): Promise<SearchBody> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const response = await get(harness, url);
    expect(response.statusCode).toBe(200);
    const body = response.json() as SearchBody;
    try {
      check(body);
      return body;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }
}

interface SearchItem {
  id: string;
  kind: string;
  similarity_score: number;
  match_sources: string[];
  metadata: Record<string, unknown>;
  [key: string]: unknown;
}

interface SearchBody {
  query: string;
  results: SearchItem[];
  total: number;
  query_time_ms: number;
  filters_applied: Record<string, unknown>;
}

const idsOf = (body: SearchBody) => body.results.map((item) => item.id);

async function waitForIngest(allocator: TestAllocator, response: LightMyRequestResponse): Promise<string[]> {
  expect(response.statusCode).toBe(202);
  const accepted = response.json() as { job_id: string; system_ids: string[] };
  const status = await allocator.waitForJob(accepted.job_id);
  expect(status.status).toBe('done');
  return accepted.system_ids;
}

describe('search with the built-in embedders (lexical)', () => {
  let harness: SearchHarness;

  beforeAll(async () => {
    harness = await startSearchHarness();
  });

  afterAll(async () => {
    await harness?.close();
  });

  it('validates parameters in the order and with the messages of §3.9.1', async () => {
    const problem = async (query: string) => {
      const response = await get(harness, `/api/v1/search?${query}`);
      const body = response.json() as { error: string; detail: string; request_id: string };
      expect(body.request_id).toEqual(expect.any(String));
      return [response.statusCode, body.error, body.detail];
    };
    expect(await problem('query=a')).toEqual([400, 'bad_request', 'Query must be at least 2 characters']);
    expect(await problem('query=%20%20a%20%20')).toEqual([
      400,
      'bad_request',
      'Query must be at least 2 characters',
    ]);
    expect(await problem(`query=${'x'.repeat(501)}`)).toEqual([
      400,
      'bad_request',
      'Query must be less than 500 characters',
    ]);
    expect((await problem('limit=5'))[0]).toBe(422);
    expect((await problem('query=cats&limit=0'))[0]).toBe(422);
    expect((await problem('query=cats&limit=101'))[0]).toBe(422);
    expect((await problem('query=cats&limit=2.5'))[0]).toBe(422);
    expect((await problem('query=cats&threshold=1.5'))[0]).toBe(422);
    expect((await problem('query=cats&threshold=-0.1'))[0]).toBe(422);
    expect(await problem('query=cats&type=video')).toEqual([
      400,
      'bad_request',
      "Invalid type 'video': expected one of media, document, json",
    ]);
    expect(await problem('query=cats&cluster_id=x')).toEqual([
      400,
      'bad_request',
      'Invalid cluster_id: expected a UUID',
    ]);
    // order: query before type before limit before cluster_id
    expect((await problem('query=a&type=video'))[2]).toBe('Query must be at least 2 characters');
    expect((await problem('query=cats&type=video&limit=0'))[0]).toBe(400);
    expect((await problem('query=cats&limit=0&cluster_id=x'))[0]).toBe(422);
    const missing = await get(harness, '/api/v1/search');
    expect(missing.json()).toMatchObject({
      error: 'validation_error',
      details: [{ loc: ['query', 'query'], type: 'missing' }],
    });
    const limit = await get(harness, '/api/v1/search?query=cats&limit=0');
    expect(limit.json()).toMatchObject({ details: [{ loc: ['query', 'limit'] }] });
  });

  it('finds an asset by a filename word, with the result shape of §3.9.1', async () => {
    const cluster = await insertCluster(harness, 'Seaside Shots');
    const created = new Date('2026-03-04T05:06:07.089Z');
    const id = await insertAsset(harness, {
      owner: 'maria',
      tags: ['blue', 'square'],
      clusterId: cluster,
      thumbnail: true,
      createdAt: created,
      metadata: { original_filename: 'Holiday_Lighthouse.jpg', width: 64, height: 48 },
    });
    const body = await searchUntil(harness, '/api/v1/search?query=%20%20lighthouse%20%20', (found) =>
      expect(idsOf(found)).toEqual([id]),
    );
    expect(body).toEqual({
      query: 'lighthouse',
      results: [
        {
          id,
          kind: 'media',
          uri: `fs://media/clusters/c/${id}.png`,
          content_type: 'image/png',
          size_bytes: 1234,
          owner: 'maria',
          tags: ['blue', 'square'],
          similarity_score: 1,
          cluster: { id: cluster, name: 'Seaside Shots' },
          thumbnail_uri: `fs://media/derived/c/${id}/thumb.jpg`,
          content_url: `/api/v1/objects/${id}/content`,
          thumbnail_url: `/api/v1/objects/${id}/thumbnail`,
          created_at: '2026-03-04T05:06:07.089Z',
          metadata: { original_filename: 'Holiday_Lighthouse.jpg', width: 64, height: 48 },
          match_sources: ['filename'],
        },
      ],
      total: 1,
      query_time_ms: expect.any(Number),
      filters_applied: {
        type: null,
        owner: null,
        cluster_id: null,
        tags: null,
        min_similarity: 0.5,
        limit: 10,
      },
    });
    const partly = await get(harness, '/api/v1/search?query=lighthouse%20seaside%20zebra');
    expect(
      (partly.json() as SearchBody).results.map((item) => [
        item.id,
        item.similarity_score,
        item.match_sources,
      ]),
    ).toEqual([[id, 0.8333, ['filename', 'cluster']]]);
    expect(
      (await get(harness, '/api/v1/search?query=lighthouse%20zebra&threshold=0.9')).json(),
    ).toMatchObject({
      total: 0,
    });
  });

  it('filters by tags (any, case-insensitive), owner, cluster_id and type', async () => {
    const cluster = await insertCluster(harness, 'Garden');
    const ann = await insertAsset(harness, {
      owner: 'ann',
      tags: ['tulip', 'spring'],
      createdAt: new Date('2026-01-01T00:00:01Z'),
    });
    const bob = await insertAsset(harness, {
      owner: 'bob',
      tags: ['tulip', 'red'],
      clusterId: cluster,
      createdAt: new Date('2026-01-01T00:00:02Z'),
    });
    const json = await insertAsset(harness, {
      kind: 'json',
      owner: 'ann',
      document: { order: { items: [{ flower: 'Tulip bulbs' }] }, quantity: 12 },
      createdAt: new Date('2026-01-01T00:00:03Z'),
    });
    await searchUntil(harness, '/api/v1/search?query=tulip', (body) =>
      expect(idsOf(body)).toEqual([json, bob, ann]),
    );
    const ids = async (query: string) =>
      idsOf((await get(harness, `/api/v1/search?query=tulip&${query}`)).json() as SearchBody);
    expect(await ids('tags=SPRING,unknown')).toEqual([ann]);
    expect(await ids('tags=red&tags=spring')).toEqual([bob, ann]);
    expect(await ids('owner=ann')).toEqual([json, ann]);
    expect(await ids(`cluster_id=${cluster.toUpperCase()}`)).toEqual([bob]);
    expect(await ids('type=json')).toEqual([json]);
    expect(await ids('type=media&limit=1')).toEqual([bob]);
    const filtered = (
      await get(
        harness,
        `/api/v1/search?query=tulip&type=media&owner=bob&tags=red&cluster_id=${cluster}&threshold=0.6&limit=5`,
      )
    ).json() as SearchBody;
    expect(filtered.filters_applied).toEqual({
      type: 'media',
      owner: 'bob',
      cluster_id: cluster,
      tags: ['red'],
      min_similarity: 0.6,
      limit: 5,
    });
    const jsonHit = ((await get(harness, '/api/v1/search?query=bulbs')).json() as SearchBody).results[0];
    expect(jsonHit).toMatchObject({
      id: json,
      kind: 'json',
      match_sources: ['json'],
      cluster: null,
      // A JSON asset has no file to download: its content is the object's `document`.
      content_url: null,
      thumbnail_url: null,
    });
  });

  it('leaves exact duplicates out unless include_duplicates', async () => {
    const original = await insertAsset(harness, {
      tags: ['kestrel'],
      createdAt: new Date('2026-01-01T00:00:00Z'),
    });
    const exact = await insertAsset(harness, {
      tags: ['kestrel'],
      duplicateType: 'exact',
      duplicateOf: original,
      createdAt: new Date('2026-01-02T00:00:00Z'),
    });
    await searchUntil(harness, '/api/v1/search?query=kestrel&include_duplicates=true', (body) =>
      expect(idsOf(body)).toEqual([exact, original]),
    );
    expect(idsOf((await get(harness, '/api/v1/search?query=kestrel')).json() as SearchBody)).toEqual([
      original,
    ]);
  });

  it('accepts the POST body of the original API, with filters {kind, owner}', async () => {
    const ann = await insertAsset(harness, { owner: 'ann', tags: ['otter'] });
    const bob = await insertAsset(harness, { owner: 'bob', tags: ['otter', 'river'] });
    await searchUntil(harness, '/api/v1/search?query=otter', (body) =>
      expect(idsOf(body).sort()).toEqual([ann, bob].sort()),
    );
    const post = (payload: unknown) =>
      harness.app.inject({ method: 'POST', url: '/api/v1/search', payload: payload as object });

    const byFilters = await post({ query: ' otter ', filters: { kind: 'media', owner: 'ann' } });
    expect(byFilters.statusCode).toBe(200);
    expect(byFilters.json()).toMatchObject({
      query: 'otter',
      total: 1,
      results: [{ id: ann }],
      filters_applied: {
        type: 'media',
        owner: 'ann',
        cluster_id: null,
        tags: null,
        min_similarity: 0.5,
        limit: 10,
      },
    });
    const byFields = await post({
      query: 'otter river',
      type: 'media',
      limit: 1,
      threshold: 0.8,
      tags: ['RIVER'],
    });
    expect((byFields.json() as SearchBody).results.map((item) => [item.id, item.similarity_score])).toEqual([
      [bob, 1],
    ]);
    expect((await post({ query: 'otter', tags: 'river,none' })).json()).toMatchObject({
      results: [{ id: bob }],
    });

    expect((await post({ limit: 5 })).statusCode).toBe(422);
    expect((await post({ query: 'x' })).json()).toMatchObject({
      error: 'bad_request',
      detail: 'Query must be at least 2 characters',
    });
    expect((await post({ query: 'otter', type: 'video' })).statusCode).toBe(400);
    expect((await post({ query: 'otter', filters: { kind: 'audio' } })).statusCode).toBe(400);
    expect((await post({ query: 'otter', limit: 0 })).statusCode).toBe(422);
    expect((await post({ query: 'otter', threshold: 2 })).statusCode).toBe(422);
    expect((await post({ query: 'otter', cluster_id: 'nope' })).json()).toMatchObject({
      error: 'bad_request',
      detail: 'Invalid cluster_id: expected a UUID',
    });
  });

  it('finds ingested red images by their label `red`, and a Markdown document through its chunks', async () => {
    const { allocator } = harness;
    const [red1] = await waitForIngest(
      allocator,
      await allocator.ingest([
        { filename: 'first.png', data: await solidPng([220, 20, 30]), contentType: 'image/png' },
      ]),
    );
    const [red2] = await waitForIngest(
      allocator,
      await allocator.ingest([
        {
          filename: 'second.png',
          data: await solidPng([200, 10, 10], { noise: 6 }),
          contentType: 'image/png',
        },
      ]),
    );
    const [green] = await waitForIngest(
      allocator,
      await allocator.ingest([
        { filename: 'third.png', data: await solidPng([20, 200, 30]), contentType: 'image/png' },
      ]),
    );
    const body = await searchUntil(harness, '/api/v1/search?query=red&type=media&limit=100', (found) =>
      expect(idsOf(found)).toEqual(expect.arrayContaining([red1, red2])),
    );
    expect(idsOf(body)).not.toContain(green);
    for (const item of body.results.filter((result) => result.id === red1 || result.id === red2)) {
      expect(item.match_sources).toContain('tags');
      expect(item.tags).toContain('red');
      expect(item.created_at).toMatch(ISO);
      expect(item.thumbnail_url).toBe(`/api/v1/objects/${item.id}/thumbnail`);
    }

    const paragraph = 'Glaciers carve valleys slowly while meltwater feeds the rivers below. ';
    const markdown = `# Heading\n\n${paragraph.repeat(29)}`;
    const [document] = await waitForIngest(
      allocator,
      await allocator.ingest([{ filename: 'glaciers.md', data: markdown, contentType: 'text/markdown' }]),
    );
    const chunks = await searchUntil(harness, '/api/v1/search?query=meltwater&limit=100', (found) =>
      expect(found.total).toBeGreaterThanOrEqual(4),
    );
    for (const item of chunks.results) {
      expect(item.kind).toBe('document_chunk');
      expect(item.match_sources).toEqual(['text']);
      expect(item.content_url).toBe(`/api/v1/objects/${document}/content`);
      expect(item.metadata).toEqual({
        chunk_text: expect.stringContaining('meltwater'),
        chunk_index: expect.any(Number),
        chunk_parent_heading: 'Heading',
        chunk_page_number: null,
        source_asset_id: document,
      });
      expect((item.metadata.chunk_text as string).length).toBeLessThanOrEqual(512);
    }
    expect(
      ((await get(harness, '/api/v1/search?query=meltwater&type=media')).json() as SearchBody).total,
    ).toBe(0);
    expect(
      ((await get(harness, '/api/v1/search?query=meltwater&type=document')).json() as SearchBody).total,
    ).toBe(chunks.total);
  });

  it('ranks similar media by embedding, excluding the asset itself and exact duplicates', async () => {
    // their own model name: ingested images elsewhere in this file are not compared with them
    const embeddingModel = 'hand-made';
    const base = await insertAsset(harness, { embedding: vector({ 0: 1 }), embeddingModel });
    const near = await insertAsset(harness, { embedding: vector({ 0: 1, 1: 0.1 }), embeddingModel });
    const far = await insertAsset(harness, { embedding: vector({ 0: 0.2, 2: 1 }), embeddingModel });
    const opposite = await insertAsset(harness, { embedding: vector({ 0: -1 }), embeddingModel });
    const exact = await insertAsset(harness, {
      embedding: vector({ 0: 1 }),
      embeddingModel,
      duplicateType: 'exact',
      duplicateOf: base,
    });
    const queued = await insertAsset(harness, { status: 'queued' });
    const json = await insertAsset(harness, { kind: 'json', document: { a: 'b' } });

    const url = `/api/v1/objects/${base}/similar`;
    await searchUntil(harness, url, (body) => expect(idsOf(body)).toEqual([near, far]));
    const body = (await get(harness, url)).json() as SearchBody;
    // 1 − cosine distance / 2: cos = 1/√1.01 → 0.9975; cos = 0.2/√1.04 → 0.5981; the opposite scores 0 < 0.5
    expect(body.results.map((item) => [item.id, item.similarity_score, item.match_sources])).toEqual([
      [near, 0.9975, ['vector']],
      [far, 0.5981, ['vector']],
    ]);
    expect(body).toMatchObject({
      query: base,
      total: 2,
      filters_applied: {
        type: 'media',
        owner: null,
        cluster_id: null,
        tags: null,
        min_similarity: 0.5,
        limit: 10,
      },
    });
    const all = (
      await get(harness, `${url}?threshold=0&include_duplicates=true&limit=3`)
    ).json() as SearchBody;
    expect(idsOf(all)).toEqual([exact, near, far]);
    expect(all.results[0]?.similarity_score).toBe(1);
    const withOpposite = (await get(harness, `${url}?threshold=0&limit=100`)).json() as SearchBody;
    expect(idsOf(withOpposite).slice(0, 3)).toEqual([near, far, opposite]);
    expect(idsOf(withOpposite)).not.toContain(base);

    expect((await get(harness, `/api/v1/objects/${json}/similar`)).json()).toMatchObject({
      error: 'bad_request',
    });
    expect((await get(harness, `/api/v1/objects/${queued}/similar`)).statusCode).toBe(400);
    expect((await get(harness, `/api/v1/objects/${randomUUID()}/similar`)).json()).toMatchObject({
      error: 'not_found',
    });
    expect((await get(harness, '/api/v1/objects/not-a-uuid/similar')).json()).toMatchObject({
      error: 'invalid_id',
    });
    expect((await get(harness, `${url}?limit=0`)).statusCode).toBe(422);
  });

  it('counts searches in search_queries_total and search_latency_seconds', async () => {
    await get(harness, '/api/v1/search?query=anything');
    await get(harness, '/api/v1/search?query=a');
    const { registry } = harness.allocator.runtime.metrics;
    const queries = await registry.getSingleMetric('search_queries_total')?.get();
    const value = (type: string, status: string) =>
      queries?.values.find((entry) => entry.labels.search_type === type && entry.labels.status === status)
        ?.value ?? 0;
    expect(value('text', 'success')).toBeGreaterThan(0);
    expect(value('text', 'failure')).toBeGreaterThan(0);
    expect(value('similar', 'success')).toBeGreaterThan(0);
    const latency = await registry.getSingleMetric('search_latency_seconds')?.get();
    const count = latency?.values.find(
      (entry) =>
        (entry as { metricName?: string }).metricName === 'search_latency_seconds_count' &&
        entry.labels.search_type === 'text',
    );
    expect(count?.value).toBeGreaterThan(0);
  });
});

describe('search past SEARCH_TIMEOUT_SECONDS', () => {
  it('answers 503', async () => {
    const harness = await startSearchHarness({ SEARCH_TIMEOUT_SECONDS: '0.000001' });
    try {
      const response = await get(harness, '/api/v1/search?query=anything');
      expect(response.statusCode).toBe(503);
      expect(response.json()).toMatchObject({ error: 'service_unavailable' });
    } finally {
      await harness.close();
    }
  });
});

describe('search with a CLIP model', () => {
  let harness: SearchHarness;
  let modelRoot: string;

  beforeAll(async () => {
    modelRoot = await mkdtemp(join(tmpdir(), 'allocator-search-clip-'));
    const model = writeTinyClipModel(join(modelRoot, 'clip-tiny'));
    harness = await startSearchHarness({ EMBEDDING_MODEL: model.dir });
  });

  afterAll(async () => {
    await harness?.close();
    await rm(modelRoot, { recursive: true, force: true });
  });

  it('ranks media by the text tower and lists `vector` in match_sources', async () => {
    const { mediaEmbedder } = harness.allocator.runtime;
    expect(mediaEmbedder.status).toMatchObject({ model: 'clip-tiny', text_search: true });
    const textVector = await mediaEmbedder.embedText('red cat');
    expect(textVector).not.toBeNull();
    const matching = await insertAsset(harness, {
      embedding: textVector as Float32Array,
      embeddingModel: 'clip-tiny',
      metadata: { original_filename: 'IMG_0001.png' },
    });
    const opposite = await insertAsset(harness, {
      embedding: (textVector as Float32Array).map((value) => -value),
      embeddingModel: 'clip-tiny',
    });
    const lexical = await insertAsset(harness, {
      tags: ['cat'],
      embedding: vector({ 3: 1 }),
      embeddingModel: 'clip-tiny',
    });

    const body = await searchUntil(harness, '/api/v1/search?query=red%20cat', (found) =>
      expect(idsOf(found)).toContain(lexical),
    );
    expect(body.results[0]).toMatchObject({ id: matching, similarity_score: 1, match_sources: ['vector'] });
    expect(body.results.find((item) => item.id === lexical)?.match_sources[0]).toBe('tags');
    expect(idsOf(body)).not.toContain(opposite);
    const withZero = (
      await get(harness, '/api/v1/search?query=red%20cat&threshold=0&limit=100')
    ).json() as SearchBody;
    expect(withZero.results.find((item) => item.id === opposite)?.similarity_score).toBe(0);
  });
});
