// The batch result (spec §3.2): one object for `monitor-batch` and `POST /api/batches`.
import { ReadingTable, readingTables } from './csv.js';
import { limitFor } from './permit.js';
import { evaluateTable } from './rules.js';
import { computeStatistics } from './statistics.js';
import type {
  BatchResult,
  EvaluationMode,
  ParsedReadings,
  Permit,
  Reading,
  SpeciesSummary,
} from './types.js';

interface SummaryAccumulator {
  n: number;
  min: number;
  max: number;
  sum: number;
  last: number;
  lastT: number;
  lastRow: number;
  limit: number | null;
  exceedances: number;
  nondetects: number;
}

/**
 * Per species (every species of the readings, limited or not; flow rows are not readings): count, min/max/mean
 * of the substituted values, the latest reading by time (ties: the later row), and counts of readings above the
 * limit (non-detects excluded) and of non-detects. Keys sorted.
 */
export function summariseTable(table: ReadingTable, permit: Permit): Record<string, SpeciesSummary> {
  const accumulators = table.species.map(
    (species): SummaryAccumulator => ({
      n: 0,
      min: Number.POSITIVE_INFINITY,
      max: Number.NEGATIVE_INFINITY,
      sum: 0,
      last: 0,
      lastT: Number.NEGATIVE_INFINITY,
      lastRow: 0,
      limit: limitFor(permit, species) ?? null,
      exceedances: 0,
      nondetects: 0,
    }),
  );
  for (let i = 0; i < table.length; i++) {
    const acc = accumulators[table.speciesIndex[i] as number] as SummaryAccumulator;
    const value = table.value[i] as number;
    const t = table.t[i] as number;
    acc.n++;
    acc.sum += value;
    if (value < acc.min) acc.min = value;
    if (value > acc.max) acc.max = value;
    if (t >= acc.lastT) {
      acc.lastT = t;
      acc.last = value;
      acc.lastRow = i;
    }
    if (table.nondetect[i] === 1) acc.nondetects++;
    else if (acc.limit !== null && (table.concentration[i] as number) > acc.limit) acc.exceedances++;
  }
  const summary: Record<string, SpeciesSummary> = {};
  const order = table.species
    .map((species, id) => ({ species, id }))
    .sort((a, b) => compareStrings(a.species, b.species));
  for (const { species, id } of order) {
    const acc = accumulators[id] as SummaryAccumulator;
    const entry: SpeciesSummary = {
      n: acc.n,
      min: acc.min,
      max: acc.max,
      mean: acc.sum / acc.n,
      last: acc.last,
      last_time: table.time(acc.lastRow),
      limit: acc.limit,
      exceedances: acc.exceedances,
      nondetects: acc.nondetects,
    };
    Object.defineProperty(summary, species, {
      value: entry,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return summary;
}

/** The per-species summary of readings (see `summariseTable`). */
export function summarise(readings: readonly Reading[], permit: Permit): Record<string, SpeciesSummary> {
  return summariseTable(ReadingTable.fromReadings(readings), permit);
}

function compareStrings(a: string, b: string): number {
  if (a === b) return 0;
  return a < b ? -1 : 1;
}

/**
 * Evaluates parsed readings into the batch result: instantaneous alerts (§3.2) followed by the statistic
 * alerts (§3.3, ISO times only; `statistics` is null for numeric times).
 */
export function evaluateBatch(parsed: ParsedReadings, permit: Permit, mode: EvaluationMode): BatchResult {
  const table = readingTables(parsed).readings;
  const instantaneous = evaluateTable(table, permit, mode);
  const statistics = parsed.time_kind === 'iso' ? computeStatistics(parsed, permit) : null;
  const alerts = statistics === null ? instantaneous : [...instantaneous, ...statistics.alerts];
  const summary = summariseTable(table, permit);
  return {
    count: alerts.length,
    alerts,
    compliant: alerts.length === 0,
    mode,
    format: parsed.format,
    rows: parsed.rows,
    readings: table.length,
    species: Object.keys(summary),
    time_kind: parsed.time_kind,
    permit,
    summary,
    statistics,
  };
}
