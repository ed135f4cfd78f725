// The job kinds of the warm pool (spec §2.3) and the pool's child entry: CSV evaluation, regulatory statistics
// and chemistry fits. The HTTP process runs small evaluations inline with the same `executeJob`, so an input
// gives the same answer (and the same error) wherever it is processed. Imports stay within the domain: a child
// starts with nothing of the HTTP stack loaded.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { pathToFileURL } from 'node:url';
import { serveJobs } from '@quintet/kernel/worker-child';
import { evaluateBatch } from '../domain/batch.js';
import { type FitRequest, fitChemistry } from '../domain/chemistry.js';
import { parseReadingsText } from '../domain/csv.js';
import { computeStatistics } from '../domain/statistics.js';
import type {
  BatchResult,
  ChemistryFit,
  EvaluationMode,
  NondetectPolicy,
  ParsedReadings,
  Permit,
  Statistics,
} from '../domain/types.js';

/** A CSV in memory (small uploads) or in a temp file (large ones, read by the job process). */
export type CsvSource = { data: Uint8Array } | { path: string };

export interface CsvLimits {
  maxBytes: number;
  maxRows: number;
}

interface CsvJob {
  source: CsvSource;
  nondetect: NondetectPolicy;
  limits: CsvLimits;
}

export type JobPayload =
  | (CsvJob & { kind: 'evaluate'; permit: Permit; mode: EvaluationMode })
  | (CsvJob & { kind: 'fit'; request: FitRequest })
  | (CsvJob & { kind: 'statistics'; permit: Permit });

export type JobKind = JobPayload['kind'];

/** Every result carries the digest of the input bytes and its data row count. */
export interface EvaluateOutcome {
  sha256: string;
  rows: number;
  result: BatchResult;
}
export interface FitOutcome {
  sha256: string;
  rows: number;
  fit: ChemistryFit;
}
export interface StatisticsOutcome {
  sha256: string;
  rows: number;
  statistics: Statistics;
}

async function loadCsv(job: CsvJob): Promise<{ sha256: string; parsed: ParsedReadings }> {
  const { source } = job;
  // Bytes that crossed the process channel arrive as a plain Uint8Array: view them as a Buffer, no copy.
  const bytes =
    'path' in source
      ? await readFile(source.path)
      : Buffer.from(source.data.buffer, source.data.byteOffset, source.data.byteLength);
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  const parsed = parseReadingsText(bytes, {
    maxBytes: job.limits.maxBytes,
    maxRows: job.limits.maxRows,
    nondetect: job.nondetect,
  });
  return { sha256, parsed };
}

/** Runs one job where it is called (in a pool child, or inline for small inputs). */
export async function executeJob(
  payload: JobPayload,
): Promise<EvaluateOutcome | FitOutcome | StatisticsOutcome> {
  const { sha256, parsed } = await loadCsv(payload);
  switch (payload.kind) {
    case 'evaluate':
      return { sha256, rows: parsed.rows, result: evaluateBatch(parsed, payload.permit, payload.mode) };
    case 'fit':
      return { sha256, rows: parsed.rows, fit: fitChemistry(parsed, payload.request) };
    case 'statistics':
      return { sha256, rows: parsed.rows, statistics: computeStatistics(parsed, payload.permit) };
  }
}

function isJobPayload(value: unknown): value is JobPayload {
  const kind = (value as { kind?: unknown } | null)?.kind;
  return kind === 'evaluate' || kind === 'fit' || kind === 'statistics';
}

/**
 * A small representative evaluation and fit run before the child reports ready: a fresh process would otherwise
 * pay for compiling the parser and the rule engine on the first real (large) job.
 */
async function warmUp(): Promise<void> {
  const lines = ['time,species,concentration'];
  for (let i = 0; i < 3000; i++) {
    const day = String(1 + (i % 28)).padStart(2, '0');
    lines.push(
      `2024-01-${day}T${String(i % 24).padStart(2, '0')}:00:00Z,${['SO4', 'As', 'Ni'][i % 3]},${(i % 97) + 0.5}`,
    );
  }
  const data = Buffer.from(`${lines.join('\n')}\n`);
  const limits = { maxBytes: data.length, maxRows: lines.length };
  const permit: Permit = {
    limits_mgL: { SO4: 250, As: 0.01, Ni: 0.1 },
    rolling_window: 3,
    actions: {},
    daily_max_limits_mgL: { SO4: 50 },
    monthly_average_limits_mgL: { SO4: 40 },
    timezone: 'UTC',
  };
  await executeJob({ kind: 'evaluate', source: { data }, permit, mode: 'all', nondetect: 'zero', limits });
  await executeJob({
    kind: 'fit',
    source: { data },
    request: { species: 'SO4', model: 'decay' },
    nondetect: 'zero',
    limits,
  });
}

// Started by the WorkerPool (compiled as dist/jobs/job-child.js): serve jobs. Imported by the HTTP process for
// inline runs: nothing more.
const entry = process.argv[1];
if (process.send !== undefined && entry !== undefined && import.meta.url === pathToFileURL(entry).href) {
  serveJobs(
    async (payload) => {
      if (!isJobPayload(payload)) throw new Error('unknown job');
      return executeJob(payload);
    },
    { warmUp },
  );
}
