import { randomUUID } from 'node:crypto';
import { access, mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { sql } from 'kysely';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parseVector, toVectorLiteral } from '../../src/domain/database.js';
import { solidPng, startTestAllocator, type TestAllocator } from '../harness.js';

const DIM = 512;
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

let allocator: TestAllocator;

/** A unit 512-d vector with the given weights on the given axes. */
function vector(weights: Record<number, number>): Float32Array {
  const values = new Float32Array(DIM);
  for (const [axis, weight] of Object.entries(weights)) values[Number(axis)] = weight;
  const norm = Math.hypot(...values);
  return values.map((value) => value / norm);
}

function at(second: number): Date {
  return new Date(Date.UTC(2026, 0, 1, 0, 0, second));
}

async function insertCluster(spec: {
  name: string;
  centroid?: Float32Array | null;
  threshold?: number;
  provisional?: boolean;
  createdAt?: Date;
}): Promise<string> {
  const id = randomUUID();
  await allocator.runtime.catalog
    .insertInto('cluster')
    .values({
      id,
      name: spec.name,
      centroid: spec.centroid === undefined || spec.centroid === null ? null : toVectorLiteral(spec.centroid),
      threshold: spec.threshold ?? 0.72,
      provisional: spec.provisional ?? true,
      metadata: JSON.stringify({ origin: 'test' }),
      created_at: spec.createdAt ?? new Date(),
      updated_at: spec.createdAt ?? new Date(),
    })
    .execute();
  return id;
}

/** A done media member with its file and thumbnail written under the storage root. */
async function insertMember(
  clusterId: string,
  spec: { embedding?: Float32Array | null; createdAt?: Date; kind?: 'media' | 'json' } = {},
): Promise<string> {
  const id = randomUUID();
  const file = `media/clusters/${clusterId}/${id}.png`;
  const thumbnail = `media/derived/${clusterId}/${id}/thumb.jpg`;
  for (const [path, content] of [
    [file, `png ${id}`],
    [thumbnail, `jpeg ${id}`],
  ] as const) {
    await mkdir(dirname(join(allocator.storageDir, path)), { recursive: true });
    await writeFile(join(allocator.storageDir, path), content);
  }
  await allocator.runtime.catalog
    .insertInto('asset')
    .values({
      id,
      kind: spec.kind ?? 'media',
      uri: `fs://${file}`,
      thumbnail_uri: `fs://${thumbnail}`,
      sha256: randomUUID(),
      content_type: 'image/png',
      size_bytes: 3,
      owner: null,
      comments: null,
      status: 'done',
      error_message: null,
      cluster_id: clusterId,
      schema_id: null,
      parent_asset_id: null,
      raw_asset_id: null,
      job_id: null,
      embedding:
        spec.embedding === undefined || spec.embedding === null ? null : toVectorLiteral(spec.embedding),
      embedding_model: 'builtin-visual-v1',
      perceptual_hash: '0000000000000000',
      duplicate_of: null,
      duplicate_type: null,
      storage_id: null,
      metadata: '{}',
      created_at: spec.createdAt ?? new Date(),
      updated_at: spec.createdAt ?? new Date(),
    })
    .execute();
  return id;
}

async function exists(relativePath: string): Promise<boolean> {
  return access(join(allocator.storageDir, relativePath)).then(
    () => true,
    () => false,
  );
}

async function asset(id: string) {
  return allocator.runtime.catalog
    .selectFrom('asset')
    .selectAll()
    .where('id', '=', id)
    .executeTakeFirstOrThrow();
}

async function lineage(stage: string) {
  return allocator.runtime.catalog
    .selectFrom('lineage')
    .selectAll()
    .where('stage', '=', stage)
    .orderBy('seq')
    .execute();
}

async function clusterIds(): Promise<string[]> {
  return (await allocator.runtime.catalog.selectFrom('cluster').select('id').execute()).map((row) => row.id);
}

function get(url: string) {
  return allocator.app.inject({ method: 'GET', url });
}

function post(url: string, payload: unknown) {
  return allocator.app.inject({ method: 'POST', url, payload: payload as Record<string, unknown> });
}

function patch(url: string, payload: unknown) {
  return allocator.app.inject({ method: 'PATCH', url, payload: payload as Record<string, unknown> });
}

/** The spec's error body with the given status and code. */
function expectError(response: Awaited<ReturnType<typeof get>>, status: number, code: string): void {
  expect(response.statusCode).toBe(status);
  expect(response.headers['content-type']).toMatch(/^application\/json/);
  const body = response.json();
  expect(body).toMatchObject({ error: code, detail: expect.any(String), request_id: expect.any(String) });
  expect(body.request_id).toBe(response.headers['x-request-id']);
}

beforeAll(async () => {
  allocator = await startTestAllocator();
});

afterAll(async () => {
  await allocator?.close();
});

beforeEach(async () => {
  await sql`delete from lineage; delete from asset; delete from cluster`.execute(allocator.runtime.catalog);
});

describe('GET /api/v1/admin/clusters', () => {
  it('lists clusters newest first with every asset counted, and filters', async () => {
    const older = await insertCluster({
      name: 'Older',
      provisional: false,
      createdAt: at(1),
      threshold: 0.8,
    });
    const newer = await insertCluster({ name: 'Newer', createdAt: at(2) });
    await insertMember(older, { embedding: vector({ 0: 1 }) });
    await insertMember(older, { embedding: null });
    const response = await get('/api/v1/admin/clusters');
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(response.json()).toEqual({
      clusters: [
        {
          id: newer,
          name: 'Newer',
          asset_count: 0,
          threshold: 0.72,
          provisional: true,
          metadata: { origin: 'test' },
          created_at: '2026-01-01T00:00:02.000Z',
          updated_at: '2026-01-01T00:00:02.000Z',
        },
        {
          id: older,
          name: 'Older',
          asset_count: 2,
          threshold: 0.8,
          provisional: false,
          metadata: { origin: 'test' },
          created_at: '2026-01-01T00:00:01.000Z',
          updated_at: '2026-01-01T00:00:01.000Z',
        },
      ],
      count: 2,
    });
    const provisional = (await get('/api/v1/admin/clusters?provisional_only=true')).json();
    expect(provisional.clusters.map((cluster: { id: string }) => cluster.id)).toEqual([newer]);
    const populated = (await get('/api/v1/admin/clusters?min_assets=1')).json();
    expect(populated).toMatchObject({ count: 1, clusters: [{ id: older }] });
  });

  it('answers 422 for malformed query parameters', async () => {
    expectError(await get('/api/v1/admin/clusters?min_assets=many'), 422, 'validation_error');
    expectError(await get('/api/v1/admin/clusters?min_assets=-1'), 422, 'validation_error');
    expectError(await get('/api/v1/admin/clusters?provisional_only=perhaps'), 422, 'validation_error');
  });
});

describe('GET /api/v1/admin/clusters/statistics', () => {
  it('counts clusters and all assets', async () => {
    const confirmed = await insertCluster({ name: 'A', provisional: false });
    const provisional = await insertCluster({ name: 'B' });
    await insertMember(confirmed);
    await insertMember(confirmed);
    await insertMember(confirmed);
    await insertMember(provisional);
    const loose = await insertMember(provisional);
    await allocator.runtime.catalog
      .updateTable('asset')
      .set({ cluster_id: null })
      .where('id', '=', loose)
      .execute();
    const response = await get('/api/v1/admin/clusters/statistics');
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({
      total_clusters: 2,
      provisional_clusters: 1,
      confirmed_clusters: 1,
      total_assets: 5,
      assets_in_clusters: 4,
      unclustered_assets: 1,
      avg_assets_per_cluster: 2,
    });
  });
});

describe('GET /api/v1/admin/clusters/merge-candidates', () => {
  it('lists pairs at or above the similarity threshold (default 0.85), descending, 4 decimals', async () => {
    const a = await insertCluster({ name: 'A', centroid: vector({ 0: 1 }), createdAt: at(1) });
    const b = await insertCluster({
      name: 'B',
      centroid: vector({ 0: 0.9, 1: Math.sqrt(0.19) }),
      createdAt: at(2),
    });
    const c = await insertCluster({ name: 'C', centroid: vector({ 0: 0.8, 1: 0.6 }), createdAt: at(3) });
    await insertCluster({ name: 'D', centroid: vector({ 2: 1 }), createdAt: at(4) });
    await insertCluster({ name: 'Empty', centroid: null, createdAt: at(5) });
    const bc = Math.round((0.9 * 0.8 + Math.sqrt(0.19) * 0.6) * 10_000) / 10_000;
    const response = await get('/api/v1/admin/clusters/merge-candidates');
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({
      candidates: [
        { cluster1: { id: b, name: 'B' }, cluster2: { id: c, name: 'C' }, similarity: bc },
        { cluster1: { id: a, name: 'A' }, cluster2: { id: b, name: 'B' }, similarity: 0.9 },
      ],
      count: 2,
    });
    const lower = (await get('/api/v1/admin/clusters/merge-candidates?similarity_threshold=0.8')).json();
    expect(lower.count).toBe(3);
    expect(lower.candidates[2]).toEqual({
      cluster1: { id: a, name: 'A' },
      cluster2: { id: c, name: 'C' },
      similarity: 0.8,
    });
    expectError(
      await get('/api/v1/admin/clusters/merge-candidates?similarity_threshold=high'),
      422,
      'validation_error',
    );
    expectError(
      await get('/api/v1/admin/clusters/merge-candidates?similarity_threshold=1.5'),
      422,
      'validation_error',
    );
  });
});

describe('GET /api/v1/admin/clusters/{id}', () => {
  it('returns the list object with centroid quality and the 12 newest member ids', async () => {
    const cluster = await insertCluster({ name: 'Reds', centroid: vector({ 0: 1 }), createdAt: at(1) });
    await insertMember(cluster, { embedding: vector({ 0: 1 }), createdAt: at(2) });
    await insertMember(cluster, { embedding: vector({ 0: 0.6, 1: 0.8 }), createdAt: at(3) });
    const newest: string[] = [];
    for (let i = 0; i < 12; i++)
      newest.unshift(await insertMember(cluster, { embedding: null, createdAt: at(10 + i) }));
    const response = await get(`/api/v1/admin/clusters/${cluster}`);
    expect(response.statusCode).toBe(200);
    const body = response.json();
    expect(body).toMatchObject({
      id: cluster,
      name: 'Reds',
      asset_count: 14,
      threshold: 0.72,
      provisional: true,
      metadata: { origin: 'test' },
      created_at: '2026-01-01T00:00:01.000Z',
      sample_asset_ids: newest,
    });
    expect(body.centroid_quality.mean).toBeCloseTo(0.8, 5);
    expect(body.centroid_quality.std).toBeCloseTo(0.2, 5);
    expect(body.centroid_quality.min).toBeCloseTo(0.6, 5);
    expect(body.centroid_quality.max).toBeCloseTo(1, 5);
    const empty = await insertCluster({ name: 'Empty' });
    expect((await get(`/api/v1/admin/clusters/${empty}`)).json()).toMatchObject({
      asset_count: 0,
      centroid_quality: null,
      sample_asset_ids: [],
    });
  });

  it('answers 400 invalid_id and 404 not_found', async () => {
    expectError(await get('/api/v1/admin/clusters/not-a-uuid'), 400, 'invalid_id');
    expectError(await get(`/api/v1/admin/clusters/${randomUUID()}`), 404, 'not_found');
  });
});

describe('POST /api/v1/admin/clusters/{id}/rename', () => {
  it('renames (trimmed), refuses a taken name with 409 and bad names with 422, records admin lineage', async () => {
    const cluster = await insertCluster({ name: 'Cluster 1234abcd' });
    await insertCluster({ name: 'Sunsets' });
    const response = await post(`/api/v1/admin/clusters/${cluster}/rename`, {
      new_name: '  Beaches ',
      performed_by: 'ann',
    });
    expect(response.statusCode).toBe(200);
    const body = response.json();
    expect(body).toMatchObject({ status: 'renamed', message: "Cluster renamed to 'Beaches'" });
    expect(body.cluster).toMatchObject({ id: cluster, name: 'Beaches', asset_count: 0 });
    expect(body.cluster.updated_at).toMatch(ISO);
    const conflict = await post(`/api/v1/admin/clusters/${cluster}/rename`, {
      new_name: 'Sunsets',
      performed_by: 'ann',
    });
    expectError(conflict, 409, 'conflict');
    for (const newName of ['', '   ', 'x'.repeat(256), 42])
      expectError(
        await post(`/api/v1/admin/clusters/${cluster}/rename`, { new_name: newName, performed_by: 'ann' }),
        422,
        'validation_error',
      );
    expect(
      (
        await post(`/api/v1/admin/clusters/${cluster}/rename`, {
          new_name: 'y'.repeat(255),
          performed_by: 'ann',
        })
      ).statusCode,
    ).toBe(200);
    expectError(
      await post(`/api/v1/admin/clusters/${cluster}/rename`, { new_name: 'Beaches' }),
      422,
      'validation_error',
    );
    expectError(
      await post(`/api/v1/admin/clusters/${randomUUID()}/rename`, { new_name: 'X', performed_by: 'ann' }),
      404,
      'not_found',
    );
    expectError(
      await post('/api/v1/admin/clusters/nope/rename', { new_name: 'X', performed_by: 'ann' }),
      400,
      'invalid_id',
    );
    const entries = await lineage('admin_cluster_renamed');
    expect(entries).toHaveLength(2);
    expect(entries[0]).toMatchObject({
      asset_id: null,
      schema_id: null,
      request_id: response.headers['x-request-id'],
    });
    expect(entries[0]?.detail).toMatchObject({
      cluster_id: cluster,
      performed_by: 'ann',
      old_name: 'Cluster 1234abcd',
      new_name: 'Beaches',
    });
  });
});

describe('POST /api/v1/admin/clusters/{id}/confirm', () => {
  it('confirms a provisional cluster once; again → 409', async () => {
    const cluster = await insertCluster({ name: 'Greens' });
    const response = await post(`/api/v1/admin/clusters/${cluster}/confirm`, { performed_by: 'bob' });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toMatchObject({
      status: 'confirmed',
      cluster: { id: cluster, provisional: false },
      message: "Cluster 'Greens' confirmed",
    });
    expectError(
      await post(`/api/v1/admin/clusters/${cluster}/confirm`, { performed_by: 'bob' }),
      409,
      'conflict',
    );
    expectError(await post(`/api/v1/admin/clusters/${cluster}/confirm`, {}), 422, 'validation_error');
    expectError(
      await post(`/api/v1/admin/clusters/${randomUUID()}/confirm`, { performed_by: 'bob' }),
      404,
      'not_found',
    );
    const entries = await lineage('admin_cluster_confirmed');
    expect(entries).toHaveLength(1);
    expect(entries[0]?.detail).toMatchObject({ cluster_id: cluster, performed_by: 'bob' });
  });
});

describe('POST /api/v1/admin/clusters/{id}/threshold', () => {
  it('updates the threshold; outside [0,1] → 400; malformed → 422', async () => {
    const cluster = await insertCluster({ name: 'T', centroid: vector({ 0: 1 }), threshold: 0.5 });
    const member = await insertMember(cluster, { embedding: vector({ 0: 0.6, 1: 0.8 }) });
    for (const threshold of [2, -0.1, 1.0001])
      expectError(
        await post(`/api/v1/admin/clusters/${cluster}/threshold`, { threshold, performed_by: 'c' }),
        400,
        'bad_request',
      );
    expectError(
      await post(`/api/v1/admin/clusters/${cluster}/threshold`, { performed_by: 'c' }),
      422,
      'validation_error',
    );
    expectError(
      await post(`/api/v1/admin/clusters/${cluster}/threshold`, { threshold: 'high', performed_by: 'c' }),
      422,
      'validation_error',
    );
    expectError(
      await post(`/api/v1/admin/clusters/${cluster}/threshold`, { threshold: 0.9 }),
      422,
      'validation_error',
    );
    const response = await post(`/api/v1/admin/clusters/${cluster}/threshold`, {
      threshold: 0.9,
      performed_by: 'c',
    });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toMatchObject({
      status: 'updated',
      cluster: { id: cluster, threshold: 0.9 },
      reassigned_assets: 0,
      message: 'Threshold updated to 0.9',
    });
    // Without re_evaluate the member below the new threshold stays.
    expect(await asset(member)).toMatchObject({ cluster_id: cluster });
    expect((await lineage('admin_cluster_threshold_updated'))[0]?.detail).toMatchObject({
      cluster_id: cluster,
      performed_by: 'c',
      old_threshold: 0.5,
      new_threshold: 0.9,
      re_evaluate: false,
    });
    expectError(
      await post(`/api/v1/admin/clusters/${randomUUID()}/threshold`, { threshold: 0.5, performed_by: 'c' }),
      404,
      'not_found',
    );
  });

  it('re_evaluate: a member below the raised threshold is reassigned to another cluster and its files move (acceptance 35)', async () => {
    const cluster = await insertCluster({
      name: 'Mixed',
      centroid: vector({ 0: 1 }),
      threshold: 0.5,
      createdAt: at(1),
    });
    const blues = await insertCluster({
      name: 'Blues',
      centroid: vector({ 2: 1 }),
      threshold: 0.72,
      createdAt: at(2),
    });
    await insertMember(blues, { embedding: vector({ 2: 1 }) });
    const stays = await insertMember(cluster, {
      embedding: vector({ 0: 0.99, 1: Math.sqrt(1 - 0.99 ** 2) }),
    });
    const leaves = await insertMember(cluster, { embedding: vector({ 0: 0.6, 2: 0.8 }) });
    const response = await post(`/api/v1/admin/clusters/${cluster}/threshold`, {
      threshold: 0.9,
      performed_by: 'dana',
      re_evaluate: true,
    });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toMatchObject({
      status: 'updated',
      reassigned_assets: 1,
      cluster: { id: cluster, threshold: 0.9, asset_count: 1 },
    });
    expect(await asset(stays)).toMatchObject({ cluster_id: cluster });
    expect(await asset(leaves)).toMatchObject({
      cluster_id: blues,
      uri: `fs://media/clusters/${blues}/${leaves}.png`,
      thumbnail_uri: `fs://media/derived/${blues}/${leaves}/thumb.jpg`,
    });
    expect(await readFile(join(allocator.storageDir, `media/clusters/${blues}/${leaves}.png`), 'utf8')).toBe(
      `png ${leaves}`,
    );
    expect(await exists(`media/derived/${blues}/${leaves}/thumb.jpg`)).toBe(true);
    expect(await exists(`media/clusters/${cluster}/${leaves}.png`)).toBe(false);
    expect(await exists(`media/derived/${cluster}/${leaves}`)).toBe(false);
    const reassigned = await lineage('cluster_reassigned');
    expect(reassigned).toHaveLength(1);
    expect(reassigned[0]).toMatchObject({ asset_id: leaves });
    expect(reassigned[0]?.detail).toMatchObject({
      from_cluster_id: cluster,
      to_cluster_id: blues,
      performed_by: 'dana',
    });
    // The centroid is recomputed from the remaining member.
    const centroid = await allocator.runtime.catalog
      .selectFrom('cluster')
      .select(sql<string>`centroid::text`.as('centroid'))
      .where('id', '=', cluster)
      .executeTakeFirstOrThrow();
    expect(parseVector(centroid.centroid)?.[1]).toBeCloseTo(Math.sqrt(1 - 0.99 ** 2), 5);
  });

  it('re_evaluate creates a new provisional cluster when no other cluster takes the member', async () => {
    const cluster = await insertCluster({ name: 'Solo', centroid: vector({ 0: 1 }), threshold: 0.5 });
    const leaves = await insertMember(cluster, { embedding: vector({ 0: 0.6, 3: 0.8 }) });
    const response = await post(`/api/v1/admin/clusters/${cluster}/threshold`, {
      threshold: 0.95,
      performed_by: 'dana',
      re_evaluate: true,
    });
    expect(response.json()).toMatchObject({
      reassigned_assets: 1,
      cluster: { asset_count: 0, centroid_quality: null },
    });
    const moved = await asset(leaves);
    expect(moved.cluster_id).not.toBe(cluster);
    const created = (await get(`/api/v1/admin/clusters/${moved.cluster_id}`)).json();
    expect(created).toMatchObject({ provisional: true, threshold: 0.72, asset_count: 1 });
    expect(created.name).toBe(`Cluster ${String(moved.cluster_id).slice(0, 8)}`);
    expect(await exists(`media/clusters/${moved.cluster_id}/${leaves}.png`)).toBe(true);
  });
});

describe('POST /api/v1/admin/clusters/{id}/merge', () => {
  it('moves members, files and thumbnails into the target, recomputes its centroid and deletes the sources', async () => {
    const target = await insertCluster({ name: 'Target', centroid: vector({ 0: 1 }) });
    const source = await insertCluster({ name: 'Source', centroid: vector({ 1: 1 }) });
    const other = await insertCluster({ name: 'Other', centroid: vector({ 2: 1 }) });
    await insertMember(target, { embedding: vector({ 0: 1 }) });
    const a = await insertMember(source, { embedding: vector({ 1: 1 }) });
    const b = await insertMember(other, { embedding: vector({ 2: 1 }) });
    const response = await post(`/api/v1/admin/clusters/${target}/merge`, {
      source_cluster_ids: [source, other],
      performed_by: 'eve',
    });
    expect(response.statusCode).toBe(200);
    const body = response.json();
    expect(body).toMatchObject({
      status: 'merged',
      assets_moved: 2,
      cluster: { id: target, asset_count: 3 },
    });
    expect(body.message).toEqual(expect.any(String));
    expect(await clusterIds()).toEqual([target]);
    expectError(await get(`/api/v1/admin/clusters/${source}`), 404, 'not_found');
    for (const id of [a, b]) {
      expect(await asset(id)).toMatchObject({
        cluster_id: target,
        uri: `fs://media/clusters/${target}/${id}.png`,
        thumbnail_uri: `fs://media/derived/${target}/${id}/thumb.jpg`,
      });
      expect(await readFile(join(allocator.storageDir, `media/clusters/${target}/${id}.png`), 'utf8')).toBe(
        `png ${id}`,
      );
      expect(await exists(`media/derived/${target}/${id}/thumb.jpg`)).toBe(true);
    }
    expect(await exists(`media/clusters/${source}`)).toBe(false);
    expect(await exists(`media/derived/${other}`)).toBe(false);
    const centroid = await allocator.runtime.catalog
      .selectFrom('cluster')
      .select(sql<string>`centroid::text`.as('centroid'))
      .where('id', '=', target)
      .executeTakeFirstOrThrow();
    const values = parseVector(centroid.centroid) as Float32Array;
    for (const axis of [0, 1, 2]) expect(values[axis]).toBeCloseTo(1 / Math.sqrt(3), 5);
    const merged = await lineage('cluster_merged');
    expect(merged.map((entry) => entry.asset_id).sort()).toEqual([a, b].sort());
    expect((await lineage('admin_clusters_merged'))[0]?.detail).toMatchObject({
      cluster_id: target,
      performed_by: 'eve',
      assets_moved: 2,
    });
  });

  it('merge into itself → 400, empty list → 422, unknown target or source → 404 with nothing changed', async () => {
    const target = await insertCluster({ name: 'Target' });
    const source = await insertCluster({ name: 'Source' });
    const member = await insertMember(source, { embedding: vector({ 1: 1 }) });
    const url = `/api/v1/admin/clusters/${target}/merge`;
    expectError(await post(url, { source_cluster_ids: [target], performed_by: 'x' }), 400, 'bad_request');
    expectError(
      await post(url, { source_cluster_ids: [source, target], performed_by: 'x' }),
      400,
      'bad_request',
    );
    expectError(await post(url, { source_cluster_ids: [], performed_by: 'x' }), 422, 'validation_error');
    expectError(
      await post(url, { source_cluster_ids: ['nope'], performed_by: 'x' }),
      422,
      'validation_error',
    );
    expectError(await post(url, { performed_by: 'x' }), 422, 'validation_error');
    expectError(await post(url, { source_cluster_ids: [source] }), 422, 'validation_error');
    expectError(
      await post(url, { source_cluster_ids: [source, randomUUID()], performed_by: 'x' }),
      404,
      'not_found',
    );
    expectError(
      await post(`/api/v1/admin/clusters/${randomUUID()}/merge`, {
        source_cluster_ids: [source],
        performed_by: 'x',
      }),
      404,
      'not_found',
    );
    expect((await clusterIds()).sort()).toEqual([target, source].sort());
    expect(await asset(member)).toMatchObject({
      cluster_id: source,
      uri: `fs://media/clusters/${source}/${member}.png`,
    });
    expect(await exists(`media/clusters/${source}/${member}.png`)).toBe(true);
    expect(await lineage('cluster_merged')).toHaveLength(0);
  });
});

describe('the original API: /api/v1/clusters', () => {
  it('lists with status provisional|active; an invalid status → 400', async () => {
    const active = await insertCluster({ name: 'Active', provisional: false, createdAt: at(1) });
    const provisional = await insertCluster({ name: 'Provisional', createdAt: at(2), threshold: 0.6 });
    await insertMember(provisional);
    const response = await get('/api/v1/clusters');
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({
      clusters: [
        {
          id: provisional,
          name: 'Provisional',
          asset_count: 1,
          status: 'provisional',
          threshold: 0.6,
          created_at: '2026-01-01T00:00:02.000Z',
        },
        {
          id: active,
          name: 'Active',
          asset_count: 0,
          status: 'active',
          threshold: 0.72,
          created_at: '2026-01-01T00:00:01.000Z',
        },
      ],
      count: 2,
    });
    expect((await get('/api/v1/clusters?status=active')).json()).toMatchObject({
      count: 1,
      clusters: [{ id: active }],
    });
    expect((await get('/api/v1/clusters?status=provisional')).json()).toMatchObject({
      count: 1,
      clusters: [{ id: provisional }],
    });
    expectError(await get('/api/v1/clusters?status=rejected'), 400, 'bad_request');
  });

  it('shows a cluster with its newest assets', async () => {
    const cluster = await insertCluster({ name: 'View', provisional: false });
    const first = await insertMember(cluster, { createdAt: at(1) });
    const second = await insertMember(cluster, { createdAt: at(2) });
    const response = await get(`/api/v1/clusters/${cluster}`);
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({
      id: cluster,
      name: 'View',
      status: 'active',
      threshold: 0.72,
      asset_count: 2,
      assets: [
        {
          id: second,
          uri: `fs://media/clusters/${cluster}/${second}.png`,
          content_type: 'image/png',
          created_at: '2026-01-01T00:00:02.000Z',
        },
        {
          id: first,
          uri: `fs://media/clusters/${cluster}/${first}.png`,
          content_type: 'image/png',
          created_at: '2026-01-01T00:00:01.000Z',
        },
      ],
    });
    expectError(await get('/api/v1/clusters/zzz'), 400, 'invalid_id');
    expectError(await get(`/api/v1/clusters/${randomUUID()}`), 404, 'not_found');
  });

  it('PATCH runs rename, merge, update_threshold and confirm with the admin errors', async () => {
    const cluster = await insertCluster({ name: 'Patched', centroid: vector({ 0: 1 }) });
    const source = await insertCluster({ name: 'Merged away', centroid: vector({ 1: 1 }) });
    await insertCluster({ name: 'Taken' });
    const member = await insertMember(source, { embedding: vector({ 1: 1 }) });
    const url = `/api/v1/clusters/${cluster}`;

    const renamed = await patch(url, { action: 'rename', name: 'Renamed' });
    expect(renamed.statusCode).toBe(200);
    const renamedBody = renamed.json();
    expect(renamedBody).toMatchObject({ cluster_id: cluster, action: 'rename', status: 'success' });
    expect(renamedBody.updated_at).toMatch(ISO);
    expect((await get(url)).json()).toMatchObject({ name: 'Renamed' });
    expectError(await patch(url, { action: 'rename', name: 'Taken' }), 409, 'conflict');
    expectError(await patch(url, { action: 'rename' }), 422, 'validation_error');

    const merged = await patch(url, { action: 'merge', source_cluster_ids: [source] });
    expect(merged.json()).toMatchObject({ cluster_id: cluster, action: 'merge', status: 'success' });
    expect(await asset(member)).toMatchObject({
      cluster_id: cluster,
      uri: `fs://media/clusters/${cluster}/${member}.png`,
    });
    expect(await exists(`media/clusters/${cluster}/${member}.png`)).toBe(true);
    expectError(await patch(url, { action: 'merge', source_cluster_ids: [cluster] }), 400, 'bad_request');
    expectError(await patch(url, { action: 'merge', source_cluster_ids: [] }), 422, 'validation_error');

    const updated = await patch(url, { action: 'update_threshold', threshold: 0.8 });
    expect(updated.json()).toMatchObject({ action: 'update_threshold', status: 'success' });
    expect((await get(url)).json()).toMatchObject({ threshold: 0.8 });
    expectError(await patch(url, { action: 'update_threshold', threshold: 2 }), 400, 'bad_request');

    const confirmed = await patch(url, { action: 'confirm' });
    expect(confirmed.json()).toMatchObject({ action: 'confirm', status: 'success' });
    expect((await get(url)).json()).toMatchObject({ status: 'active' });
    expectError(await patch(url, { action: 'confirm' }), 409, 'conflict');

    expectError(await patch(url, { action: 'explode' }), 400, 'bad_request');
    expectError(await patch(url, {}), 422, 'validation_error');
    expectError(await patch(`/api/v1/clusters/${randomUUID()}`, { action: 'confirm' }), 404, 'not_found');
    expectError(await patch('/api/v1/clusters/bad', { action: 'confirm' }), 400, 'invalid_id');
    const admin = await allocator.runtime.catalog
      .selectFrom('lineage')
      .select(['stage', 'detail'])
      .where('stage', 'like', 'admin_%')
      .orderBy('seq')
      .execute();
    expect(admin.map((entry) => entry.stage)).toEqual([
      'admin_cluster_renamed',
      'admin_clusters_merged',
      'admin_cluster_threshold_updated',
      'admin_cluster_confirmed',
    ]);
    for (const entry of admin)
      expect(entry.detail).toMatchObject({ cluster_id: cluster, performed_by: 'api' });
  });
});

describe('ingested images (acceptance 11, 12, 34)', () => {
  async function ingestOne(png: Buffer, filename: string): Promise<string> {
    const response = await allocator.ingest([{ filename, data: png, contentType: 'image/png' }]);
    expect(response.statusCode).toBe(202);
    const { job_id: jobId, system_ids: ids } = response.json();
    const status = await allocator.waitForJob(jobId);
    expect(status.status).toBe('done');
    return ids[0];
  }

  it('groups noisy greens together, separates magenta, and administers the clusters with files moving', async () => {
    const greens = [];
    for (let seed = 1; seed <= 3; seed++)
      greens.push(await ingestOne(await solidPng([40, 180, 60], { noise: 6, seed }), `green-${seed}.png`));
    const magenta = await ingestOne(await solidPng([200, 30, 200]), 'magenta.png');
    const greenRows = await Promise.all(greens.map(asset));
    const greenCluster = greenRows[0]?.cluster_id as string;
    expect(greenCluster).toMatch(UUID);
    for (const row of greenRows) expect(row.cluster_id).toBe(greenCluster);
    const magentaRow = await asset(magenta);
    expect(magentaRow.cluster_id).not.toBe(greenCluster);
    const magentaCluster = magentaRow.cluster_id as string;

    // Acceptance 34: rename, rename conflict, confirm twice, threshold 2, merge into itself, merge.
    const magentaName = (await get(`/api/v1/admin/clusters/${magentaCluster}`)).json().name;
    expect(
      (
        await post(`/api/v1/admin/clusters/${greenCluster}/rename`, {
          new_name: 'Greens',
          performed_by: 'qa',
        })
      ).statusCode,
    ).toBe(200);
    expectError(
      await post(`/api/v1/admin/clusters/${greenCluster}/rename`, {
        new_name: magentaName,
        performed_by: 'qa',
      }),
      409,
      'conflict',
    );
    expect(
      (await post(`/api/v1/admin/clusters/${greenCluster}/confirm`, { performed_by: 'qa' })).statusCode,
    ).toBe(200);
    expectError(
      await post(`/api/v1/admin/clusters/${greenCluster}/confirm`, { performed_by: 'qa' }),
      409,
      'conflict',
    );
    expectError(
      await post(`/api/v1/admin/clusters/${greenCluster}/threshold`, { threshold: 2, performed_by: 'qa' }),
      400,
      'bad_request',
    );
    expectError(
      await post(`/api/v1/admin/clusters/${greenCluster}/merge`, {
        source_cluster_ids: [greenCluster],
        performed_by: 'qa',
      }),
      400,
      'bad_request',
    );
    const original = await readFile(allocator.runtime.storage.resolve(magentaRow.uri as string));
    const merged = await post(`/api/v1/admin/clusters/${greenCluster}/merge`, {
      source_cluster_ids: [magentaCluster],
      performed_by: 'qa',
    });
    expect(merged.json()).toMatchObject({
      status: 'merged',
      assets_moved: 1,
      cluster: { name: 'Greens', asset_count: 4 },
    });
    const movedRow = await asset(magenta);
    expect(movedRow.uri).toBe(`fs://media/clusters/${greenCluster}/${magenta}.png`);
    expect(movedRow.thumbnail_uri).toBe(`fs://media/derived/${greenCluster}/${magenta}/thumb.jpg`);
    expect(await readFile(allocator.runtime.storage.resolve(movedRow.uri as string))).toEqual(original);
    expect(await exists(`media/derived/${greenCluster}/${magenta}/thumb.jpg`)).toBe(true);
    expect(await exists(`media/clusters/${magentaCluster}`)).toBe(false);
    expect(await exists(`media/derived/${magentaCluster}`)).toBe(false);
  });
});
