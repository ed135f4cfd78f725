// Starts a whole allocator in the test process: in-memory PGlite, temp storage, job executors running, the
// built-in models, no OCR (unless the test's env enables it). Requests go through `app.inject`.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { loadConfig } from '../src/config.js';
import type { JobRunner } from '../src/domain/jobs.js';
import type { ProcessState } from '../src/http/ops-routes.js';
import type { AllocatorRuntime } from '../src/runtime.js';
import { buildApp, createAllocatorLogger, createRuntime } from '../src/server.js';

export interface UploadFile {
  /** multipart field name (default `files`) */
  field?: string;
  filename: string;
  data: Buffer | string;
  contentType?: string;
}

export interface TestAllocator {
  app: FastifyInstance;
  runtime: AllocatorRuntime;
  runner: JobRunner;
  state: ProcessState;
  rootDir: string;
  storageDir: string;
  dataDir: string;
  /** every JSON log line written so far */
  logs: Record<string, unknown>[];
  /** POST /api/v1/ingest as multipart with these files and text fields */
  ingest(
    files: UploadFile[],
    fields?: Record<string, string>,
    headers?: Record<string, string>,
  ): Promise<LightMyRequestResponse>;
  /** polls the job until done/failed (status body returned); throws after timeoutMs */
  waitForJob(jobId: string, timeoutMs?: number): Promise<Record<string, unknown>>;
  close(): Promise<void>;
}

/** Builds a multipart/form-data body. */
export function multipartBody(
  files: UploadFile[],
  fields: Record<string, string> = {},
): { body: Buffer; contentType: string } {
  const boundary = `----allocator${Math.random().toString(16).slice(2)}`;
  const parts: Buffer[] = [];
  for (const [name, value] of Object.entries(fields)) {
    parts.push(
      Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`),
    );
  }
  for (const file of files) {
    parts.push(
      Buffer.from(
        `--${boundary}\r\nContent-Disposition: form-data; name="${file.field ?? 'files'}"; filename="${file.filename}"\r\nContent-Type: ${file.contentType ?? 'application/octet-stream'}\r\n\r\n`,
      ),
      Buffer.isBuffer(file.data) ? file.data : Buffer.from(file.data),
      Buffer.from('\r\n'),
    );
  }
  parts.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(parts), contentType: `multipart/form-data; boundary=${boundary}` };
}

export async function startTestAllocator(env: Record<string, string> = {}): Promise<TestAllocator> {
  const rootDir = await mkdtemp(join(tmpdir(), 'allocator-test-'));
  const storageDir = join(rootDir, 'storage');
  const dataDir = join(rootDir, 'data');
  const config = loadConfig({
    STORAGE_PATH: storageDir,
    DATA_DIR: dataDir,
    EMBEDDING_MODEL: 'builtin',
    TEXT_EMBEDDING_MODEL: 'builtin',
    OCR_ENABLED: 'false',
    WORKER_THREADS: '2',
    JOB_RETRY_BASE_MS: '50',
    LOG_LEVEL: 'DEBUG',
    ...env,
  });
  const logs: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString('utf8').split('\n'))
        if (line !== '') logs.push(JSON.parse(line) as Record<string, unknown>);
      callback();
    },
  });
  const logger = createAllocatorLogger(config, destination);
  const started = await createRuntime(config, { logger, inMemoryDatabase: env.DATABASE_URL === undefined });
  const state: ProcessState = { started: false, draining: false, runner: started.runner };
  const app = await buildApp(started.runtime, state);
  await started.runner.start();
  state.started = true;
  const harness: TestAllocator = {
    app,
    runtime: started.runtime,
    runner: started.runner,
    state,
    rootDir,
    storageDir,
    dataDir,
    logs,
    async ingest(files, fields = {}, headers = {}) {
      const { body, contentType } = multipartBody(files, fields);
      return app.inject({
        method: 'POST',
        url: '/api/v1/ingest',
        payload: body,
        headers: { 'content-type': contentType, ...headers },
      });
    },
    async waitForJob(jobId, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        // The row first, then the answer: an answer fetched after the row was final shows it final too.
        const job = await started.runtime.catalog
          .selectFrom('job')
          .select('status')
          .where('id', '=', jobId)
          .executeTakeFirst();
        const response = await app.inject({
          method: 'GET',
          url: `/api/v1/ingest/${jobId}/status`,
          headers: apiKeyHeader(env),
        });
        const body = response.json() as Record<string, unknown>;
        if (job?.status === 'done' || job?.status === 'failed') return body;
        if (Date.now() > deadline)
          throw new Error(`job ${jobId} still ${String(body.status)} after ${timeoutMs} ms`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
    async close() {
      state.draining = true;
      await app.close();
      await started.close();
      await rm(rootDir, { recursive: true, force: true });
    },
  };
  return harness;
}

function apiKeyHeader(env: Record<string, string>): Record<string, string> {
  const key = env.API_KEY?.split(',')[0]?.trim();
  return key === undefined || key === '' ? {} : { 'x-api-key': key };
}

/** A solid-colour PNG (with optional per-pixel noise of ±noise levels) made with sharp. */
export async function solidPng(
  rgb: [number, number, number],
  options: { width?: number; height?: number; noise?: number; seed?: number; compressionLevel?: number } = {},
): Promise<Buffer> {
  const sharp = (await import('sharp')).default;
  const width = options.width ?? 64;
  const height = options.height ?? 48;
  const data = Buffer.alloc(width * height * 3);
  let seed = options.seed ?? 1;
  const random = () => {
    seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
    return seed / 2_147_483_648;
  };
  for (let index = 0; index < width * height; index++) {
    for (let channel = 0; channel < 3; channel++) {
      const noise = options.noise === undefined ? 0 : Math.round((random() * 2 - 1) * options.noise);
      data[index * 3 + channel] = Math.max(0, Math.min(255, (rgb[channel] as number) + noise));
    }
  }
  return sharp(data, { raw: { width, height, channels: 3 } })
    .png({ compressionLevel: options.compressionLevel ?? 6 })
    .toBuffer();
}
