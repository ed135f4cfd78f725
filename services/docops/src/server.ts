// One DocOps HTTP process: limiter, render-process pool, workspaces, routes; graceful shutdown.
import cors from '@fastify/cors';
import { ConcurrencyGate } from '@quintet/kernel/limits';
import { type Logger, namedLogger } from '@quintet/kernel/log';
import {
  createHttpMetrics,
  createMetricsRegistry,
  type Registry,
  registerWorkerRegistry,
} from '@quintet/kernel/metrics';
import { createHttpApp } from '@quintet/kernel/service';
import { WorkspaceRegistry } from '@quintet/kernel/tmp';
import { WorkerPool } from '@quintet/kernel/workers';
import type { FastifyInstance } from 'fastify';
import type { DocopsConfig } from './config.js';
import { findSoffice } from './domain/pdf.js';
import { loadSkillRegistry, type SkillRegistry } from './domain/skills.js';
import { renderDocopsError } from './http/errors.js';
import { createDocopsMetrics, type DocopsMetrics } from './http/metrics.js';
import { registerOperationalRoutes } from './http/operational-routes.js';
import { registerRenderRoutes } from './http/render-routes.js';
import { registerWebConsole } from './http/web-console.js';
import { renderProcessLaunch } from './render-start.js';

/** Everything a route needs, built once per HTTP process. */
export interface DocopsContext {
  config: DocopsConfig;
  logger: Logger;
  /** `docops.api` events */
  apiLogger: Logger;
  skills: SkillRegistry;
  pool: WorkerPool;
  gate: ConcurrencyGate;
  workspaces: WorkspaceRegistry;
  metricsRegistry: Registry;
  metrics: DocopsMetrics;
  /** the LibreOffice binary when PDF export is enabled and available */
  sofficePath: string | null;
  /** true once the render pool has started, false again when shutting down */
  ready: boolean;
}

export const WORKSPACE_PREFIX = 'docops-run-';
const SWEEP_INTERVAL_MS = 10 * 60 * 1000;

export interface RunningServer {
  app: FastifyInstance;
  context: DocopsContext;
  /** stop accepting, let in-flight jobs finish within the grace, kill the rest, remove workspaces */
  close(): Promise<void>;
}

/** Builds and starts one HTTP process listening on host:port. */
export async function startDocopsServer(
  config: DocopsConfig,
  logger: Logger,
  host: string,
  port: number,
): Promise<RunningServer> {
  const skills = loadSkillRegistry(config.skillsDir);
  const metricsRegistry = createMetricsRegistry();
  registerWorkerRegistry(metricsRegistry);

  const launch = renderProcessLaunch(skills, config.workerMode);
  const pool = new WorkerPool({
    script: launch.script,
    execArgv: launch.execArgv,
    mode: config.workerMode,
    slots: config.maxConcurrency,
    warm: config.workerWarm,
    maxJobsPerWorker: config.workerMaxJobs,
    maxMemoryMb: config.workerMaxMemoryMb,
    env: launch.env,
  });
  const gate = new ConcurrencyGate({
    slots: config.maxConcurrency,
    queueTimeoutMs: config.queueTimeoutSeconds * 1000,
  });
  const workspaces = new WorkspaceRegistry({ root: config.tmpDir, prefix: WORKSPACE_PREFIX });
  const metrics = createDocopsMetrics(metricsRegistry, {
    inflightJobs: () => gate.inUse,
    idleWorkers: () => pool.idleCount,
  });
  pool.on('kill', (reason: string) => metrics.workerKills.inc({ reason }));

  const context: DocopsContext = {
    config,
    logger,
    apiLogger: namedLogger(logger, 'docops.api'),
    skills,
    pool,
    gate,
    workspaces,
    metricsRegistry,
    metrics,
    ready: false,
    sofficePath: config.enablePdf
      ? findSoffice({
          ...process.env,
          ...(config.sofficePath ? { DOCOPS_SOFFICE_PATH: config.sofficePath } : {}),
        })
      : null,
  };

  const app = createHttpApp({
    logger,
    renderError: renderDocopsError,
    requestIdHeader: 'x-docops-request-id',
    httpMetrics: createHttpMetrics(metricsRegistry),
  });
  if (config.corsOrigins.length > 0) {
    await app.register(cors, {
      origin: config.corsOrigins,
      exposedHeaders: ['X-Docops-Exit-Code', 'X-Docops-Request-Id', 'Content-Disposition'],
    });
  }
  registerOperationalRoutes(app, context);
  registerRenderRoutes(app, context);
  await registerWebConsole(app, context);

  // Leftovers of a crashed process are swept now and every 10 minutes; live requests are never touched.
  const stopSweeper = workspaces.startSweeper({
    intervalMs: SWEEP_INTERVAL_MS,
    olderThanMs: (config.queueTimeoutSeconds + 2 * config.requestTimeoutSeconds) * 1000,
  });
  // Listen first so probes see 503 NOT_READY until the render processes are up.
  await app.listen({ host, port });
  await pool.start();
  context.ready = true;

  if (config.production && (config.enableWebConsole || config.enableMeta) && !config.webBasicAuth) {
    logger.warn(
      { web_console: config.enableWebConsole, meta: config.enableMeta },
      'debug endpoints /web or /v1/meta are enabled without DOCOPS_WEB_BASIC_AUTH; disable them or protect them',
    );
  }

  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      stopSweeper();
      context.ready = false;
      const graceMs = config.shutdownGraceSeconds * 1000;
      // Stop accepting; in-flight requests (and their jobs) finish within the grace.
      const appClosed = app.close();
      const timer = new Promise<void>((resolve) => setTimeout(resolve, graceMs).unref());
      await Promise.race([appClosed, timer]);
      await pool.close({ graceMs: 0 });
      await workspaces.removeAll();
    })();
    return closing;
  };
  return { app, context, close };
}
