// Folder ingest (spec §3.13; acceptance 36) end to end: a folder under INGEST_ALLOWED_ROOT with images, a JSON
// file, a Markdown file and `.allocatorignore` rules becomes a batch of one job per file; the batch settles
// with processed_files = total_files and announces itself to its callback_url (spec §3.16, batch.completed).

import { mkdir, mkdtemp, realpath, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { solidPng, startTestAllocator, type TestAllocator } from '../harness.js';

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const ISO_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const MARKDOWN = `# Field notes\n\n${'The heron waited by the reeds for the morning tide. '.repeat(12)}\n`;

type Body = Record<string, unknown>;

interface Received {
  headers: IncomingMessage['headers'];
  body: Body;
}

let allocator: TestAllocator;
let ingestRoot: string;
/** the folder of the main case, and its supported, non-ignored files */
let photos: string;
let photoSizes: number;
let receiver: { url: string; received: Received[]; close(): Promise<void> };

async function startReceiver(): Promise<typeof receiver> {
  const received: Received[] = [];
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      received.push({
        headers: request.headers,
        body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Body,
      });
      response.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hooks/batches`,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Polls `probe` until it returns a value (not undefined), or fails after `timeoutMs`. */
async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

async function getBatch(batchId: string): Promise<Body> {
  const response = await allocator.app.inject({ method: 'GET', url: `/api/v1/ingest/batch/${batchId}` });
  expect(response.statusCode).toBe(200);
  return response.json() as Body;
}

/** The batch once it is completed or failed. */
async function settledBatch(batchId: string): Promise<Body> {
  return waitFor(`batch ${batchId} to settle`, async () => {
    const body = await getBatch(batchId);
    return body.status === 'completed' || body.status === 'failed' ? body : undefined;
  });
}

async function postFolder(body: unknown, target: TestAllocator = allocator) {
  return target.app.inject({
    method: 'POST',
    url: '/api/v1/ingest/folder',
    headers: { 'content-type': 'application/json' },
    payload: JSON.stringify(body),
  });
}

function expectError(
  response: { statusCode: number; json(): unknown },
  status: number,
  error: string,
  detail?: string,
) {
  expect(response.statusCode).toBe(status);
  const body = response.json() as Body;
  expect(body.error).toBe(error);
  expect(typeof body.request_id).toBe('string');
  if (detail !== undefined) expect(body.detail).toBe(detail);
  else expect(typeof body.detail).toBe('string');
}

async function folderMetric(status: 'success' | 'failure'): Promise<number> {
  const response = await allocator.app.inject({ method: 'GET', url: '/metrics' });
  const match = new RegExp(
    `^ingest_requests_total\\{request_type="folder",status="${status}"\\} (\\d+)$`,
    'm',
  ).exec(response.body);
  if (match === null) throw new Error('ingest_requests_total{request_type="folder"} missing');
  return Number(match[1]);
}

beforeAll(async () => {
  ingestRoot = await realpath(await mkdtemp(join(tmpdir(), 'allocator-ingest-root-')));
  photos = join(ingestRoot, 'photos');
  await mkdir(join(photos, 'cache'), { recursive: true });
  await mkdir(join(photos, 'upload.tmp'), { recursive: true });
  await mkdir(join(photos, 'trips'), { recursive: true });
  const files: [string, Buffer | string][] = [
    ['red.png', await solidPng([220, 20, 20])],
    ['trips/green.png', await solidPng([20, 220, 20])],
    ['trips/blue.png', await solidPng([20, 20, 220])],
    ['notes.md', MARKDOWN],
    [
      'people.json',
      JSON.stringify([
        { name: 'Alice', age: 31 },
        { name: 'Bob', age: 42 },
      ]),
    ],
    // ignored: the directory rule `cache/` and `*.tmp` (which also matches the directory upload.tmp)
    ['cache/thumb.png', await solidPng([120, 120, 120])],
    ['upload.tmp/partial.png', await solidPng([10, 10, 10])],
    ['scratch.tmp', 'half-written'],
    // unsupported extension: not part of the batch at all
    ['readme.bin', Buffer.from([0, 1, 2, 3])],
    ['.allocatorignore', '# build leftovers\n*.tmp\ncache/\n'],
  ];
  photoSizes = 0;
  for (const [name, data] of files) {
    await writeFile(join(photos, name), data);
    if (['red.png', 'trips/green.png', 'trips/blue.png', 'notes.md', 'people.json'].includes(name))
      photoSizes += (await stat(join(photos, name))).size;
  }
  // A folder whose only file is a JSON file with invalid JSON (rejected at submission, so the batch fails).
  await mkdir(join(ingestRoot, 'broken'));
  await writeFile(join(ingestRoot, 'broken', 'bad.json'), '{"name": ');
  // A folder mixing a good image and the broken JSON file: completed with one failed file.
  await mkdir(join(ingestRoot, 'mixed'));
  await writeFile(join(ingestRoot, 'mixed', 'ok.png'), await solidPng([200, 200, 40]));
  await writeFile(join(ingestRoot, 'mixed', 'bad.json'), '[1, 2');
  // Nothing supported after filtering.
  await mkdir(join(ingestRoot, 'nothing'));
  await writeFile(join(ingestRoot, 'nothing', 'data.bin'), Buffer.from([9, 9, 9]));
  await writeFile(join(ingestRoot, 'nothing', 'skip.png.tmp'), 'x');
  receiver = await startReceiver();
  allocator = await startTestAllocator({ INGEST_ALLOWED_ROOT: ingestRoot });
});

afterAll(async () => {
  await allocator?.close();
  await receiver?.close();
  if (ingestRoot !== undefined) await rm(ingestRoot, { recursive: true, force: true });
});

describe('POST /api/v1/ingest/folder', () => {
  it('ingests every supported, non-ignored file as its own job and completes the batch', async () => {
    const successesBefore = await folderMetric('success');
    const response = await postFolder({
      folder_path: photos,
      owner: 'archivist',
      user_comment: 'spring survey',
      callback_url: receiver.url,
    });
    expect(response.statusCode).toBe(202);
    const accepted = response.json() as Body;
    const batchId = accepted.batch_id as string;
    expect(batchId).toMatch(UUID_V4);
    expect(accepted).toEqual({
      batch_id: batchId,
      status: 'accepted',
      message: 'Folder ingestion started for 5 files',
      status_url: `/api/v1/ingest/batch/${batchId}`,
      stats: {
        total_files: 5,
        total_size_bytes: photoSizes,
        by_type: { image: 3, video: 0, audio: 0, document: 1, json: 1 },
      },
    });
    expect(await folderMetric('success')).toBe(successesBefore + 1);

    const batch = await settledBatch(batchId);
    expect(batch).toMatchObject({
      batch_id: batchId,
      status: 'completed',
      folder_path: photos,
      total_files: 5,
      processed_files: 5,
      failed_files: 0,
      progress_percent: 100,
      owner: 'archivist',
      user_comment: 'spring survey',
      error_message: null,
    });
    for (const field of ['created_at', 'updated_at', 'started_at', 'completed_at'])
      expect(batch[field], field).toMatch(ISO_MS);
    const jobIds = batch.job_ids as string[];
    expect(jobIds).toHaveLength(5);

    const jobs = await allocator.runtime.catalog
      .selectFrom('job')
      .select(['id', 'status', 'priority', 'owner', 'batch_id', 'job_data'])
      .where('batch_id', '=', batchId)
      .execute();
    expect(jobs.map((job) => job.id).sort()).toEqual([...jobIds].sort());
    for (const job of jobs) {
      expect(job.status).toBe('done');
      expect(job.priority).toBe(-1);
      expect(job.owner).toBe('archivist');
      expect((job.job_data as { comments: string }).comments).toBe('spring survey');
    }
    const assets = await allocator.runtime.catalog
      .selectFrom('asset')
      .select(['kind', 'comments', 'metadata'])
      .where('job_id', 'in', jobIds)
      .where('parent_asset_id', 'is', null)
      .execute();
    const names = assets
      .map((asset) => (asset.metadata as { original_filename: string }).original_filename)
      .sort();
    // people.json holds two documents, each its own asset.
    expect(names).toEqual(['blue.png', 'green.png', 'notes.md', 'people.json', 'people.json', 'red.png']);
    expect(assets.every((asset) => asset.comments === 'spring survey')).toBe(true);
    expect(assets.filter((asset) => asset.kind === 'media')).toHaveLength(3);
    expect(assets.filter((asset) => asset.kind === 'document')).toHaveLength(1);
    expect(assets.filter((asset) => asset.kind === 'json')).toHaveLength(2);

    const hook = await waitFor('the batch.completed webhook', async () => receiver.received[0]);
    expect(hook.headers['x-allocator-event']).toBe('batch.completed');
    expect(hook.headers['content-type']).toBe('application/json');
    expect(hook.headers['user-agent']).toBe(`file-allocator/${allocator.runtime.version}`);
    expect(hook.headers['x-allocator-delivery']).toMatch(UUID_V4);
    expect(hook.body).toMatchObject({
      batch_id: batchId,
      status: 'completed',
      processed_files: 5,
      total_files: 5,
    });
    expect((hook.body.job_ids as string[]).sort()).toEqual([...jobIds].sort());
    const delivered = await waitFor('webhook_delivered lineage', async () => {
      const row = await allocator.runtime.catalog
        .selectFrom('lineage')
        .select(['stage', 'detail'])
        .where('request_id', '=', batchId)
        .where('stage', '=', 'webhook_delivered')
        .executeTakeFirst();
      return row;
    });
    expect(delivered.detail).toMatchObject({
      batch_id: batchId,
      event: 'batch.completed',
      attempts: 1,
      status: 204,
    });
    expect(receiver.received).toHaveLength(1);
  });

  it('counts a file failing validation as failed and still completes when another file succeeded', async () => {
    const response = await postFolder({ folder_path: join(ingestRoot, 'mixed'), priority: 3 });
    expect(response.statusCode).toBe(202);
    const batchId = (response.json() as Body).batch_id as string;
    const batch = await settledBatch(batchId);
    expect(batch).toMatchObject({
      status: 'completed',
      total_files: 2,
      processed_files: 2,
      failed_files: 1,
      progress_percent: 100,
      owner: null,
      user_comment: null,
    });
    const jobs = await allocator.runtime.catalog
      .selectFrom('job')
      .select(['priority', 'status'])
      .where('batch_id', '=', batchId)
      .execute();
    expect(jobs).toEqual([{ priority: 3, status: 'done' }]);
  });

  it('fails the batch when no file could be ingested', async () => {
    const response = await postFolder({ folder_path: join(ingestRoot, 'broken') });
    expect(response.statusCode).toBe(202);
    const batchId = (response.json() as Body).batch_id as string;
    const batch = await settledBatch(batchId);
    expect(batch).toMatchObject({
      status: 'failed',
      total_files: 1,
      processed_files: 1,
      failed_files: 1,
      progress_percent: 100,
      job_ids: [],
      error_message: 'All 1 files failed',
    });
  });

  it('resolves a relative folder_path against the allowed root', async () => {
    const response = await postFolder({ folder_path: 'mixed' });
    expect(response.statusCode).toBe(202);
    const batch = await settledBatch((response.json() as Body).batch_id as string);
    expect(batch.folder_path).toBe(join(ingestRoot, 'mixed'));
  });

  it('refuses paths outside the root (403), missing folders (404), files (400) and folders without supported files (400)', async () => {
    const failuresBefore = await folderMetric('failure');
    expectError(await postFolder({ folder_path: tmpdir() }), 403, 'forbidden');
    expectError(await postFolder({ folder_path: join(photos, '..', '..') }), 403, 'forbidden');
    expectError(await postFolder({ folder_path: '../' }), 403, 'forbidden');
    expectError(await postFolder({ folder_path: join(ingestRoot, 'does-not-exist') }), 404, 'not_found');
    expectError(await postFolder({ folder_path: join(photos, 'red.png') }), 400, 'bad_request');
    expectError(
      await postFolder({ folder_path: join(ingestRoot, 'nothing') }),
      400,
      'bad_request',
      'No supported files found in folder',
    );
    expect(await folderMetric('failure')).toBe(failuresBefore + 6);
  });

  it('answers 422 for a missing folder_path and malformed fields', async () => {
    const missing = await postFolder({ owner: 'x' });
    expectError(missing, 422, 'validation_error');
    expect(((missing.json() as Body).details as { loc: string[] }[])[0]?.loc).toEqual([
      'body',
      'folder_path',
    ]);
    const cases: [Body, string][] = [
      [{ folder_path: photos, priority: 11 }, 'priority'],
      [{ folder_path: photos, priority: 'high' }, 'priority'],
      [{ folder_path: photos, owner: 'o'.repeat(256) }, 'owner'],
      [{ folder_path: photos, callback_url: 'ftp://example.com/hook' }, 'callback_url'],
      [{ folder_path: 42 }, 'folder_path'],
    ];
    for (const [body, field] of cases) {
      const response = await postFolder(body);
      expectError(response, 422, 'validation_error');
      expect(((response.json() as Body).details as { loc: string[] }[])[0]?.loc).toEqual(['body', field]);
    }
  });
});

describe('GET /api/v1/ingest/batch/{id}', () => {
  it('answers 404 for an unknown batch and 400 for a malformed id', async () => {
    expectError(
      await allocator.app.inject({
        method: 'GET',
        url: '/api/v1/ingest/batch/7d0f5a4e-4b6c-4d2a-9f5e-2c1b3a4d5e6f',
      }),
      404,
      'not_found',
    );
    expectError(
      await allocator.app.inject({ method: 'GET', url: '/api/v1/ingest/batch/batch-1' }),
      400,
      'invalid_id',
    );
  });
});

describe('GET /api/v1/ingest/batches', () => {
  it('lists batches newest first with status and owner filters', async () => {
    const first = (
      await postFolder({ folder_path: join(ingestRoot, 'mixed'), owner: 'lister' })
    ).json() as Body;
    const second = (
      await postFolder({ folder_path: join(ingestRoot, 'broken'), owner: 'lister' })
    ).json() as Body;
    await settledBatch(first.batch_id as string);
    await settledBatch(second.batch_id as string);

    const mine = await allocator.app.inject({ method: 'GET', url: '/api/v1/ingest/batches?owner=lister' });
    expect(mine.statusCode).toBe(200);
    const body = mine.json() as { batches: Body[]; count: number };
    expect(body.count).toBe(2);
    expect(body.batches.map((batch) => batch.batch_id)).toEqual([second.batch_id, first.batch_id]);
    expect(body.batches[0]).toMatchObject({ status: 'failed', owner: 'lister', total_files: 1 });

    const failed = await allocator.app.inject({
      method: 'GET',
      url: '/api/v1/ingest/batches?owner=lister&status=failed',
    });
    expect((failed.json() as { batches: Body[] }).batches.map((batch) => batch.batch_id)).toEqual([
      second.batch_id,
    ]);

    const limited = await allocator.app.inject({ method: 'GET', url: '/api/v1/ingest/batches?limit=1' });
    const limitedBody = limited.json() as { batches: Body[]; count: number };
    expect(limitedBody.count).toBe(1);
    expect(limitedBody.batches[0]?.batch_id).toBe(second.batch_id);
  });

  it('answers 400 for an unknown status and 422 for a limit outside 1..100', async () => {
    expectError(
      await allocator.app.inject({ method: 'GET', url: '/api/v1/ingest/batches?status=done' }),
      400,
      'bad_request',
    );
    for (const limit of ['0', '101']) {
      const response = await allocator.app.inject({
        method: 'GET',
        url: `/api/v1/ingest/batches?limit=${limit}`,
      });
      expectError(response, 422, 'validation_error');
    }
  });
});

describe('without INGEST_ALLOWED_ROOT', () => {
  it('answers 403 folder ingestion is disabled', async () => {
    const disabled = await startTestAllocator();
    try {
      expectError(
        await postFolder({ folder_path: photos }, disabled),
        403,
        'forbidden',
        'folder ingestion is disabled',
      );
      const batches = await disabled.runtime.catalog.selectFrom('ingestion_batch').select('id').execute();
      expect(batches).toEqual([]);
    } finally {
      await disabled.close();
    }
  });
});
