// Folder ingest (spec §3.13): a folder under INGEST_ALLOWED_ROOT is scanned, recorded as an ingestion batch,
// and each of its files is ingested in the background as its own job, exactly as an upload would be. The
// batch's counters are recounted from its jobs whenever one settles, and a batch that reaches a terminal
// state notifies its callback_url (spec §3.16, `batch.completed`).
import { randomUUID } from 'node:crypto';
import { basename } from 'node:path';
import { namedLogger } from '@quintet/kernel/log';
import { type Selectable, sql } from 'kysely';
import type { AllocatorRuntime } from '../runtime.js';
import type { BatchStatus, IngestionBatchTable } from './database.js';
import { type FolderScan, resolveIngestFolder, type ScannedFile, scanFolder } from './folder-scan.js';
import { acceptIngest, IngestProblem, spoolLocalFile } from './ingest.js';
import { recordLineage } from './lineage.js';
import { deliverWebhook } from './webhooks.js';

export const BATCH_STATUSES: readonly BatchStatus[] = ['pending', 'processing', 'completed', 'failed'];

/** Default priority of folder files: below interactive uploads (0), so those go first. */
export const FOLDER_DEFAULT_PRIORITY = -1;

/** What recounting a batch (and notifying its callback) uses of the runtime. */
export type BatchRuntime = Pick<AllocatorRuntime, 'catalog' | 'config' | 'logger' | 'version'>;

export interface FolderIngestRequest {
  folderPath: string;
  owner: string | null;
  userComment: string | null;
  priority: number;
  callbackUrl: string | null;
}

/** Why a folder cannot be ingested; the route maps each to its status and message. */
export type FolderRefusal = 'disabled' | 'outside' | 'missing' | 'not_directory' | 'no_supported_files';

export type FolderIngestStart =
  | { ok: true; batchId: string; stats: FolderScan['stats']; background: Promise<void> }
  | { ok: false; refusal: FolderRefusal };

/** A rejected file of a batch (vanished, unsupported, over a limit, invalid JSON): counted failed at once. */
interface RejectedFile {
  file: string;
  error: string;
}

type BatchRow = Selectable<IngestionBatchTable>;

/**
 * Checks the folder against INGEST_ALLOWED_ROOT, scans it, records a `pending` batch and starts ingesting its
 * files in the background (`background` settles when every file was submitted; it never rejects).
 */
export async function startFolderIngest(
  runtime: AllocatorRuntime,
  request: FolderIngestRequest,
): Promise<FolderIngestStart> {
  const allowedRoot = runtime.config.ingestAllowedRoot;
  if (allowedRoot === undefined || allowedRoot === '') return { ok: false, refusal: 'disabled' };
  const resolved = await resolveIngestFolder(request.folderPath, allowedRoot);
  if (!resolved.ok) return { ok: false, refusal: resolved.problem };
  const scan = await scanFolder(resolved.folder, resolved.root);
  if (scan.files.length === 0) return { ok: false, refusal: 'no_supported_files' };

  const batchId = randomUUID();
  await runtime.catalog
    .insertInto('ingestion_batch')
    .values({
      id: batchId,
      request_id: batchId,
      status: 'pending',
      total_files: scan.stats.total_files,
      metadata: JSON.stringify({
        folder_path: resolved.folder,
        owner: request.owner,
        user_comment: request.userComment,
        stats: scan.stats,
        error_message: null,
        rejected_files: [],
      }),
      callback_url: request.callbackUrl,
    })
    .execute();
  await recordLineage(runtime.catalog, {
    requestId: batchId,
    stage: 'folder_ingest_accepted',
    detail: { batch_id: batchId, folder_path: resolved.folder, total_files: scan.stats.total_files },
  });
  const background = ingestBatchFiles(runtime, batchId, scan.files, request);
  trackBackground(background);
  return { ok: true, batchId, stats: scan.stats, background };
}

/** Submits every file of the batch as its own job; failures are counted on the batch, never thrown. */
async function ingestBatchFiles(
  runtime: AllocatorRuntime,
  batchId: string,
  files: readonly ScannedFile[],
  request: FolderIngestRequest,
): Promise<void> {
  const log = namedLogger(runtime.logger, 'allocator.folder').child({ batch_id: batchId });
  try {
    await runtime.catalog
      .updateTable('ingestion_batch')
      .set({
        status: 'processing',
        started_at: sql`coalesce(started_at, clock_timestamp())` as never,
        updated_at: sql`clock_timestamp()` as never,
      })
      .where('id', '=', batchId)
      .where('status', '=', 'pending')
      .execute();
    for (const file of files) {
      const problem = await submitFile(runtime, batchId, file, request);
      if (problem !== null) {
        log.warn({ file: file.relativePath, error: problem }, 'folder file rejected');
        await recordRejected(runtime, batchId, { file: file.relativePath, error: problem });
      }
      await updateBatchProgress(runtime, batchId);
    }
  } catch (error) {
    // Recording progress failed (the database went away): whatever was not submitted counts as failed, so the
    // batch can still settle once its submitted jobs do.
    log.error({ err: error }, 'folder ingest stopped');
    await markUnsubmittedFailed(runtime, batchId, (error as Error).message ?? String(error)).catch(
      (failure: unknown) => log.error({ err: failure }, 'could not record the failure of a folder ingest'),
    );
  }
}

/** Spools and accepts one file; returns why it failed, or null when its job was created. */
async function submitFile(
  runtime: AllocatorRuntime,
  batchId: string,
  file: ScannedFile,
  request: FolderIngestRequest,
): Promise<string | null> {
  const filename = basename(file.relativePath);
  try {
    const spooled = await spoolLocalFile(runtime, file.path, filename);
    if (spooled === null) return `File ${filename}: unsupported file type`;
    await acceptIngest(runtime, {
      requestId: null,
      files: [spooled],
      payload: null,
      owner: request.owner,
      comments: request.userComment,
      collectionName: null,
      tags: [],
      priority: request.priority,
      callbackUrl: null,
      batchId,
    });
    return null;
  } catch (error) {
    if (error instanceof IngestProblem) return error.message;
    const code = (error as { code?: unknown } | null)?.code;
    if (code === 'ENOENT' || code === 'ENOTDIR')
      return `File ${filename}: vanished before it could be ingested`;
    if (code === 'EACCES' || code === 'EPERM' || code === 'EISDIR')
      return `File ${filename}: cannot be read (${String(code)})`;
    // Anything else (storage full, a database hiccup) fails this file only; the rest of the folder goes on.
    return `File ${filename}: ${(error as Error).message ?? String(error)}`;
  }
}

async function recordRejected(
  runtime: AllocatorRuntime,
  batchId: string,
  rejected: RejectedFile,
): Promise<void> {
  await runtime.catalog
    .updateTable('ingestion_batch')
    .set({
      metadata: sql`jsonb_set(metadata, '{rejected_files}',
        coalesce(metadata->'rejected_files', '[]'::jsonb) || ${JSON.stringify([rejected])}::jsonb)` as never,
      updated_at: sql`clock_timestamp()` as never,
    })
    .where('id', '=', batchId)
    .execute();
}

/** Records every file without a job (and not yet rejected) as rejected with `reason`, then recounts. */
async function markUnsubmittedFailed(
  runtime: AllocatorRuntime,
  batchId: string,
  reason: string,
): Promise<void> {
  const batch = await runtime.catalog
    .selectFrom('ingestion_batch')
    .selectAll()
    .where('id', '=', batchId)
    .executeTakeFirst();
  if (batch === undefined) return;
  const jobs = await runtime.catalog
    .selectFrom('job')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('batch_id', '=', batchId)
    .executeTakeFirstOrThrow();
  const rejected = rejectedFilesOf(batch).length;
  const missing = batch.total_files - Number(jobs.n) - rejected;
  if (missing > 0) {
    const entries: RejectedFile[] = Array.from({ length: missing }, () => ({ file: '', error: reason }));
    await runtime.catalog
      .updateTable('ingestion_batch')
      .set({
        metadata: sql`jsonb_set(jsonb_set(metadata, '{rejected_files}',
          coalesce(metadata->'rejected_files', '[]'::jsonb) || ${JSON.stringify(entries)}::jsonb),
          '{stop_reason}', to_jsonb(${`folder ingest stopped: ${reason}`}::text))` as never,
        updated_at: sql`clock_timestamp()` as never,
      })
      .where('id', '=', batchId)
      .execute();
  }
  await updateBatchProgress(runtime, batchId);
}

function rejectedFilesOf(batch: BatchRow): RejectedFile[] {
  const rejected = batch.metadata.rejected_files;
  return Array.isArray(rejected) ? (rejected as RejectedFile[]) : [];
}

/**
 * Called by the job executor whenever a job with a batch_id reaches done/failed: recounts processed/failed
 * files, moves the batch to completed/failed when all files settled, fires batch.completed webhook (never
 * blocking).
 */
export async function updateBatchProgress(runtime: BatchRuntime, batchId: string): Promise<void> {
  // One transaction holding the batch row: concurrent recounts (several executors, several processes) apply
  // in turn, and each counts after the previous one committed.
  const outcome = await runtime.catalog.transaction().execute(async (tx) => {
    const batch = await tx
      .selectFrom('ingestion_batch')
      .selectAll()
      .where('id', '=', batchId)
      .forUpdate()
      .executeTakeFirst();
    if (batch === undefined) return null;
    const counts = await tx
      .selectFrom('job')
      .select((eb) => [
        eb.fn.countAll<number>().filterWhere('status', '=', 'done').as('done'),
        eb.fn.countAll<number>().filterWhere('status', '=', 'failed').as('failed'),
      ])
      .where('batch_id', '=', batchId)
      .executeTakeFirstOrThrow();
    const rejected = rejectedFilesOf(batch).length;
    const succeeded = Number(counts.done);
    const failed = Number(counts.failed) + rejected;
    const processed = Math.min(batch.total_files, succeeded + failed);
    const settled = processed >= batch.total_files;
    const status: BatchStatus = settled ? (succeeded >= 1 ? 'completed' : 'failed') : 'processing';
    // Announced once per transition into a terminal state (again after a requeued file settles anew).
    const becameTerminal = settled && batch.status !== status;
    const stopReason = (batch.metadata.stop_reason as string | null | undefined) ?? null;
    const errorMessage = stopReason ?? (status === 'failed' ? `All ${batch.total_files} files failed` : null);
    await tx
      .updateTable('ingestion_batch')
      .set({
        status,
        processed_files: processed,
        failed_files: failed,
        job_ids: sql`coalesce((select array_agg(j.id order by j.created_at, j.id) from job j
          where j.batch_id = ${batchId}), '{}'::uuid[])` as never,
        metadata:
          sql`jsonb_set(metadata, '{error_message}', coalesce(to_jsonb(${errorMessage}::text), 'null'::jsonb))` as never,
        started_at: sql`coalesce(started_at, clock_timestamp())` as never,
        completed_at: settled ? (sql`coalesce(completed_at, clock_timestamp())` as never) : null,
        updated_at: sql`clock_timestamp()` as never,
      })
      .where('id', '=', batchId)
      .execute();
    return { becameTerminal, callbackUrl: batch.callback_url, requestId: batch.request_id };
  });
  if (outcome?.becameTerminal && outcome.callbackUrl !== null)
    notifyBatchTerminal(runtime, batchId, outcome.requestId, outcome.callbackUrl);
}

/** Posts the batch body as `batch.completed` in the background and records the delivery's outcome. */
function notifyBatchTerminal(runtime: BatchRuntime, batchId: string, requestId: string, url: string): void {
  const log = namedLogger(runtime.logger, 'allocator.folder');
  const delivery = (async () => {
    const body = await batchStatusBody(runtime, batchId);
    if (body === null) return;
    const result = await deliverWebhook(url, 'batch.completed', body, {
      version: runtime.version,
      secret: runtime.config.webhookSecret,
    });
    await recordLineage(runtime.catalog, {
      requestId,
      stage: result.delivered ? 'webhook_delivered' : 'webhook_failed',
      success: result.delivered,
      errorMessage: result.error,
      detail: {
        batch_id: batchId,
        event: 'batch.completed',
        delivery_id: result.deliveryId,
        attempts: result.attempts,
        status: result.status,
      },
    });
  })().catch((error: unknown) =>
    log.warn({ err: error, batch_id: batchId }, 'batch webhook delivery failed'),
  );
  trackBackground(delivery);
}

/** The GET /api/v1/ingest/batch/{id} body (spec §3.13); null when unknown. */
export async function batchStatusBody(
  runtime: Pick<AllocatorRuntime, 'catalog'>,
  batchId: string,
): Promise<Record<string, unknown> | null> {
  const batch = await runtime.catalog
    .selectFrom('ingestion_batch')
    .selectAll()
    .where('id', '=', batchId)
    .executeTakeFirst();
  return batch === undefined ? null : batchBody(batch);
}

/** Batches newest first, optionally by status and owner. */
export async function listBatches(
  runtime: Pick<AllocatorRuntime, 'catalog'>,
  options: { status?: BatchStatus; owner?: string; limit: number },
): Promise<{ batches: Record<string, unknown>[]; count: number }> {
  let query = runtime.catalog.selectFrom('ingestion_batch').selectAll();
  if (options.status !== undefined) query = query.where('status', '=', options.status);
  if (options.owner !== undefined) query = query.where(sql<string>`metadata->>'owner'`, '=', options.owner);
  const rows = await query.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(options.limit).execute();
  const batches = rows.map(batchBody);
  return { batches, count: batches.length };
}

function batchBody(batch: BatchRow): Record<string, unknown> {
  const metadata = batch.metadata;
  const iso = (value: Date | null) => (value === null ? null : value.toISOString());
  const progress =
    batch.total_files === 0 ? 0 : Math.round((10_000 * batch.processed_files) / batch.total_files) / 100;
  return {
    batch_id: batch.id,
    status: batch.status,
    folder_path: metadata.folder_path ?? null,
    total_files: batch.total_files,
    processed_files: batch.processed_files,
    failed_files: batch.failed_files,
    progress_percent: progress,
    owner: metadata.owner ?? null,
    user_comment: metadata.user_comment ?? null,
    job_ids: [...batch.job_ids],
    created_at: batch.created_at.toISOString(),
    updated_at: batch.updated_at.toISOString(),
    started_at: iso(batch.started_at),
    completed_at: iso(batch.completed_at),
    error_message: metadata.error_message ?? null,
  };
}

/** Background work (file submission, webhooks) still running in this process. */
const backgroundWork = new Set<Promise<void>>();

function trackBackground(work: Promise<void>): void {
  backgroundWork.add(work);
  void work.finally(() => backgroundWork.delete(work));
}

/** Resolves once this process's folder submissions and batch webhooks have finished (or after `timeoutMs`). */
export async function settleFolderIngests(timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    Promise.all(backgroundWork),
    new Promise((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
      timer.unref();
    }),
  ]);
  clearTimeout(timer);
}
