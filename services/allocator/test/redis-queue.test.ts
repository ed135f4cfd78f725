// QUEUE_BACKEND=redis against the Redis test server (acceptance 48): JSON and media jobs complete; retries
// and dead letters behave exactly as with the in-process queue.
import { randomUUID } from 'node:crypto';
import { CuttableProxy, testRedisUrl } from '@quintet/kernel/testing';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { solidPng, startTestAllocator, type TestAllocator } from './harness.js';

const redisUrl = await testRedisUrl();

describe.skipIf(redisUrl === null)('Redis queue', () => {
  let allocator: TestAllocator;
  beforeAll(async () => {
    allocator = await startTestAllocator({
      QUEUE_BACKEND: 'redis',
      REDIS_URL: redisUrl as string,
      REDIS_QUEUE_PREFIX: `allocator-test-${randomUUID().slice(0, 8)}`,
      FAULT_INJECT_FAIL_OWNER: 'chaos',
      JOB_RETRY_BASE_MS: '50',
    });
  });
  afterAll(async () => allocator?.close());

  test('health and readiness report the Redis backend', async () => {
    const health = (await allocator.app.inject({ method: 'GET', url: '/health' })).json();
    expect(health.queue.backend).toBe('redis');
    expect((await allocator.app.inject({ method: 'GET', url: '/ready' })).json().checks.queue).toBe('ok');
  });

  test('JSON and media jobs complete', async () => {
    const json = await allocator.ingest([], { payload: '[{"name":"Alice"},{"name":"Bob"}]' });
    const media = await allocator.ingest([
      { filename: 'teal.png', data: await solidPng([0, 128, 128]), contentType: 'image/png' },
    ]);
    expect((await allocator.waitForJob(json.json().job_id)).status).toBe('done');
    expect((await allocator.waitForJob(media.json().job_id)).status).toBe('done');
  });

  test('retries then the dead-letter queue, as in-process: retry_count 3, two scheduled retries', async () => {
    const response = await allocator.ingest([], { payload: '{"a":1}', owner: 'chaos' });
    const status = await allocator.waitForJob(response.json().job_id);
    expect(status).toMatchObject({ status: 'failed', dead_letter: true, retry_count: 3 });
    const retries = await allocator.runtime.catalog
      .selectFrom('lineage')
      .select('detail')
      .where('stage', '=', 'job_retry_scheduled')
      .where('request_id', '=', status.request_id as string)
      .execute();
    expect(retries).toHaveLength(2);
  });
});

describe.skipIf(redisUrl === null)('Redis outage', () => {
  test('Redis down → ingest 503 with no job row left, /ready 503; recovers when Redis returns', {
    timeout: 90_000,
  }, async () => {
    const proxy = CuttableProxy.for(redisUrl as string, 6379);
    await proxy.start();
    const allocator = await startTestAllocator({
      QUEUE_BACKEND: 'redis',
      REDIS_URL: proxy.via(redisUrl as string),
      REDIS_QUEUE_PREFIX: `allocator-outage-${randomUUID().slice(0, 8)}`,
    });
    try {
      await proxy.cut();
      const before = await allocator.runtime.catalog.selectFrom('job').select('id').execute();
      const refused = await allocator.ingest([], { payload: '{"during":"outage"}' });
      expect(refused.statusCode).toBe(503);
      expect(refused.json().error).toBe('service_unavailable');
      expect(await allocator.runtime.catalog.selectFrom('job').select('id').execute()).toHaveLength(
        before.length,
      );
      const ready = await allocator.app.inject({ method: 'GET', url: '/ready' });
      expect(ready.statusCode).toBe(503);
      expect(ready.json().checks.queue).toBe('unreachable');
      await proxy.restore();
      const deadline = Date.now() + 20_000;
      let accepted = await allocator.ingest([], { payload: '{"after":"outage"}' });
      while (accepted.statusCode !== 202 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 200));
        accepted = await allocator.ingest([], { payload: '{"after":"outage"}' });
      }
      expect(accepted.statusCode).toBe(202);
      expect((await allocator.waitForJob(accepted.json().job_id)).status).toBe('done');
    } finally {
      await allocator.close();
    }
  });
});
