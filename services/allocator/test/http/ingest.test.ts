// Ingest and job status (spec §3.4, §3.5) and the conventions every route shares (§3.1): acceptance cases
// 1–10, 15–17, 27, 38, 40–42.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { solidPng, startTestAllocator, type TestAllocator } from '../harness.js';

let allocator: TestAllocator;

beforeAll(async () => {
  allocator = await startTestAllocator({ MAX_JSON_BYTES: '2048', MAX_IMAGE_BYTES: '300000' });
});
afterAll(async () => allocator?.close());

function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath, entry.name));
}

async function jobCount(): Promise<number> {
  const row = await allocator.runtime.catalog
    .selectFrom('job')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

describe('operations endpoints', () => {
  test('GET /live and /ready (acceptance 1)', async () => {
    const live = await allocator.app.inject({ method: 'GET', url: '/live' });
    expect(live.statusCode).toBe(200);
    expect(live.json()).toEqual({ status: 'alive' });
    const ready = await allocator.app.inject({ method: 'GET', url: '/ready' });
    expect(ready.statusCode).toBe(200);
    expect(ready.json()).toEqual({
      status: 'ready',
      database: 'connected',
      checks: { database: 'ok', storage: 'ok', queue: 'ok', workers: 'ok' },
    });
  });

  test('GET /ready is 503 while draining', async () => {
    allocator.state.draining = true;
    try {
      const ready = await allocator.app.inject({ method: 'GET', url: '/ready' });
      expect(ready.statusCode).toBe(503);
      expect(ready.json()).toMatchObject({ status: 'not_ready', checks: { shutdown: 'draining' } });
    } finally {
      allocator.state.draining = false;
    }
  });

  test('GET /health reports the components (acceptance 2)', async () => {
    const response = await allocator.app.inject({ method: 'GET', url: '/health' });
    expect(response.statusCode).toBe(200);
    const body = response.json();
    expect(body.database).toMatchObject({ status: 'connected', backend: 'pglite', pool: { max: 1 } });
    expect(body.workers).toMatchObject({ configured: 2, alive: 2 });
    expect(body.system.memory_rss_bytes).toBeGreaterThan(0);
    expect(body.queue).toMatchObject({ backend: 'inproc' });
    expect(body.storage).toMatchObject({ backend: 'fs://', writable: true, path: allocator.storageDir });
    expect(body.embedder).toMatchObject({ model: 'builtin-visual-v1', dimension: 512, text_search: false });
    expect(body.text_embedder).toEqual({ model: 'builtin-hash-v1', dimension: 768 });
    expect(body.media.ffmpeg.available).toBe(true);
    expect(body.vlm).toMatchObject({ enabled: true, provider: null, circuit: 'closed' });
    expect(body.version).toMatch(/^\d+\.\d+\.\d+/);
  });

  test('GET / describes the service', async () => {
    const response = await allocator.app.inject({ method: 'GET', url: '/' });
    expect(response.json()).toMatchObject({
      service: 'Automated File Allocator API',
      status: 'running',
      docs: '/api/docs',
    });
  });

  test('GET /metrics has the seed metrics (acceptance 3)', async () => {
    const response = await allocator.app.inject({ method: 'GET', url: '/metrics' });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(response.body).toContain('# TYPE ingest_requests_total counter');
    expect(response.body).toContain('# TYPE job_processing_duration_seconds histogram');
    expect(response.body).toContain('queue_depth{job_type="media"}');
    expect(response.body).toMatch(/^active_workers 2$/m);
    // Every catalog query is timed by its kind.
    expect(response.body).toMatch(/^db_query_duration_seconds_count\{operation="select"\} [1-9]\d*$/m);
  });

  test('unknown routes are 404 and wrong methods 405 with Allow, in the error body', async () => {
    const missing = await allocator.app.inject({ method: 'GET', url: '/nope' });
    expect(missing.statusCode).toBe(404);
    expect(missing.json()).toMatchObject({ error: 'not_found', request_id: missing.headers['x-request-id'] });
    const wrong = await allocator.app.inject({ method: 'DELETE', url: '/live' });
    expect(wrong.statusCode).toBe(405);
    expect(wrong.headers.allow).toContain('GET');
    expect(wrong.json().error).toBe('method_not_allowed');
  });

  test('X-Request-ID is echoed when valid, generated otherwise (acceptance 42)', async () => {
    const echoed = await allocator.app.inject({
      method: 'GET',
      url: '/live',
      headers: { 'x-request-id': 'abc-1' },
    });
    expect(echoed.headers['x-request-id']).toBe('abc-1');
    const generated = await allocator.app.inject({
      method: 'GET',
      url: '/live',
      headers: { 'x-request-id': 'bad id!' },
    });
    expect(generated.headers['x-request-id']).toMatch(
      /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
    );
  });

  test('CORS preflight from an allowed and a disallowed origin (acceptance 41)', async () => {
    const allowed = await allocator.app.inject({
      method: 'OPTIONS',
      url: '/api/v1/ingest',
      headers: { origin: 'http://localhost:3000', 'access-control-request-method': 'POST' },
    });
    expect(allowed.statusCode).toBe(204);
    expect(allowed.headers['access-control-allow-origin']).toBe('http://localhost:3000');
    expect(allowed.headers['access-control-allow-credentials']).toBe('true');
    expect(allowed.headers['access-control-allow-methods']).toBe('GET,POST,PATCH,DELETE,OPTIONS');
    expect(allowed.headers['access-control-allow-headers']).toContain('X-API-Key');
    expect(allowed.headers['access-control-max-age']).toBe('600');
    const refused = await allocator.app.inject({
      method: 'OPTIONS',
      url: '/api/v1/ingest',
      headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' },
    });
    expect(refused.statusCode).toBe(403);
    expect(refused.headers['access-control-allow-origin']).toBeUndefined();
    expect(refused.json().error).toBe('forbidden');
    const simple = await allocator.app.inject({
      method: 'GET',
      url: '/live',
      headers: { origin: 'https://evil.example' },
    });
    expect(simple.statusCode).toBe(200);
    expect(simple.headers['access-control-allow-origin']).toBeUndefined();
  });
});

describe('POST /api/v1/ingest validation', () => {
  test('neither files nor payload → 400 with the error body (acceptance 4)', async () => {
    const response = await allocator.ingest([], { owner: 'someone' });
    expect(response.statusCode).toBe(400);
    expect(response.json()).toEqual({
      error: 'bad_request',
      detail: "Either 'files' or 'payload' must be provided",
      request_id: response.headers['x-request-id'],
    });
  });

  test('invalid JSON, primitives and empty arrays → 400 (acceptance 7)', async () => {
    const before = await jobCount();
    const invalid = await allocator.ingest([], { payload: 'not json' });
    expect(invalid.statusCode).toBe(400);
    expect(invalid.json().error).toBe('invalid_json');
    const primitive = await allocator.ingest([], { payload: '42' });
    expect(primitive.statusCode).toBe(400);
    expect(primitive.json().detail).toBe('JSON payload must be an object or array');
    const empty = await allocator.ingest([], { payload: '[]' });
    expect(empty.statusCode).toBe(400);
    expect(empty.json().detail).toBe('JSON array cannot be empty');
    const emptyObject = await allocator.ingest([], { payload: '{}' });
    expect(emptyObject.statusCode).toBe(400);
    const nonObjects = await allocator.ingest([], { payload: '[{"a":1}, 3]' });
    expect(nonObjects.statusCode).toBe(400);
    expect(await jobCount()).toBe(before);
  });

  test('a payload of MAX_JSON_BYTES + 1 bytes → 413 (acceptance 8)', async () => {
    const padded = `{"text":"${'x'.repeat(2049 - 11)}"}`;
    expect(Buffer.byteLength(padded)).toBe(2049);
    const response = await allocator.ingest([], { payload: padded });
    expect(response.statusCode).toBe(413);
    expect(response.json().error).toBe('payload_too_large');
    // Exactly MAX_JSON_BYTES is still accepted.
    const atLimit = await allocator.ingest([], { payload: `{"text":"${'x'.repeat(2048 - 11)}"}` });
    expect(atLimit.statusCode).toBe(202);
  });

  test('field shapes → 422 with details', async () => {
    const response = await allocator.ingest([], {
      payload: '{"a":1}',
      priority: '11',
      owner: 'o'.repeat(256),
    });
    expect(response.statusCode).toBe(422);
    const body = response.json();
    expect(body.error).toBe('validation_error');
    expect(body.details.map((issue: { loc: string[] }) => issue.loc[1]).sort()).toEqual([
      'owner',
      'priority',
    ]);
    const callback = await allocator.ingest([], { payload: '{"a":1}', callback_url: 'ftp://x' });
    expect(callback.statusCode).toBe(422);
  });

  test('random bytes named blob.bin → 415 naming the file; nothing stored (acceptance 9)', async () => {
    const before = await jobCount();
    const bytes = Buffer.from(Array.from({ length: 5000 }, (_, index) => (index * 7919) % 251));
    const response = await allocator.ingest([{ filename: 'blob.bin', data: bytes }]);
    expect(response.statusCode).toBe(415);
    expect(response.json().details).toEqual(['Unsupported file type: blob.bin']);
    expect(filesUnder(join(allocator.storageDir, 'incoming'))).toEqual([]);
    expect(filesUnder(allocator.runtime.config.tmpDir)).toEqual([]);
    expect(await jobCount()).toBe(before);
  });

  test('a file over its kind limit → 413 with the per-item message; spool removed', async () => {
    const big = await sharp({ create: { width: 600, height: 600, channels: 3, background: 'red' } })
      .png({ compressionLevel: 0 })
      .toBuffer();
    expect(big.length).toBeGreaterThan(300_000);
    const response = await allocator.ingest([{ filename: 'big.png', data: big, contentType: 'image/png' }]);
    expect(response.statusCode).toBe(413);
    expect(response.json().detail).toMatch(
      /^File big\.png: \d+ bytes exceeds maximum 300000 bytes for image$/,
    );
    expect(filesUnder(allocator.runtime.config.tmpDir)).toEqual([]);
  });

  test('a body that is neither multipart nor JSON → 415', async () => {
    const response = await allocator.app.inject({
      method: 'POST',
      url: '/api/v1/ingest',
      payload: 'hello',
      headers: { 'content-type': 'text/plain' },
    });
    expect(response.statusCode).toBe(415);
    expect(response.json().error).toBe('unsupported_media_type');
  });

  test('a multipart body without a boundary or truncated → 400', async () => {
    const noBoundary = await allocator.app.inject({
      method: 'POST',
      url: '/api/v1/ingest',
      payload: 'x',
      headers: { 'content-type': 'multipart/form-data' },
    });
    expect(noBoundary.statusCode).toBe(400);
    const truncated = await allocator.app.inject({
      method: 'POST',
      url: '/api/v1/ingest',
      payload: '--b\r\nContent-Disposition: form-data; name="files"; filename="a.png"\r\n\r\nabc',
      headers: { 'content-type': 'multipart/form-data; boundary=b' },
    });
    expect(truncated.statusCode).toBe(400);
    expect(filesUnder(allocator.runtime.config.tmpDir)).toEqual([]);
  });
});

describe('POST /api/v1/ingest processing', () => {
  test('a JSON payload → 202 with Location; job done; asset pending_review under a provisional sql schema (acceptance 5)', async () => {
    const response = await allocator.ingest([], { payload: '{"name":"John","age":30,"city":"NYC"}' });
    expect(response.statusCode).toBe(202);
    const body = response.json();
    expect(body).toMatchObject({ status: 'accepted', message: `Job ${body.job_id} accepted for processing` });
    expect(body.system_ids).toHaveLength(1);
    expect(response.headers.location).toBe(`/api/v1/ingest/${body.job_id}/status`);
    expect(body.created_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    const status = await allocator.waitForJob(body.job_id);
    expect(status.status).toBe('done');
    expect(status.job_type).toBe('json');
    const asset = (status.assets as { status: string; schema_id: string }[])[0];
    expect(asset?.status).toBe('pending_review');
    const schema = await allocator.runtime.catalog
      .selectFrom('schema_def')
      .selectAll()
      .where('id', '=', asset?.schema_id as string)
      .executeTakeFirstOrThrow();
    expect(schema).toMatchObject({ status: 'provisional', storage_choice: 'sql', confidence: 1 });
  });

  test('a JSON body with a batch → system ids in order (acceptance 6)', async () => {
    const response = await allocator.app.inject({
      method: 'POST',
      url: '/api/v1/ingest',
      payload: { payload: [{ name: 'Alice' }, { name: 'Bob' }], owner: 'team' },
    });
    expect(response.statusCode).toBe(202);
    const body = response.json();
    expect(body.system_ids).toHaveLength(2);
    const status = await allocator.waitForJob(body.job_id);
    expect((status.assets as { system_id: string }[]).map((asset) => asset.system_id)).toEqual(
      body.system_ids,
    );
    const missing = await allocator.app.inject({
      method: 'POST',
      url: '/api/v1/ingest',
      payload: { owner: 'x' },
    });
    expect(missing.statusCode).toBe(400);
  });

  test('a PNG → media done, filed under its cluster byte-identical, thumbnail ≤ 256 px (acceptance 10)', async () => {
    const png = await solidPng([30, 90, 200], { width: 400, height: 300, noise: 10 });
    const response = await allocator.ingest(
      [{ filename: 'photo.png', data: png, contentType: 'image/png' }],
      { tags: 'Holiday, beach' },
    );
    expect(response.statusCode).toBe(202);
    const {
      job_id: jobId,
      system_ids: [assetId],
    } = response.json();
    const status = await allocator.waitForJob(jobId);
    expect(status.status).toBe('done');
    const asset = await allocator.runtime.catalog
      .selectFrom('asset')
      .selectAll()
      .where('id', '=', assetId)
      .executeTakeFirstOrThrow();
    expect(asset.status).toBe('done');
    expect(asset.uri).toBe(`fs://media/clusters/${asset.cluster_id}/${assetId}.png`);
    expect(
      readFileSync(
        join(allocator.storageDir, 'media', 'clusters', String(asset.cluster_id), `${assetId}.png`),
      ),
    ).toEqual(png);
    const thumbnail = join(
      allocator.storageDir,
      'media',
      'derived',
      String(asset.cluster_id),
      assetId,
      'thumb.jpg',
    );
    const meta = await sharp(thumbnail).metadata();
    expect(meta.format).toBe('jpeg');
    expect(Math.max(meta.width ?? 0, meta.height ?? 0)).toBeLessThanOrEqual(256);
    expect(asset.tags).toEqual(expect.arrayContaining(['blue', 'landscape', 'image', 'holiday', 'beach']));
    expect(asset.metadata).toMatchObject({
      width: 400,
      height: 300,
      vlm_model: 'heuristic-fallback',
      original_filename: 'photo.png',
    });
    expect(filesUnder(join(allocator.storageDir, 'incoming'))).toEqual([]);
  });

  test('a mixed request (PNG + 2 documents) → 3 system ids, job_type mixed, all settled (acceptance 27)', async () => {
    const png = await solidPng([250, 250, 0]);
    const response = await allocator.ingest([{ filename: 'y.png', data: png, contentType: 'image/png' }], {
      payload: '[{"sku":"a","qty":1},{"sku":"b","qty":2}]',
    });
    const body = response.json();
    expect(body.system_ids).toHaveLength(3);
    const status = await allocator.waitForJob(body.job_id);
    expect(status.job_type).toBe('mixed');
    expect((status.progress as { queued: number; processing: number }).queued).toBe(0);
    expect((status.assets as { kind: string }[]).map((asset) => asset.kind)).toEqual([
      'media',
      'json',
      'json',
    ]);
  });

  test('idempotency: same content → same job and Idempotent-Replayed; other content → 409 (acceptance 15)', async () => {
    const first = await allocator.ingest([], { payload: '{"k":1}', idempotency_key: 'key-15' });
    expect(first.statusCode).toBe(202);
    const again = await allocator.ingest([], { payload: '{"k":1}' }, { 'idempotency-key': 'key-15' });
    expect(again.statusCode).toBe(202);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.json()).toMatchObject({
      job_id: first.json().job_id,
      message: 'Duplicate request (idempotency key)',
      request_id: 'key-15',
    });
    const other = await allocator.ingest([], { payload: '{"k":2}', idempotency_key: 'key-15' });
    expect(other.statusCode).toBe(409);
    expect(other.json().error).toBe('idempotency_conflict');
  });

  test('10 concurrent requests with one idempotency key → exactly one job (acceptance 16)', async () => {
    const before = await jobCount();
    const responses = await Promise.all(
      Array.from({ length: 10 }, () =>
        allocator.ingest([], { payload: '{"race":true}', idempotency_key: 'key-16' }),
      ),
    );
    expect(responses.map((response) => response.statusCode)).toEqual(Array(10).fill(202));
    expect(new Set(responses.map((response) => response.json().job_id)).size).toBe(1);
    expect(await jobCount()).toBe(before + 1);
  });

  test('status of an unknown job → 404, of a malformed id → 400 (acceptance 17)', async () => {
    const unknown = await allocator.app.inject({
      method: 'GET',
      url: '/api/v1/ingest/2f1e6a4e-5d2c-4b8a-9f00-1234567890ab/status',
    });
    expect(unknown.statusCode).toBe(404);
    const malformed = await allocator.app.inject({ method: 'GET', url: '/api/v1/ingest/not-a-uuid/status' });
    expect(malformed.statusCode).toBe(400);
    expect(malformed.json().error).toBe('invalid_id');
  });

  test('a truncated PNG → asset failed, job dead-lettered with retry_count 0; others still processed (acceptance 38)', async () => {
    const png = await solidPng([10, 10, 10], { width: 200, height: 200, noise: 40 });
    const truncated = png.subarray(0, Math.floor(png.length / 2));
    const bad = await allocator.ingest([
      { filename: 'broken.png', data: truncated, contentType: 'image/png' },
    ]);
    const good = await allocator.ingest([
      { filename: 'fine.png', data: await solidPng([200, 0, 200]), contentType: 'image/png' },
    ]);
    const badStatus = await allocator.waitForJob(bad.json().job_id);
    expect(badStatus).toMatchObject({ status: 'failed', dead_letter: true, retry_count: 0 });
    expect(String((badStatus.assets as { error_message: string }[])[0]?.error_message)).toMatch(
      /corrupt or truncated/,
    );
    expect((await allocator.waitForJob(good.json().job_id)).status).toBe('done');
  });
});

describe('API key', () => {
  test('API_KEY=k1,k2 → 401 without a key, 200 with X-API-Key k2 or Bearer k1; /health open (acceptance 40)', async () => {
    const guarded = await startTestAllocator({ API_KEY: 'k1,k2' });
    try {
      const url = '/api/v1/ingest/2f1e6a4e-5d2c-4b8a-9f00-1234567890ab/status';
      const none = await guarded.app.inject({ method: 'GET', url });
      expect(none.statusCode).toBe(401);
      expect(none.headers['www-authenticate']).toBe('ApiKey');
      expect(none.json().error).toBe('unauthorized');
      const wrong = await guarded.app.inject({ method: 'GET', url, headers: { 'x-api-key': 'k3' } });
      expect(wrong.statusCode).toBe(401);
      expect(
        (await guarded.app.inject({ method: 'GET', url, headers: { 'x-api-key': 'k2' } })).statusCode,
      ).toBe(404);
      expect(
        (await guarded.app.inject({ method: 'GET', url, headers: { authorization: 'Bearer k1' } }))
          .statusCode,
      ).toBe(404);
      expect((await guarded.app.inject({ method: 'GET', url: '/health' })).statusCode).toBe(200);
      expect((await guarded.app.inject({ method: 'GET', url: '/metrics' })).statusCode).toBe(200);
      expect(JSON.stringify(guarded.logs)).not.toContain('k2');
    } finally {
      await guarded.close();
    }
  });

  test('METRICS_ENABLED=false → /metrics 404 (acceptance 3)', async () => {
    const quiet = await startTestAllocator({ METRICS_ENABLED: 'false' });
    try {
      const response = await quiet.app.inject({ method: 'GET', url: '/metrics' });
      expect(response.statusCode).toBe(404);
      expect(response.json().error).toBe('not_found');
    } finally {
      await quiet.close();
    }
  });
});

describe('client disconnect', () => {
  test('a client that disconnects mid-upload leaves no spool file and no job', async () => {
    const { connect } = await import('node:net');
    const address = await allocator.app.listen({ host: '127.0.0.1', port: 0 });
    const port = Number(new URL(address).port);
    const before = await jobCount();
    await new Promise<void>((resolve) => {
      const socket = connect(port, '127.0.0.1', () => {
        socket.write(
          [
            'POST /api/v1/ingest HTTP/1.1',
            `Host: 127.0.0.1:${port}`,
            'Content-Type: multipart/form-data; boundary=cut',
            'Content-Length: 10000000',
            '',
            '--cut',
            'Content-Disposition: form-data; name="files"; filename="partial.png"',
            'Content-Type: image/png',
            '',
            '',
          ].join('\r\n'),
        );
        socket.write(Buffer.alloc(200_000, 7), () => setTimeout(() => socket.destroy(), 100));
      });
      socket.on('close', () => resolve());
      socket.on('error', () => {});
    });
    const deadline = Date.now() + 5000;
    while (filesUnder(allocator.runtime.config.tmpDir).length > 0 && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 50));
    expect(filesUnder(allocator.runtime.config.tmpDir)).toEqual([]);
    expect(await jobCount()).toBe(before);
  });
});
