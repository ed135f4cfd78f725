// Job webhooks (spec §3.16, acceptance 44): the status body POSTed to callback_url with an HMAC signature that
// verifies; a receiver that is down gets every retry, then `webhook_failed` lineage.
import { createHmac } from 'node:crypto';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { setWebhookBackoffForTests } from '../../src/domain/pipeline/notify.js';
import { startTestAllocator, type TestAllocator } from '../harness.js';

const SECRET = 'webhook-signing-secret';
let allocator: TestAllocator;

beforeAll(async () => {
  setWebhookBackoffForTests([10, 10, 10, 10]);
  allocator = await startTestAllocator({ WEBHOOK_SECRET: SECRET });
});
afterAll(async () => {
  await allocator?.close();
  setWebhookBackoffForTests([1000, 2000, 4000, 8000]);
});

async function waitFor<T>(read: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

test('a completed job is POSTed to its callback_url with a signature that verifies', async () => {
  const received: { headers: IncomingHttpHeaders; body: string }[] = [];
  const receiver = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      received.push({ headers: request.headers, body: Buffer.concat(chunks).toString('utf8') });
      response.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  try {
    const port = (receiver.address() as AddressInfo).port;
    const response = await allocator.ingest([], {
      payload: '{"webhook":"yes"}',
      callback_url: `http://127.0.0.1:${port}/hook`,
    });
    const jobId = response.json().job_id;
    await allocator.waitForJob(jobId);
    const delivery = await waitFor(async () => received[0]);
    expect(delivery.headers['content-type']).toBe('application/json');
    expect(delivery.headers['x-allocator-event']).toBe('job.completed');
    expect(delivery.headers['user-agent']).toBe(`file-allocator/${allocator.runtime.version}`);
    const expected = `sha256=${createHmac('sha256', SECRET).update(delivery.body).digest('hex')}`;
    expect(delivery.headers['x-allocator-signature']).toBe(expected);
    const body = JSON.parse(delivery.body);
    expect(body).toMatchObject({ job_id: jobId, status: 'done', job_type: 'json' });
    const assetId = response.json().system_ids[0];
    const lineage = await waitFor(async () => {
      const rows = await allocator.runtime.catalog
        .selectFrom('lineage')
        .select('stage')
        .where('asset_id', '=', assetId)
        .where('stage', '=', 'webhook_delivered')
        .execute();
      return rows.length > 0 ? rows : undefined;
    });
    expect(lineage).toHaveLength(1);
  } finally {
    receiver.close();
  }
});

test('a receiver that is down gets 5 attempts, then webhook_failed lineage; processing is not blocked', async () => {
  const closed = createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const port = (closed.address() as AddressInfo).port;
  await new Promise<void>((resolve) => closed.close(() => resolve()));
  const response = await allocator.ingest([], {
    payload: '{"webhook":"down"}',
    callback_url: `http://127.0.0.1:${port}/hook`,
  });
  const status = await allocator.waitForJob(response.json().job_id);
  expect(status.status).toBe('done');
  const assetId = response.json().system_ids[0];
  const failed = await waitFor(async () =>
    allocator.runtime.catalog
      .selectFrom('lineage')
      .select(['detail', 'success', 'error_message'])
      .where('asset_id', '=', assetId)
      .where('stage', '=', 'webhook_failed')
      .executeTakeFirst(),
  );
  expect(failed.success).toBe(false);
  expect(failed.detail).toMatchObject({ attempts: 5, event: 'job.completed' });
  expect(failed.error_message).toMatch(/network error/);
});

test('a callback host outside WEBHOOK_ALLOWED_HOSTS is refused at ingest (422)', async () => {
  const strict = await startTestAllocator({ WEBHOOK_ALLOWED_HOSTS: 'hooks.example.com' });
  try {
    const response = await strict.ingest([], {
      payload: '{"a":1}',
      callback_url: 'http://evil.example.net/x',
    });
    expect(response.statusCode).toBe(422);
    expect(response.json().details[0].loc).toEqual(['body', 'callback_url']);
  } finally {
    await strict.close();
  }
});
