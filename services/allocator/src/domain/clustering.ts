// De-duplication lookup (spec §3.6.5), cluster assignment and centroid maintenance (§3.6.6), and moving a
// member's files between cluster folders (§3.19). Callers serialise these with the cluster lock and pass their
// transaction as `db`.
import { randomUUID } from 'node:crypto';
import { type Kysely, sql, type Transaction } from 'kysely';
import type { AllocatorRuntime } from '../runtime.js';
import { type CatalogDatabase, parseVector, toVectorLiteral } from './database.js';

type Executor = Kysely<CatalogDatabase> | Transaction<CatalogDatabase>;

export interface DuplicateMatch {
  type: 'exact' | 'near';
  assetId: string;
  /** pHash Hamming distance; 0 for exact duplicates */
  distance: number;
}

export interface DuplicateProbe {
  sha256: string;
  perceptualHash: string | null;
  embedding: Float32Array | null;
  excludeAssetId: string;
}

export interface DuplicateRules {
  hammingThreshold: number;
  minSimilarity: number;
}

export interface ClusterAssignment {
  clusterId: string;
  clusterName: string;
  /** e·centroid of the chosen cluster (1 for a cluster created from e) */
  similarity: number;
  created: boolean;
}

export interface AssignClusterOptions {
  /** the process's centroid cache (runtime.clusterCentroids) */
  centroids: ClusterCentroids;
  newThreshold: number;
  suggestedName: string | null;
  excludeClusterIds?: readonly string[];
  /** called once when a new cluster row was inserted (e.g. to count clusters_created_total) */
  onCreated?: () => void;
}

/** One file moved by moveAssetFiles, as storage-relative paths (to undo it when the transaction fails). */
export interface FileMove {
  from: string;
  to: string;
}

const PHASH = /^[0-9a-f]{16}$/i;
/**
 * pgvector accumulates dot products in single precision, so SQL pre-filters use this slack and the exact
 * comparison is made here in double precision on the stored values.
 */
const SQL_SLACK = 1e-5;
/** Near-duplicate candidates (already ordered by pHash distance) checked exactly after the SQL filter. */
const NEAR_CANDIDATES = 32;
/** Longest suggested cluster name kept, leaving room for a `_<n>` suffix within 255 characters. */
const MAX_BASE_NAME = 240;

/** Σ aᵢbᵢ in double precision. */
export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`vector dimensions differ: ${a.length} and ${b.length}`);
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += (a[i] as number) * (b[i] as number);
  return sum;
}

/** Cosine similarity (0 when either vector is zero). */
export function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const norms = Math.sqrt(dot(a, a) * dot(b, b));
  return norms === 0 ? 0 : dot(a, b) / norms;
}

/** v/|v| as float32, or null for a (near-)zero vector. */
export function normalise(vector: ArrayLike<number>): Float32Array | null {
  const norm = Math.sqrt(dot(vector, vector));
  if (!(norm > 1e-12)) return null;
  return Float32Array.from(vector, (value) => value / norm);
}

/** §3.6.5 against done media assets: exact (same sha256, original not itself an exact duplicate) first, then near (smallest pHash distance < hammingThreshold AND cosine ≥ minSimilarity; ties → earliest created). */
export async function findDuplicate(
  db: Executor,
  probe: DuplicateProbe,
  rules: DuplicateRules,
  hashes: PerceptualHashes,
): Promise<DuplicateMatch | null> {
  // Exact duplicates are never originals, so a third copy points at the first one, not at the second.
  const exact = await sql<{ id: string }>`
    select id from asset
    where kind = 'media' and status = 'done' and sha256 = ${probe.sha256}
      and duplicate_type is distinct from 'exact' and id <> ${probe.excludeAssetId}
    order by created_at, id
    limit 1`.execute(db);
  const original = exact.rows[0];
  if (original !== undefined) return { type: 'exact', assetId: original.id, distance: 0 };

  const { perceptualHash, embedding } = probe;
  if (perceptualHash === null || embedding === null || !PHASH.test(perceptualHash)) return null;
  if (rules.hammingThreshold <= 0) return null;
  // Candidates within the Hamming bound come from the in-memory hashes (a superset of the qualifying assets);
  // SQL then applies the whole rule to those few, from the rows as they are now. The CASE keeps a malformed
  // hash from failing the query (CASE fixes evaluation order, a WHERE guard would not), and the materialised
  // CTE makes the costlier cosine distances run only for the rows within the bound.
  await hashes.refresh(db);
  const candidates = hashes.within(perceptualHash, rules.hammingThreshold, probe.excludeAssetId);
  if (candidates.length === 0) return null;
  const literal = toVectorLiteral(embedding);
  const near = await sql<{ id: string; distance: number; embedding: string }>`
    with within_hash_bound as materialized (
      select id, created_at, distance
      from (
        select id, created_at,
          case when pg_input_is_valid('x' || perceptual_hash, 'bit(64)')
            then bit_count(('x' || perceptual_hash)::bit(64) # ${`x${perceptualHash}`}::bit(64))::int
          end as distance
        from asset
        where id = any(${candidates}::uuid[])
          and kind = 'media' and status = 'done' and duplicate_type is distinct from 'exact'
          and id <> ${probe.excludeAssetId} and embedding is not null and perceptual_hash is not null
      ) hashed
      where distance < ${rules.hammingThreshold}
    )
    select candidate.id, candidate.distance, asset.embedding::text as embedding
    from within_hash_bound candidate join asset on asset.id = candidate.id
    where 1 - (asset.embedding <=> ${literal}::vector) >= ${rules.minSimilarity - SQL_SLACK}
    order by candidate.distance, candidate.created_at, candidate.id
    limit ${NEAR_CANDIDATES}`.execute(db);
  for (const row of near.rows) {
    const stored = parseVector(row.embedding);
    if (stored !== null && cosine(embedding, stored) >= rules.minSimilarity)
      return { type: 'near', assetId: row.id, distance: Number(row.distance) };
  }
  return null;
}

/**
 * The perceptual hashes of the assets a near duplicate may point at (§3.6.5: done media assets that are not
 * exact duplicates), held in memory so that finding those within the Hamming bound is a scan of 64-bit
 * integers instead of a scan of the asset table (which grew to ~65 ms per image at 100,000 assets).
 *
 * Assets enter that set only under the cluster lock (filed as done, or an exact duplicate promoted when its
 * original is deleted), stamped with clock_timestamp(); `refresh` reads the asset rows stamped at or after the
 * newest stamp seen, so it sees every entry. An asset that left the set unseen (a deletion leaves no row) stays
 * a candidate here, and findDuplicate's SQL, which applies the whole rule to the candidates, drops it; so the
 * set is a superset of the qualifying assets, which is all the search needs.
 */
export class PerceptualHashes {
  readonly #byId = new Map<string, { high: number; low: number }>();
  #newestMicros: number | null = null;

  invalidate(): void {
    this.#byId.clear();
    this.#newestMicros = null;
  }

  async refresh(db: Executor): Promise<void> {
    const first = this.#newestMicros === null;
    // One microsecond of overlap: to_timestamp works in double precision.
    const since = first
      ? sql`true`
      : sql`a.updated_at >= to_timestamp(${(this.#newestMicros as number) - 1} / 1e6)`;
    const { rows } = await sql<{
      newest_us: number | null;
      id: string | null;
      perceptual_hash: string | null;
      qualifies: boolean | null;
    }>`
      select (select (extract(epoch from max(updated_at)) * 1000000)::bigint from asset) as newest_us,
        a.id, a.perceptual_hash,
        (a.kind = 'media' and a.status = 'done' and a.duplicate_type is distinct from 'exact'
          and a.embedding is not null and a.perceptual_hash is not null) as qualifies
      from (select 1) as one
      left join asset a on ${since} ${first ? sql`and a.kind = 'media' and a.status = 'done'` : sql``}`.execute(
      db,
    );
    for (const row of rows) {
      if (row.id === null) continue;
      const hash = row.qualifies === true ? hashHalves(row.perceptual_hash) : null;
      if (hash === null) this.#byId.delete(row.id);
      else this.#byId.set(row.id, hash);
    }
    const newest = rows[0]?.newest_us;
    if (newest !== null && newest !== undefined) this.#newestMicros = Number(newest);
    else if (first) this.#newestMicros = Number.MIN_SAFE_INTEGER;
  }

  /** Ids of the held hashes at Hamming distance < `bound` from `hash`, `excludeId` left out. */
  within(hash: string, bound: number, excludeId: string): string[] {
    const probe = hashHalves(hash);
    if (probe === null) return [];
    const ids: string[] = [];
    for (const [id, held] of this.#byId)
      if (id !== excludeId && bitCount32(held.high ^ probe.high) + bitCount32(held.low ^ probe.low) < bound)
        ids.push(id);
    return ids;
  }
}

function hashHalves(hash: string | null): { high: number; low: number } | null {
  if (hash === null || !PHASH.test(hash)) return null;
  return { high: Number.parseInt(hash.slice(0, 8), 16), low: Number.parseInt(hash.slice(8), 16) };
}

function bitCount32(value: number): number {
  let v = value - ((value >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return Math.imul((v + (v >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24;
}

/** A cluster as the assignment sees it; `centroid` is null for a cluster left without members. */
export interface CachedCluster {
  id: string;
  name: string;
  threshold: number;
  createdAt: number;
  centroid: Float32Array | null;
}

/**
 * Every cluster's centroid, held in memory for §3.6.6. pgvector's distance costs about 20 µs per 512-dimension
 * centroid in the embedded (WebAssembly) engine, so ranking all centroids in SQL grew to tens of milliseconds per
 * image with a few thousand clusters; here it is one dot product each.
 *
 * Callers hold the cluster lock. Every write to `cluster` happens under it and stamps `updated_at` with
 * clock_timestamp(), so `refresh` — the rows stamped at or after the newest stamp seen, plus the row count, which
 * reveals deletions — sees every change: those of other processes on a shared PostgreSQL, and those of the
 * caller's own open transaction. A locked section that fails may roll back rows a refresh already saw, so the
 * lock calls `invalidate`, and the next refresh reloads everything.
 */
export class ClusterCentroids {
  #clusters = new Map<string, CachedCluster>();
  /** the newest `updated_at` seen, in microseconds since the epoch */
  #newestMicros = Number.MIN_SAFE_INTEGER;
  #complete = false;

  invalidate(): void {
    this.#complete = false;
  }

  /** The current clusters, as `db` (a transaction or the catalog) sees them. */
  async refresh(db: Executor): Promise<readonly CachedCluster[]> {
    if (!this.#complete || !(await this.#applyChanges(db, this.#newestMicros))) {
      this.#clusters.clear();
      this.#newestMicros = Number.MIN_SAFE_INTEGER;
      await this.#applyChanges(db, this.#newestMicros);
      this.#complete = true;
    }
    return [...this.#clusters.values()];
  }

  /** Applies the rows stamped at or after `sinceMicros`; false when rows were deleted meanwhile. */
  async #applyChanges(db: Executor, sinceMicros: number): Promise<boolean> {
    // The count comes along even when nothing changed (the left join keeps its one row).
    const { rows } = await sql<{
      total: number;
      id: string | null;
      name: string;
      threshold: number;
      created_at: Date;
      updated_us: number;
      centroid: string | null;
    }>`
      select totals.total, c.id, c.name, c.threshold, c.created_at,
        (extract(epoch from c.updated_at) * 1000000)::bigint as updated_us, c.centroid::text as centroid
      from (select count(*)::int as total from cluster) totals
      left join cluster c on (extract(epoch from c.updated_at) * 1000000)::bigint >= ${sinceMicros}`.execute(
      db,
    );
    for (const row of rows) {
      if (row.id === null) continue;
      this.#clusters.set(row.id, {
        id: row.id,
        name: row.name,
        threshold: Number(row.threshold),
        createdAt: new Date(row.created_at).getTime(),
        centroid: parseVector(row.centroid),
      });
      this.#newestMicros = Math.max(this.#newestMicros, Number(row.updated_us));
    }
    return this.#clusters.size === (rows[0]?.total ?? 0);
  }
}

/** Highest sim among clusters with sim ≥ their threshold; ties → older cluster (then smaller id). */
function bestQualifying(
  embedding: Float32Array,
  clusters: readonly CachedCluster[],
  excluded: ReadonlySet<string>,
): { cluster: CachedCluster; similarity: number } | null {
  let best: { cluster: CachedCluster; similarity: number } | null = null;
  for (const cluster of clusters) {
    const { centroid } = cluster;
    if (centroid === null || centroid.length !== embedding.length || excluded.has(cluster.id)) continue;
    const similarity = dot(embedding, centroid);
    if (similarity < cluster.threshold) continue;
    if (
      best === null ||
      similarity > best.similarity ||
      (similarity === best.similarity && isOlder(cluster, best.cluster))
    )
      best = { cluster, similarity };
  }
  return best;
}

function isOlder(a: CachedCluster, b: CachedCluster): boolean {
  return a.createdAt < b.createdAt || (a.createdAt === b.createdAt && a.id < b.id);
}

/** §3.6.6: best cluster with sim ≥ its threshold (ties → older), else a new provisional cluster (threshold = newThreshold, name = suggestedName or `Cluster <8 hex>`, `_1`, `_2` … when taken). Does NOT update the centroid (call addToCentroid after the member row is saved). */
export async function assignCluster(
  db: Executor,
  embedding: Float32Array,
  options: AssignClusterOptions,
): Promise<ClusterAssignment> {
  const clusters = await options.centroids.refresh(db);
  const best = bestQualifying(embedding, clusters, new Set(options.excludeClusterIds ?? []));
  if (best !== null)
    return {
      clusterId: best.cluster.id,
      clusterName: best.cluster.name,
      similarity: best.similarity,
      created: false,
    };

  const centroid = normalise(embedding);
  if (centroid === null) throw new Error('cannot cluster a zero embedding');
  const id = randomUUID();
  const suggested = options.suggestedName?.trim().slice(0, MAX_BASE_NAME) ?? '';
  const name = await freeClusterName(db, suggested === '' ? `Cluster ${id.slice(0, 8)}` : suggested);
  // clock_timestamp, not now(): clusters created in one transaction must still be ordered by age.
  await db
    .insertInto('cluster')
    .values({
      id,
      name,
      centroid: toVectorLiteral(centroid),
      threshold: options.newThreshold,
      provisional: true,
      metadata: '{}',
      created_at: sql<Date>`clock_timestamp()`,
      updated_at: sql<Date>`clock_timestamp()`,
    })
    .execute();
  options.onCreated?.();
  return { clusterId: id, clusterName: name, similarity: dot(embedding, centroid), created: true };
}

/** `base` when free, else the first free `base_1`, `base_2`, … (cluster names are unique). */
export async function freeClusterName(db: Executor, base: string): Promise<string> {
  const taken = await sql<{ name: string }>`
    select name from cluster where name = ${base} or starts_with(name, ${`${base}_`})`.execute(db);
  const names = new Set(taken.rows.map((row) => row.name));
  if (!names.has(base)) return base;
  for (let suffix = 1; ; suffix++) {
    const candidate = `${base}_${suffix}`;
    if (!names.has(candidate)) return candidate;
  }
}

/** c ← normalise((c·n + e)/(n+1)), n = members with their own embedding (exact duplicates excluded) BEFORE this one. */
export async function addToCentroid(
  db: Executor,
  clusterId: string,
  embedding: Float32Array,
  membersBefore: number,
): Promise<void> {
  const row = await db
    .selectFrom('cluster')
    .select(sql<string | null>`centroid::text`.as('centroid'))
    .where('id', '=', clusterId)
    .executeTakeFirst();
  if (row === undefined) throw new Error(`cluster ${clusterId} does not exist`);
  const centroid = centroidWithMember(parseVector(row.centroid), embedding, membersBefore);
  await db
    .updateTable('cluster')
    .set({
      centroid: centroid === null ? null : toVectorLiteral(centroid),
      updated_at: sql<Date>`clock_timestamp()`,
    })
    .where('id', '=', clusterId)
    .execute();
}

/** The centroid after one more member: normalise((c·n + e)/(n+1)); a missing c (or n = 0) counts as none. */
export function centroidWithMember(
  current: Float32Array | null,
  embedding: Float32Array,
  membersBefore: number,
): Float32Array | null {
  const previous =
    current !== null && current.length === embedding.length && membersBefore > 0 ? current : null;
  const n = previous === null ? 0 : membersBefore;
  const mean = new Float64Array(embedding.length);
  for (let i = 0; i < embedding.length; i++)
    mean[i] = ((previous?.[i] ?? 0) * n + (embedding[i] as number)) / (n + 1);
  return normalise(mean);
}

/** The cluster's centroid and its members with their own embedding, `assetId` not counted: the c and n of §3.6.6. */
export async function clusterBefore(
  db: Executor,
  clusterId: string,
  assetId: string,
): Promise<{ members: number; centroid: Float32Array | null }> {
  const { rows } = await sql<{ members: number; centroid: string | null }>`
    select centroid::text as centroid,
      (select count(*)::int from asset
        where cluster_id = ${clusterId} and id <> ${assetId} and status = 'done' and embedding is not null
          and duplicate_type is distinct from 'exact') as members
    from cluster where id = ${clusterId}`.execute(db);
  const row = rows[0];
  if (row === undefined) throw new Error(`cluster ${clusterId} does not exist`);
  return { members: Number(row.members), centroid: parseVector(row.centroid) };
}

/** Number of members with their own embedding (exact duplicates excluded): the n of addToCentroid. */
export async function countCentroidMembers(db: Executor, clusterId: string): Promise<number> {
  const row = await sql<{ members: number }>`
    select count(*)::int as members from asset
    where cluster_id = ${clusterId} and embedding is not null
      and duplicate_type is distinct from 'exact'`.execute(db);
  return Number(row.rows[0]?.members ?? 0);
}

/** Normalised mean of the remaining members' own embeddings (null centroid when none). */
export async function recomputeCentroid(db: Executor, clusterId: string): Promise<void> {
  // pgvector's avg accumulates in double precision.
  const result = await sql<{ mean: string | null }>`
    select avg(embedding)::text as mean from asset
    where cluster_id = ${clusterId} and embedding is not null
      and duplicate_type is distinct from 'exact'`.execute(db);
  const mean = parseVector(result.rows[0]?.mean ?? null);
  const centroid = mean === null ? null : normalise(mean);
  await db
    .updateTable('cluster')
    .set({
      centroid: centroid === null ? null : toVectorLiteral(centroid),
      updated_at: sql<Date>`clock_timestamp()`,
    })
    .where('id', '=', clusterId)
    .execute();
}

const MEDIA_URI = /^fs:\/\/media\/clusters\/([^/]+)\/([^/]+)$/;
const THUMBNAIL_URI = /^fs:\/\/media\/derived\/([^/]+)\/([^/]+)\/thumb\.jpg$/;

/** Moves a member's file and thumbnail to another cluster's folders and updates uri/thumbnail_uri of the asset and of exact duplicates sharing its uri. */
export async function moveAssetFiles(
  runtime: AllocatorRuntime,
  db: Executor,
  assetId: string,
  targetClusterId: string,
  journal?: FileMove[],
): Promise<void> {
  const asset = await db
    .selectFrom('asset')
    .select(['uri', 'thumbnail_uri'])
    .where('id', '=', assetId)
    .executeTakeFirst();
  if (asset === undefined) throw new Error(`asset ${assetId} does not exist`);
  const media = asset.uri === null ? null : MEDIA_URI.exec(asset.uri);
  if (asset.uri !== null && media !== null && media[1] !== targetClusterId) {
    const to = `media/clusters/${targetClusterId}/${media[2]}`;
    const newUri = await moveStored(runtime, asset.uri, to, journal);
    // Exact duplicates share the original's file, so they follow it.
    await db
      .updateTable('asset')
      .set({ uri: newUri, updated_at: sql<Date>`clock_timestamp()` })
      .where('uri', '=', asset.uri)
      .execute();
  }
  const thumbnail = asset.thumbnail_uri === null ? null : THUMBNAIL_URI.exec(asset.thumbnail_uri);
  if (asset.thumbnail_uri !== null && thumbnail !== null && thumbnail[1] !== targetClusterId) {
    const to = `media/derived/${targetClusterId}/${thumbnail[2]}/thumb.jpg`;
    const newUri = await moveStored(runtime, asset.thumbnail_uri, to, journal);
    await db
      .updateTable('asset')
      .set({ thumbnail_uri: newUri, updated_at: sql<Date>`clock_timestamp()` })
      .where('thumbnail_uri', '=', asset.thumbnail_uri)
      .execute();
  }
}

/** Moves one stored file; a file already missing on disk is logged and its URI still follows the move. */
async function moveStored(
  runtime: AllocatorRuntime,
  uri: string,
  to: string,
  journal?: FileMove[],
): Promise<string> {
  const from = uri.slice('fs://'.length);
  try {
    const moved = await runtime.storage.moveFile(runtime.storage.resolve(uri), to);
    journal?.push({ from, to });
    return moved;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    runtime.logger.warn({ uri, target: to }, 'stored file missing while moving it to another cluster');
    return runtime.storage.uriFor(to);
  }
}

/** Moves files back (newest first) after the transaction that recorded them failed; failures are logged. */
export async function undoFileMoves(runtime: AllocatorRuntime, journal: readonly FileMove[]): Promise<void> {
  for (const move of [...journal].reverse()) {
    try {
      await runtime.storage.moveFile(runtime.storage.resolve(`fs://${move.to}`), move.from);
    } catch (error) {
      runtime.logger.error(
        { err: error, from: move.to, to: move.from },
        'could not move a file back after a failed cluster change',
      );
    }
  }
}
