// Cluster administration (spec §3.12): listing, statistics, merge candidates, details, and the admin actions
// rename, merge, threshold (with re-evaluation) and confirm. Every change runs in one transaction under the
// cluster lock; files moved before a failed commit are moved back.
import { isUniqueViolation } from '@quintet/kernel/db';
import { sql, type Transaction } from 'kysely';
import type { AllocatorRuntime } from '../runtime.js';
import {
  addToCentroid,
  assignCluster,
  countCentroidMembers,
  dot,
  type FileMove,
  moveAssetFiles,
  recomputeCentroid,
  undoFileMoves,
} from './clustering.js';
import { type Catalog, type CatalogDatabase, parseVector } from './database.js';
import { type LineageEntry, recordLineage } from './lineage.js';

type Trx = Transaction<CatalogDatabase>;

/** The cluster (or one of the named clusters) does not exist. */
export class ClusterNotFoundError extends Error {
  override readonly name = 'ClusterNotFoundError';
}

/** The change conflicts with the current state (name taken, already confirmed). */
export class ClusterConflictError extends Error {
  override readonly name = 'ClusterConflictError';
}

/** The change is understood but not allowed (merge into itself, threshold out of range). */
export class ClusterRequestError extends Error {
  override readonly name = 'ClusterRequestError';
}

export interface ClusterRecord {
  id: string;
  name: string;
  assetCount: number;
  threshold: number;
  provisional: boolean;
  metadata: Record<string, unknown>;
  createdAt: Date;
  updatedAt: Date;
}

export interface CentroidQuality {
  mean: number;
  std: number;
  min: number;
  max: number;
}

export interface ClusterDetail extends ClusterRecord {
  centroidQuality: CentroidQuality | null;
  sampleAssetIds: string[];
}

export interface ClusterStatistics {
  total_clusters: number;
  provisional_clusters: number;
  confirmed_clusters: number;
  total_assets: number;
  assets_in_clusters: number;
  unclustered_assets: number;
  avg_assets_per_cluster: number;
}

export interface MergeCandidate {
  cluster1: { id: string; name: string };
  cluster2: { id: string; name: string };
  similarity: number;
}

export interface ClusterMemberSummary {
  id: string;
  uri: string | null;
  contentType: string;
  createdAt: Date;
}

/** Who and which request an admin action is recorded for. */
export interface AdminActor {
  performedBy: string;
  requestId?: string | null;
}

const SAMPLE_ASSETS = 12;
/** SQL pre-filter slack for single-precision dot products; exact comparisons happen in double precision. */
const SQL_SLACK = 1e-5;

interface ClusterRow {
  id: string;
  name: string;
  threshold: number;
  provisional: boolean;
  metadata: Record<string, unknown> | string | null;
  created_at: Date;
  updated_at: Date;
  asset_count: number;
}

function toRecord(row: ClusterRow): ClusterRecord {
  const metadata = typeof row.metadata === 'string' ? JSON.parse(row.metadata) : (row.metadata ?? {});
  return {
    id: row.id,
    name: row.name,
    assetCount: Number(row.asset_count),
    threshold: Number(row.threshold),
    provisional: Boolean(row.provisional),
    metadata: metadata as Record<string, unknown>,
    createdAt: new Date(row.created_at),
    updatedAt: new Date(row.updated_at),
  };
}

/** Clusters newest first with `asset_count` = every asset carrying the cluster id. */
export async function listClusters(
  db: Catalog | Trx,
  filter: {
    provisionalOnly?: boolean;
    minAssets?: number | undefined;
    provisional?: boolean | undefined;
  } = {},
): Promise<ClusterRecord[]> {
  const provisional =
    filter.provisionalOnly === true
      ? true
      : filter.provisional === undefined
        ? undefined
        : filter.provisional;
  const where = provisional === undefined ? sql`` : sql`where c.provisional = ${provisional}`;
  const having = filter.minAssets === undefined ? sql`` : sql`having count(a.id) >= ${filter.minAssets}`;
  const result = await sql<ClusterRow>`
    select c.id, c.name, c.threshold, c.provisional, c.metadata, c.created_at, c.updated_at,
      count(a.id)::int as asset_count
    from cluster c left join asset a on a.cluster_id = c.id
    ${where}
    group by c.id
    ${having}
    order by c.created_at desc, c.id desc`.execute(db);
  return result.rows.map(toRecord);
}

/** One cluster with its asset count, or null. */
export async function getCluster(db: Catalog | Trx, clusterId: string): Promise<ClusterRecord | null> {
  const result = await sql<ClusterRow>`
    select c.id, c.name, c.threshold, c.provisional, c.metadata, c.created_at, c.updated_at,
      (select count(*)::int from asset a where a.cluster_id = c.id) as asset_count
    from cluster c where c.id = ${clusterId}`.execute(db);
  const row = result.rows[0];
  return row === undefined ? null : toRecord(row);
}

/** The cluster plus centroid quality (member·centroid: mean, population std, min, max) and ≤ 12 newest member ids. */
export async function getClusterDetail(db: Catalog | Trx, clusterId: string): Promise<ClusterDetail | null> {
  const cluster = await getCluster(db, clusterId);
  if (cluster === null) return null;
  const quality = await sql<{ members: number; mean: number; std: number; min: number; max: number }>`
    select count(*)::int as members, avg(s) as mean, stddev_pop(s) as std, min(s) as min, max(s) as max
    from (
      select ((a.embedding <#> c.centroid) * -1)::float8 as s
      from asset a join cluster c on c.id = a.cluster_id
      where c.id = ${clusterId} and a.embedding is not null and c.centroid is not null
    ) member_similarity`.execute(db);
  const stats = quality.rows[0];
  const sample = await db
    .selectFrom('asset')
    .select('id')
    .where('cluster_id', '=', clusterId)
    .orderBy('created_at', 'desc')
    .orderBy('id', 'desc')
    .limit(SAMPLE_ASSETS)
    .execute();
  return {
    ...cluster,
    centroidQuality:
      stats === undefined || Number(stats.members) === 0
        ? null
        : {
            mean: Number(stats.mean),
            std: Number(stats.std),
            min: Number(stats.min),
            max: Number(stats.max),
          },
    sampleAssetIds: sample.map((row) => row.id),
  };
}

/** Members newest first (the original API's cluster view). */
export async function listClusterMembers(
  db: Catalog | Trx,
  clusterId: string,
  limit: number,
): Promise<ClusterMemberSummary[]> {
  const rows = await db
    .selectFrom('asset')
    .select(['id', 'uri', 'content_type', 'created_at'])
    .where('cluster_id', '=', clusterId)
    .orderBy('created_at', 'desc')
    .orderBy('id', 'desc')
    .limit(limit)
    .execute();
  return rows.map((row) => ({
    id: row.id,
    uri: row.uri,
    contentType: row.content_type,
    createdAt: new Date(row.created_at),
  }));
}

/** Counts over all clusters and all assets. */
export async function clusterStatistics(db: Catalog | Trx): Promise<ClusterStatistics> {
  const result = await sql<{ clusters: number; provisional: number; assets: number; clustered: number }>`
    select
      (select count(*)::int from cluster) as clusters,
      (select count(*)::int from cluster where provisional) as provisional,
      (select count(*)::int from asset) as assets,
      (select count(*)::int from asset where cluster_id is not null) as clustered`.execute(db);
  const row = result.rows[0];
  const clusters = Number(row?.clusters ?? 0);
  const provisional = Number(row?.provisional ?? 0);
  const assets = Number(row?.assets ?? 0);
  const clustered = Number(row?.clustered ?? 0);
  return {
    total_clusters: clusters,
    provisional_clusters: provisional,
    confirmed_clusters: clusters - provisional,
    total_assets: assets,
    assets_in_clusters: clustered,
    unclustered_assets: assets - clustered,
    avg_assets_per_cluster: clusters === 0 ? 0 : clustered / clusters,
  };
}

/** Every pair of clusters whose centroid dot product ≥ the threshold (older cluster first), similarity rounded to 4 decimals, descending. */
export async function mergeCandidates(
  db: Catalog | Trx,
  similarityThreshold: number,
): Promise<MergeCandidate[]> {
  const result = await sql<{
    id1: string;
    name1: string;
    centroid1: string;
    id2: string;
    name2: string;
    centroid2: string;
  }>`
    with ranked as (
      select id, name, centroid, row_number() over (order by created_at, id) as age_rank
      from cluster where centroid is not null
    )
    select a.id as id1, a.name as name1, a.centroid::text as centroid1,
      b.id as id2, b.name as name2, b.centroid::text as centroid2
    from ranked a join ranked b on a.age_rank < b.age_rank
    where (a.centroid <#> b.centroid) * -1 >= ${similarityThreshold - SQL_SLACK}
    order by a.age_rank, b.age_rank`.execute(db);
  const candidates: MergeCandidate[] = [];
  for (const row of result.rows) {
    const first = parseVector(row.centroid1);
    const second = parseVector(row.centroid2);
    if (first === null || second === null) continue;
    const similarity = dot(first, second);
    if (similarity < similarityThreshold) continue;
    candidates.push({
      cluster1: { id: row.id1, name: row.name1 },
      cluster2: { id: row.id2, name: row.name2 },
      similarity: Math.round(similarity * 10_000) / 10_000,
    });
  }
  // Stable sort: equal similarities keep the older-first pair order.
  return candidates.sort((a, b) => b.similarity - a.similarity);
}

/** Runs one cluster change under the cluster lock in one transaction; files moved by a failed attempt go back. */
async function clusterChange<T>(
  runtime: AllocatorRuntime,
  work: (trx: Trx, journal: FileMove[]) => Promise<T>,
): Promise<T> {
  return runtime.clusterLock(async () => {
    const journal: FileMove[] = [];
    try {
      return await runtime.catalog.transaction().execute((trx) => work(trx, journal));
    } catch (error) {
      await undoFileMoves(runtime, journal);
      throw error;
    }
  });
}

function adminLineage(
  action: string,
  clusterId: string,
  actor: AdminActor,
  detail: Record<string, unknown>,
): LineageEntry {
  return {
    requestId: actor.requestId ?? null,
    assetId: null,
    schemaId: null,
    stage: `admin_${action}`,
    detail: {
      action,
      target_type: 'cluster',
      target_id: clusterId,
      cluster_id: clusterId,
      performed_by: actor.performedBy,
      ...detail,
    },
  };
}

async function lockCluster(trx: Trx, clusterId: string) {
  const row = await trx
    .selectFrom('cluster')
    .select(['id', 'name', 'threshold', 'provisional'])
    .where('id', '=', clusterId)
    .forUpdate()
    .executeTakeFirst();
  if (row === undefined) throw new ClusterNotFoundError(`Cluster ${clusterId} not found`);
  return row;
}

/** Renames a cluster (name already trimmed and validated); a name used by another cluster → ClusterConflictError. */
export async function renameCluster(
  runtime: AllocatorRuntime,
  clusterId: string,
  newName: string,
  actor: AdminActor,
): Promise<ClusterDetail> {
  await clusterChange(runtime, async (trx) => {
    const cluster = await lockCluster(trx, clusterId);
    const taken = await trx
      .selectFrom('cluster')
      .select('id')
      .where('name', '=', newName)
      .where('id', '<>', clusterId)
      .executeTakeFirst();
    if (taken !== undefined) throw new ClusterConflictError(`Cluster name '${newName}' already exists`);
    try {
      await trx
        .updateTable('cluster')
        .set({ name: newName, updated_at: sql<Date>`clock_timestamp()` })
        .where('id', '=', clusterId)
        .execute();
    } catch (error) {
      if (isUniqueViolation(error))
        throw new ClusterConflictError(`Cluster name '${newName}' already exists`);
      throw error;
    }
    await recordLineage(
      trx,
      adminLineage('cluster_renamed', clusterId, actor, { old_name: cluster.name, new_name: newName }),
    );
  });
  // Members are searchable by their cluster's name: the search index reloads them.
  const members = await runtime.catalog
    .selectFrom('asset')
    .select('id')
    .where('cluster_id', '=', clusterId)
    .execute();
  runtime.changes.assetsChanged(members.map((member) => member.id));
  return requireDetail(runtime.catalog, clusterId);
}

/** Marks a provisional cluster confirmed; already confirmed → ClusterConflictError. */
export async function confirmCluster(
  runtime: AllocatorRuntime,
  clusterId: string,
  actor: AdminActor,
): Promise<ClusterDetail> {
  await clusterChange(runtime, async (trx) => {
    const cluster = await lockCluster(trx, clusterId);
    if (!cluster.provisional)
      throw new ClusterConflictError(`Cluster '${cluster.name}' is already confirmed`);
    await trx
      .updateTable('cluster')
      .set({ provisional: false, updated_at: sql<Date>`clock_timestamp()` })
      .where('id', '=', clusterId)
      .execute();
    await recordLineage(
      trx,
      adminLineage('cluster_confirmed', clusterId, actor, { cluster_name: cluster.name }),
    );
  });
  return requireDetail(runtime.catalog, clusterId);
}

export interface MergeResult {
  cluster: ClusterDetail;
  assetsMoved: number;
}

/** Moves every member (files and thumbnails too) of the sources into the target, recomputes its centroid and deletes the sources. */
export async function mergeClusters(
  runtime: AllocatorRuntime,
  targetId: string,
  sourceIds: readonly string[],
  actor: AdminActor,
): Promise<MergeResult> {
  const sources = [...new Set(sourceIds)];
  if (sources.length === 0) throw new ClusterRequestError('source_cluster_ids must not be empty');
  if (sources.includes(targetId)) throw new ClusterRequestError('Cannot merge cluster into itself');
  const movedIds = await clusterChange(runtime, async (trx, journal) => {
    await lockCluster(trx, targetId);
    const found = await trx
      .selectFrom('cluster')
      .select(['id', 'name'])
      .where('id', 'in', sources)
      .forUpdate()
      .execute();
    const missing = sources.filter((id) => !found.some((row) => row.id === id));
    if (missing.length > 0) throw new ClusterNotFoundError(`Cluster(s) not found: ${missing.join(', ')}`);
    const members = await sql<{ id: string; cluster_id: string; owns_file: boolean }>`
      select a.id, a.cluster_id,
        a.duplicate_type is distinct from 'exact' or not exists (
          select 1 from asset o
          where o.uri = a.uri and o.id <> a.id and o.duplicate_type is distinct from 'exact'
        ) as owns_file
      from asset a
      where a.cluster_id in (${sql.join(sources)})
      order by a.created_at, a.id`
      .execute(trx)
      .then((result) => result.rows);
    // An exact duplicate shares its original's file: the file moves with the original (moveAssetFiles updates
    // every asset sharing the uri) and stays where it is when the original belongs to another cluster.
    for (const member of members)
      if (member.owns_file) await moveAssetFiles(runtime, trx, member.id, targetId, journal);
    if (members.length > 0)
      await trx
        .updateTable('asset')
        .set({ cluster_id: targetId, updated_at: sql<Date>`clock_timestamp()` })
        .where('cluster_id', 'in', sources)
        .execute();
    await recomputeCentroid(trx, targetId);
    await trx.deleteFrom('cluster').where('id', 'in', sources).execute();
    await recordLineage(
      trx,
      ...members.map((member) => ({
        requestId: actor.requestId ?? null,
        assetId: member.id,
        stage: 'cluster_merged',
        detail: {
          from_cluster_id: member.cluster_id,
          to_cluster_id: targetId,
          performed_by: actor.performedBy,
        },
      })),
      adminLineage('clusters_merged', targetId, actor, {
        source_cluster_ids: sources,
        source_cluster_names: sources.map((id) => found.find((row) => row.id === id)?.name ?? null),
        assets_moved: members.length,
      }),
    );
    return members.map((member) => member.id);
  });
  if (movedIds.length > 0) runtime.changes.assetsChanged(movedIds);
  return { cluster: await requireDetail(runtime.catalog, targetId), assetsMoved: movedIds.length };
}

export interface ThresholdResult {
  cluster: ClusterDetail;
  reassignedAssets: number;
}

interface MemberForEvaluation {
  id: string;
  uri: string | null;
  embedding: string;
  metadata: Record<string, unknown> | null;
}

/** A label's suggested cluster name kept in the asset's metadata, if any. */
function suggestedNameOf(metadata: Record<string, unknown> | null): string | null {
  for (const key of ['vlm_suggested_cluster_name', 'suggested_cluster_name']) {
    const value = metadata?.[key];
    if (typeof value === 'string' && value.trim() !== '') return value;
  }
  return null;
}

/**
 * Sets a cluster's threshold. With `reEvaluate`, every member whose similarity to the (current) centroid is
 * below the new threshold leaves: it is re-assigned by §3.6.6 among the other clusters (possibly a new one),
 * its files move, its exact duplicates follow it; then the centroid is recomputed from the remaining members.
 */
export async function updateClusterThreshold(
  runtime: AllocatorRuntime,
  clusterId: string,
  threshold: number,
  reEvaluate: boolean,
  actor: AdminActor,
): Promise<ThresholdResult> {
  if (!(threshold >= 0 && threshold <= 1)) throw new ClusterRequestError('threshold must be between 0 and 1');
  let clustersCreated = 0;
  const reassigned = await clusterChange(runtime, async (trx, journal) => {
    const cluster = await lockCluster(trx, clusterId);
    await trx
      .updateTable('cluster')
      .set({ threshold, updated_at: sql<Date>`clock_timestamp()` })
      .where('id', '=', clusterId)
      .execute();
    const reassignedIds: string[] = [];
    if (reEvaluate) {
      clustersCreated = 0;
      reassignedIds.push(
        ...(await reEvaluateMembers(runtime, trx, clusterId, threshold, actor, journal, () => {
          clustersCreated++;
        })),
      );
      await recomputeCentroid(trx, clusterId);
    }
    await recordLineage(
      trx,
      adminLineage('cluster_threshold_updated', clusterId, actor, {
        old_threshold: Number(cluster.threshold),
        new_threshold: threshold,
        re_evaluate: reEvaluate,
        reassigned_assets: reassignedIds.length,
      }),
    );
    return reassignedIds;
  });
  for (let i = 0; i < clustersCreated; i++) runtime.metrics.clustersCreated.inc();
  if (reassigned.length > 0) runtime.changes.assetsChanged(reassigned);
  return { cluster: await requireDetail(runtime.catalog, clusterId), reassignedAssets: reassigned.length };
}

async function reEvaluateMembers(
  runtime: AllocatorRuntime,
  trx: Trx,
  clusterId: string,
  threshold: number,
  actor: AdminActor,
  journal: FileMove[],
  onCreated: () => void,
): Promise<string[]> {
  const centroidRow = await trx
    .selectFrom('cluster')
    .select(sql<string | null>`centroid::text`.as('centroid'))
    .where('id', '=', clusterId)
    .executeTakeFirstOrThrow();
  const centroid = parseVector(centroidRow.centroid);
  if (centroid === null) return [];
  // Exact duplicates carry their original's embedding and share its file: they follow their original, so only
  // members with their own embedding are judged. The SQL bound only narrows the rows; the exact test is below.
  const candidates = await sql<MemberForEvaluation>`
    select a.id, a.uri, a.embedding::text as embedding, a.metadata
    from asset a join cluster c on c.id = a.cluster_id
    where a.cluster_id = ${clusterId} and a.embedding is not null
      and a.duplicate_type is distinct from 'exact'
      and (a.embedding <#> c.centroid) * -1 < ${threshold + SQL_SLACK}
    order by a.created_at, a.id`.execute(trx);
  const leaving: { member: MemberForEvaluation; embedding: Float32Array; similarity: number }[] = [];
  for (const member of candidates.rows) {
    const embedding = parseVector(member.embedding);
    if (embedding === null || embedding.length !== centroid.length) continue;
    const similarity = dot(embedding, centroid);
    if (similarity < threshold) leaving.push({ member, embedding, similarity });
  }
  const reassigned: string[] = [];
  for (const { member, embedding, similarity } of leaving) {
    const assignment = await assignCluster(trx, embedding, {
      centroids: runtime.clusterCentroids,
      newThreshold: runtime.config.clusterThreshold,
      suggestedName: suggestedNameOf(member.metadata),
      excludeClusterIds: [clusterId],
      onCreated,
    });
    const followers = await trx
      .selectFrom('asset')
      .select('id')
      .where('cluster_id', '=', clusterId)
      .where('duplicate_type', '=', 'exact')
      .where((eb) =>
        member.uri === null
          ? eb('duplicate_of', '=', member.id)
          : eb.or([eb('duplicate_of', '=', member.id), eb('uri', '=', member.uri)]),
      )
      .execute();
    const membersBefore = await countCentroidMembers(trx, assignment.clusterId);
    await moveAssetFiles(runtime, trx, member.id, assignment.clusterId, journal);
    const ids = [member.id, ...followers.map((row) => row.id)];
    await trx
      .updateTable('asset')
      .set({ cluster_id: assignment.clusterId, updated_at: sql<Date>`clock_timestamp()` })
      .where('id', 'in', ids)
      .execute();
    await addToCentroid(trx, assignment.clusterId, embedding, membersBefore);
    await recordLineage(
      trx,
      ...ids.map((id) => ({
        requestId: actor.requestId ?? null,
        assetId: id,
        stage: 'cluster_reassigned',
        detail: {
          from_cluster_id: clusterId,
          to_cluster_id: assignment.clusterId,
          to_cluster_name: assignment.clusterName,
          cluster_created: assignment.created,
          previous_similarity: similarity,
          similarity: assignment.similarity,
          threshold,
          performed_by: actor.performedBy,
        },
      })),
    );
    reassigned.push(...ids);
  }
  return reassigned;
}

async function requireDetail(db: Catalog, clusterId: string): Promise<ClusterDetail> {
  const detail = await getClusterDetail(db, clusterId);
  if (detail === null) throw new ClusterNotFoundError(`Cluster ${clusterId} not found`);
  return detail;
}
