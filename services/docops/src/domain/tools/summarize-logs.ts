// `docops summarize-logs` (§3.7.6): aggregates the service's JSON-lines logs into outcome and status counts
// and queue-wait / total-time percentiles.
import { createReadStream } from 'node:fs';

export interface LogSummary {
  /** the FILE arguments, in order */
  files: string[];
  /** every line of every readable file, blank ones included */
  lines_total: number;
  /** lines that are not a JSON object, plus unreadable files */
  parse_errors: number;
  outcome_counts: Record<string, number>;
  http_status_counts: Record<string, number>;
  queue_wait_ms_p50: number | null;
  queue_wait_ms_p95: number | null;
  total_ms_p50: number | null;
  total_ms_p95: number | null;
}

/**
 * Nearest-rank percentile of ascending-sorted values: the value at index
 * `min(n − 1, max(0, ceil(p/100 · n) − 1))`, or null when there are none.
 */
export function nearestRankPercentile(sorted: readonly number[], p: number): number | null {
  const n = sorted.length;
  if (n === 0) return null;
  // p·n first, then /100: exact for integral p, where (p/100)·n can land a hair above an integer.
  const index = Math.min(n - 1, Math.max(0, Math.ceil((p * n) / 100) - 1));
  return sorted[index] ?? null;
}

/** Accumulates log lines; `finish()` gives the summary. */
export class LogSummarizer {
  private linesTotal = 0;
  private parseErrors = 0;
  private readonly outcomes = new Map<string, number>();
  private readonly statuses = new Map<string, number>();
  private readonly queueWaits: number[] = [];
  private readonly totals: number[] = [];

  /** One line without its terminating newline (a trailing `\r` is tolerated). */
  addLine(line: string): void {
    this.linesTotal += 1;
    if (line.trim() === '') return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      this.parseErrors += 1;
      return;
    }
    if (!isObject(parsed)) {
      this.parseErrors += 1;
      return;
    }
    this.addRecord(parsed);
  }

  /** An unreadable file counts as one parse error. */
  addUnreadableFile(): void {
    this.parseErrors += 1;
  }

  finish(files: readonly string[]): LogSummary {
    const queue = sortedInts(this.queueWaits);
    const totals = sortedInts(this.totals);
    return {
      files: [...files],
      lines_total: this.linesTotal,
      parse_errors: this.parseErrors,
      outcome_counts: sortedRecord(this.outcomes),
      http_status_counts: sortedRecord(this.statuses),
      queue_wait_ms_p50: nearestRankPercentile(queue, 50),
      queue_wait_ms_p95: nearestRankPercentile(queue, 95),
      total_ms_p50: nearestRankPercentile(totals, 50),
      total_ms_p95: nearestRankPercentile(totals, 95),
    };
  }

  private addRecord(record: Record<string, unknown>): void {
    if (typeof record.outcome === 'string') increment(this.outcomes, record.outcome);
    const status = statusValue(record.http_status) ?? statusValue(record.status_code);
    if (status !== null) increment(this.statuses, status);
    if (isFiniteNumber(record.queue_wait_ms)) this.queueWaits.push(Math.trunc(record.queue_wait_ms));
    const timing = record.timing;
    if (isObject(timing) && isFiniteNumber(timing.total_ms)) this.totals.push(Math.trunc(timing.total_ms));
  }
}

/** Summarizes log text held in memory (the same line rules as the file reader). */
export function summarizeLogText(text: string, files: readonly string[] = []): LogSummary {
  const summarizer = new LogSummarizer();
  const splitter = new LineSplitter((line) => summarizer.addLine(line));
  splitter.push(text);
  splitter.end();
  return summarizer.finish(files);
}

/** Reads each file as a stream (logs can be large); unreadable files count as parse errors. */
export async function summarizeLogFiles(files: readonly string[]): Promise<LogSummary> {
  const summarizer = new LogSummarizer();
  for (const file of files) {
    const splitter = new LineSplitter((line) => summarizer.addLine(line));
    try {
      for await (const chunk of createReadStream(file, { encoding: 'utf8' })) splitter.push(chunk as string);
      splitter.end();
    } catch {
      // The lines read before the failure (if any) are kept; the file adds one parse error.
      splitter.end();
      summarizer.addUnreadableFile();
    }
  }
  return summarizer.finish(files);
}

/** Human-readable form of a summary (the CLI without `--json`). */
export function formatLogSummaryText(summary: LogSummary): string {
  const lines = [
    `files: ${summary.files.join(', ')}`,
    `lines_total: ${summary.lines_total}`,
    `parse_errors: ${summary.parse_errors}`,
    'outcome_counts:',
    ...countLines(summary.outcome_counts),
    'http_status_counts:',
    ...countLines(summary.http_status_counts),
    `queue_wait_ms: p50=${show(summary.queue_wait_ms_p50)} p95=${show(summary.queue_wait_ms_p95)}`,
    `total_ms: p50=${show(summary.total_ms_p50)} p95=${show(summary.total_ms_p95)}`,
  ];
  return `${lines.join('\n')}\n`;
}

/**
 * JSON text with 2-space indentation that keeps every object's key order as built — including
 * integer-like keys such as HTTP statuses, which `JSON.stringify` would reorder numerically.
 */
export function toOrderedJson(value: unknown, indent = '  ', level = 0): string {
  if (value instanceof Map) return orderedObject([...value.entries()], indent, level);
  if (Array.isArray(value)) {
    if (value.length === 0) return '[]';
    const pad = indent.repeat(level + 1);
    const items = value.map((item) => `${pad}${toOrderedJson(item, indent, level + 1)}`);
    return `[\n${items.join(',\n')}\n${indent.repeat(level)}]`;
  }
  if (isObject(value)) return orderedObject(Object.entries(value), indent, level);
  return JSON.stringify(value) ?? 'null';
}

/** A count map as a `Map` in code-unit key order, for `toOrderedJson`. */
export function sortedCountMap(record: Record<string, number>): Map<string, number> {
  return new Map(
    Object.keys(record)
      .sort(compareCodeUnits)
      .map((key) => [key, record[key] ?? 0]),
  );
}

/** The summary as JSON: fields in the documented order, count maps with sorted keys. */
export function logSummaryToJson(summary: LogSummary): string {
  return toOrderedJson({
    ...summary,
    outcome_counts: sortedCountMap(summary.outcome_counts),
    http_status_counts: sortedCountMap(summary.http_status_counts),
  });
}

function orderedObject(entries: [unknown, unknown][], indent: string, level: number): string {
  if (entries.length === 0) return '{}';
  const pad = indent.repeat(level + 1);
  const items = entries.map(
    ([key, item]) => `${pad}${JSON.stringify(String(key))}: ${toOrderedJson(item, indent, level + 1)}`,
  );
  return `{\n${items.join(',\n')}\n${indent.repeat(level)}}`;
}

/** Splits streamed text into lines at `\n`; a final newline ends the last line and adds no empty one. */
class LineSplitter {
  private rest = '';
  constructor(private readonly onLine: (line: string) => void) {}

  push(chunk: string): void {
    const parts = (this.rest + chunk).split('\n');
    this.rest = parts.pop() ?? '';
    for (const part of parts) this.onLine(stripCarriageReturn(part));
  }

  end(): void {
    if (this.rest !== '') this.onLine(stripCarriageReturn(this.rest));
    this.rest = '';
  }
}

function stripCarriageReturn(line: string): string {
  return line.endsWith('\r') ? line.slice(0, -1) : line;
}

function statusValue(value: unknown): string | null {
  if (typeof value === 'string') return value;
  if (isFiniteNumber(value)) return String(value);
  return null;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isFiniteNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

function increment(counts: Map<string, number>, key: string): void {
  counts.set(key, (counts.get(key) ?? 0) + 1);
}

function sortedInts(values: number[]): number[] {
  return [...values].sort((a, b) => a - b);
}

function compareCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function sortedRecord(counts: Map<string, number>): Record<string, number> {
  const record: Record<string, number> = {};
  for (const key of [...counts.keys()].sort(compareCodeUnits)) record[key] = counts.get(key) ?? 0;
  return record;
}

function countLines(counts: Record<string, number>): string[] {
  const keys = Object.keys(counts).sort(compareCodeUnits);
  if (keys.length === 0) return ['  (none)'];
  return keys.map((key) => `  ${key}: ${counts[key]}`);
}

function show(value: number | null): string {
  return value === null ? '-' : String(value);
}
