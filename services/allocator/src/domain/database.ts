// The catalog database (spec §3.18): PGlite under DATA_DIR/pglite with its bundled pgvector, or a PostgreSQL
// server with pgvector (DATABASE_URL). Migrations are the SQL files of services/allocator/migrations.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type Database,
  type Migration,
  type OpenDatabaseOptions,
  openDatabase,
  prepareEmbeddedDatabase,
  redactDatabaseUrl,
} from '@quintet/kernel/db';
import type { Logger } from '@quintet/kernel/log';
import { type ColumnType, type Generated, type Kysely, sql } from 'kysely';

type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;
type NullableTimestamp = ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
type Json<T = unknown> = ColumnType<T, string, string>;
type TextArray = ColumnType<string[], string[] | undefined, string[]>;
/** pgvector columns are written as '[x,y,…]' text and read back as that text */
type Vector = ColumnType<string | null, string | null | undefined, string | null>;

export interface ClusterTable {
  id: string;
  name: string;
  centroid: Vector;
  threshold: number;
  provisional: Generated<boolean>;
  metadata: Json<Record<string, unknown>>;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface SchemaDefTable {
  id: string;
  name: string;
  structure_hash: string;
  storage_choice: 'sql' | 'jsonb';
  version: Generated<number>;
  ddl: string;
  status: 'provisional' | 'active' | 'rejected';
  confidence: number;
  sample_size: number;
  field_stability: number;
  type_stability: number;
  max_depth: number;
  top_level_keys: number;
  has_array_of_objects: boolean;
  fields: Json<Record<string, unknown>>;
  table_plan: Json<unknown>;
  decision_reason: string;
  reviewed_by: string | null;
  reviewed_at: NullableTimestamp;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface AssetRawTable {
  id: string;
  request_id: string;
  part_id: string;
  uri: string;
  size_bytes: number;
  content_type: string;
  created_at: Timestamp;
}

export type AssetKind = 'media' | 'json' | 'document';
export type AssetStatus = 'queued' | 'processing' | 'done' | 'failed' | 'pending_review';

export interface AssetTable {
  id: string;
  kind: AssetKind;
  uri: string | null;
  sha256: string;
  content_type: string;
  size_bytes: number;
  owner: string | null;
  comments: string | null;
  status: AssetStatus;
  error_message: string | null;
  cluster_id: string | null;
  schema_id: string | null;
  parent_asset_id: string | null;
  raw_asset_id: string | null;
  job_id: string | null;
  position: Generated<number>;
  tags: TextArray;
  user_tags: TextArray;
  embedding: Vector;
  embedding_model: string | null;
  perceptual_hash: string | null;
  duplicate_of: string | null;
  duplicate_type: 'exact' | 'near' | null;
  storage_id: string | null;
  thumbnail_uri: string | null;
  /** a JSON asset's document as received (source of staged/failed reconstruction) */
  document: ColumnType<Record<string, unknown> | null, string | null | undefined, string | null>;
  /** JSON assets of one analysed batch share this key ('payload' or the JSON file's part id) */
  json_batch: string | null;
  metadata: Json<Record<string, unknown>>;
  search_tokens: TextArray;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface JsonStagingTable {
  asset_id: string;
  schema_id: string;
  doc: Json<Record<string, unknown>>;
  created_at: Timestamp;
}

export interface LineageTable {
  id: string;
  request_id: string | null;
  asset_id: string | null;
  schema_id: string | null;
  stage: string;
  detail: Json<Record<string, unknown>>;
  success: Generated<boolean>;
  error_message: string | null;
  created_at: Timestamp;
  seq: Generated<number>;
}

export interface VideoFrameTable {
  id: string;
  asset_id: string;
  frame_idx: number;
  timestamp_ms: number;
  embedding: Vector;
}

export interface DocumentChunkTable {
  id: string;
  asset_id: string;
  chunk_index: number;
  text: string;
  parent_heading: string | null;
  page_number: number | null;
  element_type: Generated<string>;
  embedding: Vector;
  embedding_model: string | null;
  search_tokens: TextArray;
}

export type BatchStatus = 'pending' | 'processing' | 'completed' | 'failed';

export interface IngestionBatchTable {
  id: string;
  request_id: string;
  status: BatchStatus;
  total_files: number;
  processed_files: Generated<number>;
  failed_files: Generated<number>;
  metadata: Json<Record<string, unknown>>;
  job_ids: ColumnType<string[], string[] | undefined, string[]>;
  callback_url: string | null;
  created_at: Timestamp;
  updated_at: Timestamp;
  started_at: NullableTimestamp;
  completed_at: NullableTimestamp;
}

export type JobType = 'media' | 'json' | 'mixed';
export type JobStatus = 'queued' | 'processing' | 'done' | 'failed';

export interface JobTable {
  id: string;
  request_id: string;
  fingerprint: string;
  job_type: JobType;
  status: JobStatus;
  priority: number;
  job_data: Json<Record<string, unknown>>;
  asset_ids: ColumnType<string[], string[], string[]>;
  owner: string | null;
  retry_count: Generated<number>;
  max_retries: number;
  next_retry_at: NullableTimestamp;
  lease_until: NullableTimestamp;
  dead_letter: Generated<boolean>;
  dead_lettered_at: NullableTimestamp;
  discarded_at: NullableTimestamp;
  error_message: string | null;
  callback_url: string | null;
  batch_id: string | null;
  created_at: Timestamp;
  updated_at: Timestamp;
  started_at: NullableTimestamp;
  completed_at: NullableTimestamp;
}

export interface CatalogDatabase {
  cluster: ClusterTable;
  schema_def: SchemaDefTable;
  asset_raw: AssetRawTable;
  asset: AssetTable;
  json_staging: JsonStagingTable;
  lineage: LineageTable;
  video_frame: VideoFrameTable;
  document_chunk: DocumentChunkTable;
  ingestion_batch: IngestionBatchTable;
  job: JobTable;
}

export type Catalog = Kysely<CatalogDatabase>;

export const MIGRATION_NAMESPACE = 'allocator';
const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations/', import.meta.url));

/** The catalog migrations of services/allocator/migrations, in file-name order, with EMBEDDING_DIM filled in. */
export function catalogMigrations(embeddingDim: number): Migration[] {
  return readdirSync(MIGRATIONS_DIR)
    .filter((name) => name.endsWith('.sql'))
    .sort()
    .map((name) => ({
      name: name.replace(/\.sql$/, ''),
      sql: readFileSync(join(MIGRATIONS_DIR, name), 'utf8').replaceAll(
        '{{EMBEDDING_DIM}}',
        String(embeddingDim),
      ),
    }));
}

/** The migrations of a new embedded catalog, as `prepareEmbeddedDatabase` takes them. */
export function catalogMigrationSets(embeddingDim: number): { namespace: string; migrations: Migration[] }[] {
  return [{ namespace: MIGRATION_NAMESPACE, migrations: catalogMigrations(embeddingDim) }];
}

/**
 * Where the build puts the embedded catalog's migrated template (scripts/build-pglite-template.mjs):
 * services/allocator/dist/, from the sources (tests) and from the build alike.
 */
export const EMBEDDED_TEMPLATE_DIR = fileURLToPath(new URL('../../dist/', import.meta.url));

/** Start-up refused: the catalog cannot be used as configured. */
export class CatalogRefusedError extends Error {
  override readonly name = 'CatalogRefusedError';
}

export interface CatalogOptions {
  databaseUrl: string | undefined;
  /** PGlite data directory (DATA_DIR/pglite); undefined → in memory */
  pgliteDir: string | undefined;
  poolSize: number;
  embeddingDim: number;
  logger?: Logger;
  /** every query's kind and duration (db_query_duration_seconds) */
  onQuery?: OpenDatabaseOptions['onQuery'];
}

/**
 * A new embedded catalog (no database in `pgliteDir` yet) is the build's migrated template unpacked (for the
 * default EMBEDDING_DIM), or is created and migrated by a short-lived child process, so that the serving
 * process opens a finished database and never holds the memory creating it takes (spec S2: idle RSS). Anything
 * else is left to openCatalog and migrateCatalog.
 */
export async function prepareNewCatalog(options: CatalogOptions): Promise<void> {
  const dataDir = options.pgliteDir;
  if (options.databaseUrl !== undefined || dataDir === undefined) return;
  const applied = await prepareEmbeddedDatabase(
    {
      dataDir,
      vector: true,
      migratedTemplateDir: EMBEDDED_TEMPLATE_DIR,
      ...(options.logger === undefined ? {} : { logger: options.logger }),
    },
    catalogMigrationSets(options.embeddingDim),
  );
  if (applied.length > 0) options.logger?.info({ migrations: applied }, 'catalog created');
}

/** Opens the catalog database with pgvector; PostgreSQL without pgvector is refused with a clear message. */
export async function openCatalog(options: CatalogOptions): Promise<Database<CatalogDatabase>> {
  try {
    return await openDatabase<CatalogDatabase>({
      ...(options.databaseUrl === undefined ? {} : { url: options.databaseUrl }),
      ...(options.pgliteDir === undefined ? {} : { dataDir: options.pgliteDir }),
      vector: true,
      poolSize: options.poolSize,
      applicationName: 'file-allocator',
      ...(options.logger === undefined ? {} : { logger: options.logger }),
      ...(options.onQuery === undefined ? {} : { onQuery: options.onQuery }),
    });
  } catch (error) {
    const message = (error as Error).message ?? '';
    if (options.databaseUrl !== undefined && message.includes('vector extension')) {
      const url = new URL(options.databaseUrl);
      throw new CatalogRefusedError(
        `PostgreSQL at ${url.host}${url.pathname} lacks the pgvector extension: install pgvector (e.g. the pgvector/pgvector:pg16 image) or unset DATABASE_URL to use the embedded database`,
        { cause: error },
      );
    }
    if (options.databaseUrl === undefined && options.pgliteDir !== undefined) {
      throw new CatalogRefusedError(
        `cannot open the embedded database in ${options.pgliteDir}: ${message} (the directory was left untouched)`,
        { cause: error },
      );
    }
    if (options.databaseUrl !== undefined)
      throw new CatalogRefusedError(
        `cannot connect to the database ${redactDatabaseUrl(options.databaseUrl)}: ${message}`,
        { cause: error },
      );
    throw error;
  }
}

/** Applies pending migrations, then checks the catalog's vector dimension against EMBEDDING_DIM. */
export async function migrateCatalog(
  database: Database<CatalogDatabase>,
  embeddingDim: number,
): Promise<string[]> {
  const applied = await database.migrate(MIGRATION_NAMESPACE, catalogMigrations(embeddingDim));
  const stored = await catalogEmbeddingDimension(database.kysely);
  if (stored !== null && stored !== embeddingDim)
    throw new CatalogRefusedError(
      `EMBEDDING_DIM=${embeddingDim} but the catalog stores ${stored}-dimensional embeddings: set EMBEDDING_DIM=${stored}, or migrate the column and run 'file-allocator reembed'`,
    );
  return applied;
}

/** The dimension of asset.embedding as created (atttypmod of a vector column is its dimension). */
export async function catalogEmbeddingDimension(db: Catalog): Promise<number | null> {
  const result = await sql<{ dim: number }>`
    select a.atttypmod as dim from pg_attribute a
    join pg_class c on c.oid = a.attrelid
    join pg_namespace n on n.oid = c.relnamespace
    where c.relname = 'asset' and a.attname = 'embedding' and n.nspname = current_schema()`.execute(db);
  const dim = result.rows[0]?.dim;
  return dim === undefined || dim < 0 ? null : Number(dim);
}

/** Names of applied and pending migrations (`file-allocator migrate --status`). */
export async function migrationStatus(
  db: Catalog,
  embeddingDim: number,
): Promise<{ applied: string[]; pending: string[] }> {
  const all = catalogMigrations(embeddingDim).map((migration) => migration.name);
  let applied: string[] = [];
  try {
    const result = await sql<{ name: string }>`
      select name from quintet_migrations where namespace = ${MIGRATION_NAMESPACE} order by name`.execute(db);
    applied = result.rows.map((row) => row.name);
  } catch {
    applied = [];
  }
  return { applied, pending: all.filter((name) => !applied.includes(name)) };
}

/** '[x,y,…]' — the text form pgvector accepts. */
export function toVectorLiteral(vector: ArrayLike<number>): string {
  return `[${Array.from(vector, (value) => (Number.isFinite(value) ? value : 0)).join(',')}]`;
}

/** Parses pgvector's text form back to numbers. */
export function parseVector(text: string | null): Float32Array | null {
  if (text === null) return null;
  const body = text.trim().replace(/^\[/, '').replace(/\]$/, '');
  if (body === '') return new Float32Array(0);
  return Float32Array.from(body.split(','), Number);
}
