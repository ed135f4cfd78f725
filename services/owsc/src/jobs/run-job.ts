// Where the routes' CPU-bound work runs (spec §2.3): every fit and statistics job, and evaluations of large CSVs,
// in the warm pool of child processes, so the event loop that serves HTTP and WebSockets stays responsive; small
// evaluations inline. Failures become the HTTP errors of spec §3.5/§7.2.
import { performance } from 'node:perf_hooks';
import { HttpError } from '@quintet/kernel/errors';
import { serialiseError } from '@quintet/kernel/worker-child';
import { JobAbortedError, JobFailedError, JobTimeoutError, PoolClosedError } from '@quintet/kernel/workers';
import { storageFailure } from '../http/api-params.js';
import type { OwscContext } from '../http/context.js';
import { detailError, validationError } from '../http/conventions.js';
import {
  type EvaluateOutcome,
  executeJob,
  type FitOutcome,
  type JobKind,
  type JobPayload,
  type StatisticsOutcome,
} from './job-child.js';

type OutcomeOf<K extends JobKind> = K extends 'evaluate'
  ? EvaluateOutcome
  : K extends 'fit'
    ? FitOutcome
    : StatisticsOutcome;

/** Evaluations of CSVs above these sizes go to the pool (spec §2.3: above 20,000 rows). */
export const POOL_MIN_BYTES = 512 * 1024;
export const POOL_MIN_ROWS = 20_000;

/** Counts line feeds: an upper bound of the data rows of an in-memory CSV. */
function lineCount(data: Uint8Array): number {
  let lines = 0;
  let index = data.indexOf(10);
  while (index !== -1) {
    lines++;
    index = data.indexOf(10, index + 1);
  }
  return lines;
}

/** Whether a job runs in the pool: fits and statistics always; evaluations of large CSVs. */
export function runsInPool(payload: JobPayload): boolean {
  if (payload.kind !== 'evaluate') return true;
  if ('path' in payload.source) return true;
  const data = payload.source.data;
  return data.length > POOL_MIN_BYTES || lineCount(data) > POOL_MIN_ROWS;
}

/** The job's error as plain data (`name`, `message` and the error's own fields), wherever it ran. */
function errorData(error: unknown): Record<string, unknown> {
  return error instanceof JobFailedError ? error.data : serialiseError(error);
}

interface CsvIssueData {
  line: number;
  column: string;
  reason: string;
}

/**
 * The HTTP error of a failed job (spec §3.5, §7.2): CSV problems 422 with line/column entries, CSV limits 413,
 * permit 422 at `["body","permit"]`, fit and statistics problems 422, timeout 504, disk full 507, pool closing 503.
 * JobAbortedError (the client left) passes through unchanged: there is nobody to answer.
 */
export function jobErrorToHttp(error: unknown): unknown {
  if (error instanceof HttpError || error instanceof JobAbortedError) return error;
  if (error instanceof JobTimeoutError) return detailError(504, 'processing timed out');
  if (error instanceof PoolClosedError) return detailError(503, 'service shutting down');
  const data = errorData(error);
  const message = typeof data.message === 'string' ? data.message : 'processing failed';
  switch (data.name) {
    case 'CsvError': {
      const issues = Array.isArray(data.issues) ? (data.issues as CsvIssueData[]) : [];
      return validationError(
        issues.map((issue) => ({
          loc: ['body', 'file'],
          msg: issue.reason,
          type: 'value_error.csv',
          line: issue.line,
          column: issue.column,
        })),
      );
    }
    case 'CsvLimitError':
      return detailError(413, message);
    case 'PermitError':
      return validationError([{ loc: ['body', 'permit'], msg: message, type: 'value_error.permit' }]);
    case 'FitError':
      return validationError([{ loc: ['body', 'file'], msg: message, type: 'value_error.fit' }]);
    case 'StatisticsError':
      return validationError([{ loc: ['body', 'file'], msg: message, type: 'value_error.statistics' }]);
  }
  // A full disk (reading or writing the temp file) is 507; other failures stay 500s.
  const storage = storageFailure(data);
  return storage === data ? error : storage;
}

/**
 * Runs a job in the pool or inline (see `runsInPool`), observes `owsc_job_duration_seconds{job}`, and turns
 * failures into HTTP errors (`jobErrorToHttp`). `signal` aborts a pooled job when the client disconnects.
 */
export async function runJob<P extends JobPayload>(
  context: Pick<OwscContext, 'jobs' | 'config' | 'metrics'>,
  payload: P,
  signal?: AbortSignal,
): Promise<OutcomeOf<P['kind']>> {
  const started = performance.now();
  try {
    if (runsInPool(payload)) {
      const run = await context.jobs.run<OutcomeOf<P['kind']>>(payload, {
        timeoutMs: context.config.jobTimeoutSeconds * 1000,
        ...(signal ? { signal } : {}),
      });
      return run.result;
    }
    return (await executeJob(payload)) as OutcomeOf<P['kind']>;
  } catch (error) {
    throw jobErrorToHttp(error);
  } finally {
    context.metrics.jobDuration.observe({ job: payload.kind }, (performance.now() - started) / 1000);
  }
}
