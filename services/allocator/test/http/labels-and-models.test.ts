// Labels and models through the running service (spec §3.6.3, §3.6.7, §3.17.3): the Gemini VLM (a local fake
// server), its fallback, the CLIP ONNX embedder on a generated tiny model, and the start-up fallback when a
// requested model is missing (acceptance 43, 50's start-up part).
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ZERO_SHOT_CATEGORIES } from '../../src/domain/models/clip.js';
import { solidPng, startTestAllocator } from '../harness.js';
import { writeTinyClipModel } from '../models/tiny-models.js';

function metricValue(text: string, line: string): number {
  const match = text.split('\n').find((candidate) => candidate.startsWith(`${line} `));
  return match === undefined ? 0 : Number(match.slice(line.length + 1));
}

describe('Gemini VLM', () => {
  let server: Server;
  let baseUrl: string;
  let mode: 'answer' | 'fail' = 'answer';
  const requests: { url: string; key: string | undefined }[] = [];

  beforeAll(async () => {
    server = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        requests.push({
          url: request.url ?? '',
          key: request.headers['x-goog-api-key'] as string | undefined,
        });
        if (mode === 'fail') {
          response.writeHead(500, { 'content-type': 'application/json' }).end('{"error":{"message":"boom"}}');
          return;
        }
        const answer = {
          primary_category: 'landscape',
          tags: ['Sunset', 'sky', 'orange glow', 'horizon', 'clouds'],
          description: 'An orange evening sky over the sea',
          detected_objects: [{ name: 'sun', confidence: 0.9 }],
          scene_type: 'outdoor',
          color_palette: ['#ff8800', '#aa4400', 'not-a-colour'],
          suggested_cluster_name: 'Sunsets',
        };
        response
          .writeHead(200, { 'content-type': 'application/json' })
          .end(JSON.stringify({ candidates: [{ content: { parts: [{ text: JSON.stringify(answer) }] } }] }));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => server.close());

  test('tags and cluster name come from the answer; 500s → fallback labels and vlm_fallback_total (acceptance 43)', async () => {
    const allocator = await startTestAllocator({
      GEMINI_API_KEY: 'fake-gemini-key',
      GEMINI_BASE_URL: baseUrl,
      GEMINI_MODEL: 'gemini-test',
    });
    try {
      const response = await allocator.ingest(
        [
          {
            filename: 'sunset.png',
            data: await solidPng([250, 140, 20], { noise: 4 }),
            contentType: 'image/png',
          },
        ],
        { tags: 'trip' },
      );
      const assetId = response.json().system_ids[0];
      expect((await allocator.waitForJob(response.json().job_id)).status).toBe('done');
      expect(requests.at(-1)).toEqual({
        url: '/v1beta/models/gemini-test:generateContent',
        key: 'fake-gemini-key',
      });
      const asset = await allocator.runtime.catalog
        .selectFrom('asset')
        .selectAll()
        .where('id', '=', assetId)
        .executeTakeFirstOrThrow();
      expect(asset.tags).toEqual(['sunset', 'sky', 'orange glow', 'horizon', 'clouds', 'trip']);
      expect(asset.metadata).toMatchObject({
        vlm_primary_category: 'landscape',
        vlm_model: 'gemini-test',
        vlm_fallback_used: false,
        vlm_color_palette: ['#ff8800', '#aa4400', '#808080'],
      });
      const cluster = await allocator.runtime.catalog
        .selectFrom('cluster')
        .select('name')
        .where('id', '=', asset.cluster_id as string)
        .executeTakeFirstOrThrow();
      expect(cluster.name).toBe('Sunsets');

      mode = 'fail';
      const failing = await allocator.ingest([
        { filename: 'blue.png', data: await solidPng([20, 40, 230]), contentType: 'image/png' },
      ]);
      expect((await allocator.waitForJob(failing.json().job_id)).status).toBe('done');
      const fallback = await allocator.runtime.catalog
        .selectFrom('asset')
        .selectAll()
        .where('id', '=', failing.json().system_ids[0])
        .executeTakeFirstOrThrow();
      expect(fallback.metadata).toMatchObject({
        vlm_model: 'heuristic-fallback',
        vlm_fallback_used: true,
        vlm_primary_category: 'blue',
      });
      expect(fallback.tags).toContain('blue');
      const metrics = (await allocator.app.inject({ method: 'GET', url: '/metrics' })).body;
      expect(metricValue(metrics, 'vlm_fallback_total{reason="error"}')).toBeGreaterThan(0);
      expect(metricValue(metrics, 'vlm_requests_total{status="failure"}')).toBeGreaterThan(0);
      expect(metricValue(metrics, 'vlm_requests_total{status="success"}')).toBe(1);
      expect(JSON.stringify(allocator.logs)).not.toContain('fake-gemini-key');
      const health = (await allocator.app.inject({ method: 'GET', url: '/health' })).body;
      expect(health).not.toContain('fake-gemini-key');
    } finally {
      mode = 'answer';
      await allocator.close();
    }
  });

  test('no key → heuristic-fallback (reason no_key); VLM_ENABLED=false → no labels', async () => {
    const allocator = await startTestAllocator();
    try {
      const response = await allocator.ingest([
        { filename: 'r.png', data: await solidPng([230, 10, 10]), contentType: 'image/png' },
      ]);
      await allocator.waitForJob(response.json().job_id);
      const asset = await allocator.runtime.catalog
        .selectFrom('asset')
        .selectAll()
        .where('id', '=', response.json().system_ids[0])
        .executeTakeFirstOrThrow();
      expect(asset.metadata).toMatchObject({ vlm_model: 'heuristic-fallback', vlm_fallback_used: true });
      const cluster = await allocator.runtime.catalog
        .selectFrom('cluster')
        .select('name')
        .where('id', '=', asset.cluster_id as string)
        .executeTakeFirstOrThrow();
      expect(cluster.name).toBe('Red Images');
      const metrics = (await allocator.app.inject({ method: 'GET', url: '/metrics' })).body;
      expect(metricValue(metrics, 'vlm_fallback_total{reason="no_key"}')).toBe(1);
    } finally {
      await allocator.close();
    }
    const unlabelled = await startTestAllocator({ VLM_ENABLED: 'false' });
    try {
      const response = await unlabelled.ingest(
        [{ filename: 'g.png', data: await solidPng([10, 230, 10]), contentType: 'image/png' }],
        { tags: 'mine' },
      );
      await unlabelled.waitForJob(response.json().job_id);
      const asset = await unlabelled.runtime.catalog
        .selectFrom('asset')
        .selectAll()
        .where('id', '=', response.json().system_ids[0])
        .executeTakeFirstOrThrow();
      expect(asset.tags).toEqual(['mine']);
      expect(asset.metadata.vlm_model).toBeUndefined();
    } finally {
      await unlabelled.close();
    }
  });
});

describe('embedding models', () => {
  let modelsDir: string;
  beforeAll(async () => {
    modelsDir = await mkdtemp(join(tmpdir(), 'allocator-models-'));
    writeTinyClipModel(join(modelsDir, 'tiny-clip'));
  });
  afterAll(async () => rm(modelsDir, { recursive: true, force: true }));

  test('a CLIP model directory by id under MODELS_DIR: /health reports it; fallback labels use its zero-shot category', async () => {
    const allocator = await startTestAllocator({ MODELS_DIR: modelsDir, EMBEDDING_MODEL: 'tiny-clip' });
    try {
      const health = (await allocator.app.inject({ method: 'GET', url: '/health' })).json();
      expect(health.embedder).toEqual({
        model: 'tiny-clip',
        dimension: 512,
        text_search: true,
        requested: 'tiny-clip',
        fallback_reason: null,
      });
      const response = await allocator.ingest([
        { filename: 'x.png', data: await solidPng([200, 30, 30]), contentType: 'image/png' },
      ]);
      await allocator.waitForJob(response.json().job_id);
      const asset = await allocator.runtime.catalog
        .selectFrom('asset')
        .selectAll()
        .where('id', '=', response.json().system_ids[0])
        .executeTakeFirstOrThrow();
      expect(asset.embedding_model).toBe('tiny-clip');
      expect(asset.metadata.vlm_model).toBe('clip-fallback');
      expect(ZERO_SHOT_CATEGORIES).toContain(asset.metadata.vlm_primary_category);
    } finally {
      await allocator.close();
    }
  });

  test('an explicitly configured model that is missing → built-in embedder, WARNING, /health degraded', async () => {
    const allocator = await startTestAllocator({
      MODELS_DIR: modelsDir,
      EMBEDDING_MODEL: 'openai/clip-vit-base-patch32',
    });
    try {
      const health = (await allocator.app.inject({ method: 'GET', url: '/health' })).json();
      expect(health.status).toBe('degraded');
      expect(health.embedder).toMatchObject({
        model: 'builtin-visual-v1',
        requested: 'openai/clip-vit-base-patch32',
        text_search: false,
      });
      expect(health.embedder.fallback_reason).toEqual(expect.any(String));
      expect(
        allocator.logs.some(
          (line) => line.level === 'WARNING' && String(line.message).includes('built-in visual embedder'),
        ),
      ).toBe(true);
      expect((await allocator.app.inject({ method: 'GET', url: '/ready' })).statusCode).toBe(200);
    } finally {
      await allocator.close();
    }
  });

  test('EMBEDDING_MODEL_REQUIRED=true with a missing model refuses to start', async () => {
    await expect(
      startTestAllocator({
        MODELS_DIR: modelsDir,
        EMBEDDING_MODEL: 'absent-model',
        EMBEDDING_MODEL_REQUIRED: 'true',
      }),
    ).rejects.toThrow(/EMBEDDING_MODEL 'absent-model' could not be loaded/);
  });
});
