// Schema review (spec §3.8.7, §3.11): listing schemas with their asset counts, reading a schema's records
// (its data table once active, its staged documents before), approval (optional rename, DDL, staged documents
// moved into the table — one transaction) and rejection (pending assets fail, staged documents are kept).
import { namedLogger } from '@quintet/kernel/log';
import { type Kysely, sql, type Transaction } from 'kysely';
import type { AllocatorRuntime } from '../runtime.js';
import type { CatalogDatabase, SchemaDefTable } from './database.js';
import { renamePlan, renderDdl } from './json/ddl.js';
import { reconstructDocument } from './json/rows.js';
import {
  createDataTable,
  dataTable,
  insertDocuments,
  parseTablePlan,
  SCHEMA_LOCK_KEY,
  type SchemaRow,
  takenNames,
} from './json-store.js';
import { type LineageEntry, recordLineageList } from './lineage.js';

type Executor = Kysely<CatalogDatabase> | Transaction<CatalogDatabase>;

export type SchemaStatus = SchemaDefTable['status'];
export const SCHEMA_STATUSES: readonly SchemaStatus[] = ['provisional', 'active', 'rejected'];
export const STORAGE_CHOICES: readonly SchemaDefTable['storage_choice'][] = ['sql', 'jsonb'];

/** A schema row with the number of assets referencing it. */
export type SchemaWithCount = SchemaRow & { asset_count: number };

/** No schema with that id. */
export class SchemaNotFoundError extends Error {
  override readonly name = 'SchemaNotFoundError';
  constructor(readonly schemaId: string) {
    super(`Schema ${schemaId} not found`);
  }
}

/** Approval/rejection of a schema that is no longer provisional. */
export class SchemaNotProvisionalError extends Error {
  override readonly name = 'SchemaNotProvisionalError';
  constructor(
    readonly schemaId: string,
    readonly status: SchemaStatus,
  ) {
    super(`Schema ${schemaId} is ${status}, only provisional schemas can be reviewed`);
  }
}

/** The requested table name belongs to another schema (or an existing data table). */
export class SchemaNameTakenError extends Error {
  override readonly name = 'SchemaNameTakenError';
  constructor(readonly tableName: string) {
    super(`Table name '${tableName}' is already used by another schema`);
  }
}

/** The schema's DDL failed on approval; everything was rolled back. */
export class DdlExecutionError extends Error {
  override readonly name = 'DdlExecutionError';
}

function withAssetCount(db: Executor) {
  return db
    .selectFrom('schema_def as s')
    .selectAll('s')
    .select((eb) =>
      eb
        .selectFrom('asset')
        .select(eb.fn.countAll<number>().as('n'))
        .whereRef('asset.schema_id', '=', 's.id')
        .as('asset_count'),
    );
}

function normaliseCount(row: SchemaRow & { asset_count: unknown }): SchemaWithCount {
  return { ...row, asset_count: Number(row.asset_count ?? 0) };
}

/** Schemas newest first, optionally filtered by status and storage choice. */
export async function listSchemas(
  db: Executor,
  filter: { status?: SchemaStatus; storageChoice?: SchemaDefTable['storage_choice'] } = {},
): Promise<SchemaWithCount[]> {
  let query = withAssetCount(db);
  if (filter.status !== undefined) query = query.where('s.status', '=', filter.status);
  if (filter.storageChoice !== undefined) query = query.where('s.storage_choice', '=', filter.storageChoice);
  const rows = await query.orderBy('s.created_at', 'desc').orderBy('s.id', 'desc').execute();
  return rows.map(normaliseCount);
}

/** One schema with its asset count, or null. */
export async function getSchema(db: Executor, schemaId: string): Promise<SchemaWithCount | null> {
  const row = await withAssetCount(db).where('s.id', '=', schemaId).executeTakeFirst();
  return row === undefined ? null : normaliseCount(row);
}

export interface SchemaRecord {
  storage_id: string | null;
  asset_id: string | null;
  document: Record<string, unknown>;
}

export interface SchemaRecords {
  source: 'table' | 'staging';
  records: SchemaRecord[];
  total: number;
}

/** A page of a schema's documents in insertion order: its data table when active, its staged documents otherwise. */
export async function listSchemaRecords(
  db: Executor,
  schema: SchemaRow,
  page: { limit: number; offset: number },
): Promise<SchemaRecords> {
  if (schema.status !== 'active') {
    const total = await db
      .selectFrom('json_staging')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('schema_id', '=', schema.id)
      .executeTakeFirstOrThrow();
    const rows = await db
      .selectFrom('json_staging as s')
      .leftJoin('asset as a', 'a.id', 's.asset_id')
      .select(['s.asset_id', 's.doc'])
      .where('s.schema_id', '=', schema.id)
      .orderBy('s.created_at')
      .orderBy('a.created_at')
      .orderBy('a.position')
      .orderBy('s.asset_id')
      .limit(page.limit)
      .offset(page.offset)
      .execute();
    return {
      source: 'staging',
      total: Number(total.n),
      records: rows.map((row) => ({ storage_id: null, asset_id: row.asset_id, document: row.doc })),
    };
  }
  const plan = parseTablePlan(schema.table_plan);
  const table = dataTable(plan);
  const count = await sql<{ n: number | string }>`select count(*) as n from ${table}`.execute(db);
  // Rows of one statement can share a timestamp: the asset's own order breaks the tie.
  const result = await sql<Record<string, unknown>>`
    select t.* from ${table} t left join asset a on a.id = t.asset_id
    order by t.created_at, a.created_at, a.position, t.id
    limit ${page.limit} offset ${page.offset}`.execute(db);
  return {
    source: 'table',
    total: Number(count.rows[0]?.n ?? 0),
    records: result.rows.map((row) => ({
      storage_id: String(row.id),
      asset_id: row.asset_id === null || row.asset_id === undefined ? null : String(row.asset_id),
      document: reconstructDocument(plan, row, (row.extra ?? null) as Record<string, unknown> | null),
    })),
  };
}

async function lockSchema(tx: Transaction<CatalogDatabase>, schemaId: string): Promise<SchemaRow> {
  const schema = await tx
    .selectFrom('schema_def')
    .selectAll()
    .where('id', '=', schemaId)
    .forUpdate()
    .executeTakeFirst();
  if (schema === undefined) throw new SchemaNotFoundError(schemaId);
  if (schema.status !== 'provisional') throw new SchemaNotProvisionalError(schemaId, schema.status);
  return schema;
}

export interface ApprovalResult {
  schema: SchemaWithCount;
  /** staged documents now in the table */
  stored: number;
  /** staged documents that did not fit (their assets failed; they stay staged) */
  failed: number;
}

/**
 * Approves a provisional schema (spec §3.8.7): optional rename (TABLE_NAME_PATTERN checked by the caller),
 * then in one transaction the DDL, every pending staged document moved into the table (a document that does
 * not fit a NOT NULL column fails its asset permanently and stays staged), schema active, lineage.
 */
export async function approveSchema(
  runtime: AllocatorRuntime,
  schemaId: string,
  review: { reviewedBy: string; tableName?: string | undefined },
): Promise<ApprovalResult> {
  const { catalog } = runtime;
  const changed: string[] = [];
  const outcome = await catalog.transaction().execute(async (tx) => {
    let schema = await lockSchema(tx, schemaId);
    let plan = parseTablePlan(schema.table_plan);
    if (review.tableName !== undefined && review.tableName !== schema.name) {
      // Renames are serialised with schema creation, so the name cannot be taken in between.
      await sql`select pg_advisory_xact_lock(${sql.lit(SCHEMA_LOCK_KEY)})`.execute(tx);
      const taken = await takenNames(tx, review.tableName);
      if (taken.has(review.tableName)) throw new SchemaNameTakenError(review.tableName);
      plan = renamePlan(plan, review.tableName);
      schema = await tx
        .updateTable('schema_def')
        .set({ name: plan.name, ddl: renderDdl(plan), table_plan: JSON.stringify(plan) })
        .where('id', '=', schemaId)
        .returningAll()
        .executeTakeFirstOrThrow();
    }

    try {
      await createDataTable(tx, plan);
    } catch (error) {
      throw new DdlExecutionError('DDL execution failed', { cause: error });
    }

    const pending = await tx
      .selectFrom('json_staging as s')
      .innerJoin('asset as a', 'a.id', 's.asset_id')
      .leftJoin('job as j', 'j.id', 'a.job_id')
      .select(['s.asset_id', 's.doc', 'j.request_id'])
      .where('s.schema_id', '=', schemaId)
      .where('a.status', '=', 'pending_review')
      .orderBy('s.created_at')
      .orderBy('a.created_at')
      .orderBy('a.position')
      .execute();
    const { stored, misfits } = await insertDocuments(
      tx,
      plan,
      pending.map((row) => ({ assetId: row.asset_id, document: row.doc })),
    );
    const requestOf = new Map(pending.map((row) => [row.asset_id, row.request_id ?? null]));

    const lineage: LineageEntry[] = [
      {
        schemaId,
        stage: 'schema_approved',
        detail: {
          reviewed_by: review.reviewedBy,
          name: plan.name,
          stored: stored.length,
          failed: misfits.length,
        },
      },
    ];
    for (const document of stored) {
      await tx
        .updateTable('asset')
        .set({
          status: 'done',
          storage_id: document.storageId,
          uri: document.uri,
          error_message: null,
          updated_at: sql`clock_timestamp()` as never,
        })
        .where('id', '=', document.assetId)
        .execute();
      const common = {
        requestId: requestOf.get(document.assetId) ?? null,
        assetId: document.assetId,
        schemaId,
      };
      lineage.push(
        { ...common, stage: 'schema_approved', detail: { reviewed_by: review.reviewedBy, name: plan.name } },
        {
          ...common,
          stage: 'json_stored',
          detail: {
            schema_id: schemaId,
            table: plan.name,
            storage_id: document.storageId,
            uri: document.uri,
          },
        },
      );
      changed.push(document.assetId);
    }
    // Moved documents leave staging (a subquery, not an id list: a schema may have thousands staged).
    await tx
      .deleteFrom('json_staging')
      .where('schema_id', '=', schemaId)
      .where('asset_id', 'in', (eb) =>
        eb.selectFrom('asset').select('id').where('schema_id', '=', schemaId).where('status', '=', 'done'),
      )
      .execute();
    for (const misfit of misfits) {
      await tx
        .updateTable('asset')
        .set({ status: 'failed', error_message: misfit.message, updated_at: sql`clock_timestamp()` as never })
        .where('id', '=', misfit.assetId)
        .execute();
      lineage.push({
        requestId: requestOf.get(misfit.assetId) ?? null,
        assetId: misfit.assetId,
        schemaId,
        stage: 'processing_error',
        success: false,
        errorMessage: misfit.message,
        detail: { schema_id: schemaId, permanent: true, staged: true },
      });
      changed.push(misfit.assetId);
    }

    await tx
      .updateTable('schema_def')
      .set({
        status: 'active',
        reviewed_by: review.reviewedBy,
        reviewed_at: sql`clock_timestamp()` as never,
        updated_at: sql`clock_timestamp()` as never,
      })
      .where('id', '=', schemaId)
      .execute();
    await recordLineageList(tx, lineage);
    return { stored: stored.length, failed: misfits.length, name: schema.name };
  });
  runtime.changes.assetsChanged(changed);
  namedLogger(runtime.logger, 'allocator.json').info(
    { schema_id: schemaId, name: outcome.name, stored: outcome.stored, failed: outcome.failed },
    'schema approved',
  );
  const schema = await getSchema(catalog, schemaId);
  if (schema === null) throw new SchemaNotFoundError(schemaId);
  return { schema, stored: outcome.stored, failed: outcome.failed };
}

export interface RejectionResult {
  schema: SchemaWithCount;
  /** assets that were pending review and are now failed */
  failedAssets: number;
}

/** Rejects a provisional schema (spec §3.8.7): reason appended, pending assets failed, staged documents kept. */
export async function rejectSchema(
  runtime: AllocatorRuntime,
  schemaId: string,
  review: { reviewedBy: string; reason: string },
): Promise<RejectionResult> {
  const { catalog } = runtime;
  const message = `schema ${schemaId} was rejected: ${review.reason}`;
  const failed = await catalog.transaction().execute(async (tx) => {
    const schema = await lockSchema(tx, schemaId);
    await tx
      .updateTable('schema_def')
      .set({
        status: 'rejected',
        reviewed_by: review.reviewedBy,
        reviewed_at: sql`clock_timestamp()` as never,
        decision_reason: `${schema.decision_reason}\n\nRejection reason: ${review.reason}`,
        updated_at: sql`clock_timestamp()` as never,
      })
      .where('id', '=', schemaId)
      .execute();
    const assets = await tx
      .updateTable('asset')
      .set({ status: 'failed', error_message: message, updated_at: sql`clock_timestamp()` as never })
      .where('schema_id', '=', schemaId)
      .where('status', '=', 'pending_review')
      .returning(['id', 'job_id'])
      .execute();
    const jobIds = [...new Set(assets.flatMap((asset) => (asset.job_id === null ? [] : [asset.job_id])))];
    const jobs =
      jobIds.length === 0
        ? []
        : await tx
            .selectFrom('job')
            .select(['id', 'request_id'])
            .where('id', '=', sql<string>`any(${jobIds}::uuid[])`)
            .execute();
    const requestOf = new Map(jobs.map((job) => [job.id, job.request_id]));
    const lineage: LineageEntry[] = [
      {
        schemaId,
        stage: 'schema_rejected',
        detail: { reviewed_by: review.reviewedBy, reason: review.reason },
      },
      ...assets.map((asset) => ({
        requestId: asset.job_id === null ? null : (requestOf.get(asset.job_id) ?? null),
        assetId: asset.id,
        schemaId,
        stage: 'schema_rejected',
        success: false,
        errorMessage: message,
        detail: { reviewed_by: review.reviewedBy, reason: review.reason },
      })),
    ];
    await recordLineageList(tx, lineage);
    return assets.map((asset) => asset.id);
  });
  runtime.changes.assetsChanged(failed);
  namedLogger(runtime.logger, 'allocator.json').info(
    { schema_id: schemaId, failed_assets: failed.length },
    'schema rejected',
  );
  const schema = await getSchema(catalog, schemaId);
  if (schema === null) throw new SchemaNotFoundError(schemaId);
  return { schema, failedAssets: failed.length };
}
