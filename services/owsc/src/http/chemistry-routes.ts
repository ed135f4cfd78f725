// POST /api/chemistry/fit (spec §3.5): the body forms, limits and errors of POST /api/batches; the fit of spec
// §3.6 runs in the job pool.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { type FitModel, type FitRequest, fitOptionsProblem } from '../domain/chemistry.js';
import { runJob } from '../jobs/run-job.js';
import { ParamReader } from './api-params.js';
import type { OwscContext } from './context.js';
import { CLIENT_GONE, type CsvUploadReader, withCsvUpload } from './csv-upload.js';

const MODELS: readonly FitModel[] = ['decay', 'sorption'];
/** Species names are at most 64 characters (spec §3.4). */
const MAX_SPECIES_CHARS = 64;

/** The fit request of the fields, or every problem as a 422. */
function fitRequest(fields: ParamReader, location: 'body' | 'query'): FitRequest {
  const species = fields.requiredString('species', MAX_SPECIES_CHARS);
  const model = fields.choice('model', MODELS, 'decay') as FitModel;
  const volumeL = fields.positiveNumber('volume_l');
  const solidsKg = fields.positiveNumber('solids_kg');
  const request: FitRequest = {
    species: species ?? '',
    model,
    ...(volumeL !== undefined ? { volumeL } : {}),
    ...(solidsKg !== undefined ? { solidsKg } : {}),
  };
  if (fields.issues.length === 0) {
    const problem = fitOptionsProblem(request);
    if (problem !== null) {
      // Name the field to fix: the missing half of the pair, else the model they do not apply to.
      const name = volumeL === undefined ? 'volume_l' : solidsKg === undefined ? 'solids_kg' : 'model';
      fields.issues.push({ loc: [location, name], msg: problem, type: 'value_error' });
    }
  }
  fields.done();
  return request;
}

async function fit(
  request: FastifyRequest,
  reply: FastifyReply,
  context: OwscContext,
  reader: CsvUploadReader,
): Promise<FastifyReply> {
  const { config, metrics } = context;
  const outcome = await withCsvUpload(reader, request, reply, (upload, signal) => {
    const fields = new ParamReader(upload.fields, upload.fieldLocation);
    return runJob(
      context,
      {
        kind: 'fit',
        source: upload.source,
        request: fitRequest(fields, upload.fieldLocation),
        nondetect: config.nondetect,
        limits: { maxBytes: config.maxCsvBytes, maxRows: config.maxCsvRows },
      },
      signal,
    );
  });
  if (outcome === CLIENT_GONE) return reply;
  metrics.csvRows.inc(outcome.rows);
  return reply.type('application/json; charset=utf-8').send(outcome.fit);
}

/** POST /api/chemistry/fit. */
export function registerChemistryRoutes(
  app: FastifyInstance,
  context: OwscContext,
  reader: CsvUploadReader,
): void {
  void app.register(async (scope) => {
    // The upload is streamed by the route itself: Fastify must not buffer or parse the body.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', (_request, _payload, done) => done(null));
    scope.post('/api/chemistry/fit', (request, reply) => fit(request, reply, context, reader));
  });
}
