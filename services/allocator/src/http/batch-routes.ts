// Folder ingest routes (spec §3.13): start a folder ingest, follow one batch, list batches.
import type { FastifyInstance } from 'fastify';
import type { BatchStatus } from '../domain/database.js';
import {
  BATCH_STATUSES,
  batchStatusBody,
  FOLDER_DEFAULT_PRIORITY,
  type FolderRefusal,
  listBatches,
  startFolderIngest,
} from '../domain/folder-ingest.js';
import { callbackUrlProblem } from '../domain/webhooks.js';
import type { AllocatorRuntime } from '../runtime.js';
import { BodyReader, parseId, QueryReader, sendJson } from './conventions.js';
import { apiError, badRequest, notFound } from './errors.js';

const MAX_OWNER_LENGTH = 255;
const MAX_COMMENT_LENGTH = 10_000;
const MAX_FOLDER_PATH_LENGTH = 4096;
const DEFAULT_LIST_LIMIT = 20;
const MAX_LIST_LIMIT = 100;

function refusalError(refusal: FolderRefusal, folderPath: string) {
  switch (refusal) {
    case 'disabled':
      return apiError(403, 'forbidden', 'folder ingestion is disabled');
    case 'outside':
      return apiError(403, 'forbidden', 'folder_path is outside the allowed ingest root');
    case 'missing':
      return notFound(`Folder not found: ${folderPath}`);
    case 'not_directory':
      return badRequest(`Not a directory: ${folderPath}`);
    case 'no_supported_files':
      return badRequest('No supported files found in folder');
  }
}

export function registerBatchRoutes(app: FastifyInstance, runtime: AllocatorRuntime): void {
  const { config, metrics } = runtime;

  app.post('/api/v1/ingest/folder', async (request, reply) => {
    const started = performance.now();
    let outcome: 'success' | 'failure' = 'failure';
    try {
      const body = BodyReader.from(request);
      const folderPath = body.string('folder_path', { required: true, min: 1, max: MAX_FOLDER_PATH_LENGTH });
      const owner = body.string('owner', { max: MAX_OWNER_LENGTH });
      const userComment = body.string('user_comment', { max: MAX_COMMENT_LENGTH });
      const priority = body.int('priority', { min: -10, max: 10 });
      const callbackUrl = body.string('callback_url');
      if (callbackUrl !== undefined) {
        const problem = callbackUrlProblem(callbackUrl, config.webhookAllowedHosts);
        if (problem !== null) body.issue('callback_url', problem);
      }
      body.finish();
      const path = folderPath as string;
      const start = await startFolderIngest(runtime, {
        folderPath: path,
        owner: owner ?? null,
        userComment: userComment ?? null,
        priority: priority ?? FOLDER_DEFAULT_PRIORITY,
        callbackUrl: callbackUrl ?? null,
      });
      if (!start.ok) throw refusalError(start.refusal, path);
      outcome = 'success';
      return sendJson(reply, 202, {
        batch_id: start.batchId,
        status: 'accepted',
        message: `Folder ingestion started for ${start.stats.total_files} files`,
        status_url: `/api/v1/ingest/batch/${start.batchId}`,
        stats: start.stats,
      });
    } finally {
      metrics.ingestRequests.inc({ request_type: 'folder', status: outcome });
      metrics.ingestLatency.observe({ request_type: 'folder' }, (performance.now() - started) / 1000);
    }
  });

  app.get<{ Params: { id: string } }>('/api/v1/ingest/batch/:id', async (request, reply) => {
    const batchId = parseId(request.params.id, 'batch id');
    const body = await batchStatusBody(runtime, batchId);
    if (body === null) throw notFound(`Batch ${batchId} not found`);
    return sendJson(reply, 200, body);
  });

  app.get('/api/v1/ingest/batches', async (request, reply) => {
    const query = new QueryReader(request.query as Record<string, unknown>);
    const status = query.string('status');
    const owner = query.string('owner');
    const limit = query.int('limit', DEFAULT_LIST_LIMIT, 1, MAX_LIST_LIMIT);
    query.finish();
    const statusFilter = status === undefined || status === '' ? undefined : status;
    if (statusFilter !== undefined && !(BATCH_STATUSES as readonly string[]).includes(statusFilter))
      throw badRequest(`Invalid status '${statusFilter}': expected one of ${BATCH_STATUSES.join(', ')}`);
    const result = await listBatches(runtime, {
      ...(statusFilter === undefined ? {} : { status: statusFilter as BatchStatus }),
      ...(owner === undefined || owner === '' ? {} : { owner }),
      limit,
    });
    return sendJson(reply, 200, result);
  });
}
