// One Raven Zero HTTP process: store (embedded or Redis), wordlist, service, background jobs, rate limiters,
// metrics and routes; graceful shutdown (spec §2.4, §3.14).
import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { hostname } from 'node:os';
import type { Logger } from '@quintet/kernel/log';
import { createMetricsRegistry, type Registry, registerWorkerRegistry } from '@quintet/kernel/metrics';
import {
  type FixedWindowLimiter,
  MemoryFixedWindowLimiter,
  RedisFixedWindowLimiter,
} from '@quintet/kernel/rate-limit';
import { connectRedis, type Redis, waitForRedis } from '@quintet/kernel/redis';
import { trustedProxyList } from '@quintet/kernel/security';
import { createHttpApp } from '@quintet/kernel/service';
import type { FastifyInstance } from 'fastify';
import type { RavenConfig } from './config.js';
import { type BackgroundJobs, startBackgroundJobs } from './domain/jobs.js';
import type { RavenService } from './domain/service-types.js';
import { MemoryRavenStore } from './domain/store/memory-store.js';
import { RedisRavenStore } from './domain/store/redis-store.js';
import type { RavenStore } from './domain/store/types.js';
import { createRavenService } from './domain/uploads.js';
import { loadWordlist, resolveWordlistPath, type Wordlist } from './domain/wordlist.js';
import { registerApiDocs } from './http/api-docs.js';
import type { RavenContext } from './http/context.js';
import {
  currentRequestContext,
  registerConventions,
  requestIdFor,
  securityHeaders,
} from './http/conventions.js';
import { renderRavenError } from './http/errors.js';
import { registerKeyRoutes } from './http/key-routes.js';
import { createRavenMetrics, type RavenMetrics } from './http/metrics.js';
import { registerOperationalRoutes } from './http/operational-routes.js';
import { registerUploadRoutes } from './http/upload-routes.js';
import { registerWebRoutes } from './http/web-routes.js';

const WARNING_EVENTS = new Set([
  'ip_blocked',
  'rate_limited',
  'sweep_failed',
  'heartbeat_failed',
  'storage_unexpected_entry',
]);
const ERROR_EVENTS = new Set(['integrity_check_failed', 'shred_failed', 'download_release_failed']);

/**
 * A domain log callback writing `event` lines at a level that fits the event; a line written while a request is
 * being handled carries that request's `request_id`, `method` and `path` (route template).
 */
export function domainLog(logger: Logger): (event: string, fields: Record<string, unknown>) => void {
  return (event, fields) => {
    const request = currentRequestContext();
    const line = request === undefined ? fields : { ...request, ...fields };
    if (ERROR_EVENTS.has(event)) logger.error(line, event);
    else if (WARNING_EVENTS.has(event)) logger.warn(line, event);
    else logger.info(line, event);
  };
}

/** Wraps a store so every operation is observed in `raven_store_op_seconds{op}`. */
function timedStore(store: RavenStore, metrics: RavenMetrics): RavenStore {
  return new Proxy(store, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver);
      if (typeof value !== 'function' || typeof property !== 'string' || property === 'close') {
        return typeof value === 'function' ? value.bind(target) : value;
      }
      return async (...args: unknown[]) => {
        const end = metrics.storeOpSeconds.startTimer({ op: property });
        try {
          return await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        } finally {
          end();
        }
      };
    },
  });
}

/** What `buildRavenApp` needs; tests pass their own service. */
export interface RavenAppParts {
  config: RavenConfig;
  logger: Logger;
  service: RavenService;
  store: RavenStore;
  storeKind: 'redis' | 'embedded';
  wordlist: Wordlist;
  limiter: FixedWindowLimiter;
  metricsRegistry: Registry;
  metrics: RavenMetrics;
  schedulerLastRunMs: () => number | null;
}

/** Builds the Fastify app with every route (not listening). */
export async function buildRavenApp(
  parts: RavenAppParts,
): Promise<{ app: FastifyInstance; context: RavenContext }> {
  const context: RavenContext = {
    ...parts,
    trustedProxies:
      parts.config.trustedProxies.length > 0 ? trustedProxyList(parts.config.trustedProxies) : null,
    startedAt: new Date(),
    ready: false,
  };
  const app = createHttpApp({
    logger: parts.logger,
    renderError: renderRavenError,
    requestIdHeader: 'x-request-id',
    newRequestId: requestIdFor,
    httpMetrics: parts.metrics.http,
    headers: securityHeaders(parts.config),
  });
  registerConventions(app, parts.config);
  registerUploadRoutes(app, context);
  registerKeyRoutes(app, context);
  registerOperationalRoutes(app, context);
  registerApiDocs(app);
  registerWebRoutes(app);
  await app.ready();
  return { app, context };
}

export interface RunningServer {
  app: FastifyInstance;
  context: RavenContext;
  /** stop accepting, let in-flight transfers finish within the grace, stop jobs, close the store */
  close(): Promise<void>;
}

async function openStore(
  config: RavenConfig,
  logger: Logger,
): Promise<{ store: RavenStore; limiter: FixedWindowLimiter; redis: Redis | null }> {
  if (config.redisUrl === undefined) {
    return {
      store: new MemoryRavenStore({ prefix: config.redisKeyPrefix }),
      limiter: new MemoryFixedWindowLimiter(),
      redis: null,
    };
  }
  const redis = connectRedis(config.redisUrl, {
    commandTimeoutMs: config.redisCommandTimeoutMs,
    name: 'raven-zero',
  });
  let lastReported = 0;
  redis.on('error', (error: Error) => {
    if (Date.now() - lastReported < 5000) return;
    lastReported = Date.now();
    logger.warn({ error: error.message }, 'redis_connection_error');
  });
  try {
    await waitForRedis(redis, config.redisStartupTimeoutSeconds * 1000);
  } catch (error) {
    redis.disconnect();
    throw error;
  }
  return {
    store: new RedisRavenStore(redis, config.redisKeyPrefix),
    limiter: new RedisFixedWindowLimiter(redis, config.redisKeyPrefix),
    redis,
  };
}

/** Builds and starts one HTTP process listening on host:port (spec §3.14 start-up order). */
export async function startRavenServer(
  config: RavenConfig,
  logger: Logger,
  host: string,
  port: number,
): Promise<RunningServer> {
  const log = domainLog(logger);
  const wordlist = loadWordlist(resolveWordlistPath(config.dicewareWordlistPath, process.cwd()));
  const { store: rawStore, limiter } = await openStore(config, logger);
  const storeKind = config.redisUrl === undefined ? 'embedded' : 'redis';
  logger.info({ store: storeKind }, 'store_connected');

  const metricsRegistry = createMetricsRegistry();
  registerWorkerRegistry(metricsRegistry);
  const metrics = createRavenMetrics(metricsRegistry);
  const store = timedStore(rawStore, metrics);

  await mkdir(config.storagePath, { recursive: true });
  await mkdir(config.tempPath, { recursive: true });

  const service = createRavenService({
    config,
    store,
    wordlist,
    log,
    metrics: {
      kdf: (_purpose, seconds) => metrics.kdfSeconds.observe(seconds),
      clientBlocked: () => metrics.blocked.inc(),
    },
  });

  const jobs: BackgroundJobs = startBackgroundJobs({
    config,
    store,
    instanceId: `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`,
    embedded: storeKind === 'embedded',
    log: (event, fields) => {
      if (event === 'sweep_completed') {
        metrics.sweepRemoved.inc({ reason: 'expired' }, Number(fields.removed ?? 0));
        metrics.sweepRemoved.inc({ reason: 'orphan' }, Number(fields.orphans ?? 0));
      }
      log(event, fields);
    },
  });
  await jobs.startupCleanup();
  logger.info({}, 'scheduler_started');

  const { app, context } = await buildRavenApp({
    config,
    logger,
    service,
    store,
    storeKind,
    wordlist,
    limiter,
    metricsRegistry,
    metrics,
    schedulerLastRunMs: () => jobs.lastRunAt()?.getTime() ?? null,
  });
  app.server.headersTimeout = 30_000;
  app.server.requestTimeout = 0; // large uploads are bounded by the idle timeout instead
  await app.listen({ host, port, listenTextResolver: () => 'server_listening' });
  context.ready = true;

  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      context.ready = false;
      const appClosed = app.close();
      const grace = new Promise<void>((resolve) =>
        setTimeout(resolve, config.shutdownGraceSeconds * 1000).unref(),
      );
      await Promise.race([appClosed, grace]);
      app.server.closeAllConnections();
      // Uploads cut off by the grace limit leave no partial file behind.
      await service.abortOpenUploads();
      jobs.stop();
      await store.close().catch(() => {});
    })();
    return closing;
  };
  return { app, context, close };
}
