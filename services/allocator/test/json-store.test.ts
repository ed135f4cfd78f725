// The JSON storage pipeline on an in-memory catalog: batches are inserted as a job's assets, processed with
// processJsonBatch, and the catalog, the json_data tables and the lineage are checked directly.
import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import type { Database } from '@quintet/kernel/db';
import { sql } from 'kysely';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { type CatalogDatabase, migrateCatalog, openCatalog } from '../src/domain/database.js';
import { canonicalJson, sha256Hex } from '../src/domain/json/canonical.js';
import { deleteStoredDocument, loadStoredDocument, processJsonBatch } from '../src/domain/json-store.js';
import { createAllocatorMetrics } from '../src/domain/metrics.js';
import {
  approveSchema,
  DdlExecutionError,
  getSchema,
  listSchemaRecords,
  listSchemas,
  rejectSchema,
  SchemaNameTakenError,
  SchemaNotFoundError,
  SchemaNotProvisionalError,
} from '../src/domain/schemas.js';
import type { AllocatorRuntime } from '../src/runtime.js';
import { createAllocatorLogger } from '../src/server.js';

type Doc = Record<string, unknown>;

const STABLE_USERS: Doc[] = [
  { id: 1, name: 'Alice Smith', email: 'alice@example.com', age: 30, active: true },
  { id: 2, name: 'Bob Jones', email: 'bob@example.com', age: 25, active: false },
  { id: 3, name: 'Carol White', email: 'carol@example.com', age: 41, active: true },
  { id: 4, name: 'Dan Brown', email: 'dan@example.com', age: 35, active: true },
  { id: 5, name: 'Eve Black', email: 'eve@example.com', age: 28, active: false },
];

const COMPLEX_ORDERS: Doc[] = [
  { order_id: 'o-1', items: [{ sku: 'a', qty: 1 }], customer: { name: 'Ann' } },
  {
    order_id: 'o-2',
    items: [
      { sku: 'b', qty: 2 },
      { sku: 'c', qty: 1 },
    ],
    customer: { name: 'Ben' },
  },
];

let database: Database<CatalogDatabase>;
let changed: string[] = [];

function makeRuntime(env: Record<string, string> = {}): AllocatorRuntime {
  const config = loadConfig({ EMBEDDING_MODEL: 'builtin', ...env });
  const sink = new Writable({ write: (_chunk, _encoding, callback) => callback() });
  return {
    config,
    logger: createAllocatorLogger(config, sink),
    database,
    catalog: database.kysely,
    metrics: createAllocatorMetrics(),
    changes: {
      assetsChanged: (ids: readonly string[]) => changed.push(...ids),
      assetsDeleted: () => {},
      onChange: () => () => {},
    },
    clusterLock: (work) => work(),
  } as Partial<AllocatorRuntime> as AllocatorRuntime;
}

interface InsertedJob {
  jobId: string;
  requestId: string;
  assetIds: string[];
}

/** A job with one JSON batch, as ingest leaves it. */
async function insertJob(documents: Doc[], options: { comments?: string } = {}): Promise<InsertedJob> {
  const db = database.kysely;
  const jobId = randomUUID();
  const requestId = randomUUID();
  const assetIds = documents.map(() => randomUUID());
  await db
    .insertInto('job')
    .values({
      id: jobId,
      request_id: requestId,
      fingerprint: randomUUID(),
      job_type: 'json',
      status: 'processing',
      priority: 0,
      job_data: JSON.stringify({ comments: options.comments ?? null }),
      asset_ids: assetIds,
      max_retries: 3,
      created_at: new Date(),
      updated_at: new Date(),
    })
    .execute();
  await db
    .insertInto('asset')
    .values(
      documents.map((document, position) => ({
        id: assetIds[position] as string,
        kind: 'json' as const,
        sha256: sha256Hex(canonicalJson(document)),
        content_type: 'application/json',
        size_bytes: Buffer.byteLength(canonicalJson(document)),
        comments: options.comments ?? null,
        status: 'queued' as const,
        job_id: jobId,
        position,
        document: JSON.stringify(document),
        json_batch: 'payload',
        metadata: '{}',
        created_at: new Date(),
        updated_at: new Date(),
      })),
    )
    .execute();
  return { jobId, requestId, assetIds };
}

async function runBatch(
  runtime: AllocatorRuntime,
  job: InsertedJob,
  hint: string | null = null,
): Promise<void> {
  await processJsonBatch(runtime, { jobId: job.jobId, requestId: job.requestId, batchKey: 'payload', hint });
}

async function assetsOf(job: InsertedJob) {
  const rows = await database.kysely
    .selectFrom('asset')
    .selectAll()
    .where('job_id', '=', job.jobId)
    .orderBy('position')
    .execute();
  return rows;
}

async function stages(assetId: string): Promise<string[]> {
  const rows = await database.kysely
    .selectFrom('lineage')
    .select('stage')
    .where('asset_id', '=', assetId)
    .orderBy('seq')
    .execute();
  return rows.map((row) => row.stage);
}

async function dataRows(table: string): Promise<Record<string, unknown>[]> {
  const result = await sql<
    Record<string, unknown>
  >`select * from ${sql.table(`json_data.${table}`)} order by created_at`.execute(database.kysely);
  return result.rows;
}

async function tableExists(table: string): Promise<boolean> {
  const result = await sql<{ n: number }>`
    select count(*)::int as n from pg_tables where schemaname = 'json_data' and tablename = ${table}`.execute(
    database.kysely,
  );
  return result.rows[0]?.n === 1;
}

async function stagedCount(schemaId: string): Promise<number> {
  const row = await database.kysely
    .selectFrom('json_staging')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('schema_id', '=', schemaId)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

beforeAll(async () => {
  database = await openCatalog({
    databaseUrl: undefined,
    pgliteDir: undefined,
    poolSize: 1,
    embeddingDim: 512,
  });
  await migrateCatalog(database, 512);
});

afterAll(async () => {
  await database.close();
});

afterEach(async () => {
  changed = [];
  // Every test starts from an empty catalog and no data tables.
  const tables = await sql<{
    tablename: string;
  }>`select tablename from pg_tables where schemaname = 'json_data'`.execute(database.kysely);
  for (const { tablename } of tables.rows)
    await sql`drop table ${sql.table(`json_data.${tablename}`)}`.execute(database.kysely);
  await sql`truncate lineage, json_staging, asset, job, schema_def cascade`.execute(database.kysely);
});

describe('provisional schemas (AUTO_MIGRATE=false)', () => {
  it('creates a provisional schema from the hint and stages every document', async () => {
    const runtime = makeRuntime();
    const job = await insertJob(STABLE_USERS);
    await runBatch(runtime, job, 'Stable Users');

    const [schema, ...others] = await listSchemas(database.kysely);
    expect(others).toEqual([]);
    expect(schema).toMatchObject({
      name: 'stable_users',
      storage_choice: 'sql',
      status: 'provisional',
      version: 1,
      confidence: 1,
      sample_size: 5,
      top_level_keys: 5,
      max_depth: 1,
      field_stability: 1,
      type_stability: 1,
      has_array_of_objects: false,
      asset_count: 5,
    });
    expect(schema?.ddl).toContain('CREATE TABLE IF NOT EXISTS json_data.stable_users (');
    expect(schema?.ddl).toContain('    id_col BIGINT NOT NULL,');
    expect(schema?.ddl).toContain('    email TEXT NOT NULL,');
    expect(schema?.ddl).not.toContain('{table_name}');
    expect(schema?.fields).toMatchObject({
      id: { dominant_type: 'integer', presence: 1, null_fraction: 0, is_likely_fk: true, column: 'id_col' },
      email: { dominant_type: 'string', max_length: 17, column: 'email' },
    });
    expect(schema?.table_plan).toMatchObject({ name: 'stable_users', storageChoice: 'sql' });

    const assets = await assetsOf(job);
    for (const asset of assets) {
      expect(asset).toMatchObject({
        status: 'pending_review',
        schema_id: schema?.id,
        uri: null,
        storage_id: null,
      });
    }
    expect(assets[0]?.search_tokens).toEqual(expect.arrayContaining(['alice', 'smith', 'example', 'com']));
    expect(await stagedCount(schema?.id as string)).toBe(5);
    expect(await tableExists('stable_users')).toBe(false);
    expect(await stages(assets[0]?.id as string)).toEqual([
      'schema_analysis',
      'schema_created',
      'json_staged',
    ]);
    expect(changed.sort()).toEqual([...job.assetIds].sort());

    const metric = await runtime.metrics.schemasCreated.get();
    expect(metric.values).toEqual([expect.objectContaining({ labels: { storage_choice: 'sql' }, value: 1 })]);
  });

  it('reuses the schema of the same structure whatever the hint, and suffixes a taken name', async () => {
    const runtime = makeRuntime();
    const first = await insertJob(STABLE_USERS.slice(0, 2));
    await runBatch(runtime, first, 'people');
    const second = await insertJob(STABLE_USERS.slice(2));
    await runBatch(runtime, second, 'other name');
    const schemas = await listSchemas(database.kysely);
    expect(schemas).toHaveLength(1);
    expect(schemas[0]?.asset_count).toBe(5);
    expect(await stages(second.assetIds[0] as string)).toEqual([
      'schema_analysis',
      'schema_reused',
      'json_staged',
    ]);

    // Another structure under the same hint gets `<hint>_<hash8>`.
    const third = await insertJob([{ title: 'x' }]);
    await runBatch(runtime, third, 'people');
    const hash = sha256Hex(canonicalJson({ title: 'string' }));
    const newest = (await listSchemas(database.kysely))[0];
    expect(newest?.name).toBe(`people_${hash.slice(0, 8)}`);
    expect(newest?.structure_hash).toBe(hash);
  });

  it('names a schema without hint table_<hash8> / docs_<hash8>', async () => {
    const runtime = makeRuntime();
    await runBatch(runtime, await insertJob([{ name: 'a', age: 1 }]));
    await runBatch(runtime, await insertJob(COMPLEX_ORDERS));
    const names = (await listSchemas(database.kysely)).map((schema) => [
      schema.name,
      schema.storage_choice,
      schema.confidence,
    ]);
    expect(names).toContainEqual(['table_4b05bfed', 'sql', 1]);
    const jsonb = (await listSchemas(database.kysely, { storageChoice: 'jsonb' }))[0];
    expect(jsonb?.name).toMatch(/^docs_[0-9a-f]{8}$/);
    expect(jsonb?.confidence).toBe(0.95);
    expect(jsonb?.ddl).toContain('    doc JSONB NOT NULL,');
  });

  it('fails the documents of a rejected structure', async () => {
    const runtime = makeRuntime();
    const first = await insertJob(STABLE_USERS.slice(0, 2));
    await runBatch(runtime, first, 'users');
    const schema = (await listSchemas(database.kysely))[0];
    await rejectSchema(runtime, schema?.id as string, { reviewedBy: 'rev', reason: 'not wanted' });

    const later = await insertJob(STABLE_USERS.slice(2, 4));
    await runBatch(runtime, later, 'users');
    for (const asset of await assetsOf(later)) {
      expect(asset).toMatchObject({
        status: 'failed',
        schema_id: schema?.id,
        error_message: `schema ${schema?.id} was rejected`,
      });
    }
    expect(await stages(later.assetIds[0] as string)).toEqual([
      'schema_analysis',
      'schema_reused',
      'processing_error',
    ]);
    // The rejected schema keeps only the documents staged before the rejection.
    expect(await stagedCount(schema?.id as string)).toBe(2);
  });

  it('creates one schema when two jobs of one structure run at once', async () => {
    const runtime = makeRuntime();
    const jobs = await Promise.all([insertJob(STABLE_USERS.slice(0, 2)), insertJob(STABLE_USERS.slice(2))]);
    await Promise.all(jobs.map((job) => runBatch(runtime, job, 'users')));
    const schemas = await listSchemas(database.kysely);
    expect(schemas.map((schema) => [schema.name, schema.asset_count])).toEqual([['users', 5]]);
    const created = await database.kysely
      .selectFrom('lineage')
      .select('stage')
      .where('stage', 'in', ['schema_created', 'schema_reused'])
      .execute();
    expect(created.filter((row) => row.stage === 'schema_created')).toHaveLength(2);
    expect(created.filter((row) => row.stage === 'schema_reused')).toHaveLength(3);
  });

  it('ignores assets already settled and batches of other keys', async () => {
    const runtime = makeRuntime();
    const job = await insertJob(STABLE_USERS.slice(0, 3));
    await database.kysely
      .updateTable('asset')
      .set({ status: 'done' })
      .where('id', '=', job.assetIds[0] as string)
      .execute();
    await database.kysely
      .updateTable('asset')
      .set({ json_batch: 'part-2' })
      .where('id', '=', job.assetIds[1] as string)
      .execute();
    await runBatch(runtime, job, 'users');
    const statuses = (await assetsOf(job)).map((asset) => asset.status);
    expect(statuses).toEqual(['done', 'queued', 'pending_review']);
  });
});

describe('active schemas (AUTO_MIGRATE=true)', () => {
  it('creates the table at once and stores every document as a row', async () => {
    const runtime = makeRuntime({ AUTO_MIGRATE: 'true' });
    const job = await insertJob(STABLE_USERS);
    await runBatch(runtime, job, 'users');
    const schema = (await listSchemas(database.kysely))[0];
    expect(schema?.status).toBe('active');
    expect(await tableExists('users')).toBe(true);

    const rows = await dataRows('users');
    expect(rows.map((row) => [row.id_col, row.name, row.email, row.age, row.active, row.extra])).toEqual(
      STABLE_USERS.map((user) => [user.id, user.name, user.email, user.age, user.active, null]),
    );
    const assets = await assetsOf(job);
    assets.forEach((asset, index) => {
      const row = rows[index] as Record<string, unknown>;
      expect(asset).toMatchObject({
        status: 'done',
        storage_id: row.id,
        uri: `sql://users/${String(row.id)}`,
        schema_id: schema?.id,
        error_message: null,
      });
      expect(row.asset_id).toBe(asset.id);
    });
    expect(await stages(assets[0]?.id as string)).toEqual([
      'schema_analysis',
      'schema_created',
      'json_stored',
    ]);
    expect(await stagedCount(schema?.id as string)).toBe(0);
    expect(await loadStoredDocument(database.kysely, schema as never, rows[0]?.id as string)).toEqual(
      STABLE_USERS[0],
    );

    // The objects API deletes a JSON asset's row through deleteStoredDocument.
    expect(await deleteStoredDocument(database.kysely, schema as never, rows[0]?.id as string)).toBe(true);
    expect(await deleteStoredDocument(database.kysely, schema as never, rows[0]?.id as string)).toBe(false);
    expect(await loadStoredDocument(database.kysely, schema as never, rows[0]?.id as string)).toBeNull();
    expect(await dataRows('users')).toHaveLength(4);
  });

  it('keeps values that do not fit their column in extra (unsampled document)', async () => {
    const runtime = makeRuntime({ AUTO_MIGRATE: 'true', SCHEMA_SAMPLE_SIZE: '4' });
    // Sample = documents 0, 2, 4, 6; a null in document 4 keeps qty nullable, so a misfit can be NULL.
    const documents = Array.from({ length: 9 }, (_, index) => ({ sku: `item-${index}`, qty: index }) as Doc);
    documents[1] = { sku: 'item-1', qty: 'many' };
    documents[4] = { sku: 'item-4', qty: null };
    const job = await insertJob(documents);
    await runBatch(runtime, job, 'stock');
    const schema = (await listSchemas(database.kysely))[0];
    expect(schema?.ddl).toContain('    qty BIGINT,');
    const rows = await dataRows('stock');
    expect(rows).toHaveLength(9);
    const second = rows.find((row) => row.sku === 'item-1') as Record<string, unknown>;
    expect(second.qty).toBeNull();
    expect(second.extra).toEqual({ qty: 'many' });
    expect(await loadStoredDocument(database.kysely, schema as never, second.id as string)).toEqual({
      sku: 'item-1',
      qty: 'many',
    });
    expect((await assetsOf(job)).every((asset) => asset.status === 'done')).toBe(true);
    // Explicit nulls are not preserved by the reconstruction.
    const fourth = rows.find((row) => row.sku === 'item-4') as Record<string, unknown>;
    expect(await loadStoredDocument(database.kysely, schema as never, fourth.id as string)).toEqual({
      sku: 'item-4',
    });
  });

  it('fails a document whose value does not fit a NOT NULL column', async () => {
    const runtime = makeRuntime({ AUTO_MIGRATE: 'true', SCHEMA_SAMPLE_SIZE: '4' });
    const documents = Array.from({ length: 9 }, (_, index) => ({ sku: `item-${index}`, qty: index }) as Doc);
    documents[1] = { sku: 'item-1', qty: 'many' };
    const job = await insertJob(documents);
    await runBatch(runtime, job, 'stock');
    const assets = await assetsOf(job);
    expect(assets.map((asset) => asset.status)).toEqual(['done', 'failed', ...Array(7).fill('done')]);
    expect(assets[1]?.error_message).toBe('does not fit table stock: column qty is NOT NULL');
    expect(await dataRows('stock')).toHaveLength(8);
  });

  it('fails a document lacking a NOT NULL value permanently and keeps it staged', async () => {
    const runtime = makeRuntime({ AUTO_MIGRATE: 'true', SCHEMA_SAMPLE_SIZE: '2' });
    // Sample = documents 0 and 1 (⌊i·3/2⌋), both with email; document 2 lacks it.
    const documents: Doc[] = [
      { name: 'a', email: 'a@x.org' },
      { name: 'b', email: 'b@x.org' },
      { name: 'c', email: null },
    ];
    const job = await insertJob(documents);
    await runBatch(runtime, job, 'contacts');
    const schema = (await listSchemas(database.kysely))[0];
    const assets = await assetsOf(job);
    expect(assets.map((asset) => asset.status)).toEqual(['done', 'done', 'failed']);
    expect(assets[2]?.error_message).toBe('does not fit table contacts: column email is NOT NULL');
    expect(assets[2]?.schema_id).toBe(schema?.id);
    expect(await dataRows('contacts')).toHaveLength(2);
    const staged = await database.kysely.selectFrom('json_staging').selectAll().execute();
    expect(staged.map((row) => [row.asset_id, row.doc])).toEqual([[assets[2]?.id, documents[2]]]);
    expect(await stages(assets[2]?.id as string)).toEqual([
      'schema_analysis',
      'schema_created',
      'processing_error',
    ]);
  });

  it('stores JSONB collections with the document in doc', async () => {
    const runtime = makeRuntime({ AUTO_MIGRATE: 'true' });
    const job = await insertJob(COMPLEX_ORDERS);
    await runBatch(runtime, job, 'orders');
    const rows = await dataRows('orders');
    expect(rows.map((row) => row.doc)).toEqual(COMPLEX_ORDERS);
    const assets = await assetsOf(job);
    expect(assets[1]?.uri).toBe(`jsonb://orders/${String(rows[1]?.id)}`);
  });

  it('writes values only as bound parameters, whatever the field names', async () => {
    const runtime = makeRuntime({ AUTO_MIGRATE: 'true' });
    const hostile: Doc[] = [
      { '"; DROP TABLE asset; --': "x'); DROP TABLE schema_def; --", select: 1, id: 7 },
      { '"; DROP TABLE asset; --': 'y', select: 2, id: 8 },
    ];
    const job = await insertJob(hostile);
    await runBatch(runtime, job, "Robert'); DROP TABLE job;--");
    const schema = (await listSchemas(database.kysely))[0];
    expect(schema?.name).toBe('robert_drop_table_job__');
    expect(schema?.ddl).toContain('    ___drop_table_asset____ TEXT NOT NULL,');
    expect(schema?.ddl).toContain('    select_col BIGINT NOT NULL,');
    const rows = await dataRows('robert_drop_table_job__');
    expect(rows[0]?.___drop_table_asset____).toBe("x'); DROP TABLE schema_def; --");
    expect(await loadStoredDocument(database.kysely, schema as never, rows[0]?.id as string)).toEqual(
      hostile[0],
    );
  });
});

describe('approval and rejection', () => {
  it('approves with a new table name: DDL, staged documents moved, assets done', async () => {
    const runtime = makeRuntime();
    const job = await insertJob(STABLE_USERS);
    await runBatch(runtime, job, 'users');
    const schema = (await listSchemas(database.kysely))[0];
    changed = [];

    const result = await approveSchema(runtime, schema?.id as string, {
      reviewedBy: 'admin',
      tableName: 'customers',
    });
    expect(result.stored).toBe(5);
    expect(result.failed).toBe(0);
    expect(result.schema).toMatchObject({ name: 'customers', status: 'active', reviewed_by: 'admin' });
    expect(result.schema.reviewed_at).toBeInstanceOf(Date);
    expect(result.schema.ddl).toContain('CREATE TABLE IF NOT EXISTS json_data.customers (');
    expect(result.schema.ddl).toContain(
      'CREATE INDEX IF NOT EXISTS idx_customers_id_col ON json_data.customers (id_col);',
    );
    expect(result.schema.ddl).not.toContain('users');
    expect(result.schema.table_plan).toMatchObject({ name: 'customers' });
    expect(await tableExists('customers')).toBe(true);
    expect(await tableExists('users')).toBe(false);
    expect(await stagedCount(schema?.id as string)).toBe(0);

    const rows = await dataRows('customers');
    const assets = await assetsOf(job);
    expect(assets.map((asset) => [asset.status, asset.storage_id, asset.uri])).toEqual(
      rows.map((row) => ['done', row.id, `sql://customers/${String(row.id)}`]),
    );
    expect(rows.map((row) => row.asset_id)).toEqual(job.assetIds);
    expect(changed.sort()).toEqual([...job.assetIds].sort());
    expect(await stages(job.assetIds[0] as string)).toEqual([
      'schema_analysis',
      'schema_created',
      'json_staged',
      'schema_approved',
      'json_stored',
    ]);

    const records = await listSchemaRecords(database.kysely, result.schema, { limit: 2, offset: 1 });
    expect(records).toEqual({
      source: 'table',
      total: 5,
      records: [
        { storage_id: rows[1]?.id, asset_id: job.assetIds[1], document: STABLE_USERS[1] },
        { storage_id: rows[2]?.id, asset_id: job.assetIds[2], document: STABLE_USERS[2] },
      ],
    });

    // Later batches of the structure go straight into the table.
    const later = await insertJob([{ id: 6, name: 'Fay', email: 'fay@example.com', age: 50, active: true }]);
    await runBatch(runtime, later, 'ignored');
    expect((await assetsOf(later))[0]?.status).toBe('done');
    expect(await dataRows('customers')).toHaveLength(6);

    await expect(
      approveSchema(runtime, schema?.id as string, { reviewedBy: 'admin' }),
    ).rejects.toBeInstanceOf(SchemaNotProvisionalError);
  });

  it('lists staged records in insertion order while provisional', async () => {
    const runtime = makeRuntime();
    const first = await insertJob(STABLE_USERS.slice(0, 3));
    await runBatch(runtime, first, 'users');
    const second = await insertJob(STABLE_USERS.slice(3));
    await runBatch(runtime, second, 'users');
    const schema = (await listSchemas(database.kysely))[0];
    const records = await listSchemaRecords(database.kysely, schema as never, { limit: 50, offset: 0 });
    expect(records.source).toBe('staging');
    expect(records.total).toBe(5);
    expect(records.records.map((record) => [record.storage_id, record.asset_id, record.document])).toEqual(
      [...first.assetIds, ...second.assetIds].map((id, index) => [null, id, STABLE_USERS[index]]),
    );
  });

  it('fails a staged document that does not fit on approval and keeps it staged', async () => {
    const runtime = makeRuntime();
    const first = await insertJob([
      { name: 'a', email: 'a@x.org' },
      { name: 'b', email: 'b@x.org' },
    ]);
    await runBatch(runtime, first, 'contacts');
    // Same structure (same paths and types), but email is missing here: NOT NULL comes from the first batch.
    const second = await insertJob([{ name: 'c', email: 'c@x.org' }, { name: 'd' }]);
    await runBatch(runtime, second, 'contacts');
    const schema = (await listSchemas(database.kysely))[0];
    expect(schema?.asset_count).toBe(4);

    const result = await approveSchema(runtime, schema?.id as string, { reviewedBy: 'admin' });
    expect([result.stored, result.failed]).toEqual([3, 1]);
    const failed = (await assetsOf(second))[1];
    expect(failed).toMatchObject({
      status: 'failed',
      error_message: 'does not fit table contacts: column email is NOT NULL',
    });
    expect(await stagedCount(schema?.id as string)).toBe(1);
    expect((await dataRows('contacts')).map((row) => row.name)).toEqual(['a', 'b', 'c']);
  });

  it('rolls everything back when the DDL fails', async () => {
    const runtime = makeRuntime();
    const job = await insertJob(STABLE_USERS.slice(0, 2));
    await runBatch(runtime, job, 'users');
    const schema = (await listSchemas(database.kysely))[0];
    // A table of that name without the planned columns: CREATE TABLE IF NOT EXISTS passes, the indexes fail.
    await sql`create table json_data.users (something integer)`.execute(database.kysely);

    const error = await approveSchema(runtime, schema?.id as string, { reviewedBy: 'admin' }).catch(
      (caught: unknown) => caught,
    );
    expect(error).toBeInstanceOf(DdlExecutionError);
    expect((error as Error).message).toBe('DDL execution failed');
    const after = await getSchema(database.kysely, schema?.id as string);
    expect(after).toMatchObject({ status: 'provisional', reviewed_by: null, name: 'users' });
    expect((await assetsOf(job)).map((asset) => asset.status)).toEqual(['pending_review', 'pending_review']);
    expect(await stagedCount(schema?.id as string)).toBe(2);
  });

  it('refuses a table name used by another schema, and unknown schemas', async () => {
    const runtime = makeRuntime();
    await runBatch(runtime, await insertJob([{ title: 't' }]), 'books');
    await runBatch(runtime, await insertJob(STABLE_USERS.slice(0, 1)), 'users');
    const users = (await listSchemas(database.kysely)).find((schema) => schema.name === 'users');
    await expect(
      approveSchema(runtime, users?.id as string, { reviewedBy: 'a', tableName: 'books' }),
    ).rejects.toBeInstanceOf(SchemaNameTakenError);
    expect((await getSchema(database.kysely, users?.id as string))?.status).toBe('provisional');
    // Its own name is no conflict.
    const approved = await approveSchema(runtime, users?.id as string, {
      reviewedBy: 'a',
      tableName: 'users',
    });
    expect(approved.schema.name).toBe('users');
    await expect(approveSchema(runtime, randomUUID(), { reviewedBy: 'a' })).rejects.toBeInstanceOf(
      SchemaNotFoundError,
    );
    await expect(
      rejectSchema(runtime, randomUUID(), { reviewedBy: 'a', reason: 'r' }),
    ).rejects.toBeInstanceOf(SchemaNotFoundError);
  });

  it('rejects: reason appended, pending assets failed, staged documents kept', async () => {
    const runtime = makeRuntime();
    const job = await insertJob(STABLE_USERS.slice(0, 2));
    await runBatch(runtime, job, 'users');
    const schema = (await listSchemas(database.kysely))[0];
    changed = [];
    const result = await rejectSchema(runtime, schema?.id as string, {
      reviewedBy: 'bob',
      reason: 'duplicate data',
    });
    expect(result.failedAssets).toBe(2);
    expect(result.schema).toMatchObject({ status: 'rejected', reviewed_by: 'bob' });
    expect(result.schema.decision_reason).toBe(
      `${schema?.decision_reason}\n\nRejection reason: duplicate data`,
    );
    for (const asset of await assetsOf(job)) {
      expect(asset).toMatchObject({
        status: 'failed',
        error_message: `schema ${schema?.id} was rejected: duplicate data`,
      });
    }
    expect(changed.sort()).toEqual([...job.assetIds].sort());
    expect(await stages(job.assetIds[0] as string)).toEqual([
      'schema_analysis',
      'schema_created',
      'json_staged',
      'schema_rejected',
    ]);
    const records = await listSchemaRecords(database.kysely, result.schema, { limit: 10, offset: 0 });
    expect(records.source).toBe('staging');
    expect(records.records.map((record) => record.document)).toEqual(STABLE_USERS.slice(0, 2));
    await expect(
      rejectSchema(runtime, schema?.id as string, { reviewedBy: 'bob', reason: 'again' }),
    ).rejects.toMatchObject({
      status: 'rejected',
    });
  });
});
