// Dead-letter queue operations (spec §3.14) on an in-memory catalog with job rows written directly.
import { randomUUID } from 'node:crypto';
import type { Database } from '@quintet/kernel/db';
import { createLogger } from '@quintet/kernel/log';
import { sql } from 'kysely';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import {
  type CatalogDatabase,
  type JobStatus,
  type JobType,
  migrateCatalog,
  openCatalog,
} from '../src/domain/database.js';
import {
  type DeadLetterRuntime,
  discardDeadLetter,
  getDeadLetter,
  listDeadLetters,
  requeueDeadLetter,
} from '../src/domain/dlq.js';
import { createAllocatorMetrics } from '../src/domain/metrics.js';

interface Enqueued {
  jobId: string;
  priority: number | undefined;
}

let database: Database<CatalogDatabase>;
let enqueued: Enqueued[];
let changed: string[];
let runtime: DeadLetterRuntime & { metrics: ReturnType<typeof createAllocatorMetrics> };

beforeAll(async () => {
  database = await openCatalog({
    databaseUrl: undefined,
    pgliteDir: undefined,
    poolSize: 1,
    embeddingDim: 8,
  });
  await migrateCatalog(database, 8);
});

afterAll(async () => {
  await database?.close();
});

beforeEach(async () => {
  await database.kysely.deleteFrom('lineage').execute();
  await database.kysely.deleteFrom('asset').execute();
  await database.kysely.deleteFrom('job').execute();
  await database.kysely.deleteFrom('ingestion_batch').execute();
  enqueued = [];
  changed = [];
  runtime = {
    catalog: database.kysely,
    config: loadConfig({}),
    logger: createLogger({ name: 'test', level: 'silent' }),
    version: 'test',
    metrics: createAllocatorMetrics(),
    jobs: {
      backend: 'inproc',
      enqueue: async (jobId, options) => {
        enqueued.push({ jobId, priority: options?.priority });
      },
      reachable: async () => true,
    },
    changes: {
      assetsChanged: (ids) => changed.push(...ids),
      assetsDeleted: () => {},
      onChange: () => () => {},
    },
  };
});

interface JobSpec {
  jobType?: JobType;
  status?: JobStatus;
  deadLetter?: boolean;
  deadLetteredAt?: string | null;
  createdAt?: string;
  retryCount?: number;
  error?: string | null;
  owner?: string | null;
  priority?: number;
  batchId?: string | null;
  /** statuses of the job's assets, in system_ids order */
  assets?: { status: 'queued' | 'done' | 'failed'; error?: string }[];
}

async function insertJob(
  spec: JobSpec = {},
): Promise<{ jobId: string; requestId: string; assetIds: string[] }> {
  const jobId = randomUUID();
  const requestId = `req-${jobId.slice(0, 8)}`;
  const assets = spec.assets ?? [{ status: 'failed', error: 'injected fault' }];
  const assetIds = assets.map(() => randomUUID());
  const deadLetter = spec.deadLetter ?? true;
  await database.kysely
    .insertInto('job')
    .values({
      id: jobId,
      request_id: requestId,
      fingerprint: 'f'.repeat(64),
      job_type: spec.jobType ?? 'media',
      status: spec.status ?? 'failed',
      priority: spec.priority ?? 0,
      job_data: JSON.stringify({ owner: spec.owner ?? null, file_count: assets.length }),
      asset_ids: assetIds,
      owner: spec.owner ?? null,
      retry_count: spec.retryCount ?? 3,
      max_retries: 3,
      dead_letter: deadLetter,
      dead_lettered_at: deadLetter ? (spec.deadLetteredAt ?? new Date().toISOString()) : null,
      completed_at: new Date().toISOString(),
      error_message: spec.error === undefined ? 'injected fault' : spec.error,
      batch_id: spec.batchId ?? null,
      ...(spec.createdAt === undefined ? {} : { created_at: spec.createdAt }),
    })
    .execute();
  for (const [position, asset] of assets.entries()) {
    await database.kysely
      .insertInto('asset')
      .values({
        id: assetIds[position] as string,
        kind: 'media',
        sha256: 'a'.repeat(64),
        content_type: 'image/png',
        size_bytes: 10,
        status: asset.status,
        error_message: asset.error ?? null,
        job_id: jobId,
        position,
        metadata: '{}',
      })
      .execute();
  }
  return { jobId, requestId, assetIds };
}

async function gaugeValue(jobType: JobType): Promise<number> {
  const metric = await runtime.metrics.deadLetterDepth.get();
  return metric.values.find((value) => value.labels.job_type === jobType)?.value ?? Number.NaN;
}

describe('listDeadLetters', () => {
  it('lists dead-lettered jobs newest first with the entry fields of the spec', async () => {
    const older = await insertJob({
      owner: 'alice',
      createdAt: '2026-01-01T10:00:00.000Z',
      deadLetteredAt: '2026-01-01T10:00:07.250Z',
      error: 'injected fault',
    });
    const newer = await insertJob({
      jobType: 'json',
      retryCount: 0,
      error: 'truncated PNG',
      createdAt: '2026-01-02T10:00:00.000Z',
      deadLetteredAt: '2026-01-02T10:00:01.000Z',
    });
    await insertJob({ deadLetter: false, status: 'failed' });
    await insertJob({ deadLetter: false, status: 'done', assets: [{ status: 'done' }] });

    const result = await listDeadLetters(runtime, { limit: 100 });
    expect(result.count).toBe(2);
    expect(result.total).toBe(2);
    expect(result.jobs.map((job) => job.job_id)).toEqual([newer.jobId, older.jobId]);
    expect(result.jobs[1]).toEqual({
      job_id: older.jobId,
      job_type: 'media',
      request_id: older.requestId,
      owner: 'alice',
      error: 'injected fault',
      retries: 3,
      asset_ids: older.assetIds,
      original_timestamp: '2026-01-01T10:00:00.000Z',
      dlq_timestamp: '2026-01-01T10:00:07.250Z',
    });
    expect(result.jobs[0]?.retries).toBe(0);
    expect(result.jobs[0]?.error).toBe('truncated PNG');
  });

  it('filters by job_type and limits the page while total counts every match', async () => {
    for (let index = 0; index < 3; index++)
      await insertJob({ jobType: 'media', deadLetteredAt: `2026-02-0${index + 1}T00:00:00.000Z` });
    const json = await insertJob({ jobType: 'json' });

    const media = await listDeadLetters(runtime, { jobType: 'media', limit: 2 });
    expect(media.count).toBe(2);
    expect(media.total).toBe(3);
    expect(media.jobs.every((job) => job.job_type === 'media')).toBe(true);
    expect(media.jobs.map((job) => job.dlq_timestamp)).toEqual([
      '2026-02-03T00:00:00.000Z',
      '2026-02-02T00:00:00.000Z',
    ]);

    const onlyJson = await listDeadLetters(runtime, { jobType: 'json', limit: 100 });
    expect(onlyJson.jobs.map((job) => job.job_id)).toEqual([json.jobId]);
    expect(await listDeadLetters(runtime, { jobType: 'mixed', limit: 100 })).toEqual({
      jobs: [],
      count: 0,
      total: 0,
    });
  });
});

describe('getDeadLetter', () => {
  it('returns the entry with job_data and the assets in system_ids order', async () => {
    const job = await insertJob({
      owner: 'bob',
      assets: [{ status: 'done' }, { status: 'failed', error: 'image is truncated' }],
    });
    const entry = await getDeadLetter(runtime, job.jobId);
    expect(entry?.job_id).toBe(job.jobId);
    expect(entry?.owner).toBe('bob');
    expect(entry?.job_data).toEqual({ owner: 'bob', file_count: 2 });
    expect(entry?.assets).toEqual([
      { system_id: job.assetIds[0], status: 'done', error_message: null },
      { system_id: job.assetIds[1], status: 'failed', error_message: 'image is truncated' },
    ]);
  });

  it('answers for a job of 40,000 system ids, more than one statement may carry as parameters', async () => {
    const job = await insertJob({ assets: [{ status: 'done' }, { status: 'failed', error: 'bad row' }] });
    await sql`update job set asset_ids = asset_ids || array(select gen_random_uuid() from generate_series(1, 39998))
      where id = ${job.jobId}`.execute(database.kysely);
    const entry = await getDeadLetter(runtime, job.jobId);
    expect(entry?.assets).toEqual([
      { system_id: job.assetIds[0], status: 'done', error_message: null },
      { system_id: job.assetIds[1], status: 'failed', error_message: 'bad row' },
    ]);
  });

  it('is null for a failed job that is not dead-lettered and for an unknown id', async () => {
    const failed = await insertJob({ deadLetter: false });
    expect(await getDeadLetter(runtime, failed.jobId)).toBeNull();
    expect(await getDeadLetter(runtime, randomUUID())).toBeNull();
  });
});

describe('requeueDeadLetter', () => {
  it('resets the job, queues its failed assets and enqueues it with its priority', async () => {
    const job = await insertJob({
      priority: 4,
      assets: [{ status: 'done' }, { status: 'failed', error: 'injected fault' }],
    });
    const other = await insertJob();
    runtime.metrics.deadLetterDepth.set({ job_type: 'media' }, 2);

    expect(await requeueDeadLetter(runtime, job.jobId)).toBe(true);

    const row = await database.kysely
      .selectFrom('job')
      .selectAll()
      .where('id', '=', job.jobId)
      .executeTakeFirstOrThrow();
    expect(row.status).toBe('queued');
    expect(row.dead_letter).toBe(false);
    expect(row.retry_count).toBe(0);
    expect(row.next_retry_at).toBeNull();
    expect(row.completed_at).toBeNull();
    const assets = await database.kysely
      .selectFrom('asset')
      .select(['id', 'status', 'error_message'])
      .where('job_id', '=', job.jobId)
      .orderBy('position')
      .execute();
    expect(assets).toEqual([
      { id: job.assetIds[0], status: 'done', error_message: null },
      { id: job.assetIds[1], status: 'queued', error_message: null },
    ]);
    expect(enqueued).toEqual([{ jobId: job.jobId, priority: 4 }]);
    expect(changed).toEqual([job.assetIds[1]]);
    expect(await gaugeValue('media')).toBe(1);
    const lineage = await database.kysely
      .selectFrom('lineage')
      .select(['request_id', 'stage', 'detail'])
      .where('stage', '=', 'admin_dlq_requeue')
      .execute();
    expect(lineage).toEqual([
      { request_id: job.requestId, stage: 'admin_dlq_requeue', detail: { job_id: job.jobId } },
    ]);

    const listed = await listDeadLetters(runtime, { limit: 100 });
    expect(listed.jobs.map((entry) => entry.job_id)).toEqual([other.jobId]);
    // A second requeue finds nothing in the DLQ.
    expect(await requeueDeadLetter(runtime, job.jobId)).toBe(false);
    expect(enqueued).toHaveLength(1);
  });

  it('refuses jobs that are not dead letters', async () => {
    const failed = await insertJob({ deadLetter: false });
    expect(await requeueDeadLetter(runtime, failed.jobId)).toBe(false);
    expect(await requeueDeadLetter(runtime, randomUUID())).toBe(false);
    expect(enqueued).toEqual([]);
    const row = await database.kysely
      .selectFrom('job')
      .select('status')
      .where('id', '=', failed.jobId)
      .executeTakeFirstOrThrow();
    expect(row.status).toBe('failed');
  });

  it('reopens the folder batch the job belongs to', async () => {
    const batchId = randomUUID();
    await database.kysely
      .insertInto('ingestion_batch')
      .values({
        id: batchId,
        request_id: batchId,
        status: 'failed',
        total_files: 1,
        processed_files: 1,
        failed_files: 1,
        metadata: JSON.stringify({
          folder_path: '/data/in',
          owner: null,
          user_comment: null,
          stats: {},
          error_message: 'All 1 files failed',
          rejected_files: [],
        }),
        completed_at: new Date().toISOString(),
      })
      .execute();
    const job = await insertJob({ batchId });

    expect(await requeueDeadLetter(runtime, job.jobId)).toBe(true);

    const batch = await database.kysely
      .selectFrom('ingestion_batch')
      .selectAll()
      .where('id', '=', batchId)
      .executeTakeFirstOrThrow();
    expect(batch.status).toBe('processing');
    expect(batch.processed_files).toBe(0);
    expect(batch.failed_files).toBe(0);
    expect(batch.completed_at).toBeNull();
    expect(batch.job_ids).toEqual([job.jobId]);
    expect(batch.metadata.error_message).toBeNull();
  });
});

describe('discardDeadLetter', () => {
  it('keeps the job failed, takes it out of the DLQ and lowers the gauge', async () => {
    const job = await insertJob({ jobType: 'json' });
    await insertJob({ jobType: 'json' });
    runtime.metrics.deadLetterDepth.set({ job_type: 'json' }, 2);

    expect(await discardDeadLetter(runtime, job.jobId)).toBe(true);

    const row = await database.kysely
      .selectFrom('job')
      .selectAll()
      .where('id', '=', job.jobId)
      .executeTakeFirstOrThrow();
    expect(row.status).toBe('failed');
    expect(row.dead_letter).toBe(false);
    expect(row.discarded_at).toBeInstanceOf(Date);
    expect(await gaugeValue('json')).toBe(1);
    expect(await getDeadLetter(runtime, job.jobId)).toBeNull();
    expect((await listDeadLetters(runtime, { limit: 100 })).total).toBe(1);
    const stages = await database.kysely.selectFrom('lineage').select(['stage', 'detail']).execute();
    expect(stages).toEqual([{ stage: 'admin_dlq_discard', detail: { job_id: job.jobId } }]);
    expect(enqueued).toEqual([]);

    expect(await discardDeadLetter(runtime, job.jobId)).toBe(false);
  });
});
