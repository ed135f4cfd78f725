// Dead-letter queue API (spec §3.14; acceptance 37, DLQ part): jobs of the fault-injected owner land in the
// DLQ after JOB_MAX_RETRIES attempts; list, show, requeue (the job then really runs) and discard, with
// dead_letter_queue_depth following.
import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { solidPng, startTestAllocator, type TestAllocator } from '../harness.js';

const FAULTY_OWNER = 'fault-owner';
const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const ISO_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

let allocator: TestAllocator;
/** dead-lettered jobs by name, in ingest order */
const dead: Record<'first' | 'second', { jobId: string; systemIds: string[] }> = {
  first: { jobId: '', systemIds: [] },
  second: { jobId: '', systemIds: [] },
};
let healthyJobId = '';

async function ingestPng(
  owner: string,
  rgb: [number, number, number],
): Promise<{ jobId: string; systemIds: string[] }> {
  const response = await allocator.ingest(
    [{ filename: `pic-${rgb.join('-')}.png`, data: await solidPng(rgb), contentType: 'image/png' }],
    {
      owner,
    },
  );
  expect(response.statusCode).toBe(202);
  const body = response.json() as { job_id: string; system_ids: string[] };
  return { jobId: body.job_id, systemIds: body.system_ids };
}

async function deadLetterDepth(jobType: string): Promise<number> {
  const response = await allocator.app.inject({ method: 'GET', url: '/metrics' });
  expect(response.statusCode).toBe(200);
  const match = new RegExp(`^dead_letter_queue_depth\\{job_type="${jobType}"\\} (\\d+)$`, 'm').exec(
    response.body,
  );
  if (match === null) throw new Error(`dead_letter_queue_depth{job_type="${jobType}"} missing from /metrics`);
  return Number(match[1]);
}

function expectErrorBody(body: Record<string, unknown>, error: string): void {
  expect(body.error).toBe(error);
  expect(typeof body.detail).toBe('string');
  expect(typeof body.request_id).toBe('string');
}

beforeAll(async () => {
  allocator = await startTestAllocator({ FAULT_INJECT_FAIL_OWNER: FAULTY_OWNER, JOB_RETRY_BASE_MS: '20' });
  // One after the other, so the second is dead-lettered (and listed) after the first.
  dead.first = await ingestPng(FAULTY_OWNER, [200, 30, 30]);
  await allocator.waitForJob(dead.first.jobId);
  dead.second = await ingestPng(FAULTY_OWNER, [30, 30, 200]);
  await allocator.waitForJob(dead.second.jobId);
  healthyJobId = (await ingestPng('someone-else', [30, 200, 30])).jobId;
  await allocator.waitForJob(healthyJobId);
});

afterAll(async () => {
  await allocator?.close();
});

describe('dead-lettering of the injected fault', () => {
  it('retries the job with backoff and dead-letters it with retry_count 3', async () => {
    const response = await allocator.app.inject({
      method: 'GET',
      url: `/api/v1/ingest/${dead.first.jobId}/status`,
    });
    const status = response.json() as Record<string, unknown>;
    expect(status.retry_count).toBe(3);
    expect(status.max_retries).toBe(3);
    expect(status.dead_letter).toBe(true);
    expect(status.error_message).toBe('injected fault');
    const retries = await allocator.runtime.catalog
      .selectFrom('lineage')
      .select('detail')
      .where('stage', '=', 'job_retry_scheduled')
      .where(sql<string>`detail->>'job_id'`, '=', dead.first.jobId)
      .orderBy('seq')
      .execute();
    expect(retries.map((row) => (row.detail as { delay_ms: number }).delay_ms)).toEqual([20, 40]);
  });
});

describe('GET /api/v1/admin/dlq', () => {
  it('lists the dead-lettered jobs newest first with the entry fields', async () => {
    const response = await allocator.app.inject({ method: 'GET', url: '/api/v1/admin/dlq' });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toBe('application/json; charset=utf-8');
    const body = response.json() as { jobs: Record<string, unknown>[]; count: number; total: number };
    expect(body.count).toBe(2);
    expect(body.total).toBe(2);
    expect(body.jobs.map((job) => job.job_id)).toEqual([dead.second.jobId, dead.first.jobId]);
    const entry = body.jobs[1] as Record<string, unknown>;
    expect(Object.keys(entry).sort()).toEqual(
      [
        'asset_ids',
        'dlq_timestamp',
        'error',
        'job_id',
        'job_type',
        'original_timestamp',
        'owner',
        'request_id',
        'retries',
      ].sort(),
    );
    expect(entry).toMatchObject({
      job_id: dead.first.jobId,
      job_type: 'media',
      owner: FAULTY_OWNER,
      error: 'injected fault',
      retries: 3,
      asset_ids: dead.first.systemIds,
    });
    expect(entry.request_id).toMatch(UUID_V4);
    expect(entry.original_timestamp).toMatch(ISO_MS);
    expect(entry.dlq_timestamp).toMatch(ISO_MS);
    expect(Date.parse(entry.dlq_timestamp as string)).toBeGreaterThan(
      Date.parse(entry.original_timestamp as string),
    );
  });

  it('filters by job_type and honours limit', async () => {
    const limited = await allocator.app.inject({
      method: 'GET',
      url: '/api/v1/admin/dlq?job_type=media&limit=1',
    });
    expect(limited.statusCode).toBe(200);
    const body = limited.json() as { jobs: { job_id: string }[]; count: number; total: number };
    expect(body.jobs.map((job) => job.job_id)).toEqual([dead.second.jobId]);
    expect(body.count).toBe(1);
    expect(body.total).toBe(2);
    const json = await allocator.app.inject({ method: 'GET', url: '/api/v1/admin/dlq?job_type=json' });
    expect(json.json()).toEqual({ jobs: [], count: 0, total: 0 });
  });

  it('rejects an unknown job_type with 400 and an out-of-range limit with 422', async () => {
    const badType = await allocator.app.inject({ method: 'GET', url: '/api/v1/admin/dlq?job_type=video' });
    expect(badType.statusCode).toBe(400);
    expectErrorBody(badType.json(), 'bad_request');
    for (const limit of ['0', '1001', 'ten']) {
      const response = await allocator.app.inject({ method: 'GET', url: `/api/v1/admin/dlq?limit=${limit}` });
      expect(response.statusCode).toBe(422);
      const body = response.json() as Record<string, unknown>;
      expectErrorBody(body, 'validation_error');
      expect((body.details as { loc: string[] }[])[0]?.loc).toEqual(['query', 'limit']);
    }
  });

  it('reports the dead letters in dead_letter_queue_depth', async () => {
    expect(await deadLetterDepth('media')).toBe(2);
    expect(await deadLetterDepth('json')).toBe(0);
  });
});

describe('GET /api/v1/admin/dlq/{job_id}', () => {
  it('shows the entry with job_data and assets', async () => {
    const response = await allocator.app.inject({
      method: 'GET',
      url: `/api/v1/admin/dlq/${dead.first.jobId}`,
    });
    expect(response.statusCode).toBe(200);
    const body = response.json() as Record<string, unknown>;
    expect(body).toMatchObject({
      job_id: dead.first.jobId,
      retries: 3,
      error: 'injected fault',
      owner: FAULTY_OWNER,
    });
    expect(body.job_data).toMatchObject({ owner: FAULTY_OWNER });
    expect(body.assets).toEqual([
      { system_id: dead.first.systemIds[0], status: 'failed', error_message: 'injected fault' },
    ]);
  });

  it('answers 404 for a job that is not dead-lettered or unknown, 400 for a malformed id', async () => {
    for (const id of [healthyJobId, randomUUID()]) {
      const response = await allocator.app.inject({ method: 'GET', url: `/api/v1/admin/dlq/${id}` });
      expect(response.statusCode).toBe(404);
      expectErrorBody(response.json(), 'not_found');
    }
    const malformed = await allocator.app.inject({ method: 'GET', url: '/api/v1/admin/dlq/not-a-uuid' });
    expect(malformed.statusCode).toBe(400);
    expectErrorBody(malformed.json(), 'invalid_id');
  });
});

describe('POST /api/v1/admin/dlq/{job_id}/requeue', () => {
  it('answers 202 queued, leaves the DLQ, and the job runs again to done once its cause is gone', async () => {
    // The operator fixed the cause: the job's owner no longer triggers the injected fault.
    await allocator.runtime.catalog
      .updateTable('job')
      .set({ owner: 'fixed-owner' })
      .where('id', '=', dead.first.jobId)
      .execute();

    const response = await allocator.app.inject({
      method: 'POST',
      url: `/api/v1/admin/dlq/${dead.first.jobId}/requeue`,
    });
    expect(response.statusCode).toBe(202);
    const body = response.json() as Record<string, unknown>;
    expect(body).toEqual({
      job_id: dead.first.jobId,
      status: 'queued',
      message: expect.stringContaining(dead.first.jobId),
    });
    expect(await deadLetterDepth('media')).toBe(1);

    const listed = await allocator.app.inject({ method: 'GET', url: '/api/v1/admin/dlq' });
    expect((listed.json() as { jobs: { job_id: string }[] }).jobs.map((job) => job.job_id)).toEqual([
      dead.second.jobId,
    ]);

    const status = await allocator.waitForJob(dead.first.jobId);
    expect(status.status).toBe('done');
    expect(status.dead_letter).toBe(false);
    expect(status.retry_count).toBe(0);
    expect((status.assets as { status: string; error_message: string | null }[])[0]).toMatchObject({
      status: 'done',
      error_message: null,
    });
    const stages = await allocator.runtime.catalog
      .selectFrom('lineage')
      .select(['stage', 'detail'])
      .where('stage', '=', 'admin_dlq_requeue')
      .execute();
    expect(stages).toEqual([{ stage: 'admin_dlq_requeue', detail: { job_id: dead.first.jobId } }]);
  });

  it('answers 404 for a job not in the DLQ and 400 for a malformed id', async () => {
    const done = await allocator.app.inject({
      method: 'POST',
      url: `/api/v1/admin/dlq/${healthyJobId}/requeue`,
    });
    expect(done.statusCode).toBe(404);
    expectErrorBody(done.json(), 'not_found');
    const malformed = await allocator.app.inject({ method: 'POST', url: '/api/v1/admin/dlq/xyz/requeue' });
    expect(malformed.statusCode).toBe(400);
    expectErrorBody(malformed.json(), 'invalid_id');
  });
});

describe('DELETE /api/v1/admin/dlq/{job_id}', () => {
  it('discards: 200, gone from the list, still failed, depth decreases', async () => {
    expect(await deadLetterDepth('media')).toBe(1);
    const response = await allocator.app.inject({
      method: 'DELETE',
      url: `/api/v1/admin/dlq/${dead.second.jobId}`,
    });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ job_id: dead.second.jobId, status: 'discarded' });
    expect(await deadLetterDepth('media')).toBe(0);

    const listed = await allocator.app.inject({ method: 'GET', url: '/api/v1/admin/dlq' });
    expect(listed.json()).toEqual({ jobs: [], count: 0, total: 0 });
    const status = await allocator.app.inject({
      method: 'GET',
      url: `/api/v1/ingest/${dead.second.jobId}/status`,
    });
    expect(status.json()).toMatchObject({ status: 'failed', dead_letter: false, retry_count: 3 });
    const row = await allocator.runtime.catalog
      .selectFrom('job')
      .select(['discarded_at'])
      .where('id', '=', dead.second.jobId)
      .executeTakeFirstOrThrow();
    expect(row.discarded_at).toBeInstanceOf(Date);

    const again = await allocator.app.inject({
      method: 'DELETE',
      url: `/api/v1/admin/dlq/${dead.second.jobId}`,
    });
    expect(again.statusCode).toBe(404);
    expectErrorBody(again.json(), 'not_found');
    const show = await allocator.app.inject({ method: 'GET', url: `/api/v1/admin/dlq/${dead.second.jobId}` });
    expect(show.statusCode).toBe(404);
  });

  it('answers 400 for a malformed id', async () => {
    const response = await allocator.app.inject({ method: 'DELETE', url: '/api/v1/admin/dlq/123' });
    expect(response.statusCode).toBe(400);
    expectErrorBody(response.json(), 'invalid_id');
  });
});
