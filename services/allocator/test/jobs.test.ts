// Jobs (spec §3.5): retries with backoff then the dead-letter queue, timeouts that kill and replace the worker,
// recovery after a restart with jobs queued or left running (acceptance 37, 39).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, describe, expect, test } from 'vitest';
import { loadConfig } from '../src/config.js';
import { acceptIngest } from '../src/domain/ingest.js';
import { createAllocatorLogger, createRuntime } from '../src/server.js';
import { solidPng, startTestAllocator } from './harness.js';

function metricValue(text: string, line: string): number {
  const match = text.split('\n').find((candidate) => candidate.startsWith(`${line} `));
  return match === undefined ? Number.NaN : Number(match.slice(line.length + 1));
}

describe('retries and dead letters', () => {
  test('an injected fault is retried with backoff, then dead-lettered with retry_count 3 (acceptance 37)', async () => {
    const allocator = await startTestAllocator({
      FAULT_INJECT_FAIL_OWNER: 'chaos',
      JOB_RETRY_BASE_MS: '100',
    });
    try {
      const response = await allocator.ingest([], { payload: '{"a":1}', owner: 'chaos' });
      const { job_id: jobId } = response.json();
      const status = await allocator.waitForJob(jobId);
      expect(status).toMatchObject({
        status: 'failed',
        dead_letter: true,
        retry_count: 3,
        max_retries: 3,
        error_message: 'injected fault',
      });
      expect((status.assets as { status: string; error_message: string }[])[0]).toMatchObject({
        status: 'failed',
        error_message: 'injected fault',
      });
      const retries = await allocator.runtime.catalog
        .selectFrom('lineage')
        .select(['detail', 'created_at'])
        .where('stage', '=', 'job_retry_scheduled')
        .where('request_id', '=', status.request_id as string)
        .orderBy('seq')
        .execute();
      expect(retries.map((row) => (row.detail as { delay_ms: number }).delay_ms)).toEqual([100, 200]);
      const metrics = (await allocator.app.inject({ method: 'GET', url: '/metrics' })).body;
      expect(metricValue(metrics, 'jobs_processed_total{job_type="json",status="retry"}')).toBe(2);
      expect(metricValue(metrics, 'jobs_processed_total{job_type="json",status="failure"}')).toBe(1);
      expect(metricValue(metrics, 'dead_letter_queue_depth{job_type="json"}')).toBe(1);
      const lines = allocator.logs.filter((line) => line.job_id === jobId);
      expect(lines.filter((line) => line.message === 'Job started').map((line) => line.attempt)).toEqual([
        1, 2, 3,
      ]);
      expect(lines.filter((line) => line.message === 'Job failed')).toHaveLength(3);
      // Other owners are unaffected.
      const fine = await allocator.ingest([], { payload: '{"a":2}', owner: 'calm' });
      expect((await allocator.waitForJob(fine.json().job_id)).status).toBe('done');
    } finally {
      await allocator.close();
    }
  });

  test('an attempt past JOB_TIMEOUT_SECONDS kills its worker thread, which is replaced (worker_crashes_total)', async () => {
    // The limit lets each attempt reach the image analysis (a few database statements come first) and ends it
    // there: decoding and hashing this noisy 12-megapixel image takes far longer than 0.1 s.
    const allocator = await startTestAllocator({
      JOB_TIMEOUT_SECONDS: '0.1',
      JOB_MAX_RETRIES: '2',
      JOB_RETRY_BASE_MS: '10',
    });
    try {
      const png = await solidPng([200, 10, 10], { width: 4000, height: 3000, noise: 30 });
      const response = await allocator.ingest([
        { filename: 'slow.png', data: png, contentType: 'image/png' },
      ]);
      const status = await allocator.waitForJob(response.json().job_id);
      expect(status).toMatchObject({ status: 'failed', dead_letter: true, retry_count: 2 });
      expect(String(status.error_message)).toMatch(/timed out/);
      const metrics = (await allocator.app.inject({ method: 'GET', url: '/metrics' })).body;
      expect(metricValue(metrics, 'worker_crashes_total')).toBeGreaterThanOrEqual(1);
      const health = (await allocator.app.inject({ method: 'GET', url: '/health' })).json();
      expect(health.workers.restarts).toBeGreaterThanOrEqual(1);
    } finally {
      await allocator.close();
    }
  });
});

describe('restart', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  test('jobs queued at shutdown and a job left processing by a crash all finish after a restart (acceptance 39)', async () => {
    const root = await mkdtemp(join(tmpdir(), 'allocator-restart-'));
    dirs.push(root);
    const config = loadConfig({
      DATA_DIR: join(root, 'data'),
      STORAGE_PATH: join(root, 'storage'),
      EMBEDDING_MODEL: 'builtin',
      TEXT_EMBEDDING_MODEL: 'builtin',
      OCR_ENABLED: 'false',
      WORKER_THREADS: '2',
      JOB_LEASE_SECONDS: '1',
    });
    const quiet = new Writable({ write: (_chunk, _encoding, callback) => callback() });
    const logger = createAllocatorLogger(config, quiet);
    // First life: jobs are accepted, the executors never start (as if SIGTERM came right after the ingests).
    const first = await createRuntime(config, { logger });
    const jobIds: string[] = [];
    for (let index = 0; index < 4; index++) {
      const { spoolLocalFile } = await import('../src/domain/ingest.js');
      const file = join(root, `image-${index}.png`);
      const { writeFile } = await import('node:fs/promises');
      await writeFile(
        file,
        await solidPng([index * 60, 100, 200 - index * 40], { noise: 5, seed: index + 1 }),
      );
      const spooled = await spoolLocalFile(first.runtime, file, `image-${index}.png`);
      const accepted = await acceptIngest(first.runtime, {
        requestId: null,
        files: spooled === null ? [] : [spooled],
        payload: index === 0 ? [{ name: 'with file' }] : null,
        owner: null,
        comments: null,
        collectionName: null,
        tags: [],
        priority: 0,
        callbackUrl: null,
        batchId: null,
      });
      jobIds.push(accepted.jobId);
    }
    // One job as a crashed executor leaves it: processing, its lease running out.
    await first.runtime.catalog
      .updateTable('job')
      .set({ status: 'processing', lease_until: new Date(Date.now() - 1000) })
      .where('id', '=', jobIds[3] as string)
      .execute();
    await first.close();

    const second = await createRuntime(config, { logger });
    try {
      await second.runner.start();
      const deadline = Date.now() + 20_000;
      for (;;) {
        const rows = await second.runtime.catalog.selectFrom('job').select(['id', 'status']).execute();
        if (rows.length === 4 && rows.every((row) => row.status === 'done')) break;
        if (Date.now() > deadline) throw new Error(`jobs not finished: ${JSON.stringify(rows)}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const assets = await second.runtime.catalog.selectFrom('asset').select(['status', 'kind']).execute();
      expect(assets).toHaveLength(5);
      expect(assets.every((asset) => asset.status === 'done' || asset.status === 'pending_review')).toBe(
        true,
      );
      const recovered = await second.runtime.catalog
        .selectFrom('lineage')
        .select('detail')
        .where('stage', '=', 'job_recovered')
        .execute();
      expect(recovered.length).toBeGreaterThanOrEqual(4);
      // Nothing stored twice: four media files on disk.
      const { readdirSync } = await import('node:fs');
      const files = readdirSync(join(root, 'storage', 'media', 'clusters'), {
        recursive: true,
        withFileTypes: true,
      }).filter((entry) => entry.isFile());
      expect(files).toHaveLength(4);
    } finally {
      await second.close();
    }
  });
});
