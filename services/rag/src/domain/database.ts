// The RAG database: PGlite in `${DATA_DIR}/pglite` (pgvector bundled) or a PostgreSQL server (DATABASE_URL).
// Core tables always; the embeddings table only where pgvector exists. Without pgvector, or when the stored
// embedding dimension differs from EMBEDDING_DIM, retrieval runs lexical-only and says so once in the log.
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type Database,
  isDatabaseUnavailable,
  type Migration,
  openDatabase,
  prepareEmbeddedDatabase,
  redactDatabaseUrl,
} from '@quintet/kernel/db';
import type { Logger } from '@quintet/kernel/log';
import { WatchedCache, WriteWatch } from '@quintet/kernel/write-watch';
import { type Kysely, sql } from 'kysely';
import type { RagConfig } from '../config-types.js';
import {
  RAG_MIGRATION_NAMESPACE,
  RAG_MIGRATIONS,
  RAG_VECTOR_MIGRATION_NAMESPACE,
  type RagDatabase,
  vectorMigrations,
} from './schema.js';

export interface RagDb {
  readonly kysely: Kysely<RagDatabase>;
  readonly dialect: 'pglite' | 'postgres';
  /** true when chunk_vectors exists and its dimension equals EMBEDDING_DIM: vector search and vector writes on */
  vectorEnabled: boolean;
  /** the dimension recorded with the embeddings table; null without pgvector */
  embeddingDim: number | null;
  /** writes made through `kysely`, per table (embedded database only: see WatchedCache); null on PostgreSQL */
  readonly writes: WriteWatch | null;
  ping(): Promise<void>;
  close(): Promise<void>;
}

const watchedCaches = new WeakMap<RagDb, Map<string, WatchedCache<unknown>>>();

/**
 * The cache called `name` of reads from `tables` on `db` (one per database handle): hits while none of the
 * tables has been written through the handle since; on PostgreSQL every read goes to the database.
 */
export function watchedCache<V>(
  db: RagDb,
  name: string,
  tables: readonly string[],
  maxEntries: number,
): WatchedCache<V> {
  let caches = watchedCaches.get(db);
  if (caches === undefined) {
    caches = new Map();
    watchedCaches.set(db, caches);
  }
  let cache = caches.get(name);
  if (cache === undefined) {
    cache = new WatchedCache<unknown>(db.writes, tables, maxEntries);
    caches.set(name, cache);
  }
  return cache as WatchedCache<V>;
}

export type RagDatabaseConfig = Pick<
  RagConfig,
  'databaseUrl' | 'dataDir' | 'embeddingDim' | 'runMigrations' | 'dbPoolSize' | 'dbMaxOverflow'
>;

export interface OpenRagDatabaseOptions {
  /** embedded PGlite in memory instead of `${dataDir}/pglite` (tests, throwaway runs) */
  inMemory?: boolean;
}

/** The database cannot be reached (refused, reset, closed): HTTP 503 `{"detail":"Database unavailable"}`. */
export class DatabaseUnavailableError extends Error {
  constructor(cause?: unknown) {
    super('Database unavailable', { cause });
    this.name = 'DatabaseUnavailableError';
  }
}

/** Migrations are pending while RUN_MIGRATIONS=false: start-up stops with this message. */
export class MigrationsPendingError extends Error {
  constructor(readonly pending: string[]) {
    super(
      `Database migrations are not applied (${pending.join(', ')}) and RUN_MIGRATIONS=false: run 'rag-assistant migrate' first`,
    );
    this.name = 'MigrationsPendingError';
  }
}

/** Rethrows connection-level failures as DatabaseUnavailableError, anything else unchanged. */
export function toDatabaseError(error: unknown): unknown {
  if (error instanceof DatabaseUnavailableError) return error;
  return isDatabaseUnavailable(error) ? new DatabaseUnavailableError(error) : error;
}

/** Runs `work`, turning connection-level failures into DatabaseUnavailableError. */
export async function guardDatabase<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    throw toDatabaseError(error);
  }
}

/** `postgresql+psycopg2://` (the original's SQLAlchemy form) → `postgresql://`. */
export function normalizeDatabaseUrl(url: string): string {
  return url.replace(/^postgres(?:ql)?\+[a-z0-9_]+:\/\//i, 'postgresql://');
}

export const VECTOR_EXTENSION_MISSING_MESSAGE =
  'pgvector is not installed on this PostgreSQL server: retrieval runs lexical-only until CREATE EXTENSION vector succeeds';

/** Opens the database, applies (or, with RUN_MIGRATIONS=false, checks) migrations and decides the vector mode. */
export async function openRagDatabase(
  config: RagDatabaseConfig,
  logger: Logger,
  options: OpenRagDatabaseOptions = {},
): Promise<RagDb> {
  let database: Database<RagDatabase>;
  let pgvector: boolean;
  if (config.databaseUrl !== undefined) {
    const url = normalizeDatabaseUrl(config.databaseUrl);
    database = await openDatabase<RagDatabase>({
      url,
      poolSize: config.dbPoolSize + config.dbMaxOverflow,
      applicationName: 'rag-assistant',
      logger,
    }).catch((error: unknown) => {
      throw toDatabaseError(error);
    });
    try {
      pgvector = await ensureVectorExtension(database, logger, redactDatabaseUrl(url));
    } catch (error) {
      await database.close().catch(() => {});
      throw toDatabaseError(error);
    }
  } else {
    const dataDir = options.inMemory ? undefined : join(config.dataDir, 'pglite');
    if (dataDir !== undefined && config.runMigrations) await createEmbeddedDatabase(dataDir, config, logger);
    database = await openDatabase<RagDatabase>({
      ...(dataDir === undefined ? {} : { dataDir }),
      vector: true,
      logger,
    });
    pgvector = true;
  }
  try {
    return await prepare(database, config, logger, pgvector);
  } catch (error) {
    await database.close().catch(() => {});
    throw toDatabaseError(error);
  }
}

/**
 * Where the build puts the migrated template of the embedded database (scripts/build-pglite-template.mjs):
 * services/rag/dist/, from the sources (tests) and from the build alike.
 */
export const EMBEDDED_TEMPLATE_DIR = fileURLToPath(new URL('../../dist/', import.meta.url));

/** The migrations of a new embedded database, in the order they apply. */
export function embeddedMigrationSets(
  embeddingDim: number,
): { namespace: string; migrations: readonly Migration[] }[] {
  return [
    { namespace: RAG_MIGRATION_NAMESPACE, migrations: RAG_MIGRATIONS },
    { namespace: RAG_VECTOR_MIGRATION_NAMESPACE, migrations: vectorMigrations(embeddingDim, false) },
  ];
}

/**
 * A new embedded database is the build's migrated template unpacked (for the default EMBEDDING_DIM), or is
 * created and migrated by a short-lived child process, so that the serving process opens a finished database
 * and never holds the memory creating it takes.
 */
async function createEmbeddedDatabase(
  dataDir: string,
  config: RagDatabaseConfig,
  logger: Logger,
): Promise<void> {
  const applied = await prepareEmbeddedDatabase(
    { dataDir, vector: true, migratedTemplateDir: EMBEDDED_TEMPLATE_DIR, logger },
    embeddedMigrationSets(config.embeddingDim),
  );
  if (applied.length > 0) logger.info({ event: 'migrations_applied', applied }, 'migrations applied');
}

async function ensureVectorExtension(
  database: Database<RagDatabase>,
  logger: Logger,
  where: string,
): Promise<boolean> {
  try {
    await sql`create extension if not exists vector`.execute(database.kysely);
    return true;
  } catch (error) {
    if (isDatabaseUnavailable(error)) throw error;
    logger.error(
      { event: 'vector_extension_missing', database: where, reason: (error as Error).message },
      VECTOR_EXTENSION_MISSING_MESSAGE,
    );
    return false;
  }
}

async function prepare(
  database: Database<RagDatabase>,
  config: RagDatabaseConfig,
  logger: Logger,
  pgvector: boolean,
): Promise<RagDb> {
  // HNSW only on a server: building it in WASM is slow, and PGlite data sets are small enough for exact scans.
  const vectorSet = pgvector ? vectorMigrations(config.embeddingDim, database.dialect === 'postgres') : [];
  if (config.runMigrations) {
    const applied = await database.migrate(RAG_MIGRATION_NAMESPACE, RAG_MIGRATIONS);
    const appliedVector = pgvector ? await database.migrate(RAG_VECTOR_MIGRATION_NAMESPACE, vectorSet) : [];
    if (applied.length + appliedVector.length > 0)
      logger.info(
        { event: 'migrations_applied', applied: [...applied, ...appliedVector] },
        'migrations applied',
      );
  } else {
    const pending = [
      ...(await pendingMigrations(database.kysely, RAG_MIGRATION_NAMESPACE, RAG_MIGRATIONS)),
      ...(await pendingMigrations(database.kysely, RAG_VECTOR_MIGRATION_NAMESPACE, vectorSet)),
    ];
    if (pending.length > 0) throw new MigrationsPendingError(pending);
  }

  const storedDim = pgvector ? await recordedEmbeddingDim(database.kysely) : null;
  let vectorEnabled = pgvector && storedDim !== null;
  if (storedDim !== null && storedDim !== config.embeddingDim) {
    vectorEnabled = false;
    logger.error(
      { event: 'embedding_dimension_mismatch', stored_dim: storedDim, configured_dim: config.embeddingDim },
      `The stored embeddings have ${storedDim} dimensions but EMBEDDING_DIM is ${config.embeddingDim}: retrieval runs lexical-only until 'rag-assistant reindex --all' has run`,
    );
  }
  // Embedded: this process is the database's only writer, so reads of rarely written tables can be cached.
  const writes = database.dialect === 'pglite' ? new WriteWatch() : null;
  return {
    kysely: writes === null ? database.kysely : database.kysely.withPlugin(writes),
    dialect: database.dialect,
    writes,
    vectorEnabled,
    embeddingDim: storedDim,
    ping: () => database.ping(),
    close: () => database.close(),
  };
}

async function pendingMigrations(
  kysely: Kysely<RagDatabase>,
  namespace: string,
  migrations: readonly Migration[],
): Promise<string[]> {
  if (migrations.length === 0) return [];
  const { rows: table } = await sql<{ exists: boolean }>`
    select to_regclass('quintet_migrations') is not null as exists`.execute(kysely);
  const applied = new Set<string>();
  if (table[0]?.exists) {
    const { rows } = await sql<{ name: string }>`
      select name from quintet_migrations where namespace = ${namespace}`.execute(kysely);
    for (const row of rows) applied.add(row.name);
  }
  return migrations.filter((migration) => !applied.has(migration.name)).map((m) => `${namespace}/${m.name}`);
}

async function recordedEmbeddingDim(kysely: Kysely<RagDatabase>): Promise<number | null> {
  const { rows } = await sql<{ value: string | null; has_table: boolean }>`
    select (select value from app_meta where key = 'embedding_dim') as value,
           to_regclass('chunk_vectors') is not null as has_table`.execute(kysely);
  const row = rows[0];
  if (!row?.has_table || row.value === null) return null;
  const dim = Number.parseInt(row.value, 10);
  return Number.isInteger(dim) ? dim : null;
}

/**
 * Re-creates the embeddings table for `dim` dimensions (EMBEDDING_DIM changed): every stored vector is dropped,
 * so every document must be re-indexed afterwards (`rag-assistant reindex --all`). Vector search is back on.
 */
export async function resetVectorDimension(db: RagDb, dim: number): Promise<void> {
  if (db.embeddingDim === null) throw new Error('The database has no embeddings table (pgvector missing)');
  if (!Number.isInteger(dim) || dim < 1) throw new Error(`Invalid embedding dimension ${dim}`);
  await db.kysely.transaction().execute(async (trx) => {
    await sql`delete from chunk_vectors`.execute(trx);
    await sql.raw(`alter table chunk_vectors alter column embedding type vector(${dim})`).execute(trx);
    await sql`update app_meta set value = ${String(dim)} where key = 'embedding_dim'`.execute(trx);
  });
  db.embeddingDim = dim;
  db.vectorEnabled = true;
}
