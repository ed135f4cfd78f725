// The JSON storage pipeline (spec §3.8.3–§3.8.6): a batch of JSON assets is analysed, matched to a schema by
// structure hash (or given a new one), then stored in the schema's data table (active), staged for review
// (provisional) or failed (rejected). Everything a batch writes happens in one transaction, so a retried
// attempt never finds half a batch. Identifiers reach SQL only from a validated table plan, always quoted;
// values are always bound parameters.
import { randomUUID } from 'node:crypto';
import { isUniqueViolation, MAX_STATEMENT_PARAMETERS } from '@quintet/kernel/db';
import { namedLogger } from '@quintet/kernel/log';
import { type Kysely, type Selectable, sql, type Transaction } from 'kysely';
import type { AllocatorRuntime } from '../runtime.js';
import type { AssetTable, CatalogDatabase, SchemaDefTable } from './database.js';
import { isPermanentError } from './errors.js';
import { analyseDocuments, type JsonAnalysis } from './json/analysis.js';
import {
  adminFieldStats,
  DATA_SCHEMA,
  planTable,
  renderDdl,
  type SqlType,
  type TablePlan,
} from './json/ddl.js';
import { decideStorage, type SchemaDecision, type StorageChoice } from './json/decision.js';
import { chooseSchemaName, defaultSchemaName, sanitiseNameHint, TABLE_NAME_PATTERN } from './json/naming.js';
import { DOC_COLUMN, fitDocument, reconstructDocument } from './json/rows.js';
import { type LineageEntry, recordLineageList } from './lineage.js';
import { tokenize } from './tokens.js';

export type SchemaRow = Selectable<SchemaDefTable>;
type AssetRow = Selectable<AssetTable>;
type Executor = Kysely<CatalogDatabase> | Transaction<CatalogDatabase>;

/** Advisory lock key serialising schema creation and renames across processes ("JSON"). */
export const SCHEMA_LOCK_KEY = 0x4a_53_4f_4e;

const COLUMN_PATTERN = /^[a-z_][a-z0-9_]{0,62}$/;
const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const SQL_TYPES: ReadonlySet<string> = new Set<SqlType>([
  'TEXT',
  'BIGINT',
  'DOUBLE PRECISION',
  'BOOLEAN',
  'JSONB',
]);

export interface JsonBatch {
  jobId: string;
  requestId: string;
  batchKey: string;
  hint: string | null;
}

/** A document to store, and the asset it belongs to. */
export interface DocumentToStore {
  assetId: string;
  document: Record<string, unknown>;
}

export interface StoredDocument {
  assetId: string;
  storageId: string;
  uri: string;
}

export interface MisfitDocument {
  assetId: string;
  message: string;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** Validates a table plan read back from `schema_def.table_plan`; throws unless every identifier is bare and sane. */
export function parseTablePlan(value: unknown): TablePlan {
  const plan = (typeof value === 'string' ? JSON.parse(value) : value) as Partial<TablePlan> | null;
  if (
    !isPlainObject(plan) ||
    typeof plan.name !== 'string' ||
    !TABLE_NAME_PATTERN.test(plan.name) ||
    (plan.storageChoice !== 'sql' && plan.storageChoice !== 'jsonb') ||
    !Array.isArray(plan.columns)
  )
    throw new Error('stored table plan is malformed');
  for (const column of plan.columns) {
    if (
      !isPlainObject(column) ||
      typeof column.field !== 'string' ||
      typeof column.column !== 'string' ||
      !COLUMN_PATTERN.test(column.column) ||
      !SQL_TYPES.has(column.sqlType) ||
      typeof column.notNull !== 'boolean' ||
      typeof column.indexed !== 'boolean'
    )
      throw new Error('stored table plan has a malformed column');
  }
  return plan as TablePlan;
}

/** `sql://<name>/<row id>` for tables, `jsonb://<name>/<row id>` for collections (spec §3.8.6). */
export function storedDocumentUri(choice: StorageChoice, name: string, rowId: string): string {
  return `${choice === 'sql' ? 'sql' : 'jsonb'}://${name}/${rowId}`;
}

/** The data table of a plan as a quoted, schema-qualified identifier. */
export function dataTable(plan: TablePlan) {
  if (!TABLE_NAME_PATTERN.test(plan.name)) throw new Error(`invalid table name: ${plan.name}`);
  return sql.table(`${DATA_SCHEMA}.${plan.name}`);
}

/** True when json_data.<name> exists. */
export async function dataTableExists(db: Executor, name: string): Promise<boolean> {
  const result = await sql<{ found: boolean }>`
    select exists (
      select 1 from pg_catalog.pg_tables where schemaname = ${DATA_SCHEMA} and tablename = ${name}
    ) as found`.execute(db);
  return result.rows[0]?.found === true;
}

/** Runs the plan's DDL (CREATE TABLE/INDEX IF NOT EXISTS); the text is rendered from the validated plan only. */
export async function createDataTable(db: Executor, plan: TablePlan): Promise<void> {
  // Several statements, no parameters: both drivers send this through the simple query protocol.
  await sql.raw(renderDdl(plan)).execute(db);
}

/** Every string value of a document, at any depth, in document order. */
function stringValues(value: unknown, into: string[] = []): string[] {
  if (typeof value === 'string') into.push(value);
  else if (Array.isArray(value)) for (const item of value) stringValues(item, into);
  else if (isPlainObject(value)) for (const item of Object.values(value)) stringValues(item, into);
  return into;
}

/** Search tokens of a JSON asset: its document's string values, its comments and its user tags. */
export function jsonSearchTokens(
  document: unknown,
  comments: string | null,
  userTags: readonly string[],
): string[] {
  const text = [...stringValues(document), comments ?? '', ...userTags].join(' ');
  return [...new Set(tokenize(text))];
}

function chunked<T>(items: readonly T[], size: number): T[][] {
  const chunks: T[][] = [];
  for (let start = 0; start < items.length; start += size) chunks.push(items.slice(start, start + size));
  return chunks;
}

/**
 * Inserts documents into the plan's data table (which must exist), in order. A document that does not fit a
 * NOT NULL column is not inserted: it is returned as a misfit with the §3.8.6 message.
 */
export async function insertDocuments(
  db: Executor,
  plan: TablePlan,
  documents: readonly DocumentToStore[],
): Promise<{ stored: StoredDocument[]; misfits: MisfitDocument[] }> {
  const stored: StoredDocument[] = [];
  const misfits: MisfitDocument[] = [];
  const rows: { storageId: string; assetId: string; values: unknown[] }[] = [];
  const columns =
    plan.storageChoice === 'jsonb' ? [DOC_COLUMN] : [...plan.columns.map((column) => column.column), 'extra'];
  for (const { assetId, document } of documents) {
    let values: unknown[];
    try {
      const row = fitDocument(plan, document);
      values =
        plan.storageChoice === 'jsonb'
          ? [row.values[DOC_COLUMN]]
          : [
              ...plan.columns.map((column) => row.values[column.column] ?? null),
              row.extra === null ? null : JSON.stringify(row.extra),
            ];
    } catch (error) {
      if (!isPermanentError(error)) throw error;
      misfits.push({ assetId, message: (error as Error).message });
      continue;
    }
    const storageId = randomUUID();
    rows.push({ storageId, assetId, values });
    stored.push({ assetId, storageId, uri: storedDocumentUri(plan.storageChoice, plan.name, storageId) });
  }

  const table = dataTable(plan);
  const columnList = sql.join(['id', 'asset_id', ...columns, 'created_at'].map((column) => sql.id(column)));
  const rowsPerStatement = Math.max(1, Math.floor(MAX_STATEMENT_PARAMETERS / (columns.length + 2)));
  for (const chunk of chunked(rows, rowsPerStatement)) {
    // clock_timestamp() differs row by row, so created_at records the insertion order the records API lists.
    const tuples = chunk.map(
      (row) => sql`(${sql.join([row.storageId, row.assetId, ...row.values])}, clock_timestamp())`,
    );
    await sql`insert into ${table} (${columnList}) values ${sql.join(tuples)}`.execute(db);
  }
  return { stored, misfits };
}

/** Writes (or refreshes) staged documents of a schema. */
export async function stageDocuments(
  db: Executor,
  schemaId: string,
  documents: readonly DocumentToStore[],
): Promise<void> {
  for (const chunk of chunked(documents, 5_000)) {
    await db
      .insertInto('json_staging')
      .values(
        chunk.map(({ assetId, document }) => ({
          asset_id: assetId,
          schema_id: schemaId,
          doc: JSON.stringify(document),
          created_at: sql<Date>`clock_timestamp()` as never,
        })),
      )
      .onConflict((conflict) =>
        conflict.column('asset_id').doUpdateSet({
          schema_id: (eb) => eb.ref('excluded.schema_id'),
          doc: (eb) => eb.ref('excluded.doc'),
        }),
      )
      .execute();
  }
}

/** The stored document of a JSON asset (§3.8.6 reconstruction), or null when its row is gone. */
export async function loadStoredDocument(
  db: Executor,
  schema: Pick<SchemaRow, 'table_plan'>,
  storageId: string,
): Promise<Record<string, unknown> | null> {
  const plan = parseTablePlan(schema.table_plan);
  const result = await sql<Record<string, unknown>>`
    select * from ${dataTable(plan)} where ${sql.id('id')} = ${storageId}`.execute(db);
  const row = result.rows[0];
  if (row === undefined) return null;
  return reconstructDocument(plan, row, (row.extra ?? null) as Record<string, unknown> | null);
}

/** Deletes a JSON asset's row from its data table (objects API delete); returns whether a row went. */
export async function deleteStoredDocument(
  db: Executor,
  schema: Pick<SchemaRow, 'table_plan'>,
  storageId: string,
): Promise<boolean> {
  const plan = parseTablePlan(schema.table_plan);
  if (!(await dataTableExists(db, plan.name))) return false;
  const result = await sql<{ id: string }>`
    delete from ${dataTable(plan)} where ${sql.id('id')} = ${storageId} returning ${sql.id('id')}`.execute(
    db,
  );
  return result.rows.length > 0;
}

// ---------------------------------------------------------------------------------------------------------
// One batch

/** The batch's unsettled assets in position order (a batch key is a json_batch value, or a lone asset's id). */
async function loadBatchAssets(db: Executor, batch: JsonBatch): Promise<AssetRow[]> {
  const loneAsset = UUID_PATTERN.test(batch.batchKey);
  return db
    .selectFrom('asset')
    .selectAll()
    .where('job_id', '=', batch.jobId)
    .where('kind', '=', 'json')
    .where('status', 'in', ['queued', 'processing'])
    .where((eb) =>
      loneAsset
        ? eb.or([
            eb('json_batch', '=', batch.batchKey),
            eb.and([eb('json_batch', 'is', null), eb('id', '=', batch.batchKey)]),
          ])
        : eb('json_batch', '=', batch.batchKey),
    )
    .orderBy('position')
    .orderBy('created_at')
    .execute();
}

async function schemaByHash(db: Executor, structureHash: string): Promise<SchemaRow | undefined> {
  // The row lock orders this batch against a concurrent approval/rejection of the same schema.
  return db
    .selectFrom('schema_def')
    .selectAll()
    .where('structure_hash', '=', structureHash)
    .forUpdate()
    .executeTakeFirst();
}

/** Names a new schema must avoid: other schemas' names and existing data tables starting with `prefix`. */
export async function takenNames(db: Executor, prefix: string): Promise<Set<string>> {
  const schemas = await db
    .selectFrom('schema_def')
    .select('name')
    .where(sql<boolean>`starts_with(name, ${prefix})`)
    .execute();
  const tables = await sql<{ tablename: string }>`
    select tablename from pg_catalog.pg_tables
    where schemaname = ${DATA_SCHEMA} and starts_with(tablename, ${prefix})`.execute(db);
  return new Set([...schemas.map((row) => row.name), ...tables.rows.map((row) => row.tablename)]);
}

interface ResolvedSchema {
  schema: SchemaRow;
  created: boolean;
}

async function resolveSchema(
  tx: Transaction<CatalogDatabase>,
  analysis: JsonAnalysis,
  decision: SchemaDecision,
  hint: string | null,
  autoMigrate: boolean,
): Promise<ResolvedSchema> {
  const existing = await schemaByHash(tx, analysis.structureHash);
  if (existing !== undefined) return { schema: existing, created: false };
  // Creation is serialised: a second batch of the same structure waits here, then finds the first one's schema.
  await sql`select pg_advisory_xact_lock(${sql.lit(SCHEMA_LOCK_KEY)})`.execute(tx);
  const created = await schemaByHash(tx, analysis.structureHash);
  if (created !== undefined) return { schema: created, created: false };

  const choice = decision.storageChoice;
  const base = sanitiseNameHint(hint) ?? defaultSchemaName(choice, analysis.structureHash);
  const taken = await takenNames(tx, base);
  const name = chooseSchemaName(hint, choice, analysis.structureHash, (candidate) => taken.has(candidate));
  const plan = planTable(name, analysis, choice);
  const schema = await tx
    .insertInto('schema_def')
    .values({
      id: randomUUID(),
      name,
      structure_hash: analysis.structureHash,
      storage_choice: choice,
      version: 1,
      ddl: renderDdl(plan),
      status: autoMigrate ? 'active' : 'provisional',
      confidence: decision.confidence,
      sample_size: analysis.documentsAnalyzed,
      field_stability: analysis.fieldStability,
      type_stability: analysis.typeStability,
      max_depth: analysis.maxDepth,
      top_level_keys: analysis.topLevelKeys,
      has_array_of_objects: analysis.hasArrayOfObjects,
      fields: JSON.stringify(adminFieldStats(analysis, plan)),
      table_plan: JSON.stringify(plan),
      decision_reason: decision.reason,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
  return { schema, created: true };
}

interface AssetOutcome {
  assetId: string;
  status: 'done' | 'pending_review' | 'failed';
  storageId: string | null;
  uri: string | null;
  errorMessage: string | null;
  searchTokens: string[];
}

async function updateAssets(
  tx: Transaction<CatalogDatabase>,
  schemaId: string | null,
  outcomes: readonly AssetOutcome[],
) {
  for (const outcome of outcomes) {
    await tx
      .updateTable('asset')
      .set({
        status: outcome.status,
        schema_id: schemaId,
        storage_id: outcome.storageId,
        uri: outcome.uri,
        error_message: outcome.errorMessage,
        search_tokens: outcome.searchTokens,
        updated_at: sql`clock_timestamp()` as never,
      })
      .where('id', '=', outcome.assetId)
      .execute();
  }
}

interface BatchResult {
  schema: SchemaRow | null;
  created: boolean;
  outcomes: AssetOutcome[];
}

/**
 * Processes one JSON batch of a job (spec §3.8.3–§3.8.6): analysis, schema reuse or creation, then storing
 * (active), staging (provisional) or failing (rejected) its documents, in one transaction. A document that
 * does not fit its table fails permanently and stays staged. Database errors are thrown (the attempt is retried).
 */
export async function processJsonBatch(runtime: AllocatorRuntime, batch: JsonBatch): Promise<void> {
  const { catalog, config } = runtime;
  const assets = await loadBatchAssets(catalog, batch);
  if (assets.length === 0) return;
  const withDocument = assets.filter((asset) => isPlainObject(asset.document));
  const documents = withDocument.map((asset) => asset.document as Record<string, unknown>);
  const tokensOf = new Map(
    assets.map((asset) => [asset.id, jsonSearchTokens(asset.document, asset.comments, asset.user_tags)]),
  );

  const analysis =
    documents.length === 0
      ? null
      : analyseDocuments(documents, { sampleSize: config.schemaSampleSize, maxDepth: config.schemaMaxDepth });
  const decision =
    analysis === null
      ? null
      : decideStorage(analysis, {
          maxTopLevelKeys: config.schemaMaxTopLevelKeys,
          maxDepth: config.schemaMaxDepth,
          stabilityThreshold: config.schemaStabilityThreshold,
        });

  const run = () =>
    catalog.transaction().execute(async (tx): Promise<BatchResult> => {
      const lineage: LineageEntry[] = [];
      const outcomes: AssetOutcome[] = [];
      const fail = (assetId: string, message: string, detail: Record<string, unknown>) => {
        outcomes.push({
          assetId,
          status: 'failed',
          storageId: null,
          uri: null,
          errorMessage: message,
          searchTokens: tokensOf.get(assetId) ?? [],
        });
        lineage.push({
          requestId: batch.requestId,
          assetId,
          stage: 'processing_error',
          success: false,
          errorMessage: message,
          detail: { job_id: batch.jobId, permanent: true, ...detail },
        });
      };
      for (const asset of assets) {
        if (!isPlainObject(asset.document)) fail(asset.id, 'JSON document is missing', {});
      }
      if (analysis === null || decision === null) {
        await updateAssets(tx, null, outcomes);
        await recordLineageList(tx, lineage);
        return { schema: null, created: false, outcomes };
      }

      const { schema, created } = await resolveSchema(tx, analysis, decision, batch.hint, config.autoMigrate);
      const plan = parseTablePlan(schema.table_plan);
      const analysisDetail = {
        structure_hash: analysis.structureHash,
        storage_choice: decision.storageChoice,
        confidence: decision.confidence,
        documents_analyzed: analysis.documentsAnalyzed,
        batch_size: documents.length,
        top_level_keys: analysis.topLevelKeys,
        max_depth: analysis.maxDepth,
        field_stability: analysis.fieldStability,
        type_stability: analysis.typeStability,
        has_array_of_objects: analysis.hasArrayOfObjects,
      };
      const schemaDetail = {
        schema_id: schema.id,
        name: schema.name,
        status: schema.status,
        storage_choice: schema.storage_choice,
      };
      for (const asset of withDocument) {
        const common = { requestId: batch.requestId, assetId: asset.id, schemaId: schema.id };
        lineage.push(
          { ...common, stage: 'schema_analysis', detail: analysisDetail },
          { ...common, stage: created ? 'schema_created' : 'schema_reused', detail: schemaDetail },
        );
      }
      const toStore = withDocument.map((asset) => ({
        assetId: asset.id,
        document: asset.document as Record<string, unknown>,
      }));

      if (schema.status === 'rejected') {
        for (const { assetId } of toStore)
          fail(assetId, `schema ${schema.id} was rejected`, { schema_id: schema.id });
      } else if (schema.status === 'provisional') {
        await stageDocuments(tx, schema.id, toStore);
        for (const { assetId } of toStore) {
          outcomes.push({
            assetId,
            status: 'pending_review',
            storageId: null,
            uri: null,
            errorMessage: null,
            searchTokens: tokensOf.get(assetId) ?? [],
          });
          lineage.push({
            requestId: batch.requestId,
            assetId,
            schemaId: schema.id,
            stage: 'json_staged',
            detail: { schema_id: schema.id, name: schema.name },
          });
        }
      } else {
        if (created || !(await dataTableExists(tx, plan.name))) await createDataTable(tx, plan);
        const { stored, misfits } = await insertDocuments(tx, plan, toStore);
        for (const document of stored) {
          outcomes.push({
            assetId: document.assetId,
            status: 'done',
            storageId: document.storageId,
            uri: document.uri,
            errorMessage: null,
            searchTokens: tokensOf.get(document.assetId) ?? [],
          });
          lineage.push({
            requestId: batch.requestId,
            assetId: document.assetId,
            schemaId: schema.id,
            stage: 'json_stored',
            detail: {
              schema_id: schema.id,
              table: plan.name,
              storage_id: document.storageId,
              uri: document.uri,
            },
          });
        }
        // Kept staged so the document stays readable (and movable once the table is fixed by hand).
        const misfitIds = new Set(misfits.map((misfit) => misfit.assetId));
        await stageDocuments(
          tx,
          schema.id,
          toStore.filter((document) => misfitIds.has(document.assetId)),
        );
        for (const misfit of misfits)
          fail(misfit.assetId, misfit.message, { schema_id: schema.id, staged: true });
      }

      await updateAssets(tx, schema.id, outcomes);
      await recordLineageList(tx, lineage);
      return { schema, created, outcomes };
    });

  let result: BatchResult;
  try {
    result = await run();
  } catch (error) {
    // Another process created the same structure (or took the name) in between: the re-read finds its schema.
    if (!isUniqueViolation(error)) throw error;
    result = await run();
  }

  const logger = namedLogger(runtime.logger, 'allocator.json');
  if (result.created && result.schema !== null) {
    runtime.metrics.schemasCreated.inc({ storage_choice: result.schema.storage_choice });
    logger.info(
      {
        job_id: batch.jobId,
        schema_id: result.schema.id,
        name: result.schema.name,
        storage_choice: result.schema.storage_choice,
        status: result.schema.status,
      },
      'schema created',
    );
  }
  const counts = { done: 0, pending_review: 0, failed: 0 };
  for (const outcome of result.outcomes) counts[outcome.status] += 1;
  logger.debug(
    { job_id: batch.jobId, schema_id: result.schema?.id ?? null, ...counts },
    'JSON batch processed',
  );
  runtime.changes.assetsChanged(result.outcomes.map((outcome) => outcome.assetId));
}
