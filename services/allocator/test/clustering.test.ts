import { randomUUID } from 'node:crypto';
import { access, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Database } from '@quintet/kernel/db';
import { createLogger } from '@quintet/kernel/log';
import { sql } from 'kysely';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  ClusterConflictError,
  ClusterNotFoundError,
  ClusterRequestError,
  clusterStatistics,
  confirmCluster,
  getClusterDetail,
  listClusters,
  mergeCandidates,
  mergeClusters,
  renameCluster,
  updateClusterThreshold,
} from '../src/domain/cluster-admin.js';
import {
  addToCentroid,
  assignCluster,
  ClusterCentroids,
  countCentroidMembers,
  type FileMove,
  findDuplicate,
  moveAssetFiles,
  PerceptualHashes,
  recomputeCentroid,
  undoFileMoves,
} from '../src/domain/clustering.js';
import {
  type CatalogDatabase,
  migrateCatalog,
  openCatalog,
  parseVector,
  toVectorLiteral,
} from '../src/domain/database.js';
import { createAllocatorMetrics } from '../src/domain/metrics.js';
import { FileStorage } from '../src/domain/storage.js';
import type { AllocatorRuntime } from '../src/runtime.js';

const DIM = 4;
const RULES = { hammingThreshold: 5, minSimilarity: 0.9 };
const ZERO_HASH = '0000000000000000';

let database: Database<CatalogDatabase>;
let storageDir: string;
let changed: string[][];
let runtime: AllocatorRuntime;
// One of each cache for the whole file, as a server keeps them: every test's truncate is a deletion they must
// notice (the centroids by their count, the hashes through findDuplicate's check of the candidates).
const centroids = new ClusterCentroids();
const hashes = new PerceptualHashes();

/** A unit vector in the plane of the first two axes with cosine `c` to [1,0,0,0]. */
function atCosine(c: number): Float32Array {
  return Float32Array.from([c, Math.sqrt(1 - c * c), 0, 0]);
}

function unit(...values: number[]): Float32Array {
  const norm = Math.hypot(...values);
  return Float32Array.from(values, (value) => value / norm);
}

/** A pHash `distance` bits away from the all-zero hash. */
function hashAt(distance: number): string {
  return (distance === 0 ? 0n : (1n << BigInt(distance)) - 1n).toString(16).padStart(16, '0');
}

function at(second: number): Date {
  return new Date(Date.UTC(2026, 0, 1, 0, 0, second));
}

interface AssetSpec {
  id?: string;
  sha?: string;
  kind?: 'media' | 'json' | 'document';
  status?: 'queued' | 'processing' | 'done' | 'failed' | 'pending_review';
  hash?: string | null;
  embedding?: Float32Array | null;
  duplicateType?: 'exact' | 'near' | null;
  duplicateOf?: string | null;
  clusterId?: string | null;
  createdAt?: Date;
  uri?: string | null;
  thumbnailUri?: string | null;
  metadata?: Record<string, unknown>;
}

async function insertAsset(spec: AssetSpec = {}): Promise<string> {
  const id = spec.id ?? randomUUID();
  await database.kysely
    .insertInto('asset')
    .values({
      id,
      kind: spec.kind ?? 'media',
      uri: spec.uri ?? null,
      thumbnail_uri: spec.thumbnailUri ?? null,
      sha256: spec.sha ?? randomUUID(),
      content_type: 'image/png',
      size_bytes: 10,
      owner: null,
      comments: null,
      status: spec.status ?? 'done',
      error_message: null,
      cluster_id: spec.clusterId ?? null,
      schema_id: null,
      parent_asset_id: null,
      raw_asset_id: null,
      job_id: null,
      embedding:
        spec.embedding === undefined || spec.embedding === null ? null : toVectorLiteral(spec.embedding),
      embedding_model: null,
      perceptual_hash: spec.hash === undefined ? ZERO_HASH : spec.hash,
      duplicate_of: spec.duplicateOf ?? null,
      duplicate_type: spec.duplicateType ?? null,
      storage_id: null,
      metadata: JSON.stringify(spec.metadata ?? {}),
      created_at: spec.createdAt ?? new Date(),
      // Every writer of `asset` stamps updated_at with clock_timestamp(): the in-memory hashes rely on it.
      updated_at: sql<Date>`clock_timestamp()`,
    })
    .execute();
  return id;
}

interface ClusterSpec {
  id?: string;
  name?: string;
  centroid?: Float32Array | null;
  threshold?: number;
  provisional?: boolean;
  createdAt?: Date;
}

async function insertCluster(spec: ClusterSpec = {}): Promise<string> {
  const id = spec.id ?? randomUUID();
  await database.kysely
    .insertInto('cluster')
    .values({
      id,
      name: spec.name ?? `cluster-${id}`,
      centroid: spec.centroid === undefined || spec.centroid === null ? null : toVectorLiteral(spec.centroid),
      threshold: spec.threshold ?? 0.72,
      provisional: spec.provisional ?? true,
      metadata: '{}',
      created_at: spec.createdAt ?? new Date(),
      // Every writer of `cluster` stamps updated_at with clock_timestamp(): the centroid cache relies on it.
      updated_at: sql<Date>`clock_timestamp()`,
    })
    .execute();
  return id;
}

async function centroidOf(clusterId: string): Promise<number[] | null> {
  const row = await database.kysely
    .selectFrom('cluster')
    .select(sql<string | null>`centroid::text`.as('centroid'))
    .where('id', '=', clusterId)
    .executeTakeFirstOrThrow();
  const vector = parseVector(row.centroid);
  return vector === null ? null : Array.from(vector);
}

async function assetRow(id: string) {
  return database.kysely.selectFrom('asset').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/** A stored member: its file under media/clusters/{cluster}/ and its thumbnail under media/derived/. */
async function storedMember(clusterId: string, spec: AssetSpec = {}): Promise<string> {
  const id = spec.id ?? randomUUID();
  const file = `media/clusters/${clusterId}/${id}.png`;
  const thumbnail = `media/derived/${clusterId}/${id}/thumb.jpg`;
  for (const [path, content] of [
    [file, `file ${id}`],
    [thumbnail, `thumb ${id}`],
  ] as const) {
    await mkdir(dirname(join(storageDir, path)), { recursive: true });
    await writeFile(join(storageDir, path), content);
  }
  return insertAsset({ ...spec, id, clusterId, uri: `fs://${file}`, thumbnailUri: `fs://${thumbnail}` });
}

function closeTo(actual: readonly number[] | null, expected: readonly number[]): void {
  expect(actual).not.toBeNull();
  expect(actual).toHaveLength(expected.length);
  expected.forEach((value, index) => {
    expect((actual as number[])[index]).toBeCloseTo(value, 5);
  });
}

beforeAll(async () => {
  database = await openCatalog({
    databaseUrl: undefined,
    pgliteDir: undefined,
    poolSize: 1,
    embeddingDim: DIM,
  });
  await migrateCatalog(database, DIM);
  storageDir = await mkdtemp(join(tmpdir(), 'clustering-test-'));
  const storage = new FileStorage(storageDir);
  let tail: Promise<unknown> = Promise.resolve();
  runtime = {
    config: { clusterThreshold: 0.72 },
    logger: createLogger({ name: 'test', level: 'silent' }),
    database,
    catalog: database.kysely,
    storage,
    metrics: createAllocatorMetrics(),
    clusterCentroids: centroids,
    perceptualHashes: hashes,
    clusterLock: <T>(work: () => Promise<T>): Promise<T> => {
      const run = tail.then(work, work);
      tail = run.catch(() => {});
      return run;
    },
    changes: {
      assetsChanged: (ids: readonly string[]) => changed.push([...ids]),
      assetsDeleted: () => {},
      onChange: () => () => {},
    },
  } as unknown as AllocatorRuntime;
});

afterAll(async () => {
  await database?.close();
  if (storageDir !== undefined) await rm(storageDir, { recursive: true, force: true });
});

beforeEach(async () => {
  await sql`truncate asset, cluster, lineage cascade`.execute(database.kysely);
  await rm(join(storageDir, 'media'), { recursive: true, force: true });
  changed = [];
});

describe('findDuplicate', () => {
  const probe = (overrides: Partial<Parameters<typeof findDuplicate>[1]> = {}) => ({
    sha256: 'probe-sha',
    perceptualHash: ZERO_HASH,
    embedding: atCosine(1),
    excludeAssetId: randomUUID(),
    ...overrides,
  });

  it('finds an exact duplicate by sha256 with distance 0, ignoring assets that are not done media', async () => {
    await insertAsset({ sha: 'same', status: 'processing', createdAt: at(1) });
    await insertAsset({ sha: 'same', status: 'failed', createdAt: at(2) });
    await insertAsset({ sha: 'same', kind: 'document', createdAt: at(3) });
    expect(await findDuplicate(database.kysely, probe({ sha256: 'same' }), RULES, hashes)).toBeNull();
    const original = await insertAsset({ sha: 'same', createdAt: at(4), embedding: atCosine(0) });
    expect(await findDuplicate(database.kysely, probe({ sha256: 'same' }), RULES, hashes)).toEqual({
      type: 'exact',
      assetId: original,
      distance: 0,
    });
  });

  it('resolves an exact duplicate of an exact duplicate to the original', async () => {
    const original = await insertAsset({ sha: 'same', createdAt: at(2) });
    // An exact duplicate created earlier than its original (clock skew) must still not be chosen.
    await insertAsset({ sha: 'same', createdAt: at(1), duplicateType: 'exact', duplicateOf: original });
    await insertAsset({ sha: 'same', createdAt: at(3), duplicateType: 'exact', duplicateOf: original });
    const match = await findDuplicate(database.kysely, probe({ sha256: 'same' }), RULES, hashes);
    expect(match).toEqual({ type: 'exact', assetId: original, distance: 0 });
  });

  it('never matches the probed asset itself', async () => {
    const self = await insertAsset({ sha: 'same', embedding: atCosine(1) });
    expect(
      await findDuplicate(database.kysely, probe({ sha256: 'same', excludeAssetId: self }), RULES, hashes),
    ).toBeNull();
  });

  it('requires BOTH a pHash distance below the threshold and cosine ≥ the minimum similarity', async () => {
    // Same layout (distance 0) but another colour: not a duplicate.
    await insertAsset({ hash: hashAt(0), embedding: atCosine(0.5), createdAt: at(1) });
    // Same colours but the pHash distance equals the threshold (must be strictly below).
    await insertAsset({ hash: hashAt(5), embedding: atCosine(1), createdAt: at(2) });
    // Cosine just below 0.9.
    await insertAsset({ hash: hashAt(1), embedding: atCosine(0.899), createdAt: at(3) });
    expect(await findDuplicate(database.kysely, probe(), RULES, hashes)).toBeNull();
    const near = await insertAsset({ hash: hashAt(3), embedding: atCosine(0.95), createdAt: at(4) });
    expect(await findDuplicate(database.kysely, probe(), RULES, hashes)).toEqual({
      type: 'near',
      assetId: near,
      distance: 3,
    });
  });

  it('picks the smallest distance, then the earliest created, among qualifying assets', async () => {
    await insertAsset({ hash: hashAt(4), embedding: atCosine(1), createdAt: at(1) });
    const laterTwin = await insertAsset({ hash: hashAt(2), embedding: atCosine(0.92), createdAt: at(5) });
    const earlierTwin = await insertAsset({
      hash: 'c000000000000000',
      embedding: atCosine(0.93),
      createdAt: at(3),
    });
    const match = await findDuplicate(database.kysely, probe(), RULES, hashes);
    expect(match).toEqual({ type: 'near', assetId: earlierTwin, distance: 2 });
    expect(match?.assetId).not.toBe(laterTwin);
  });

  it('does not offer exact duplicates or unfinished assets as near-duplicate originals', async () => {
    const original = await insertAsset({ hash: hashAt(0), embedding: atCosine(1), status: 'queued' });
    await insertAsset({
      hash: hashAt(0),
      embedding: atCosine(1),
      duplicateType: 'exact',
      duplicateOf: original,
    });
    expect(await findDuplicate(database.kysely, probe(), RULES, hashes)).toBeNull();
  });

  it('skips stored hashes that are not 16 hex characters instead of failing', async () => {
    await insertAsset({ hash: 'not a hash', embedding: atCosine(1), createdAt: at(1) });
    await insertAsset({ hash: '00000000', embedding: atCosine(1), createdAt: at(2) });
    const valid = await insertAsset({ hash: hashAt(1), embedding: atCosine(1), createdAt: at(3) });
    expect(await findDuplicate(database.kysely, probe(), RULES, hashes)).toEqual({
      type: 'near',
      assetId: valid,
      distance: 1,
    });
  });

  it('looks for near duplicates only with a hash and an embedding', async () => {
    await insertAsset({ hash: hashAt(0), embedding: atCosine(1) });
    expect(await findDuplicate(database.kysely, probe({ perceptualHash: null }), RULES, hashes)).toBeNull();
    expect(await findDuplicate(database.kysely, probe({ embedding: null }), RULES, hashes)).toBeNull();
    expect(await findDuplicate(database.kysely, probe(), RULES, hashes)).toMatchObject({
      type: 'near',
      distance: 0,
    });
  });
});

describe('assignCluster', () => {
  it('creates a provisional cluster with the suggested name, the new threshold and centroid = e', async () => {
    let created = 0;
    const e = unit(1, 2, 0, 0);
    const assignment = await assignCluster(database.kysely, e, {
      centroids,
      newThreshold: 0.8,
      suggestedName: 'Red Images',
      onCreated: () => created++,
    });
    expect(assignment).toMatchObject({ clusterName: 'Red Images', created: true });
    expect(assignment.similarity).toBeCloseTo(1, 6);
    expect(created).toBe(1);
    const row = await database.kysely
      .selectFrom('cluster')
      .selectAll()
      .where('id', '=', assignment.clusterId)
      .executeTakeFirstOrThrow();
    expect(row).toMatchObject({ name: 'Red Images', threshold: 0.8, provisional: true });
    closeTo(await centroidOf(assignment.clusterId), Array.from(e));
  });

  it('names an unnamed cluster `Cluster <first 8 hex of its id>`', async () => {
    const assignment = await assignCluster(database.kysely, unit(1, 0, 0, 0), {
      centroids,
      newThreshold: 0.72,
      suggestedName: null,
    });
    expect(assignment.clusterName).toBe(`Cluster ${assignment.clusterId.slice(0, 8)}`);
    expect(assignment.clusterName).toMatch(/^Cluster [0-9a-f]{8}$/);
  });

  it('adds _1, _2 … to a taken name', async () => {
    await insertCluster({ name: 'Red Images', centroid: unit(0, 0, 0, 1), threshold: 0.99 });
    await insertCluster({ name: 'Red Images_1', centroid: unit(0, 0, 0, 1), threshold: 0.99 });
    await insertCluster({ name: 'Red Images_x', centroid: unit(0, 0, 0, 1), threshold: 0.99 });
    const options = { centroids, newThreshold: 0.99, suggestedName: 'Red Images' };
    expect((await assignCluster(database.kysely, unit(1, 0, 0, 0), options)).clusterName).toBe(
      'Red Images_2',
    );
    expect((await assignCluster(database.kysely, unit(0, 1, 0, 0), options)).clusterName).toBe(
      'Red Images_3',
    );
  });

  it("applies each cluster's own threshold: a nearer strict cluster loses to a farther lenient one", async () => {
    await insertCluster({ name: 'strict', centroid: atCosine(0.9), threshold: 0.95 });
    const lenient = await insertCluster({ name: 'lenient', centroid: atCosine(0.8), threshold: 0.7 });
    const assignment = await assignCluster(database.kysely, atCosine(1), {
      centroids,
      newThreshold: 0.72,
      suggestedName: null,
    });
    expect(assignment).toMatchObject({ clusterId: lenient, clusterName: 'lenient', created: false });
    expect(assignment.similarity).toBeCloseTo(0.8, 6);
  });

  it('chooses the highest similarity among qualifying clusters', async () => {
    await insertCluster({ name: 'far', centroid: atCosine(0.75), threshold: 0.7 });
    const near = await insertCluster({ name: 'near', centroid: atCosine(0.85), threshold: 0.7 });
    expect(
      (
        await assignCluster(database.kysely, atCosine(1), {
          centroids,
          newThreshold: 0.72,
          suggestedName: null,
        })
      ).clusterId,
    ).toBe(near);
  });

  it('breaks similarity ties in favour of the older cluster, whatever the insertion order', async () => {
    const ages = [10, 5, 7];
    for (const order of [
      [0, 1, 2],
      [1, 0, 2],
      [2, 1, 0],
      [2, 0, 1],
    ]) {
      await sql`truncate cluster cascade`.execute(database.kysely);
      const ids: string[] = [];
      for (const index of order)
        ids[index] = await insertCluster({
          name: `age ${ages[index]}`,
          centroid: atCosine(0.8),
          createdAt: at(ages[index] as number),
        });
      const assignment = await assignCluster(database.kysely, atCosine(1), {
        centroids,
        newThreshold: 0.72,
        suggestedName: null,
      });
      expect(assignment.clusterName).toBe('age 5');
      expect(assignment.clusterId).toBe(ids[1]);
    }
  });

  it('skips excluded clusters', async () => {
    const excluded = await insertCluster({ name: 'excluded', centroid: atCosine(1) });
    const other = await insertCluster({ name: 'other', centroid: atCosine(0.8) });
    const assignment = await assignCluster(database.kysely, atCosine(1), {
      centroids,
      newThreshold: 0.72,
      suggestedName: null,
      excludeClusterIds: [excluded],
    });
    expect(assignment.clusterId).toBe(other);
  });

  it('finds a lenient qualifying cluster behind many nearer strict ones', async () => {
    for (let i = 0; i < 12; i++)
      await insertCluster({ name: `strict ${i}`, centroid: atCosine(0.9 + i * 0.001), threshold: 0.99 });
    const lenient = await insertCluster({ name: 'lenient', centroid: atCosine(0.6), threshold: 0.5 });
    let created = 0;
    const assignment = await assignCluster(database.kysely, atCosine(1), {
      centroids,
      newThreshold: 0.72,
      suggestedName: null,
      onCreated: () => created++,
    });
    expect(assignment.clusterId).toBe(lenient);
    expect(created).toBe(0);
  });

  it('creates a new cluster when none qualifies', async () => {
    await insertCluster({ name: 'other', centroid: atCosine(0.7), threshold: 0.72 });
    const assignment = await assignCluster(database.kysely, atCosine(1), {
      centroids,
      newThreshold: 0.72,
      suggestedName: null,
    });
    expect(assignment.created).toBe(true);
    expect(await database.kysely.selectFrom('cluster').select('id').execute()).toHaveLength(2);
  });
});

describe('PerceptualHashes', () => {
  it('counts differing bits across both halves of the 64-bit hash', async () => {
    const cache = new PerceptualHashes();
    const ids = {
      same: await insertAsset({ hash: '0000000000000000', embedding: atCosine(1) }),
      highNibble: await insertAsset({ hash: 'f000000000000000', embedding: atCosine(1) }),
      bothEnds: await insertAsset({ hash: '8000000000000001', embedding: atCosine(1) }),
      lowWord: await insertAsset({ hash: '00000000ffffffff', embedding: atCosine(1) }),
      all: await insertAsset({ hash: 'ffffffffffffffff', embedding: atCosine(1) }),
      four: await insertAsset({ hash: hashAt(4), embedding: atCosine(1) }),
      five: await insertAsset({ hash: hashAt(5), embedding: atCosine(1) }),
    };
    await cache.refresh(database.kysely);
    const found = (bound: number) => {
      const within = new Set(cache.within('0000000000000000', bound, 'none'));
      return Object.entries(ids)
        .filter(([, id]) => within.has(id))
        .map(([name]) => name);
    };
    expect(found(5)).toEqual(['same', 'highNibble', 'bothEnds', 'four']);
    expect(found(1)).toEqual(['same']);
    expect(found(33)).toEqual(['same', 'highNibble', 'bothEnds', 'lowWord', 'four', 'five']);
    expect(found(65)).toHaveLength(7);
    expect(cache.within('0000000000000000', 5, ids.same)).not.toContain(ids.same);
  });

  it('follows assets filed, changed and deleted after it was filled; findDuplicate drops what left', async () => {
    const cache = new PerceptualHashes();
    const original = await insertAsset({ hash: hashAt(0), embedding: atCosine(1) });
    await cache.refresh(database.kysely);
    expect(cache.within(hashAt(0), 5, 'none')).toEqual([original]);
    // Filed later (status done, stamped now): seen by the next refresh.
    const later = await insertAsset({ hash: hashAt(1), embedding: atCosine(1), status: 'processing' });
    await cache.refresh(database.kysely);
    expect(cache.within(hashAt(0), 5, 'none')).toEqual([original]);
    await database.kysely
      .updateTable('asset')
      .set({ status: 'done', updated_at: sql<Date>`clock_timestamp()` })
      .where('id', '=', later)
      .execute();
    await cache.refresh(database.kysely);
    expect(cache.within(hashAt(0), 5, 'none').sort()).toEqual([original, later].sort());
    // Becoming an exact duplicate takes it out.
    await database.kysely
      .updateTable('asset')
      .set({ duplicate_type: 'exact', duplicate_of: original, updated_at: sql<Date>`clock_timestamp()` })
      .where('id', '=', later)
      .execute();
    await cache.refresh(database.kysely);
    expect(cache.within(hashAt(0), 5, 'none')).toEqual([original]);
    // A deleted asset leaves no row behind: it stays a candidate, and the rule itself turns it down.
    await database.kysely.deleteFrom('asset').where('id', '=', original).execute();
    await cache.refresh(database.kysely);
    expect(cache.within(hashAt(0), 5, 'none')).toEqual([original]);
    const probe = {
      sha256: 'p',
      perceptualHash: hashAt(0),
      embedding: atCosine(1),
      excludeAssetId: randomUUID(),
    };
    expect(await findDuplicate(database.kysely, probe, RULES, cache)).toBeNull();
    cache.invalidate();
    await cache.refresh(database.kysely);
    expect(cache.within(hashAt(0), 5, 'none')).toEqual([]);
  });
});

describe('ClusterCentroids', () => {
  const view = async (cache: ClusterCentroids) =>
    Object.fromEntries(
      (await cache.refresh(database.kysely)).map((cluster) => [
        cluster.name,
        [cluster.threshold, cluster.centroid === null ? null : Array.from(cluster.centroid)],
      ]),
    );

  it('follows clusters created, changed and deleted by any writer of the table', async () => {
    const cache = new ClusterCentroids();
    expect(await view(cache)).toEqual({});
    const a = await insertCluster({ name: 'a', centroid: unit(1, 0, 0, 0), threshold: 0.7 });
    await insertCluster({ name: 'b', centroid: unit(0, 1, 0, 0), threshold: 0.8 });
    expect(await view(cache)).toEqual({ a: [0.7, [1, 0, 0, 0]], b: [0.8, [0, 1, 0, 0]] });
    await database.kysely
      .updateTable('cluster')
      .set({ threshold: 0.9, updated_at: sql<Date>`clock_timestamp()` })
      .where('id', '=', a)
      .execute();
    await addToCentroid(database.kysely, a, unit(0, 0, 1, 0), 1);
    const moved = (await centroidOf(a)) as number[];
    expect(await view(cache)).toEqual({ a: [0.9, moved], b: [0.8, [0, 1, 0, 0]] });
    // A deletion leaves no stamped row behind; the row count gives it away.
    await database.kysely.deleteFrom('cluster').where('id', '=', a).execute();
    const c = await insertCluster({ name: 'c', centroid: null });
    expect(await view(cache)).toEqual({ b: [0.8, [0, 1, 0, 0]], c: [0.72, null] });
    await recomputeCentroid(database.kysely, c);
    expect(Object.keys(await view(cache))).toEqual(['b', 'c']);
  });

  it("sees a transaction's own changes, and forgets them after a rollback once invalidated", async () => {
    const cache = new ClusterCentroids();
    const kept = await insertCluster({ name: 'kept', centroid: unit(1, 0, 0, 0) });
    expect(Object.keys(await view(cache))).toEqual(['kept']);
    const rolledBack = database.kysely.transaction().execute(async (trx) => {
      await trx
        .updateTable('cluster')
        .set({ threshold: 0.99, updated_at: sql<Date>`clock_timestamp()` })
        .where('id', '=', kept)
        .execute();
      const created = await assignCluster(trx, unit(0, 1, 0, 0), {
        centroids: cache,
        newThreshold: 0.75,
        suggestedName: 'inside',
      });
      expect(created.created).toBe(true);
      const seen = await cache.refresh(trx);
      expect(seen.map((cluster) => [cluster.name, cluster.threshold]).sort()).toEqual([
        ['inside', 0.75],
        ['kept', 0.99],
      ]);
      throw new Error('roll back');
    });
    await expect(rolledBack).rejects.toThrow('roll back');
    cache.invalidate();
    expect(await view(cache)).toEqual({ kept: [0.72, [1, 0, 0, 0]] });
  });
});

describe('centroids', () => {
  it('addToCentroid computes normalise((c·n + e)/(n+1))', async () => {
    const cluster = await insertCluster({ centroid: unit(1, 0, 0, 0) });
    await addToCentroid(database.kysely, cluster, unit(0, 1, 0, 0), 1);
    closeTo(await centroidOf(cluster), [Math.SQRT1_2, Math.SQRT1_2, 0, 0]);
    const weighted = await insertCluster({ centroid: unit(1, 0, 0, 0) });
    await addToCentroid(database.kysely, weighted, unit(0, 1, 0, 0), 3);
    closeTo(await centroidOf(weighted), [3 / Math.sqrt(10), 1 / Math.sqrt(10), 0, 0]);
  });

  it('addToCentroid with no members before sets the centroid to e', async () => {
    const cluster = await insertCluster({ centroid: null });
    await addToCentroid(database.kysely, cluster, unit(0, 0, 3, 4), 0);
    closeTo(await centroidOf(cluster), [0, 0, 0.6, 0.8]);
  });

  it('counts and averages only members with their own embedding (exact duplicates excluded)', async () => {
    const cluster = await insertCluster({ centroid: unit(1, 0, 0, 0) });
    const original = await insertAsset({ clusterId: cluster, embedding: unit(1, 0, 0, 0) });
    await insertAsset({
      clusterId: cluster,
      embedding: unit(0, 1, 0, 0),
      duplicateType: 'near',
      duplicateOf: original,
    });
    await insertAsset({
      clusterId: cluster,
      embedding: unit(1, 0, 0, 0),
      duplicateType: 'exact',
      duplicateOf: original,
    });
    await insertAsset({ clusterId: cluster, embedding: null, status: 'done' });
    expect(await countCentroidMembers(database.kysely, cluster)).toBe(2);
    await recomputeCentroid(database.kysely, cluster);
    // With the exact duplicate counted it would be normalise([2/3, 1/3]).
    closeTo(await centroidOf(cluster), [Math.SQRT1_2, Math.SQRT1_2, 0, 0]);
  });

  it('recomputeCentroid leaves a null centroid when no member has an embedding', async () => {
    const cluster = await insertCluster({ centroid: unit(1, 0, 0, 0) });
    await recomputeCentroid(database.kysely, cluster);
    expect(await centroidOf(cluster)).toBeNull();
  });
});

describe('moveAssetFiles', () => {
  it("moves the file and thumbnail to the target cluster's folders and updates the exact duplicates sharing them", async () => {
    const from = await insertCluster({ name: 'from' });
    const to = await insertCluster({ name: 'to' });
    const original = await storedMember(from, { embedding: unit(1, 0, 0, 0) });
    const before = await assetRow(original);
    const duplicate = await insertAsset({
      clusterId: from,
      duplicateType: 'exact',
      duplicateOf: original,
      uri: before.uri,
      thumbnailUri: before.thumbnail_uri,
    });
    const journal: FileMove[] = [];
    await moveAssetFiles(runtime, database.kysely, original, to, journal);
    const uri = `fs://media/clusters/${to}/${original}.png`;
    const thumbnailUri = `fs://media/derived/${to}/${original}/thumb.jpg`;
    expect(await assetRow(original)).toMatchObject({ uri, thumbnail_uri: thumbnailUri });
    expect(await assetRow(duplicate)).toMatchObject({ uri, thumbnail_uri: thumbnailUri });
    expect(await readFile(join(storageDir, `media/clusters/${to}/${original}.png`), 'utf8')).toBe(
      `file ${original}`,
    );
    expect(await readFile(join(storageDir, `media/derived/${to}/${original}/thumb.jpg`), 'utf8')).toBe(
      `thumb ${original}`,
    );
    // Emptied source folders are removed.
    expect(await exists(join(storageDir, `media/clusters/${from}`))).toBe(false);
    expect(await exists(join(storageDir, `media/derived/${from}`))).toBe(false);
    expect(journal).toEqual([
      { from: `media/clusters/${from}/${original}.png`, to: `media/clusters/${to}/${original}.png` },
      {
        from: `media/derived/${from}/${original}/thumb.jpg`,
        to: `media/derived/${to}/${original}/thumb.jpg`,
      },
    ]);
    await undoFileMoves(runtime, journal);
    expect(await readFile(join(storageDir, `media/clusters/${from}/${original}.png`), 'utf8')).toBe(
      `file ${original}`,
    );
    expect(await exists(join(storageDir, `media/clusters/${to}`))).toBe(false);
  });

  it('leaves assets whose file is not in a cluster folder alone', async () => {
    const to = await insertCluster({ name: 'to' });
    const asset = await insertAsset({ uri: 'fs://documents/x/x.pdf', thumbnailUri: null });
    await moveAssetFiles(runtime, database.kysely, asset, to);
    expect(await assetRow(asset)).toMatchObject({ uri: 'fs://documents/x/x.pdf', thumbnail_uri: null });
  });
});

describe('cluster administration', () => {
  const actor = { performedBy: 'alice', requestId: 'req-1' };

  async function lineage(stage: string) {
    return database.kysely
      .selectFrom('lineage')
      .selectAll()
      .where('stage', '=', stage)
      .orderBy('seq')
      .execute();
  }

  it('lists newest first with asset counts and filters', async () => {
    const older = await insertCluster({ name: 'older', createdAt: at(1), provisional: false });
    const newer = await insertCluster({ name: 'newer', createdAt: at(2) });
    await insertAsset({ clusterId: older });
    await insertAsset({ clusterId: older, status: 'failed' });
    const all = await listClusters(database.kysely);
    expect(all.map((cluster) => [cluster.name, cluster.assetCount])).toEqual([
      ['newer', 0],
      ['older', 2],
    ]);
    expect((await listClusters(database.kysely, { provisionalOnly: true })).map((c) => c.id)).toEqual([
      newer,
    ]);
    expect((await listClusters(database.kysely, { minAssets: 1 })).map((c) => c.id)).toEqual([older]);
    expect((await listClusters(database.kysely, { provisional: false })).map((c) => c.id)).toEqual([older]);
  });

  it('computes statistics over all clusters and assets', async () => {
    const a = await insertCluster({ provisional: false });
    const b = await insertCluster();
    await insertCluster();
    await insertAsset({ clusterId: a });
    await insertAsset({ clusterId: a });
    await insertAsset({ clusterId: b });
    await insertAsset({ kind: 'json' });
    expect(await clusterStatistics(database.kysely)).toEqual({
      total_clusters: 3,
      provisional_clusters: 2,
      confirmed_clusters: 1,
      total_assets: 4,
      assets_in_clusters: 3,
      unclustered_assets: 1,
      avg_assets_per_cluster: 1,
    });
  });

  it('lists merge candidates with dot product ≥ the threshold, rounded to 4 decimals, descending', async () => {
    const a = await insertCluster({ name: 'a', centroid: atCosine(1), createdAt: at(1) });
    const b = await insertCluster({ name: 'b', centroid: atCosine(0.9), createdAt: at(2) });
    const c = await insertCluster({ name: 'c', centroid: atCosine(0.95), createdAt: at(3) });
    await insertCluster({ name: 'd', centroid: unit(0, 0, 1, 0), createdAt: at(4) });
    const candidates = await mergeCandidates(database.kysely, 0.85);
    expect(candidates).toEqual([
      { cluster1: { id: b, name: 'b' }, cluster2: { id: c, name: 'c' }, similarity: 0.9911 },
      { cluster1: { id: a, name: 'a' }, cluster2: { id: c, name: 'c' }, similarity: 0.95 },
      { cluster1: { id: a, name: 'a' }, cluster2: { id: b, name: 'b' }, similarity: 0.9 },
    ]);
    expect(await mergeCandidates(database.kysely, 0.96)).toHaveLength(1);
  });

  it('details centroid quality (population std) and up to 12 newest sample ids', async () => {
    const cluster = await insertCluster({ centroid: atCosine(1) });
    await insertAsset({ clusterId: cluster, embedding: atCosine(1), createdAt: at(1) });
    await insertAsset({ clusterId: cluster, embedding: atCosine(0.8), createdAt: at(2) });
    const ids: string[] = [];
    for (let i = 0; i < 13; i++)
      ids.push(await insertAsset({ clusterId: cluster, embedding: null, createdAt: at(10 + i) }));
    const detail = await getClusterDetail(database.kysely, cluster);
    expect(detail?.centroidQuality?.mean).toBeCloseTo(0.9, 5);
    expect(detail?.centroidQuality?.std).toBeCloseTo(0.1, 5);
    expect(detail?.centroidQuality?.min).toBeCloseTo(0.8, 5);
    expect(detail?.centroidQuality?.max).toBeCloseTo(1, 5);
    expect(detail?.sampleAssetIds).toEqual(ids.slice(1).reverse());
    const empty = await insertCluster({ centroid: null });
    expect((await getClusterDetail(database.kysely, empty))?.centroidQuality).toBeNull();
    expect(await getClusterDetail(database.kysely, randomUUID())).toBeNull();
  });

  it('renames, refusing a name taken by another cluster, and records admin lineage', async () => {
    const cluster = await insertCluster({ name: 'old' });
    await insertCluster({ name: 'taken' });
    await expect(renameCluster(runtime, cluster, 'taken', actor)).rejects.toBeInstanceOf(
      ClusterConflictError,
    );
    await expect(renameCluster(runtime, randomUUID(), 'x', actor)).rejects.toBeInstanceOf(
      ClusterNotFoundError,
    );
    expect((await renameCluster(runtime, cluster, 'old', actor)).name).toBe('old');
    const renamed = await renameCluster(runtime, cluster, 'new', actor);
    expect(renamed.name).toBe('new');
    const entries = await lineage('admin_cluster_renamed');
    expect(entries).toHaveLength(2);
    expect(entries[1]).toMatchObject({ asset_id: null, schema_id: null, request_id: 'req-1' });
    expect(entries[1]?.detail).toMatchObject({
      cluster_id: cluster,
      performed_by: 'alice',
      old_name: 'old',
      new_name: 'new',
    });
  });

  it('confirms once; confirming again conflicts', async () => {
    const cluster = await insertCluster();
    expect((await confirmCluster(runtime, cluster, actor)).provisional).toBe(false);
    await expect(confirmCluster(runtime, cluster, actor)).rejects.toBeInstanceOf(ClusterConflictError);
    expect(await lineage('admin_cluster_confirmed')).toHaveLength(1);
  });

  it('merges: members, files and thumbnails move, centroid recomputed, sources deleted, lineage per asset', async () => {
    const target = await insertCluster({ name: 'target', centroid: unit(1, 0, 0, 0) });
    const source = await insertCluster({ name: 'source', centroid: unit(0, 1, 0, 0) });
    const kept = await storedMember(target, { embedding: unit(1, 0, 0, 0) });
    const moved = await storedMember(source, { embedding: unit(0, 1, 0, 0) });
    const movedRow = await assetRow(moved);
    const duplicate = await insertAsset({
      clusterId: source,
      embedding: unit(0, 1, 0, 0),
      duplicateType: 'exact',
      duplicateOf: moved,
      uri: movedRow.uri,
      thumbnailUri: movedRow.thumbnail_uri,
    });
    const result = await mergeClusters(runtime, target, [source], actor);
    expect(result.assetsMoved).toBe(2);
    expect(result.cluster.assetCount).toBe(3);
    expect(await database.kysely.selectFrom('cluster').select('id').execute()).toEqual([{ id: target }]);
    for (const id of [moved, duplicate])
      expect(await assetRow(id)).toMatchObject({
        cluster_id: target,
        uri: `fs://media/clusters/${target}/${moved}.png`,
        thumbnail_uri: `fs://media/derived/${target}/${moved}/thumb.jpg`,
      });
    expect(await readFile(join(storageDir, `media/clusters/${target}/${moved}.png`), 'utf8')).toBe(
      `file ${moved}`,
    );
    expect(await exists(join(storageDir, `media/clusters/${source}`))).toBe(false);
    expect(await exists(join(storageDir, `media/derived/${source}`))).toBe(false);
    expect(await assetRow(kept)).toMatchObject({ uri: `fs://media/clusters/${target}/${kept}.png` });
    closeTo(await centroidOf(target), [Math.SQRT1_2, Math.SQRT1_2, 0, 0]);
    const merged = await lineage('cluster_merged');
    expect(merged.map((entry) => entry.asset_id).sort()).toEqual([moved, duplicate].sort());
    expect(merged[0]?.detail).toMatchObject({
      from_cluster_id: source,
      to_cluster_id: target,
      performed_by: 'alice',
    });
    expect((await lineage('admin_clusters_merged'))[0]?.detail).toMatchObject({
      cluster_id: target,
      performed_by: 'alice',
      source_cluster_ids: [source],
      assets_moved: 2,
    });
    expect(changed).toHaveLength(1);
    expect([...(changed[0] ?? [])].sort()).toEqual([moved, duplicate].sort());
  });

  it('refuses a merge into itself, an empty list and unknown clusters without changing anything', async () => {
    const target = await insertCluster({ name: 'target' });
    const source = await insertCluster({ name: 'source' });
    const member = await storedMember(source, { embedding: unit(0, 1, 0, 0) });
    await expect(mergeClusters(runtime, target, [target], actor)).rejects.toBeInstanceOf(ClusterRequestError);
    await expect(mergeClusters(runtime, target, [], actor)).rejects.toBeInstanceOf(ClusterRequestError);
    await expect(mergeClusters(runtime, target, [source, randomUUID()], actor)).rejects.toBeInstanceOf(
      ClusterNotFoundError,
    );
    await expect(mergeClusters(runtime, randomUUID(), [source], actor)).rejects.toBeInstanceOf(
      ClusterNotFoundError,
    );
    expect(await assetRow(member)).toMatchObject({ cluster_id: source });
    expect(await exists(join(storageDir, `media/clusters/${source}/${member}.png`))).toBe(true);
    expect(await database.kysely.selectFrom('cluster').select('id').execute()).toHaveLength(2);
    expect(await lineage('admin_clusters_merged')).toHaveLength(0);
  });

  it('moves files back when the merge transaction fails after moving them', async () => {
    const target = await insertCluster({ name: 'target' });
    const source = await insertCluster({ name: 'source' });
    const member = await storedMember(source, { embedding: unit(0, 1, 0, 0) });
    // A trigger makes deleting the source cluster fail after the files moved.
    await sql`create function refuse_delete() returns trigger language plpgsql as $$ begin raise exception 'refused'; end $$`.execute(
      database.kysely,
    );
    await sql`create trigger refuse_cluster_delete before delete on cluster for each row execute function refuse_delete()`.execute(
      database.kysely,
    );
    try {
      await expect(mergeClusters(runtime, target, [source], actor)).rejects.toThrow(/refused/);
    } finally {
      await sql`drop trigger refuse_cluster_delete on cluster`.execute(database.kysely);
      await sql`drop function refuse_delete()`.execute(database.kysely);
    }
    expect(await assetRow(member)).toMatchObject({
      cluster_id: source,
      uri: `fs://media/clusters/${source}/${member}.png`,
    });
    expect(await readFile(join(storageDir, `media/clusters/${source}/${member}.png`), 'utf8')).toBe(
      `file ${member}`,
    );
    expect(await exists(join(storageDir, `media/clusters/${target}`))).toBe(false);
  });

  it('re-evaluates: members below the new threshold move to other clusters (files too), the rest stay', async () => {
    const cluster = await insertCluster({
      name: 'mixed',
      centroid: atCosine(1),
      threshold: 0.5,
      createdAt: at(1),
    });
    const other = await insertCluster({
      name: 'blue',
      centroid: unit(0, 0, 1, 0),
      threshold: 0.72,
      createdAt: at(2),
    });
    await insertAsset({ clusterId: other, embedding: unit(0, 0, 1, 0), createdAt: at(2) });
    const close = await storedMember(cluster, { embedding: atCosine(0.99), createdAt: at(3) });
    const blueish = await storedMember(cluster, { embedding: unit(0.6, 0, 0.8, 0), createdAt: at(4) });
    const lonely = await storedMember(cluster, {
      embedding: unit(0.6, 0, 0, 0.8),
      createdAt: at(5),
      metadata: { vlm_suggested_cluster_name: 'Lonely Images' },
    });
    const lonelyRow = await assetRow(lonely);
    const lonelyCopy = await insertAsset({
      clusterId: cluster,
      embedding: unit(0.6, 0, 0, 0.8),
      duplicateType: 'exact',
      duplicateOf: lonely,
      uri: lonelyRow.uri,
      thumbnailUri: lonelyRow.thumbnail_uri,
      createdAt: at(6),
    });
    const createdBefore = (await runtime.metrics.clustersCreated.get()).values[0]?.value ?? 0;
    const result = await updateClusterThreshold(runtime, cluster, 0.9, true, actor);
    expect(result.reassignedAssets).toBe(3);
    expect(result.cluster.threshold).toBe(0.9);
    expect(await assetRow(close)).toMatchObject({ cluster_id: cluster });
    expect(await assetRow(blueish)).toMatchObject({
      cluster_id: other,
      uri: `fs://media/clusters/${other}/${blueish}.png`,
      thumbnail_uri: `fs://media/derived/${other}/${blueish}/thumb.jpg`,
    });
    expect(await exists(join(storageDir, `media/clusters/${other}/${blueish}.png`))).toBe(true);
    expect(await exists(join(storageDir, `media/clusters/${cluster}/${blueish}.png`))).toBe(false);
    const lonelyCluster = await database.kysely
      .selectFrom('cluster')
      .selectAll()
      .where('name', '=', 'Lonely Images')
      .executeTakeFirstOrThrow();
    expect(lonelyCluster).toMatchObject({ provisional: true, threshold: 0.72 });
    for (const id of [lonely, lonelyCopy])
      expect(await assetRow(id)).toMatchObject({
        cluster_id: lonelyCluster.id,
        uri: `fs://media/clusters/${lonelyCluster.id}/${lonely}.png`,
      });
    expect(await exists(join(storageDir, `media/clusters/${lonelyCluster.id}/${lonely}.png`))).toBe(true);
    expect((await runtime.metrics.clustersCreated.get()).values[0]?.value).toBe(createdBefore + 1);
    // Centroids: the source keeps only `close`; `blue` gained one member.
    closeTo(await centroidOf(cluster), Array.from(atCosine(0.99)));
    closeTo(await centroidOf(other), Array.from(unit(0.6, 0, 1 + 0.8, 0)));
    closeTo(await centroidOf(lonelyCluster.id), Array.from(unit(0.6, 0, 0, 0.8)));
    const reassigned = await lineage('cluster_reassigned');
    expect(reassigned.map((entry) => entry.asset_id)).toEqual([blueish, lonely, lonelyCopy]);
    expect(reassigned[0]?.detail).toMatchObject({
      from_cluster_id: cluster,
      to_cluster_id: other,
      performed_by: 'alice',
    });
    expect((await lineage('admin_cluster_threshold_updated'))[0]?.detail).toMatchObject({
      cluster_id: cluster,
      performed_by: 'alice',
      old_threshold: 0.5,
      new_threshold: 0.9,
      re_evaluate: true,
      reassigned_assets: 3,
    });
    expect(changed).toEqual([[blueish, lonely, lonelyCopy]]);
  });

  it('changes only the threshold without re_evaluate and rejects values outside [0, 1]', async () => {
    const cluster = await insertCluster({ centroid: atCosine(1), threshold: 0.5 });
    const member = await insertAsset({ clusterId: cluster, embedding: atCosine(0.6) });
    const result = await updateClusterThreshold(runtime, cluster, 0.95, false, actor);
    expect(result).toMatchObject({ reassignedAssets: 0, cluster: { threshold: 0.95 } });
    expect(await assetRow(member)).toMatchObject({ cluster_id: cluster });
    await expect(updateClusterThreshold(runtime, cluster, 2, false, actor)).rejects.toBeInstanceOf(
      ClusterRequestError,
    );
    await expect(updateClusterThreshold(runtime, cluster, -0.1, false, actor)).rejects.toBeInstanceOf(
      ClusterRequestError,
    );
  });
});
