// Batches over HTTP (spec §3.5): POST /api/batches evaluates a CSV upload against the active (or an uploaded)
// permit and stores the result; listing, re-reading and report export (HTML/PDF/CSV) of stored batches.
import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { alertsCsv, certificateHtml, certificatePdf } from '../domain/certificate.js';
import { PermitError, parsePermit } from '../domain/permit.js';
import type { StoredBatch } from '../domain/store.js';
import type { EvaluationMode, Permit } from '../domain/types.js';
import { runJob } from '../jobs/run-job.js';
import { fromStore, ParamReader, pageParams } from './api-params.js';
import type { OwscContext } from './context.js';
import { detailError, HttpError, validationError } from './conventions.js';
import { CLIENT_GONE, type CsvUpload, type CsvUploadReader, withCsvUpload } from './csv-upload.js';

const MODES: readonly EvaluationMode[] = ['latest', 'all'];
const REPORT_FORMATS = ['html', 'pdf', 'csv'] as const;
const BATCH_NOT_FOUND = 'batch not found';

function permitIssue(msg: string) {
  return validationError([{ loc: ['body', 'permit'], msg, type: 'value_error.permit' }]);
}

/** The permit of a multipart `permit` part, else the active one. */
function uploadedPermit(upload: CsvUpload, active: Permit): Permit {
  if (upload.permit === undefined || upload.permit.trim() === '') return active;
  let value: unknown;
  try {
    value = JSON.parse(upload.permit);
  } catch {
    throw permitIssue('permit is not valid JSON');
  }
  try {
    return parsePermit(value);
  } catch (error) {
    if (error instanceof PermitError) throw permitIssue(error.message);
    throw error;
  }
}

function countAlerts(context: OwscContext, batch: StoredBatch): void {
  const { metrics } = context;
  for (const alert of batch.alerts) {
    metrics.alerts.inc({
      source: 'batch',
      species: metrics.speciesLabel(alert.species),
      type: alert.type,
      level: alert.level,
    });
  }
}

async function createBatch(
  request: FastifyRequest,
  reply: FastifyReply,
  context: OwscContext,
  reader: CsvUploadReader,
): Promise<FastifyReply> {
  const { config, metrics, store } = context;
  try {
    const stored = await withCsvUpload(reader, request, reply, async (upload, signal) => {
      const fields = new ParamReader(upload.fields, upload.fieldLocation);
      const mode = fields.choice('mode', MODES, 'latest') as EvaluationMode;
      const site = fields.string('site');
      fields.done();
      const permit = uploadedPermit(upload, config.permit);
      const outcome = await runJob(
        context,
        {
          kind: 'evaluate',
          source: upload.source,
          permit,
          mode,
          nondetect: config.nondetect,
          limits: { maxBytes: config.maxCsvBytes, maxRows: config.maxCsvRows },
        },
        signal,
      );
      // A client that left during the evaluation gets nothing stored.
      if (signal.aborted) return null;
      const meta = {
        id: randomUUID(),
        created_at: new Date().toISOString(),
        filename: upload.filename,
        site: site ?? null,
        sha256: outcome.sha256,
      };
      return fromStore(store.saveBatch(meta, outcome.result));
    });
    if (stored === CLIENT_GONE || stored === null) {
      metrics.batches.inc({ outcome: 'failed' });
      return reply;
    }
    metrics.batches.inc({ outcome: 'stored' });
    metrics.csvRows.inc(stored.rows);
    countAlerts(context, stored);
    return reply
      .code(201)
      .header('location', `/api/batches/${stored.id}`)
      .type('application/json; charset=utf-8')
      .send(stored);
  } catch (error) {
    const status = error instanceof HttpError ? error.status : 500;
    metrics.batches.inc({ outcome: status < 500 ? 'rejected' : 'failed' });
    throw error;
  }
}

async function storedBatch(context: OwscContext, id: string): Promise<StoredBatch> {
  const batch = await fromStore(context.store.getBatch(id));
  if (batch === null) throw detailError(404, BATCH_NOT_FOUND);
  return batch;
}

async function batchReport(
  request: FastifyRequest,
  reply: FastifyReply,
  context: OwscContext,
): Promise<FastifyReply> {
  const query = new ParamReader(request.query as Record<string, unknown>, 'query');
  const format = query.choice('format', REPORT_FORMATS, 'html');
  const site = query.string('site');
  const period = query.string('period');
  query.done();
  const batch = await storedBatch(context, (request.params as { id: string }).id);
  const certificate = {
    alerts: batch.alerts,
    site: site ?? batch.site ?? 'Unknown site',
    ...(period !== undefined ? { period } : {}),
    generatedAt: new Date(),
    alertsSha256: batch.sha256,
    statistics: batch.statistics,
  };
  switch (format) {
    case 'pdf':
      return reply
        .type('application/pdf')
        .header('content-disposition', `attachment; filename="compliance-${batch.id}.pdf"`)
        .send(Buffer.from(await certificatePdf(certificate)));
    case 'csv':
      return reply
        .type('text/csv; charset=utf-8')
        .header('content-disposition', `attachment; filename="alerts-${batch.id}.csv"`)
        .send(alertsCsv(batch.alerts));
    default:
      return reply.type('text/html; charset=utf-8').send(certificateHtml(certificate));
  }
}

/** POST/GET /api/batches, GET /api/batches/:id, GET /api/batches/:id/report. */
export function registerBatchRoutes(
  app: FastifyInstance,
  context: OwscContext,
  reader: CsvUploadReader,
): void {
  void app.register(async (scope) => {
    // The upload is streamed by the route itself: Fastify must not buffer or parse the body.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', (_request, _payload, done) => done(null));
    scope.post('/api/batches', (request, reply) => createBatch(request, reply, context, reader));
  });

  app.get('/api/batches', async (request) => {
    const query = new ParamReader(request.query as Record<string, unknown>, 'query');
    const { limit, offset } = pageParams(query);
    query.done();
    return fromStore(context.store.listBatches(limit, offset));
  });

  app.get('/api/batches/:id', async (request) => storedBatch(context, (request.params as { id: string }).id));

  app.get('/api/batches/:id/report', (request, reply) => batchReport(request, reply, context));
}
