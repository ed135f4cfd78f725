// One RAG Assistant HTTP process (spec §2.1, §3.11 serve): database, Redis, rate limits, revocation, the
// ingestion queue (in-process or BullMQ) with start-up recovery, the watchdog cron and the nightly maintenance,
// metrics, every route and the web app; graceful shutdown; optional cluster workers.
import cluster from 'node:cluster';
import { createReadStream, existsSync, statSync } from 'node:fs';
import { join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RedisRevocationStore, type RevocationStore } from '@quintet/kernel/jwt';
import { createLogger, flushLogger, type Logger } from '@quintet/kernel/log';
import { registerWorkerRegistry } from '@quintet/kernel/metrics';
import type { JobQueue } from '@quintet/kernel/queue';
import { connectRedis, type Redis, waitForRedis } from '@quintet/kernel/redis';
import { createHttpApp, onShutdownSignal, runWithWorkers } from '@quintet/kernel/service';
import { isFingerprinted, staticContentType } from '@quintet/kernel/static-files';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { checkWorkers, StartupRefusedError } from './config.js';
import type { RagConfig } from './config-types.js';
import { createBudgetService } from './domain/budgets.js';
import { openRagDatabase, type RagDb } from './domain/database.js';
import { createIngestionService } from './domain/ingestion.js';
import { createJobQueue } from './domain/job-queue.js';
import { startNightlyMaintenance } from './domain/maintenance.js';
import { createEmbedder } from './domain/providers/index.js';
import { primeDocumentIndex, warmRetrievalCache } from './domain/retrieval.js';
import { DatabaseRevocationStore } from './domain/revocation.js';
import { StreamSlots } from './domain/stream-slots.js';
import { scheduleWatchdog } from './domain/watchdog.js';
import { registerAdminRoutes } from './http/admin-routes.js';
import { registerApiDocs } from './http/api-docs.js';
import { registerAuthRoutes } from './http/auth-routes.js';
import { registerContentRoutes } from './http/content-routes.js';
import type { RagContext } from './http/context.js';
import {
  MemoryRateLimiter,
  type RagRateLimiter,
  RedisRateLimiter,
  ragErrorHandler,
  registerConventions,
  renderRagError,
  requestIdFor,
  securityHeaders,
} from './http/conventions.js';
import { registerCostRoutes } from './http/cost-routes.js';
import { createRagMetrics } from './http/metrics.js';
import { registerProbeRoutes } from './http/probe-routes.js';
import { registerSettingsRoutes } from './http/settings-routes.js';
import { registerStoreRoutes } from './http/store-routes.js';

/** How long running ingestion jobs may finish during shutdown (spec §3.11). */
const INGEST_DRAIN_MS = 10_000;
/** How long open streams get to write their final frame, and in-flight requests to finish. */
const STREAM_DRAIN_MS = 2_000;
const HTTP_DRAIN_MS = 3_000;
const REVOCATION_PURGE_MS = 60 * 60_000;
const REDIS_START_TIMEOUT_MS = 3_000;

export interface RagApp {
  app: FastifyInstance;
  context: RagContext;
  /** stops timers, streams, ingestion, Redis and the database (not the HTTP listener) */
  close(): Promise<void>;
}

export interface BuildOptions {
  logger?: Logger;
  /** an already open database (tests); closed with the app */
  db?: RagDb;
}

/** The root logger of the service: one JSON line per event (spec §3.9). */
export function createRagLogger(config: Pick<RagConfig, 'logLevel' | 'logFile'>): Logger {
  return createLogger({
    name: 'rag',
    level: config.logLevel,
    ...(config.logFile === undefined ? {} : { file: config.logFile }),
    loggerField: false,
    redact: ['*.authorization', '*.cookie', '*.password', '*.access_token', '*.api_key'],
  });
}

/** The web app directory (services/rag/web), the same from src/ and dist/. */
export const WEB_DIR = fileURLToPath(new URL('../web/', import.meta.url));

/** Opens every dependency and builds the Fastify app with all routes (not listening). */
export async function buildRagApp(config: RagConfig, options: BuildOptions = {}): Promise<RagApp> {
  const logger = options.logger ?? createRagLogger(config);
  for (const warning of config.warnings) logger.warn({ event: 'config_warning' }, warning);
  const db = options.db ?? (await openRagDatabase(config, logger));
  const timers: NodeJS.Timeout[] = [];
  const stops: (() => void)[] = [];
  let redis: Redis | null = null;
  let queue: JobQueue | null = null;
  try {
    if (config.redisUrl !== undefined) {
      redis = connectRedis(config.redisUrl, { commandTimeoutMs: 1000, name: 'rag' });
      redis.on('error', () => {});
      try {
        await waitForRedis(redis, REDIS_START_TIMEOUT_MS);
      } catch (error) {
        // Staging/production refuse to start without Redis (§2.3.9); elsewhere the service degrades.
        if (config.strictEnvironment) {
          throw new StartupRefusedError([`REDIS_URL is not reachable at start: ${(error as Error).message}`]);
        }
        logger.warn({ event: 'redis_unreachable_at_start' }, 'redis_unreachable_at_start');
      }
    }
    const limiter: RagRateLimiter =
      redis === null ? new MemoryRateLimiter() : new RedisRateLimiter(redis, logger);
    let revocations: RevocationStore;
    if (redis !== null) revocations = new RedisRevocationStore(redis);
    else {
      const store = new DatabaseRevocationStore(db.kysely);
      revocations = store;
      const purge = () =>
        store
          .purgeExpired()
          .then((count) => {
            if (count > 0) logger.info({ event: 'revoked_tokens_purged', count }, 'revoked_tokens_purged');
          })
          .catch((error: unknown) => logger.warn({ err: error }, 'revoked_tokens_purge_failed'));
      timers.push(setInterval(purge, REVOCATION_PURGE_MS).unref());
    }

    const streams = new StreamSlots({
      maxStreams: config.maxConcurrentStreams,
      waitMs: config.streamSlotWaitMs,
    });
    const metrics = createRagMetrics({ activeStreams: () => streams.active });

    queue = createJobQueue(config, db, logger);
    const embed = createEmbedder(config);
    const ingestion = createIngestionService({
      db,
      config,
      logger,
      queue,
      embed,
      onJobOutcome: (status) => metrics.ingestJobs.inc({ status }),
      // The first search over a new document then finds its index in memory (seconds for a large file).
      onIndexed: (index) => {
        primeDocumentIndex(db, index).catch((error: unknown) =>
          logger.warn(
            { event: 'index_prime_failed', document_id: index.documentId, err: error },
            'index_prime_failed',
          ),
        );
      },
    });
    registerWorkerRegistry(metrics.registry);
    const budgets = createBudgetService({
      kysely: db.kysely,
      holdUsd: config.budgetHoldUsd,
      alertPercent: config.budgetAlertPercent,
      logger,
    });
    const context: RagContext = {
      config,
      logger,
      db,
      redis,
      ingestion,
      limiter,
      revocations,
      metrics,
      streams,
      budgets,
      embed,
      state: { ready: false, shuttingDown: false, startedAt: new Date() },
    };

    const recovered = await ingestion.recoverOnStartup();
    if (recovered.reset + recovered.failed + recovered.enqueued > 0) {
      logger.info({ event: 'ingest_recovered', ...recovered }, 'ingest_recovered');
    }
    if (config.ingestInProcess) ingestion.start();
    if (config.watchdogCronMinutes > 0) stops.push(scheduleWatchdog(db, ingestion, config, logger));
    // The first search of a store would otherwise load its documents' postings while a user waits.
    warmRetrievalCache(db)
      .then(({ documents }) =>
        logger.debug({ event: 'retrieval_cache_warmed', documents }, 'retrieval_cache_warmed'),
      )
      .catch((error: unknown) =>
        logger.warn({ err: error, event: 'retrieval_cache_warm_failed' }, 'retrieval_cache_warm_failed'),
      );

    const stopMaintenance = startNightlyMaintenance(db, config, logger);
    stops.push(stopMaintenance);

    const app = createHttpApp({
      logger,
      renderError: renderRagError,
      requestIdHeader: 'x-request-id',
      newRequestId: requestIdFor,
      bodyLimit: config.maxJsonBytes,
      headers: securityHeaders(config),
    });
    app.decorate('rag', context);
    registerConventions(app, context);
    registerWebApp(app);
    await app.register(async (api) => {
      api.setErrorHandler(ragErrorHandler);
      registerProbeRoutes(api, context);
      registerApiDocs(api, context);
      registerAuthRoutes(api, context);
      registerStoreRoutes(api, context);
      registerAdminRoutes(api, context);
      registerSettingsRoutes(api, context);
      registerCostRoutes(api, context);
      await registerContentRoutes(api, context);
    });
    await app.ready();
    context.state.ready = true;

    const ingestionService = ingestion;
    const openQueue = queue;
    let closing: Promise<void> | undefined;
    const close = () => {
      closing ??= (async () => {
        context.state.ready = false;
        context.state.shuttingDown = true;
        for (const timer of timers) clearInterval(timer);
        for (const stop of stops) stop();
        streams.shutdown();
        await until(() => streams.active === 0, STREAM_DRAIN_MS);
        await ingestionService.close(INGEST_DRAIN_MS).catch((error: unknown) => {
          logger.warn({ err: error }, 'ingestion_close_failed');
        });
        await openQueue.close({ drainMs: 0 }).catch(() => {});
        redis?.disconnect();
        await db.close().catch(() => {});
      })();
      return closing;
    };
    return { app, context, close };
  } catch (error) {
    for (const timer of timers) clearInterval(timer);
    for (const stop of stops) stop();
    await queue?.close({ drainMs: 0 }).catch(() => {});
    redis?.disconnect();
    if (options.db === undefined) await db.close().catch(() => {});
    throw error;
  }
}

async function until(check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 25));
}

// ---- the web app (spec §3.10) ----

function sendWebFile(reply: FastifyReply, path: string, cacheControl: string): void {
  reply
    .code(200)
    .header('content-type', staticContentType(path) ?? 'application/octet-stream')
    .header('cache-control', cacheControl)
    .header('content-length', String(statSync(path).size))
    .send(createReadStream(path));
}

/**
 * Serves services/rag/web for GET/HEAD requests no route answers: a file that exists (content-hashed names
 * cached for a year, everything else revalidated), else index.html (no-cache) for client-side routes. API
 * paths keep their JSON 404.
 */
export function registerWebApp(app: FastifyInstance, webDir = WEB_DIR): void {
  const root = resolve(webDir);
  const index = join(root, 'index.html');
  app.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    if (!request.is404 || (request.method !== 'GET' && request.method !== 'HEAD')) return undefined;
    const path = request.url.split('?')[0] ?? '/';
    if (path === '/api' || path.startsWith('/api/')) return undefined;
    let decoded: string;
    try {
      decoded = decodeURIComponent(path);
    } catch {
      return undefined;
    }
    const candidate = normalize(join(root, decoded));
    if (candidate.startsWith(root + sep) && existsSync(candidate) && statSync(candidate).isFile()) {
      // Only a file whose name carries its content hash may be cached for good; the UI's modules are plain
      // files (no build step), so they are revalidated and an upgrade reaches browsers at once.
      const cache = isFingerprinted(candidate) ? 'public, max-age=31536000, immutable' : 'no-cache';
      sendWebFile(reply, candidate, cache);
      return reply;
    }
    if (!existsSync(index)) return undefined;
    sendWebFile(reply, index, 'no-cache');
    return reply;
  });
}

// ---- serve ----

export interface RunningServer {
  url: string;
  /** graceful shutdown (spec §3.11) */
  close(): Promise<void>;
  /** absent in a cluster primary, which serves no routes itself */
  context?: RagContext;
}

export interface StartOptions {
  logger?: Logger;
  /** HTTP worker processes (`--workers`); default WEB_CONCURRENCY */
  workers?: number;
  /** install SIGTERM/SIGINT handlers (default true; tests embedding a server pass false) */
  signals?: boolean;
  db?: RagDb;
}

function urlHost(host: string): string {
  if (host === '0.0.0.0' || host === '::') return '127.0.0.1';
  return host.includes(':') ? `[${host}]` : host;
}

/** Starts serving: one process, or with more than one worker a cluster primary that forks them. */
export async function startServer(config: RagConfig, options: StartOptions = {}): Promise<RunningServer> {
  const workers = options.workers ?? config.workers;
  checkWorkers(workers, config);
  const logger = options.logger ?? createRagLogger(config);
  if (workers > 1 && cluster.isPrimary) {
    const listening = new Promise<number>((resolvePort) => {
      cluster.once('listening', (_worker, address) => resolvePort(address.port));
    });
    await runWithWorkers({ workers, logger, startWorker: async () => {}, shutdownTimeoutMs: 17_000 });
    const url = `http://${urlHost(config.host)}:${await listening}`;
    logger.info({ event: 'server_listening', url, workers }, 'server_listening');
    return {
      url,
      close: async () => {
        process.kill(process.pid, 'SIGTERM');
        await new Promise<never>(() => {});
      },
    };
  }

  const built = await buildRagApp(config, {
    logger,
    ...(options.db === undefined ? {} : { db: options.db }),
  });
  const { app, context } = built;
  try {
    await app.listen({ host: config.host, port: config.port, listenTextResolver: () => 'server listening' });
  } catch (error) {
    await built.close();
    throw error;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : config.port;
  const url = `http://${urlHost(config.host)}:${port}`;
  logger.info(
    { event: 'server_listening', url, database: context.db.dialect, redis: context.redis !== null },
    'server_listening',
  );

  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      context.state.ready = false;
      context.state.shuttingDown = true;
      // Streams get their final frame first; the listener stops taking connections meanwhile.
      context.streams.shutdown();
      const appClosed = app.close();
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        appClosed,
        new Promise<void>((resolveLimit) => {
          timer = setTimeout(resolveLimit, STREAM_DRAIN_MS + HTTP_DRAIN_MS);
        }),
      ]);
      clearTimeout(timer);
      app.server.closeAllConnections();
      await built.close();
      logger.info({ event: 'server_stopped' }, 'server_stopped');
      await flushLogger(logger);
    })();
    return closing;
  };
  if (options.signals !== false) onShutdownSignal(() => close(), logger);
  return { url, close, context };
}
