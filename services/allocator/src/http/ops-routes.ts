// Operations endpoints (spec §3.17): `/`, `/live`, `/ready` (503 until started and while draining), `/health`
// (components and resource usage), `/metrics`.
import { access, constants } from 'node:fs/promises';
import { cpus, freemem, loadavg, totalmem } from 'node:os';
import { METRICS_CONTENT_TYPE, metricsText } from '@quintet/kernel/metrics';
import type { FastifyInstance } from 'fastify';
import { sql } from 'kysely';
import type { JobRunner } from '../domain/jobs.js';
import { ffmpegAvailability } from '../domain/media/ffmpeg.js';
import type { AllocatorRuntime } from '../runtime.js';
import { sendJson } from './conventions.js';
import { apiError } from './errors.js';

/** What the process is doing: not ready until start-up completes; draining once shutdown began. */
export interface ProcessState {
  started: boolean;
  draining: boolean;
  runner: JobRunner | null;
}

const GIB = 1024 ** 3;

async function databaseCheck(
  runtime: AllocatorRuntime,
): Promise<{ ok: boolean; latencyMs: number; error?: string }> {
  const started = performance.now();
  try {
    await sql`select 1`.execute(runtime.catalog);
    return { ok: true, latencyMs: Math.round((performance.now() - started) * 100) / 100 };
  } catch (error) {
    return {
      ok: false,
      latencyMs: Math.round((performance.now() - started) * 100) / 100,
      error: (error as Error).message,
    };
  }
}

async function storageWritable(runtime: AllocatorRuntime): Promise<boolean> {
  try {
    await access(runtime.storage.root, constants.W_OK);
    return await runtime.storage.isWritable();
  } catch {
    return false;
  }
}

/** pool sizes of /health.database.pool */
function poolSnapshot(runtime: AllocatorRuntime): {
  size: number;
  max: number;
  active: number;
  idle: number;
  waiting: number;
} {
  const { total, idle, waiting, max } = runtime.database.connections();
  return { size: total, max, active: total - idle, idle, waiting };
}

/** GET /ready's body and status. */
async function readiness(
  runtime: AllocatorRuntime,
  state: ProcessState,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const database = await databaseCheck(runtime);
  const checks: Record<string, string> = {
    database: database.ok ? 'ok' : 'unreachable',
    storage: (await storageWritable(runtime)) ? 'ok' : 'not writable',
    queue: (await runtime.jobs.reachable()) ? 'ok' : 'unreachable',
    workers: state.runner !== null && state.runner.workerStats.alive > 0 ? 'ok' : 'no live workers',
  };
  if (!state.started) checks.startup = 'starting';
  if (state.draining) checks.shutdown = 'draining';
  const ready = state.started && !state.draining && Object.values(checks).every((value) => value === 'ok');
  return {
    status: ready ? 200 : 503,
    body: {
      status: ready ? 'ready' : 'not_ready',
      database: database.ok ? 'connected' : 'disconnected',
      checks,
    },
  };
}

async function healthBody(
  runtime: AllocatorRuntime,
  state: ProcessState,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const { config } = runtime;
  const database = await databaseCheck(runtime);
  const runner = state.runner;
  const free = await runtime.storage.freeSpace().catch(() => ({ freeBytes: 0, totalBytes: 0 }));
  const writable = await storageWritable(runtime);
  const ffmpeg =
    runner === null
      ? { available: false, version: null }
      : await ffmpegAvailability(runner.processor.ffmpegTools);
  const vlm = runner?.processor.labeller.status ?? {
    enabled: config.vlmEnabled,
    provider: null,
    model: null,
    circuit: 'closed',
    fallback: config.vlmFallbackToClip,
  };
  const queue = runner === null || !database.ok ? null : await runner.queueStats().catch(() => null);
  const embedder = runtime.mediaEmbedder.status;
  const degraded =
    (embedder.fallback_reason !== null && config.embeddingModelExplicit) ||
    !ffmpeg.available ||
    vlm.circuit === 'open' ||
    free.freeBytes < GIB;
  const memory = process.memoryUsage();
  const usage = process.cpuUsage();
  const status = !database.ok ? 'unhealthy' : degraded ? 'degraded' : 'healthy';
  return {
    status: database.ok ? 200 : 503,
    body: {
      status,
      timestamp: new Date().toISOString(),
      version: runtime.version,
      uptime_seconds: Math.round((Date.now() - runtime.startedAt) / 10) / 100,
      environment: config.environment,
      database: {
        status: database.ok ? 'connected' : 'disconnected',
        backend: runtime.database.dialect,
        latency_ms: database.latencyMs,
        pool: poolSnapshot(runtime),
      },
      workers: runner?.workerStats ?? { configured: config.workerThreads, alive: 0, busy: 0, restarts: 0 },
      queue: queue ?? {
        backend: config.queueBackend,
        depth: null,
        processing: null,
        delayed: null,
        dead_letter: null,
      },
      storage: {
        status: writable ? 'ok' : 'not_writable',
        backend: config.storageBackend,
        path: config.storagePath,
        writable,
        free_bytes: free.freeBytes,
        total_bytes: free.totalBytes,
      },
      embedder: {
        model: embedder.model,
        dimension: embedder.dimension,
        text_search: embedder.text_search,
        requested: embedder.requested,
        fallback_reason: embedder.fallback_reason,
      },
      text_embedder: { model: runtime.textEmbedder.modelId, dimension: runtime.textEmbedder.dimension },
      vlm,
      media: { ffmpeg, ocr: { enabled: config.ocrEnabled } },
      system: {
        cpu_count: cpus().length,
        load_avg: loadavg(),
        memory_rss_bytes: memory.rss,
        heap_used_bytes: memory.heapUsed,
        total_memory_bytes: totalmem(),
        free_memory_bytes: freemem(),
        process_cpu_seconds: Math.round(((usage.user + usage.system) / 1e6) * 1000) / 1000,
      },
    },
  };
}

export async function registerOpsRoutes(
  app: FastifyInstance,
  runtime: AllocatorRuntime,
  state: ProcessState,
): Promise<void> {
  app.get('/', async (_request, reply) =>
    sendJson(reply, 200, {
      service: 'Automated File Allocator API',
      version: runtime.version,
      status: 'running',
      docs: '/api/docs',
    }),
  );
  app.get('/live', async (_request, reply) => sendJson(reply, 200, { status: 'alive' }));
  app.get('/ready', async (_request, reply) => {
    const { status, body } = await readiness(runtime, state);
    return sendJson(reply, status, body);
  });
  app.get('/health', async (_request, reply) => {
    const { status, body } = await healthBody(runtime, state);
    return sendJson(reply, status, body);
  });
  app.get('/metrics', async (_request, reply) => {
    if (!runtime.config.metricsEnabled)
      throw apiError(404, 'not_found', 'Metrics are disabled (METRICS_ENABLED=false)');
    await state.runner?.refreshGauges().catch(() => {});
    const pool = poolSnapshot(runtime);
    runtime.metrics.databaseConnections.set({ state: 'active' }, pool.active);
    runtime.metrics.databaseConnections.set({ state: 'idle' }, pool.idle);
    return reply
      .code(200)
      .type(METRICS_CONTENT_TYPE)
      .send(await metricsText(runtime.metrics.registry));
  });
}
