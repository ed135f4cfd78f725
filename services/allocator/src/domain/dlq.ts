// The dead-letter queue (spec §3.14): jobs that failed for good stay `failed` with `dead_letter` true until an
// operator requeues them (a fresh set of attempts) or discards them (they stay failed but leave the queue).
// Shared by the admin routes and the `file-allocator dlq` commands.
import { type Selectable, sql } from 'kysely';
import type { AllocatorRuntime } from '../runtime.js';
import type { JobTable, JobType } from './database.js';
import { type BatchRuntime, updateBatchProgress } from './folder-ingest.js';
import { recordLineage } from './lineage.js';

export interface DeadLetterEntry {
  job_id: string;
  job_type: string;
  request_id: string;
  owner: string | null;
  error: string | null;
  retries: number;
  asset_ids: string[];
  original_timestamp: string;
  dlq_timestamp: string | null;
}

export interface DeadLetterDetail extends DeadLetterEntry {
  job_data: unknown;
  assets: { system_id: string; status: string; error_message: string | null }[];
}

/** What requeueing uses of the runtime (a requeued batch file reopens its batch, which may notify). */
export type DeadLetterRuntime = Pick<AllocatorRuntime, 'catalog' | 'jobs' | 'metrics' | 'changes'> &
  BatchRuntime;

type JobRow = Selectable<JobTable>;

function entryOf(job: JobRow): DeadLetterEntry {
  return {
    job_id: job.id,
    job_type: job.job_type,
    request_id: job.request_id,
    owner: job.owner,
    error: job.error_message,
    retries: job.retry_count,
    asset_ids: [...job.asset_ids],
    original_timestamp: job.created_at.toISOString(),
    dlq_timestamp: job.dead_lettered_at === null ? null : job.dead_lettered_at.toISOString(),
  };
}

/** Dead-lettered jobs, newest first (by when they were dead-lettered); `total` counts all matching ones. */
export async function listDeadLetters(
  runtime: Pick<AllocatorRuntime, 'catalog'>,
  options: { jobType?: string; limit: number },
): Promise<{ jobs: DeadLetterEntry[]; count: number; total: number }> {
  let query = runtime.catalog.selectFrom('job').where('dead_letter', '=', true);
  if (options.jobType !== undefined) query = query.where('job_type', '=', options.jobType as JobType);
  const [rows, totalRow] = await Promise.all([
    query
      .selectAll()
      .orderBy(sql`dead_lettered_at desc nulls last`)
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .limit(options.limit)
      .execute(),
    query.select((eb) => eb.fn.countAll<number>().as('total')).executeTakeFirstOrThrow(),
  ]);
  const jobs = rows.map(entryOf);
  return { jobs, count: jobs.length, total: Number(totalRow.total) };
}

/** One dead-lettered job with its job data and assets (in system_ids order, then extracted children); null when not in the DLQ. */
export async function getDeadLetter(
  runtime: Pick<AllocatorRuntime, 'catalog'>,
  jobId: string,
): Promise<DeadLetterDetail | null> {
  const job = await runtime.catalog
    .selectFrom('job')
    .selectAll()
    .where('id', '=', jobId)
    .where('dead_letter', '=', true)
    .executeTakeFirst();
  if (job === undefined) return null;
  const assetRows = await runtime.catalog
    .selectFrom('asset')
    .select(['id', 'status', 'error_message', 'position', 'created_at'])
    .where((eb) =>
      job.asset_ids.length === 0
        ? eb('job_id', '=', jobId)
        : // one array parameter, however many assets the job has
          eb.or([eb('job_id', '=', jobId), eb('id', '=', sql<string>`any(${job.asset_ids}::uuid[])`)]),
    )
    .orderBy('position')
    .orderBy('created_at')
    .orderBy('id')
    .execute();
  const rank = new Map(job.asset_ids.map((id, index) => [id, index] as const));
  const ordered = assetRows
    .map((row, index) => ({ row, order: rank.get(row.id) ?? job.asset_ids.length + index }))
    .sort((a, b) => a.order - b.order)
    .map(({ row }) => ({ system_id: row.id, status: row.status, error_message: row.error_message }));
  return { ...entryOf(job), job_data: job.job_data, assets: ordered };
}

/** dead_letter false, retry_count 0, failed assets → queued (error cleared), job queued, enqueued; false when not a dead letter. */
export async function requeueDeadLetter(runtime: DeadLetterRuntime, jobId: string): Promise<boolean> {
  const result = await runtime.catalog.transaction().execute(async (tx) => {
    const job = await tx
      .updateTable('job')
      .set({
        status: 'queued',
        dead_letter: false,
        dead_lettered_at: null,
        retry_count: 0,
        next_retry_at: null,
        lease_until: null,
        completed_at: null,
        error_message: null,
        updated_at: sql`clock_timestamp()` as never,
      })
      .where('id', '=', jobId)
      .where('dead_letter', '=', true)
      .returning(['id', 'request_id', 'job_type', 'priority', 'batch_id'])
      .executeTakeFirst();
    if (job === undefined) return null;
    const requeued = await tx
      .updateTable('asset')
      .set({ status: 'queued', error_message: null, updated_at: sql`clock_timestamp()` as never })
      .where('job_id', '=', jobId)
      .where('status', '=', 'failed')
      .returning('id')
      .execute();
    await recordLineage(tx, {
      requestId: job.request_id,
      stage: 'admin_dlq_requeue',
      detail: { job_id: jobId },
    });
    return { job, assetIds: requeued.map((row) => row.id) };
  });
  if (result === null) return false;
  runtime.changes.assetsChanged(result.assetIds);
  await runtime.jobs.enqueue(jobId, { priority: result.job.priority });
  await refreshDeadLetterDepth(runtime, result.job.job_type);
  // A batch whose file is being retried is no longer settled.
  if (result.job.batch_id !== null) await updateBatchProgress(runtime, result.job.batch_id);
  return true;
}

/** stays failed, leaves the DLQ: dead_letter false, discarded_at set; false when not a dead letter. */
export async function discardDeadLetter(
  runtime: Pick<AllocatorRuntime, 'catalog' | 'metrics'>,
  jobId: string,
): Promise<boolean> {
  const job = await runtime.catalog.transaction().execute(async (tx) => {
    const row = await tx
      .updateTable('job')
      .set({
        dead_letter: false,
        discarded_at: sql`clock_timestamp()` as never,
        updated_at: sql`clock_timestamp()` as never,
      })
      .where('id', '=', jobId)
      .where('dead_letter', '=', true)
      .returning(['id', 'request_id', 'job_type'])
      .executeTakeFirst();
    if (row !== undefined)
      await recordLineage(tx, {
        requestId: row.request_id,
        stage: 'admin_dlq_discard',
        detail: { job_id: jobId },
      });
    return row;
  });
  if (job === undefined) return false;
  await refreshDeadLetterDepth(runtime, job.job_type);
  return true;
}

/** Sets dead_letter_queue_depth{job_type} from the catalog. */
export async function refreshDeadLetterDepth(
  runtime: Pick<AllocatorRuntime, 'catalog' | 'metrics'>,
  jobType: JobType,
): Promise<void> {
  const row = await runtime.catalog
    .selectFrom('job')
    .select((eb) => eb.fn.countAll<number>().as('depth'))
    .where('dead_letter', '=', true)
    .where('job_type', '=', jobType)
    .executeTakeFirstOrThrow();
  runtime.metrics.deadLetterDepth.set({ job_type: jobType }, Number(row.depth));
}
