// One OWSC dashboard process (spec §3.5, §3.7, §7.2): store, live monitor, job pool, fan-out, rate limiter,
// metrics and routes; graceful shutdown; optional cluster workers with a relay through the primary.
import cluster from 'node:cluster';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLogger, flushLogger, type Logger } from '@quintet/kernel/log';
import { registerWorkerRegistry } from '@quintet/kernel/metrics';
import { createRedisPubSub, type PubSub } from '@quintet/kernel/pubsub';
import {
  type FixedWindowLimiter,
  MemoryFirstRequestLimiter,
  RedisFirstRequestLimiter,
} from '@quintet/kernel/rate-limit';
import { connectRedis, type Redis } from '@quintet/kernel/redis';
import { createHttpApp, onShutdownSignal, runWithWorkers } from '@quintet/kernel/service';
import { WorkerPool } from '@quintet/kernel/workers';
import type { FastifyInstance } from 'fastify';
import { checkWorkersStore, type OwscConfig } from './config.js';
import { OpenAiAdviceProvider } from './domain/advice-provider.js';
import { LiveMonitor } from './domain/live.js';
import { OwscStore } from './domain/store.js';
import { registerApiRoutes } from './http/api-routes.js';
import type { OwscContext, ProcessState } from './http/context.js';
import { registerConventions, renderOwscError, requestIdFor, SECURITY_HEADERS } from './http/conventions.js';
import { ClusterRelayPubSub, serveClusterRelay, startFanout } from './http/fanout.js';
import { createOwscMetrics } from './http/metrics.js';
import { registerOperationalRoutes } from './http/operational-routes.js';
import { registerWebRoutes } from './http/web-routes.js';
import { registerWebSocketRoutes, StreamHub } from './http/websocket.js';

export interface RunningDashboard {
  url: string;
  port: number;
  /** graceful shutdown (spec §7.2); resolves once every resource is closed */
  close(): Promise<void>;
  /** the routes' context (absent in a cluster primary, which serves no routes itself) */
  context?: OwscContext;
}

export interface DashboardOptions {
  logger?: Logger;
  /** HTTP worker processes (`--workers`); default OW_SC_WORKERS */
  workers?: number;
  /** install SIGTERM/SIGINT handlers that shut down and exit 0 (default true; tests embedding a server pass false) */
  signals?: boolean;
  /** WebSocket ping interval (default 30 s) */
  pingIntervalMs?: number;
}

/** Builds the Fastify app with every route (not listening). */
export async function buildApp(context: OwscContext): Promise<FastifyInstance> {
  const { config, metrics } = context;
  const app = createHttpApp({
    logger: context.logger,
    renderError: renderOwscError,
    requestIdHeader: 'x-request-id',
    newRequestId: requestIdFor,
    httpMetrics: metrics.http,
    bodyLimit: config.maxJsonBytes,
    headers: SECURITY_HEADERS,
  });
  registerConventions(app, { config, metrics, limiter: context.limiter });
  await registerWebSocketRoutes(app, context);
  registerOperationalRoutes(app, context);
  registerWebRoutes(app);
  registerApiRoutes(app, context);
  await app.ready();
  return app;
}

function defaultLogger(config: OwscConfig): Logger {
  return createLogger({
    name: 'owsc',
    level: config.logLevel,
    ...(config.logFile === undefined ? {} : { file: config.logFile }),
    loggerField: false,
  }).child({ service: 'owsc' });
}

/** The compiled job child next to this module, or (when running from source) the one in dist/. */
function jobChildScript(): string {
  const candidates = [
    new URL('./jobs/job-child.js', import.meta.url),
    new URL('../dist/jobs/job-child.js', import.meta.url),
  ];
  const found = candidates.find((candidate) => existsSync(candidate)) ?? candidates[0];
  return fileURLToPath(found as URL);
}

/** Starts the dashboard: one process, or with more than one worker a cluster primary that forks them. */
export async function startDashboard(
  config: OwscConfig,
  options: DashboardOptions = {},
): Promise<RunningDashboard> {
  const workers = options.workers ?? config.workers;
  checkWorkersStore(workers, config.databaseUrl);
  const effective: OwscConfig = { ...config, workers };
  const logger = options.logger ?? defaultLogger(config);
  if (workers > 1 && cluster.isPrimary) return startPrimary(effective, logger);
  return startProcess(effective, logger, options);
}

async function startPrimary(config: OwscConfig, logger: Logger): Promise<RunningDashboard> {
  for (const warning of config.warnings) logger.warn({}, warning);
  // Without Redis the workers of this instance reach each other through this process.
  if (config.redisUrl === undefined) serveClusterRelay();
  const listening = new Promise<number>((resolve) => {
    cluster.once('listening', (_worker, address) => resolve(address.port));
  });
  // The primary forwards SIGTERM/SIGINT to the workers and exits 0 once they have shut down.
  await runWithWorkers({
    workers: config.workers,
    logger,
    startWorker: async () => {},
    shutdownTimeoutMs: config.shutdownTimeoutSeconds * 1000 + 2000,
  });
  const port = await listening;
  const url = `http://${urlHost(config.host)}:${port}`;
  logger.info({ url, workers: config.workers }, 'dashboard listening');
  return {
    url,
    port,
    // A primary stops the way a signal stops it (workers drained, then exit 0), so replacements are not forked.
    close: async () => {
      process.kill(process.pid, 'SIGTERM');
      await new Promise<never>(() => {});
    },
  };
}

function urlHost(host: string): string {
  if (host === '0.0.0.0' || host === '::') return '127.0.0.1';
  return host.includes(':') ? `[${host}]` : host;
}

async function startProcess(
  config: OwscConfig,
  baseLogger: Logger,
  options: DashboardOptions,
): Promise<RunningDashboard> {
  const state: ProcessState = {
    ready: false,
    shuttingDown: false,
    startedAt: new Date(),
    instanceId: randomBytes(8).toString('hex'),
  };
  const logger = baseLogger.child({ instance_id: state.instanceId });
  // The primary already warned for the whole instance.
  if (!cluster.isWorker) for (const warning of config.warnings) logger.warn({}, warning);

  const store = await OwscStore.open({
    ...(config.databaseUrl === undefined ? {} : { url: config.databaseUrl }),
    dataDir: join(config.dataDir, 'owsc-db'),
    logger,
  });
  const metrics = createOwscMetrics(Object.keys(config.permit.limits_mgL));
  registerWorkerRegistry(metrics.registry);

  let pubsub: PubSub | null = null;
  let limiterRedis: Redis | null = null;
  let limiter: FixedWindowLimiter = new MemoryFirstRequestLimiter();
  if (config.redisUrl !== undefined) {
    pubsub = createRedisPubSub(config.redisUrl, { name: 'owsc', logger });
    limiterRedis = connectRedis(config.redisUrl, { commandTimeoutMs: 500, name: 'owsc:ratelimit' });
    limiter = new RedisFirstRequestLimiter(limiterRedis, `${config.redisChannel}:`);
  } else if (cluster.isWorker) {
    pubsub = new ClusterRelayPubSub();
  }

  const jobs = new WorkerPool({ script: jobChildScript(), mode: 'spawn', slots: config.jobWorkers });
  jobs.start().catch((error: unknown) => logger.error({ err: error }, 'job workers failed to start'));

  const adviceProvider =
    config.adviceProvider === 'openai' && config.openaiApiKey !== undefined
      ? new OpenAiAdviceProvider({
          apiKey: config.openaiApiKey,
          baseUrl: config.openaiBaseUrl,
          model: config.openaiModel,
          cache: {
            get: (key) => store.adviceCacheGet(key),
            set: (key, value) => store.adviceCacheSet(key, value),
          },
          logger,
        })
      : null;

  let streams: StreamHub | undefined;
  const live = new LiveMonitor({
    permit: config.permit,
    store,
    logger,
    nondetect: config.nondetect,
    onFlushed: (events) => streams?.publishLiveEvents(events),
  });
  streams = new StreamHub({
    config,
    metrics,
    logger,
    live,
    ...(options.pingIntervalMs === undefined ? {} : { pingIntervalMs: options.pingIntervalMs }),
  });
  const hub = streams;
  const fanout = await startFanout({
    pubsub,
    redis: config.redisUrl !== undefined,
    channel: config.redisChannel,
    instanceId: state.instanceId,
    metrics,
    logger,
    onEffluent: (payload) => hub.receiveRemote(payload),
    onAlertEvent: (event) => hub.deliverAlertEvent(event),
  });
  hub.connectFanout(fanout);

  const context: OwscContext = {
    config,
    logger,
    store,
    live,
    jobs,
    adviceProvider,
    limiter,
    metrics,
    state,
    redisStatus: () => fanout.redisStatus(),
    streams: hub,
    publishAlertEvent: (event) => hub.publishAlertEvent(event),
  };
  /** Everything but the HTTP server, closed in dependency order. */
  const releaseResources = async () => {
    hub.closeAll();
    await live.close().catch(() => {});
    await fanout.close().catch(() => {});
    if (limiterRedis !== null) limiterRedis.disconnect();
    await jobs.close({ graceMs: 0 }).catch(() => {});
    await store.close().catch(() => {});
  };
  let app: FastifyInstance;
  try {
    app = await buildApp(context);
    await app.listen({ host: config.host, port: config.port, listenTextResolver: () => 'server listening' });
  } catch (error) {
    // A port in use (or a route that fails to register) must not leave the store, pool or Redis open.
    await releaseResources();
    throw error;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : config.port;
  const url = `http://${urlHost(config.host)}:${port}`;
  state.ready = true;
  logger.info({ url, store: store.dialect, redis: fanout.redisStatus() }, 'dashboard listening');

  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      state.shuttingDown = true;
      state.ready = false;
      // Sockets first (1001), then the listener; in-flight requests get up to the shutdown timeout.
      hub.closeAll();
      const appClosed = app.close();
      let timer: NodeJS.Timeout | undefined;
      const limit = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, config.shutdownTimeoutSeconds * 1000);
      });
      await Promise.race([appClosed, limit]);
      clearTimeout(timer);
      app.server.closeAllConnections();
      await releaseResources();
      logger.info({}, 'dashboard stopped');
      await flushLogger(logger);
    })();
    return closing;
  };
  if (options.signals !== false) onShutdownSignal(() => close(), logger);
  return { url, port, close, context };
}
