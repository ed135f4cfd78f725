// The allocator process: the runtime (catalog, storage, models, queue, job executors) and the HTTP app on top.
import { EventEmitter } from 'node:events';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { Database } from '@quintet/kernel/db';
import { createLogger, type Logger, namedLogger } from '@quintet/kernel/log';
import { createHttpApp } from '@quintet/kernel/service';
import type { FastifyInstance } from 'fastify';
import { sql } from 'kysely';
import type { AllocatorConfig } from './config.js';
import { ClusterCentroids, PerceptualHashes } from './domain/clustering.js';
import { type CatalogDatabase, migrateCatalog, openCatalog, prepareNewCatalog } from './domain/database.js';
import { settleFolderIngests } from './domain/folder-ingest.js';
import { JobRunner } from './domain/jobs.js';
import { createAllocatorMetrics } from './domain/metrics.js';
import { setupMediaEmbedder, setupTextEmbedder } from './domain/model-setup.js';
import { settleWebhookDeliveries } from './domain/pipeline/notify.js';
import { createSearchIndex, type SearchIndex } from './domain/search-index.js';
import { FileStorage } from './domain/storage.js';
import { registerBatchRoutes } from './http/batch-routes.js';
import { registerClusterRoutes } from './http/cluster-routes.js';
import { registerConventions, requestIdFor } from './http/conventions.js';
import { registerDlqRoutes } from './http/dlq-routes.js';
import { renderAllocatorError } from './http/errors.js';
import { registerIngestRoutes } from './http/ingest-routes.js';
import { registerObjectRoutes } from './http/object-routes.js';
import { registerDocsRoutes } from './http/openapi.js';
import { type ProcessState, registerOpsRoutes } from './http/ops-routes.js';
import { registerSchemaRoutes } from './http/schema-routes.js';
import { registerSearchRoutes } from './http/search-routes.js';
import { registerTracing } from './http/tracing.js';
import type { AllocatorRuntime, CatalogChanges, ClusterLock } from './runtime.js';
import { serviceVersion } from './version.js';

const LEVEL_LABELS = {
  trace: 'DEBUG',
  debug: 'DEBUG',
  info: 'INFO',
  warn: 'WARNING',
  error: 'ERROR',
  fatal: 'CRITICAL',
};
const PINO_LEVELS: Record<string, string> = {
  DEBUG: 'debug',
  INFO: 'info',
  WARNING: 'warn',
  ERROR: 'error',
  CRITICAL: 'fatal',
};

/** `LOG_FORMAT=text`: the JSON lines rewritten as `timestamp LEVEL logger: message key=value …`. */
function textDestination(): Writable {
  return new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line === '') continue;
        try {
          const { timestamp, level, logger, message, ...rest } = JSON.parse(line) as Record<string, unknown>;
          const extras = Object.entries(rest)
            .map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`)
            .join(' ');
          process.stdout.write(
            `${timestamp} ${level} ${logger}: ${message}${extras === '' ? '' : ` ${extras}`}\n`,
          );
        } catch {
          process.stdout.write(`${line}\n`);
        }
      }
      callback();
    },
  });
}

/** The service's root logger (spec §3.20): JSON lines with timestamp, upper-case level, logger, message. */
export function createAllocatorLogger(
  config: Pick<AllocatorConfig, 'logLevel' | 'logFormat' | 'logFile'>,
  destination?: NodeJS.WritableStream,
): Logger {
  return createLogger({
    name: 'allocator',
    level: PINO_LEVELS[config.logLevel] ?? 'info',
    timeKey: 'timestamp',
    messageKey: 'message',
    levelLabels: LEVEL_LABELS,
    redact: [
      'headers["x-api-key"]',
      'req.headers["x-api-key"]',
      'api_key',
      'apiKey',
      'gemini_api_key',
      'database_url',
      'password',
    ],
    ...(config.logFile === undefined ? {} : { file: config.logFile }),
    ...(destination !== undefined
      ? { destination: destination as never }
      : config.logFormat === 'text'
        ? { destination: textDestination() as never }
        : {}),
  });
}

function createChanges(): CatalogChanges {
  const emitter = new EventEmitter();
  emitter.setMaxListeners(50);
  return {
    assetsChanged: (assetIds) => {
      if (assetIds.length > 0) emitter.emit('change', { kind: 'changed', assetIds });
    },
    assetsDeleted: (assetIds) => {
      if (assetIds.length > 0) emitter.emit('change', { kind: 'deleted', assetIds });
    },
    onChange: (listener) => {
      emitter.on('change', listener);
      return () => emitter.off('change', listener);
    },
  };
}

/** In-process mutex: one critical section at a time, in arrival order. */
function createMutex(): ClusterLock {
  let tail: Promise<unknown> = Promise.resolve();
  return <T>(work: () => Promise<T>): Promise<T> => {
    const run = tail.then(work, work);
    tail = run.catch(() => {});
    return run;
  };
}

// "clst": the advisory lock serialising dedup + clustering across instances sharing one PostgreSQL.
const CLUSTER_LOCK_KEY = 0x636c_7374;

/**
 * The critical section of spec §3.5: an in-process mutex, plus — on PostgreSQL, where several instances may
 * process at once — a session advisory lock held on one dedicated connection while the work runs. A section
 * that fails may have rolled back rows the in-memory centroids and hashes already saw, so they start over.
 */
function createClusterLock(
  database: Database<CatalogDatabase>,
  caches: readonly { invalidate(): void }[],
): ClusterLock {
  const exclusive = exclusiveSection(database);
  return <T>(work: () => Promise<T>): Promise<T> =>
    exclusive(async () => {
      try {
        return await work();
      } catch (error) {
        for (const cache of caches) cache.invalidate();
        throw error;
      }
    });
}

function exclusiveSection(database: Database<CatalogDatabase>): ClusterLock {
  const local = createMutex();
  if (database.dialect !== 'postgres') return local;
  return <T>(work: () => Promise<T>): Promise<T> =>
    local(() =>
      database.kysely.connection().execute(async (connection) => {
        await sql`select pg_advisory_lock(${CLUSTER_LOCK_KEY})`.execute(connection);
        try {
          return await work();
        } finally {
          await sql`select pg_advisory_unlock(${CLUSTER_LOCK_KEY})`.execute(connection);
        }
      }),
    );
}

// One search index per runtime, built once (it loads the catalog) and closed with the runtime.
const searchIndexes = new WeakMap<AllocatorRuntime, Promise<SearchIndex>>();

function searchIndexOf(runtime: AllocatorRuntime): Promise<SearchIndex> {
  let index = searchIndexes.get(runtime);
  if (index === undefined) {
    index = createSearchIndex(runtime);
    searchIndexes.set(runtime, index);
  }
  return index;
}

export interface RuntimeOptions {
  logger: Logger;
  /** embedded PGlite in memory instead of DATA_DIR/pglite (tests) */
  inMemoryDatabase?: boolean;
}

export interface StartedRuntime {
  runtime: AllocatorRuntime;
  runner: JobRunner;
  close(): Promise<void>;
}

/** Opens the catalog (migrated), storage, models and the queue; the job executors are started separately. */
export async function createRuntime(
  config: AllocatorConfig,
  options: RuntimeOptions,
): Promise<StartedRuntime> {
  const { logger } = options;
  await mkdir(config.dataDir, { recursive: true });
  // The spool holds only uploads in flight: anything left there is from a process that died mid-request.
  await rm(config.tmpDir, { recursive: true, force: true });
  await mkdir(config.tmpDir, { recursive: true });
  const storage = new FileStorage(config.storagePath);
  await storage.ensureRoot();
  const metrics = createAllocatorMetrics();
  const catalogOptions = {
    onQuery: (operation: string, seconds: number) => metrics.dbQueryDuration.observe({ operation }, seconds),
    databaseUrl: config.databaseUrl,
    pgliteDir: options.inMemoryDatabase ? undefined : join(config.dataDir, 'pglite'),
    poolSize: config.dbPoolSize + config.dbMaxOverflow,
    embeddingDim: config.embeddingDim,
    logger,
  };
  await prepareNewCatalog(catalogOptions);
  let database = await openCatalog(catalogOptions);
  const closers: (() => Promise<void>)[] = [() => database.close()];
  const closeAll = async () => {
    for (const close of closers.reverse()) await close().catch(() => {});
    closers.length = 0;
  };
  try {
    const applied = await migrateCatalog(database, config.embeddingDim);
    if (applied.length > 0) logger.info({ migrations: applied }, 'catalog migrations applied');
    if (applied.length > 0 && catalogOptions.pgliteDir !== undefined && config.databaseUrl === undefined) {
      // Migrating an existing embedded database (an upgrade) grows PGlite's WebAssembly memory, which never
      // shrinks: reopening it leaves the serving process with the memory a normal start needs.
      await database.close();
      database = await openCatalog(catalogOptions);
    }
    const mediaEmbedder = await setupMediaEmbedder(config, namedLogger(logger, 'allocator.media'));
    closers.push(() => mediaEmbedder.close());
    const textEmbedder = await setupTextEmbedder(config, namedLogger(logger, 'allocator.documents'));
    closers.push(() => textEmbedder.close());
    const clusterCentroids = new ClusterCentroids();
    const perceptualHashes = new PerceptualHashes();
    const partial = {
      config,
      logger,
      database,
      catalog: database.kysely,
      storage,
      metrics,
      version: serviceVersion(),
      startedAt: Date.now(),
      mediaEmbedder,
      textEmbedder,
      clusterLock: createClusterLock(database, [clusterCentroids, perceptualHashes]),
      clusterCentroids,
      perceptualHashes,
      changes: createChanges(),
    };
    const runner = await JobRunner.create(partial);
    closers.push(() => runner.close());
    closers.push(async () => {
      const index = searchIndexes.get(runner.runtime);
      if (index !== undefined) await (await index).close();
    });
    return { runtime: runner.runtime, runner, close: closeAll };
  } catch (error) {
    await closeAll();
    throw error;
  }
}

/** The HTTP app over a runtime. */
export async function buildApp(
  runtime: AllocatorRuntime,
  state: ProcessState,
  options: { apiRoutes?: boolean } = {},
): Promise<FastifyInstance> {
  const { config } = runtime;
  const app = createHttpApp({
    logger: namedLogger(runtime.logger, 'allocator.http'),
    renderError: renderAllocatorError,
    requestIdHeader: 'x-request-id',
    newRequestId: requestIdFor as () => string,
    httpMetrics: runtime.metrics.http,
    bodyLimit: config.maxJsonBytes + 64 * 1024,
  });
  // Tracing first: even a request refused by the API-key check carries its trace ids.
  registerTracing(app, runtime);
  registerConventions(app, config);
  await registerOpsRoutes(app, runtime, state);
  if (options.apiRoutes !== false) {
    registerIngestRoutes(app, runtime);
    registerBatchRoutes(app, runtime);
    registerClusterRoutes(app, runtime);
    registerDlqRoutes(app, runtime);
    registerObjectRoutes(app, runtime);
    registerSearchRoutes(app, runtime, await searchIndexOf(runtime));
    registerSchemaRoutes(app, runtime);
    registerDocsRoutes(app, runtime);
  }
  await app.ready();
  return app;
}

export interface RunningServer {
  url: string;
  port: number;
  /** graceful shutdown (spec §7): not ready, drain the executors, close HTTP, close the catalog */
  close(): Promise<void>;
}

/**
 * Starts one allocator process: migrate, serve HTTP, run the job executors (`http: false` → executors with only
 * /live, /ready and /metrics, the `worker` command).
 */
export async function startServer(
  config: AllocatorConfig,
  options: { logger: Logger; http?: boolean; executors?: boolean },
): Promise<RunningServer> {
  const { logger } = options;
  const started = await createRuntime(config, { logger });
  const state: ProcessState = { started: false, draining: false, runner: started.runner };
  let app: FastifyInstance;
  try {
    app = await buildApp(started.runtime, state, { apiRoutes: options.http !== false });
    await app.listen({ host: config.host, port: config.port });
    if (options.executors !== false) await started.runner.start();
  } catch (error) {
    await started.close();
    throw error;
  }
  state.started = true;
  const address = app.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : config.port;
  const shownHost = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host;
  const url = `http://${shownHost}:${port}`;
  logger.info(
    {
      url,
      database: started.runtime.database.dialect,
      queue: config.queueBackend,
      worker_threads: config.workerThreads,
      embedder: started.runtime.mediaEmbedder.status.model,
    },
    'File Allocator started',
  );
  let closing: Promise<void> | null = null;
  return {
    url,
    port,
    close: () => {
      closing ??= (async () => {
        state.draining = true;
        await started.runner.drain(config.shutdownTimeoutMs);
        await settleFolderIngests(Math.min(5000, config.shutdownTimeoutMs));
        await settleWebhookDeliveries(Math.min(5000, config.shutdownTimeoutMs));
        await app.close();
        await started.close();
        logger.info('File Allocator stopped');
      })();
      return closing;
    },
  };
}
