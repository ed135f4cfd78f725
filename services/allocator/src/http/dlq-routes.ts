// Dead-letter queue routes (spec §3.14): list, show, requeue and discard dead-lettered jobs.
import type { FastifyInstance } from 'fastify';
import { discardDeadLetter, getDeadLetter, listDeadLetters, requeueDeadLetter } from '../domain/dlq.js';
import { JOB_TYPES } from '../domain/metrics.js';
import type { AllocatorRuntime } from '../runtime.js';
import { parseId, QueryReader, sendJson } from './conventions.js';
import { badRequest, notFound } from './errors.js';

const DEFAULT_LIMIT = 100;
const MAX_LIMIT = 1000;

type Params = { job_id: string };

function notDeadLettered(jobId: string) {
  return notFound(`Job ${jobId} is not in the dead-letter queue`);
}

export function registerDlqRoutes(app: FastifyInstance, runtime: AllocatorRuntime): void {
  app.get('/api/v1/admin/dlq', async (request, reply) => {
    const query = new QueryReader(request.query as Record<string, unknown>);
    const jobType = query.string('job_type');
    const limit = query.int('limit', DEFAULT_LIMIT, 1, MAX_LIMIT);
    query.finish();
    const filter = jobType === undefined || jobType === '' ? undefined : jobType;
    if (filter !== undefined && !(JOB_TYPES as readonly string[]).includes(filter))
      throw badRequest(`Invalid job_type '${filter}': expected one of ${JOB_TYPES.join(', ')}`);
    const result = await listDeadLetters(runtime, {
      ...(filter === undefined ? {} : { jobType: filter }),
      limit,
    });
    return sendJson(reply, 200, result);
  });

  app.get<{ Params: Params }>('/api/v1/admin/dlq/:job_id', async (request, reply) => {
    const jobId = parseId(request.params.job_id, 'job id');
    const entry = await getDeadLetter(runtime, jobId);
    if (entry === null) throw notDeadLettered(jobId);
    return sendJson(reply, 200, entry);
  });

  app.post<{ Params: Params }>('/api/v1/admin/dlq/:job_id/requeue', async (request, reply) => {
    const jobId = parseId(request.params.job_id, 'job id');
    if (!(await requeueDeadLetter(runtime, jobId))) throw notDeadLettered(jobId);
    return sendJson(reply, 202, {
      job_id: jobId,
      status: 'queued',
      message: `Job ${jobId} requeued for processing`,
    });
  });

  app.delete<{ Params: Params }>('/api/v1/admin/dlq/:job_id', async (request, reply) => {
    const jobId = parseId(request.params.job_id, 'job id');
    if (!(await discardDeadLetter(runtime, jobId))) throw notDeadLettered(jobId);
    return sendJson(reply, 200, { job_id: jobId, status: 'discarded' });
  });
}
