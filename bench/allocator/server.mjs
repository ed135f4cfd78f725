// Running the real `file-allocator serve` for a benchmark, and the few HTTP calls the benchmarks share.
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeTempDir as makeBenchTempDir, removeTempDir, sleep, startService } from '../lib.mjs';

const root = fileURLToPath(new URL('../..', import.meta.url));
export const BIN = join(root, 'services/allocator/bin/file-allocator.js');

/** Settings of every benchmark server: offline embedders, OCR off (stated in docs/PERFORMANCE.md). */
export const BENCH_ENV = {
  EMBEDDING_MODEL: 'builtin',
  TEXT_EMBEDDING_MODEL: 'builtin',
  OCR_ENABLED: 'false',
};

/** A temporary directory removed when the benchmark process exits (or earlier with `removeTempDir`). */
export function makeTempDir(label) {
  return makeBenchTempDir(`allocator-bench-${label}`);
}

export { removeTempDir };

/**
 * Starts `file-allocator serve --host 127.0.0.1 --port <free>` with DATA_DIR/STORAGE_PATH under `dir`; resolves
 * when it logs "File Allocator started" (its stdout and stderr go to `dir/server-<n>.log`).
 */
export function startAllocator(dir, extraEnv = {}) {
  return startService({
    bin: BIN,
    logDir: dir,
    env: { DATA_DIR: join(dir, 'data'), STORAGE_PATH: join(dir, 'storage'), ...BENCH_ENV, ...extraEnv },
    isReady: ({ readLog }) => readLog().includes('"message":"File Allocator started"'),
    timeoutMs: 180_000,
    stopTimeoutMs: 60_000,
  });
}

export async function getJson(base, path) {
  const response = await fetch(`${base}${path}`);
  const text = await response.text();
  if (response.status !== 200) throw new Error(`GET ${path}: ${response.status} ${text.slice(0, 300)}`);
  return JSON.parse(text);
}

export async function getText(base, path) {
  const response = await fetch(`${base}${path}`);
  const text = await response.text();
  if (response.status !== 200) throw new Error(`GET ${path}: ${response.status} ${text.slice(0, 300)}`);
  return text;
}

/** POST /api/v1/ingest (multipart) of files [{name, bytes, type}] and form fields; returns the 202 body. */
export async function ingestFiles(base, files, fields = {}) {
  const form = new FormData();
  for (const file of files) form.append('files', new Blob([file.bytes], { type: file.type }), file.name);
  for (const [key, value] of Object.entries(fields)) form.set(key, value);
  const response = await fetch(`${base}/api/v1/ingest`, { method: 'POST', body: form });
  const text = await response.text();
  if (response.status !== 202) throw new Error(`ingest: ${response.status} ${text.slice(0, 500)}`);
  return JSON.parse(text);
}

/** Runs `work(item)` over items with at most `concurrency` in flight; results in item order. */
export async function mapConcurrent(items, concurrency, work) {
  const results = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      while (next < items.length) {
        const index = next++;
        results[index] = await work(items[index], index);
      }
    }),
  );
  return results;
}

const TERMINAL = new Set(['done', 'partial', 'failed']);

/**
 * Waits until the queue is empty (GET /health every second: no queued, processing or delayed job), then reads
 * every job's status; repeats while any job is not terminal. Returns the status bodies in `jobIds` order.
 */
export async function waitForJobs(base, jobIds, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const health = await getJson(base, '/health');
    const { depth, processing, delayed } = health.queue;
    if (depth === 0 && processing === 0 && delayed === 0) {
      const statuses = await mapConcurrent(jobIds, 8, (id) => getJson(base, `/api/v1/ingest/${id}/status`));
      if (statuses.every((status) => TERMINAL.has(status.status))) return statuses;
    }
    if (Date.now() > deadline)
      throw new Error(
        `jobs not finished within ${timeoutMs / 1000} s (queue ${JSON.stringify(health.queue)})`,
      );
    await sleep(1000);
  }
}

/** Milliseconds from each asset's `processing_start` to its `processing_complete` lineage entry. */
export async function assetProcessingMs(base, assetIds) {
  const durations = await mapConcurrent(assetIds, 8, async (id) => {
    const { entries } = await getJson(base, `/api/v1/objects/${id}/lineage`);
    const start = entries.findLast((entry) => entry.stage === 'processing_start');
    const complete = entries.findLast((entry) => entry.stage === 'processing_complete');
    return start && complete ? Date.parse(complete.created_at) - Date.parse(start.created_at) : null;
  });
  return durations.filter((value) => value !== null);
}
