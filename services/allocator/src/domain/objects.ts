// The objects API's catalog side (spec §3.10, §3.15): one asset with everything its kind shows, the stored file
// behind its content, its chunks and lineage, duplicate groups, and deletion. Deleting keeps every file another
// asset still references (exact duplicates share their original's file) and hands an original's role to its
// earliest remaining exact duplicate, so the catalog never points at a removed file.
import { type Kysely, type Selectable, sql, type Transaction } from 'kysely';
import type { AllocatorRuntime } from '../runtime.js';
import { recomputeCentroid } from './clustering.js';
import type { AssetKind, AssetStatus, AssetTable, CatalogDatabase, SchemaDefTable } from './database.js';
import { dataTableExists, deleteStoredDocument, loadStoredDocument, parseTablePlan } from './json-store.js';
import { type LineageEntry, recordLineage } from './lineage.js';

type Executor = Kysely<CatalogDatabase> | Transaction<CatalogDatabase>;
type AssetRow = Selectable<AssetTable>;
type SchemaRow = Selectable<SchemaDefTable>;

/** The asset does not exist. */
export class ObjectNotFoundError extends Error {
  override readonly name = 'ObjectNotFoundError';
}

/** The asset cannot be changed now (its job is still working on it). */
export class ObjectConflictError extends Error {
  override readonly name = 'ObjectConflictError';
}

/** The operation does not apply to this kind of asset. */
export class ObjectKindError extends Error {
  override readonly name = 'ObjectKindError';
}

export type ObjectAsset = Omit<AssetRow, 'embedding' | 'search_tokens'> & {
  /** length of the stored embedding, null when there is none */
  embedding_dimension: number | null;
};

export interface ObjectCluster {
  id: string;
  name: string;
  provisional: boolean;
}

export interface ObjectRawAsset {
  id: string;
  uri: string;
  request_id: string;
  part_id: string;
}

export interface ObjectSchema {
  id: string;
  name: string;
  storage_choice: 'sql' | 'jsonb';
  status: 'provisional' | 'active' | 'rejected';
  ddl: string;
}

/** One asset with the rows its view joins in. */
export interface ObjectRecord {
  asset: ObjectAsset;
  childIds: string[];
  cluster: ObjectCluster | null;
  rawAsset: ObjectRawAsset | null;
  schema: ObjectSchema | null;
  /** JSON assets: the §3.8.6 reconstruction when stored, else the staged or received document */
  document: Record<string, unknown> | null;
}

/** Where an asset's bytes are kept, and what describes them. */
export interface StoredContent {
  uri: string;
  contentType: string;
  sha256: string;
  originalFilename: string | null;
}

export interface ChunkRecord {
  id: string;
  chunk_index: number;
  text: string;
  parent_heading: string | null;
  page_number: number | null;
  element_type: string;
}

export interface LineageRecord {
  id: string;
  request_id: string | null;
  stage: string;
  detail: Record<string, unknown>;
  success: boolean;
  error_message: string | null;
  created_at: Date;
}

export interface DuplicateRecord {
  id: string;
  duplicate_type: 'exact' | 'near';
  phash_distance: number | null;
}

export interface DuplicateGroup {
  asset_id: string;
  duplicates: DuplicateRecord[];
}

export interface DeleteOutcome {
  /** the asset and its descendants, in the order they were found */
  deletedIds: string[];
  /** remaining assets whose duplicate role changed */
  changedIds: string[];
}

const BUSY_STATUSES: readonly AssetStatus[] = ['queued', 'processing'];

function parseJsonObject(value: unknown): Record<string, unknown> | null {
  const parsed = typeof value === 'string' ? (JSON.parse(value) as unknown) : value;
  return parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)
    ? (parsed as Record<string, unknown>)
    : null;
}

/** The original file name recorded at ingest, when there was one. */
function originalFilenameOf(metadata: unknown): string | null {
  const name = parseJsonObject(metadata)?.original_filename;
  return typeof name === 'string' && name !== '' ? name : null;
}

async function findAsset(db: Executor, assetId: string): Promise<ObjectAsset | undefined> {
  const row = await db
    .selectFrom('asset')
    .select([
      'id',
      'kind',
      'uri',
      'sha256',
      'content_type',
      'size_bytes',
      'owner',
      'comments',
      'status',
      'error_message',
      'cluster_id',
      'schema_id',
      'parent_asset_id',
      'raw_asset_id',
      'job_id',
      'position',
      'tags',
      'user_tags',
      'embedding_model',
      'perceptual_hash',
      'duplicate_of',
      'duplicate_type',
      'storage_id',
      'thumbnail_uri',
      'document',
      'json_batch',
      'metadata',
      'created_at',
      'updated_at',
      sql<number | null>`vector_dims(embedding)`.as('embedding_dimension'),
    ])
    .where('id', '=', assetId)
    .executeTakeFirst();
  if (row === undefined) return undefined;
  return {
    ...row,
    size_bytes: Number(row.size_bytes),
    embedding_dimension: row.embedding_dimension === null ? null : Number(row.embedding_dimension),
    metadata: parseJsonObject(row.metadata) ?? {},
    document: parseJsonObject(row.document),
  };
}

/** A JSON asset's document: the stored row's reconstruction, else its staged copy, else the document as received. */
async function jsonDocumentOf(
  db: Executor,
  asset: ObjectAsset,
  schema: Pick<SchemaRow, 'table_plan'> | undefined,
): Promise<Record<string, unknown> | null> {
  if (asset.storage_id !== null && schema !== undefined) {
    const plan = parseTablePlan(schema.table_plan);
    if (await dataTableExists(db, plan.name)) {
      const stored = await loadStoredDocument(db, schema, asset.storage_id);
      if (stored !== null) return stored;
    }
  }
  const staged = await db
    .selectFrom('json_staging')
    .select('doc')
    .where('asset_id', '=', asset.id)
    .executeTakeFirst();
  if (staged !== undefined) return parseJsonObject(staged.doc);
  return asset.document;
}

/** One asset with its children, cluster, raw upload, schema and (JSON) document; null when unknown. */
export async function loadObject(db: Executor, assetId: string): Promise<ObjectRecord | null> {
  const asset = await findAsset(db, assetId);
  if (asset === undefined) return null;
  const children = await db
    .selectFrom('asset')
    .select('id')
    .where('parent_asset_id', '=', assetId)
    .orderBy('position')
    .orderBy('created_at')
    .orderBy('id')
    .execute();
  const cluster =
    asset.cluster_id === null
      ? undefined
      : await db
          .selectFrom('cluster')
          .select(['id', 'name', 'provisional'])
          .where('id', '=', asset.cluster_id)
          .executeTakeFirst();
  const rawAsset =
    asset.raw_asset_id === null
      ? undefined
      : await db
          .selectFrom('asset_raw')
          .select(['id', 'uri', 'request_id', 'part_id'])
          .where('id', '=', asset.raw_asset_id)
          .executeTakeFirst();
  const schema =
    asset.schema_id === null
      ? undefined
      : await db
          .selectFrom('schema_def')
          .select(['id', 'name', 'storage_choice', 'status', 'ddl', 'table_plan'])
          .where('id', '=', asset.schema_id)
          .executeTakeFirst();
  return {
    asset,
    childIds: children.map((child) => child.id),
    cluster: cluster === undefined ? null : { ...cluster, provisional: Boolean(cluster.provisional) },
    rawAsset: rawAsset ?? null,
    schema:
      schema === undefined
        ? null
        : {
            id: schema.id,
            name: schema.name,
            storage_choice: schema.storage_choice,
            status: schema.status,
            ddl: schema.ddl,
          },
    document: asset.kind === 'json' ? await jsonDocumentOf(db, asset, schema) : null,
  };
}

/**
 * The stored bytes of a media or document asset: its final file, or the raw upload while it has none (queued,
 * processing or failed). Throws ObjectNotFoundError for unknown ids and ObjectKindError for JSON assets.
 */
export async function storedContent(db: Executor, assetId: string): Promise<StoredContent | null> {
  const asset = await db
    .selectFrom('asset')
    .leftJoin('asset_raw', 'asset_raw.id', 'asset.raw_asset_id')
    .select([
      'asset.kind',
      'asset.uri',
      'asset.content_type',
      'asset.sha256',
      'asset.metadata',
      'asset_raw.uri as raw_uri',
    ])
    .where('asset.id', '=', assetId)
    .executeTakeFirst();
  if (asset === undefined) throw new ObjectNotFoundError(`Object ${assetId} not found`);
  if (asset.kind === 'json')
    throw new ObjectKindError(
      `Object ${assetId} is a JSON document without file content; read its document from /api/v1/objects/${assetId}`,
    );
  const uri = asset.uri ?? asset.raw_uri;
  if (uri === null || !uri.startsWith('fs://')) return null;
  return {
    uri,
    contentType: asset.content_type,
    sha256: asset.sha256,
    originalFilename: originalFilenameOf(asset.metadata),
  };
}

/** The thumbnail URI of an asset (null when it has none); ObjectNotFoundError for unknown ids. */
export async function thumbnailUri(db: Executor, assetId: string): Promise<string | null> {
  const asset = await db
    .selectFrom('asset')
    .select('thumbnail_uri')
    .where('id', '=', assetId)
    .executeTakeFirst();
  if (asset === undefined) throw new ObjectNotFoundError(`Object ${assetId} not found`);
  return asset.thumbnail_uri;
}

/** A document's chunks in chunk order (a page of them) and their total; ObjectKindError for other kinds. */
export async function listChunks(
  db: Executor,
  assetId: string,
  page: { limit: number; offset: number },
): Promise<{ chunks: ChunkRecord[]; total: number }> {
  const asset = await db.selectFrom('asset').select('kind').where('id', '=', assetId).executeTakeFirst();
  if (asset === undefined) throw new ObjectNotFoundError(`Object ${assetId} not found`);
  if (asset.kind !== 'document')
    throw new ObjectKindError(`Object ${assetId} is a ${asset.kind} asset; only documents have chunks`);
  const chunks = await db
    .selectFrom('document_chunk')
    .select(['id', 'chunk_index', 'text', 'parent_heading', 'page_number', 'element_type'])
    .where('asset_id', '=', assetId)
    .orderBy('chunk_index')
    .limit(page.limit)
    .offset(page.offset)
    .execute();
  const count = await db
    .selectFrom('document_chunk')
    .select((eb) => eb.fn.countAll<number>().as('total'))
    .where('asset_id', '=', assetId)
    .executeTakeFirstOrThrow();
  return {
    chunks: chunks.map((chunk) => ({
      ...chunk,
      page_number: chunk.page_number === null ? null : Number(chunk.page_number),
    })),
    total: Number(count.total),
  };
}

/**
 * An asset's lineage in the order it was written. A deleted asset keeps its lineage, so it is still answered;
 * ObjectNotFoundError only when neither the asset nor any entry exists.
 */
export async function listLineage(db: Executor, assetId: string): Promise<LineageRecord[]> {
  const rows = await db
    .selectFrom('lineage')
    .select(['id', 'request_id', 'stage', 'detail', 'success', 'error_message', 'created_at'])
    .where('asset_id', '=', assetId)
    .orderBy('seq')
    .execute();
  if (rows.length === 0) {
    const asset = await db.selectFrom('asset').select('id').where('id', '=', assetId).executeTakeFirst();
    if (asset === undefined) throw new ObjectNotFoundError(`Object ${assetId} not found`);
  }
  return rows.map((row) => ({
    ...row,
    detail: parseJsonObject(row.detail) ?? {},
    success: Boolean(row.success),
  }));
}

function phashDistanceOf(type: 'exact' | 'near', metadata: unknown): number | null {
  if (type === 'exact') return 0;
  const distance = parseJsonObject(metadata)?.phash_distance;
  return typeof distance === 'number' ? distance : null;
}

/** §3.15: one group per original with duplicates (of `type` when given), newest originals first. */
export async function listDuplicateGroups(
  db: Executor,
  options: { type: 'exact' | 'near' | undefined; limit: number },
): Promise<DuplicateGroup[]> {
  const typeFilter = options.type === undefined ? sql`` : sql`and d.duplicate_type = ${options.type}`;
  const originals = await sql<{ id: string }>`
    select o.id from asset o
    where exists (select 1 from asset d where d.duplicate_of = o.id ${typeFilter})
    order by o.created_at desc, o.id desc
    limit ${options.limit}`.execute(db);
  const ids = originals.rows.map((row) => row.id);
  if (ids.length === 0) return [];
  let query = db
    .selectFrom('asset')
    .select(['id', 'duplicate_of', 'duplicate_type', 'metadata'])
    .where('duplicate_of', 'in', ids)
    .where('duplicate_type', 'is not', null);
  if (options.type !== undefined) query = query.where('duplicate_type', '=', options.type);
  const duplicates = await query.orderBy('created_at').orderBy('id').execute();
  const groups = new Map<string, DuplicateRecord[]>(ids.map((id) => [id, []]));
  for (const row of duplicates) {
    const type = row.duplicate_type as 'exact' | 'near';
    groups
      .get(row.duplicate_of as string)
      ?.push({ id: row.id, duplicate_type: type, phash_distance: phashDistanceOf(type, row.metadata) });
  }
  return ids.map((id) => ({ asset_id: id, duplicates: groups.get(id) ?? [] }));
}

// ----------------------------------------------------------------------------------------------- deletion

interface DeletedAsset {
  id: string;
  kind: AssetKind;
  status: AssetStatus;
  uri: string | null;
  thumbnail_uri: string | null;
  cluster_id: string | null;
  schema_id: string | null;
  storage_id: string | null;
  raw_asset_id: string | null;
  parent_asset_id: string | null;
  duplicate_type: 'exact' | 'near' | null;
}

interface FilePlan {
  uris: Set<string>;
  documentDirs: Set<string>;
}

/** The asset and every asset below it (a document's embedded media), locked for the deletion. */
async function lockTree(tx: Transaction<CatalogDatabase>, assetId: string): Promise<DeletedAsset[]> {
  const result = await sql<DeletedAsset>`
    with recursive tree (id, depth) as (
      select id, 0 from asset where id = ${assetId}
      union all
      select a.id, t.depth + 1 from asset a join tree t on a.parent_asset_id = t.id
    )
    select a.id, a.kind, a.status, a.uri, a.thumbnail_uri, a.cluster_id, a.schema_id, a.storage_id,
      a.raw_asset_id, a.parent_asset_id, a.duplicate_type
    from asset a join tree t on t.id = a.id
    order by t.depth, a.position, a.created_at, a.id
    for update of a`.execute(tx);
  return result.rows;
}

/**
 * Hands a deleted original's role to its earliest remaining exact duplicate (which already shares its file,
 * cluster and embedding); the other duplicates then point at that heir. Without an exact duplicate, near
 * duplicates of it stop being duplicates. Returns the ids whose rows changed and the heir (if any).
 */
async function reassignDuplicates(
  tx: Transaction<CatalogDatabase>,
  originalId: string,
  deleted: ReadonlySet<string>,
): Promise<{ heir: string | null; changed: string[] }> {
  const duplicates = (
    await tx
      .selectFrom('asset')
      .select(['id', 'duplicate_type'])
      .where('duplicate_of', '=', originalId)
      .orderBy('created_at')
      .orderBy('id')
      .execute()
  ).filter((row) => !deleted.has(row.id));
  if (duplicates.length === 0) return { heir: null, changed: [] };
  const heir = duplicates.find((row) => row.duplicate_type === 'exact')?.id ?? null;
  const others = duplicates.filter((row) => row.id !== heir).map((row) => row.id);
  if (heir !== null) {
    await tx
      .updateTable('asset')
      .set({ duplicate_of: null, duplicate_type: null, updated_at: sql<Date>`clock_timestamp()` })
      .where('id', '=', heir)
      .execute();
    if (others.length > 0)
      await tx
        .updateTable('asset')
        .set({ duplicate_of: heir, updated_at: sql<Date>`clock_timestamp()` })
        .where('id', 'in', others)
        .execute();
  } else {
    // Only near duplicates remain: with their original gone they are ordinary assets again.
    await tx
      .updateTable('asset')
      .set({
        duplicate_of: null,
        duplicate_type: null,
        metadata: sql<string>`metadata - 'phash_distance'`,
        updated_at: sql<Date>`clock_timestamp()`,
      })
      .where('id', 'in', others)
      .execute();
  }
  return { heir, changed: heir === null ? others : [heir, ...others] };
}

async function deleteJsonRows(
  tx: Transaction<CatalogDatabase>,
  assets: readonly DeletedAsset[],
): Promise<void> {
  for (const asset of assets) {
    if (asset.kind !== 'json' || asset.storage_id === null || asset.schema_id === null) continue;
    const schema = await tx
      .selectFrom('schema_def')
      .select('table_plan')
      .where('id', '=', asset.schema_id)
      .executeTakeFirst();
    if (schema !== undefined) await deleteStoredDocument(tx, schema, asset.storage_id);
  }
}

/** Files of the deleted assets that no remaining asset (or raw upload) references any more. */
async function unreferencedFiles(
  tx: Transaction<CatalogDatabase>,
  assets: readonly DeletedAsset[],
  rawUris: readonly string[],
): Promise<FilePlan> {
  const candidates = new Set<string>();
  for (const asset of assets) {
    for (const uri of [asset.uri, asset.thumbnail_uri]) if (uri?.startsWith('fs://')) candidates.add(uri);
  }
  for (const uri of rawUris) if (uri.startsWith('fs://')) candidates.add(uri);
  const plan: FilePlan = { uris: new Set(), documentDirs: new Set() };
  if (candidates.size > 0) {
    const list = [...candidates];
    const stillUsed = await sql<{ uri: string }>`
      select uri from asset where uri in (${sql.join(list)})
      union select thumbnail_uri from asset where thumbnail_uri in (${sql.join(list)})
      union select uri from asset_raw where uri in (${sql.join(list)})`.execute(tx);
    const used = new Set(stillUsed.rows.map((row) => row.uri));
    for (const uri of list) if (!used.has(uri)) plan.uris.add(uri);
  }
  for (const asset of assets) {
    if (asset.kind !== 'document') continue;
    const prefix = `fs://documents/${asset.id}/`;
    const other = await tx
      .selectFrom('asset')
      .select('id')
      .where(sql<boolean>`starts_with(uri, ${prefix})`)
      .executeTakeFirst();
    if (other === undefined) plan.documentDirs.add(`documents/${asset.id}`);
  }
  return plan;
}

/**
 * §3.10 DELETE: removes the asset, its chunks, frames, descendants, JSON row or staged document, and (after
 * the commit) every file no remaining asset references; an exact-duplicate original's role passes to its
 * earliest remaining duplicate; cluster centroids are recomputed; lineage `asset_deleted` per removed asset.
 * ObjectConflictError while any of them is queued or processing.
 */
export async function deleteObject(
  runtime: AllocatorRuntime,
  assetId: string,
  requestId: string | null,
): Promise<DeleteOutcome> {
  const { catalog, storage, logger } = runtime;
  const outcome = await runtime.clusterLock(async () => {
    const committed = await catalog.transaction().execute(async (tx) => {
      const assets = await lockTree(tx, assetId);
      if (assets.length === 0) throw new ObjectNotFoundError(`Object ${assetId} not found`);
      const busy = assets.find((asset) => BUSY_STATUSES.includes(asset.status));
      if (busy !== undefined)
        throw new ObjectConflictError(
          busy.id === assetId
            ? `Object ${assetId} is ${busy.status}; it can be deleted once its job has finished`
            : `Object ${assetId} has an embedded asset ${busy.id} that is ${busy.status}; it can be deleted once its job has finished`,
        );
      const ids = assets.map((asset) => asset.id);
      const deleted = new Set(ids);
      const changed = new Set<string>();
      const heirs = new Map<string, string>();
      for (const asset of assets) {
        if (asset.duplicate_type === 'exact') continue;
        const reassigned = await reassignDuplicates(tx, asset.id, deleted);
        for (const id of reassigned.changed) changed.add(id);
        if (reassigned.heir !== null) heirs.set(asset.id, reassigned.heir);
      }
      await deleteJsonRows(tx, assets);
      await tx.deleteFrom('json_staging').where('asset_id', 'in', ids).execute();
      await tx.deleteFrom('document_chunk').where('asset_id', 'in', ids).execute();
      await tx.deleteFrom('video_frame').where('asset_id', 'in', ids).execute();
      const lineage: LineageEntry[] = assets.map((asset) => ({
        requestId,
        assetId: asset.id,
        schemaId: asset.schema_id,
        stage: 'asset_deleted',
        detail: {
          kind: asset.kind,
          uri: asset.uri,
          cluster_id: asset.cluster_id,
          ...(asset.id === assetId ? {} : { deleted_with: assetId }),
          ...(heirs.has(asset.id) ? { duplicate_heir: heirs.get(asset.id) } : {}),
        },
      }));
      await recordLineage(tx, ...lineage);
      // Children reference their parent, so delete the deepest rows first.
      for (const asset of [...assets].reverse())
        await tx.deleteFrom('asset').where('id', '=', asset.id).execute();
      const rawIds = [
        ...new Set(assets.flatMap((asset) => (asset.raw_asset_id === null ? [] : [asset.raw_asset_id]))),
      ];
      const rawUris =
        rawIds.length === 0
          ? []
          : (
              await sql<{ uri: string }>`
                delete from asset_raw r
                where r.id in (${sql.join(rawIds)})
                  and not exists (select 1 from asset a where a.raw_asset_id = r.id)
                returning r.uri`.execute(tx)
            ).rows.map((row) => row.uri);
      const clusterIds = new Set(
        assets.flatMap((asset) => (asset.cluster_id === null ? [] : [asset.cluster_id])),
      );
      for (const clusterId of clusterIds) await recomputeCentroid(tx, clusterId);
      const files = await unreferencedFiles(tx, assets, rawUris);
      return { ids, changed: [...changed].filter((id) => !deleted.has(id)), files };
    });
    // The rows are gone; a file that cannot be removed now is only an orphan on disk, never a broken reference.
    for (const uri of committed.files.uris) {
      await storage.removeUri(uri).catch((error: unknown) => {
        logger.error({ err: error, uri }, 'could not remove a deleted object file');
      });
    }
    for (const dir of committed.files.documentDirs) {
      await storage.removeTree(dir).catch((error: unknown) => {
        logger.error({ err: error, dir }, 'could not remove a deleted document folder');
      });
    }
    return committed;
  });
  runtime.changes.assetsDeleted(outcome.ids);
  if (outcome.changed.length > 0) runtime.changes.assetsChanged(outcome.changed);
  return { deletedIds: outcome.ids, changedIds: outcome.changed };
}
