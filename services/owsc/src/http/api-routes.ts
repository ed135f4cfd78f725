// The /api routes of spec §3.5 beyond status, health, streams and permit — advice, batches and reports,
// chemistry fits, alerts and incidents — plus /openapi.json and /docs.
import type { FastifyInstance } from 'fastify';
import { registerAdviceRoutes } from './advice-routes.js';
import { registerApiDocs } from './api-docs.js';
import { registerBatchRoutes } from './batch-routes.js';
import { registerChemistryRoutes } from './chemistry-routes.js';
import type { OwscContext } from './context.js';
import { CsvUploadReader, UPLOAD_WORKSPACE_PREFIX } from './csv-upload.js';
import { registerIncidentRoutes } from './incident-routes.js';

/** Upload workspaces older than this are left over from a crash (no request lives that long). */
const STALE_UPLOAD_MS = 60 * 60 * 1000;
const SWEEP_INTERVAL_MS = 10 * 60 * 1000;

export { UPLOAD_WORKSPACE_PREFIX };

/** Registers the routes; call after the conventions (hooks, JSON parser, error handler) are in place. */
export function registerApiRoutes(app: FastifyInstance, context: OwscContext): void {
  const { config } = context;
  const reader = new CsvUploadReader(config.tmpDir, {
    maxCsvBytes: config.maxCsvBytes,
    maxJsonBytes: config.maxJsonBytes,
  });
  // Workspaces of a process that crashed mid-upload (spec §7.2); this process's own are never touched while in
  // flight. A single process owns the directory alone and clears it all at start-up; cluster workers share it
  // and leave each other's recent workspaces alone.
  if (config.workers === 1) {
    reader.workspaces
      .sweep({ olderThanMs: 0 })
      .catch((error: unknown) => context.logger.warn({ err: error }, 'upload sweep failed'));
  }
  const stopSweeper = reader.workspaces.startSweeper({
    intervalMs: SWEEP_INTERVAL_MS,
    olderThanMs: Math.max(STALE_UPLOAD_MS, 2 * config.jobTimeoutSeconds * 1000),
    onSweep: (removed) => context.logger.info({ removed: removed.length }, 'stale upload files removed'),
    onError: (error) => context.logger.warn({ err: error }, 'upload sweep failed'),
  });
  app.addHook('onClose', async () => {
    stopSweeper();
    await reader.workspaces.removeAll();
  });

  registerAdviceRoutes(app, context);
  registerBatchRoutes(app, context, reader);
  registerChemistryRoutes(app, context, reader);
  registerIncidentRoutes(app, context);
  registerApiDocs(app);
}
