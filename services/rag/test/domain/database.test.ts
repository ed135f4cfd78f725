import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { testDatabaseUrl } from '@quintet/kernel/testing';
import { sql } from 'kysely';
import { afterAll, describe, expect, it } from 'vitest';
import {
  DatabaseUnavailableError,
  guardDatabase,
  MigrationsPendingError,
  normalizeDatabaseUrl,
  openRagDatabase,
  resetVectorDimension,
  VECTOR_EXTENSION_MISSING_MESSAGE,
} from '../../src/domain/database.js';
import { listStoreDocuments } from '../../src/domain/documents.js';
import { RAG_MIGRATIONS } from '../../src/domain/schema.js';
import { capturingLogger, postgresBackend, testConfig } from './rag-fixtures.js';

const serverUrl = await testDatabaseUrl();
const roots: string[] = [];
afterAll(() => {
  for (const root of roots) rmSync(root, { recursive: true, force: true });
});

function tempDataDir(): string {
  const root = mkdtempSync(join(tmpdir(), 'rag-db-'));
  roots.push(root);
  return root;
}

async function indexNames(db: Awaited<ReturnType<typeof openRagDatabase>>): Promise<string[]> {
  const { rows } = await sql<{ indexname: string }>`
    select indexname from pg_indexes where tablename in ('chunks', 'chunk_vectors') order by indexname`.execute(
    db.kysely,
  );
  return rows.map((row) => row.indexname);
}

describe('openRagDatabase on PGlite', () => {
  it('creates the schema with the embeddings table (exact scan, no HNSW) and records the dimension', async () => {
    const db = await openRagDatabase(testConfig(), capturingLogger().logger, { inMemory: true });
    try {
      expect(db.dialect).toBe('pglite');
      expect(db.vectorEnabled).toBe(true);
      expect(db.embeddingDim).toBe(384);
      expect(await indexNames(db)).toEqual([
        'chunk_vectors_pkey',
        'chunk_vectors_store',
        'chunks_document',
        'chunks_pkey',
        'chunks_store',
      ]);
      const meta = await db.kysely.selectFrom('app_meta').selectAll().execute();
      expect(meta).toEqual([{ key: 'embedding_dim', value: '384' }]);
      await db.ping();
    } finally {
      await db.close();
    }
  });

  it('keeps data in DATA_DIR/pglite and turns vector search off on an EMBEDDING_DIM mismatch until reset', async () => {
    const dataDir = tempDataDir();
    const first = await openRagDatabase(testConfig({ dataDir }), capturingLogger().logger);
    await first.kysely.insertInto('users').values({ email: 'kept@example.com' }).execute();
    await first.close();

    const { logger, lines } = capturingLogger();
    const second = await openRagDatabase(testConfig({ dataDir, embeddingDim: 256 }), logger);
    try {
      expect(await second.kysely.selectFrom('users').select('email').execute()).toEqual([
        { email: 'kept@example.com' },
      ]);
      expect(second.vectorEnabled).toBe(false);
      expect(second.embeddingDim).toBe(384);
      const mismatch = lines.find((line) => line.event === 'embedding_dimension_mismatch');
      expect(mismatch).toMatchObject({ level: 'error', stored_dim: 384, configured_dim: 256 });

      await resetVectorDimension(second, 256);
      expect(second.vectorEnabled).toBe(true);
      expect(second.embeddingDim).toBe(256);
      const { rows } = await sql<{ type: string }>`
        select format_type(atttypid, atttypmod) as type from pg_attribute
        where attrelid = 'chunk_vectors'::regclass and attname = 'embedding'`.execute(second.kysely);
      expect(rows[0]?.type).toBe('vector(256)');
    } finally {
      await second.close();
    }
    const third = await openRagDatabase(testConfig({ dataDir, embeddingDim: 256 }), capturingLogger().logger);
    expect(third.vectorEnabled).toBe(true);
    await third.close();
  });

  it('with RUN_MIGRATIONS=false refuses a database whose migrations are not applied, naming them', async () => {
    const pendingNames = [...RAG_MIGRATIONS.map((m) => `rag/${m.name}`), 'rag_vector/001_chunk_vectors'].join(
      ', ',
    );
    expect(pendingNames).toMatch(/^rag\/001_core, /);
    const attempt = openRagDatabase(testConfig({ runMigrations: false }), capturingLogger().logger, {
      inMemory: true,
    });
    await expect(attempt).rejects.toBeInstanceOf(MigrationsPendingError);
    await expect(attempt).rejects.toThrow(
      `Database migrations are not applied (${pendingNames}) and RUN_MIGRATIONS=false: run 'rag-assistant migrate' first`,
    );
  });

  it('turns queries on a closed database into DatabaseUnavailableError', async () => {
    const db = await openRagDatabase(testConfig(), capturingLogger().logger, { inMemory: true });
    await db.close();
    await expect(listStoreDocuments(db, 1, 1)).rejects.toBeInstanceOf(DatabaseUnavailableError);
    await expect(guardDatabase(() => db.ping())).rejects.toThrow('Database unavailable');
    // Other errors pass through unchanged.
    await expect(guardDatabase(async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
  });
});

describe('database URLs', () => {
  it('accepts the original postgresql+psycopg2:// scheme', () => {
    expect(normalizeDatabaseUrl('postgresql+psycopg2://u:p@db:5432/rag')).toBe(
      'postgresql://u:p@db:5432/rag',
    );
    expect(normalizeDatabaseUrl('postgres://u@db/rag')).toBe('postgres://u@db/rag');
  });

  it('reports an unreachable server as DatabaseUnavailableError', async () => {
    const attempt = openRagDatabase(
      testConfig({ databaseUrl: 'postgres://postgres@127.0.0.1:1/none' }),
      capturingLogger().logger,
    );
    await expect(attempt).rejects.toBeInstanceOf(DatabaseUnavailableError);
  });
});

describe.skipIf(serverUrl === null)('openRagDatabase on PostgreSQL without pgvector', () => {
  const backend = postgresBackend(serverUrl ?? '');
  afterAll(() => backend.cleanup());

  it('runs lexical-only and says why in one error line', async () => {
    const { logger, lines } = capturingLogger();
    const db = await backend.open({}, logger);
    try {
      expect(db.dialect).toBe('postgres');
      expect(db.vectorEnabled).toBe(false);
      expect(db.embeddingDim).toBeNull();
      const missing = lines.filter((line) => line.event === 'vector_extension_missing');
      expect(missing).toHaveLength(1);
      expect(missing[0]).toMatchObject({ level: 'error', msg: VECTOR_EXTENSION_MISSING_MESSAGE });
      expect(JSON.stringify(missing[0])).not.toContain('password');
      // Lexical retrieval needs no index of its own: the postings are read into memory (no GIN on `terms`).
      expect(await indexNames(db)).toEqual(['chunks_document', 'chunks_pkey', 'chunks_store']);
      await db.ping();
    } finally {
      await db.close();
    }
  });

  it('opens with RUN_MIGRATIONS=false once migrated, through a postgresql+psycopg2:// URL', async () => {
    await (await backend.open()).close();
    const legacyUrl = (backend.url ?? '').replace(/^postgres(ql)?:/, 'postgresql+psycopg2:');
    expect(legacyUrl).toMatch(/^postgresql\+psycopg2:\/\//);
    const db = await backend.open({ databaseUrl: legacyUrl, runMigrations: false });
    try {
      expect(await db.kysely.selectFrom('documents').select('id').execute()).toEqual([]);
    } finally {
      await db.close();
    }
  });
});
