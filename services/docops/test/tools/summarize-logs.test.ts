import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  logSummaryToJson,
  nearestRankPercentile,
  summarizeLogFiles,
  summarizeLogText,
} from '../../src/domain/tools/summarize-logs.js';

const BIN = fileURLToPath(new URL('../../bin/docops.js', import.meta.url));
// The bin runs the compiled CLI (`tsc -b` first).
const DIST_COMMAND = fileURLToPath(new URL('../../dist/cli/summarize-logs.js', import.meta.url));

// Ten lines, with a final newline: two bad lines (not JSON, not an object) and two blank ones.
const API_LOG = [
  '{"logger":"docops.api","event":"done","outcome":"ok","http_status":200,"queue_wait_ms":3,"timing":{"total_ms":12.9}}',
  '',
  'this is not json',
  '{"logger":"docops.api","event":"error","outcome":"timeout","status_code":408,"queue_wait_ms":0.7}',
  '[1, 2, 3]',
  '{"outcome":"ok","http_status":200,"status_code":500,"timing":{"total_ms":40}}',
  '   ',
  '{"outcome":"rate_limited","http_status":"429","queue_wait_ms":"5","timing":{"total_ms":"9"}}',
  '{"msg":"server listening"}',
  '{"outcome":"missing_required","http_status":200,"queue_wait_ms":10,"timing":{"total_ms":7}}',
].join('\n');

// Two lines, no final newline; the second is cut off.
const SECOND_LOG = '{"outcome":"ok","http_status":200,"timing":{"total_ms":100}}\r\n{"outcome":"ok","http_st';

let dir: string;
let apiLog: string;
let secondLog: string;
let missingLog: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'docops-summarize-'));
  apiLog = join(dir, 'api.log');
  secondLog = join(dir, 'second.log');
  missingLog = join(dir, 'missing.log');
  await writeFile(apiLog, `${API_LOG}\n`);
  await writeFile(secondLog, SECOND_LOG);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const EXPECTED_COUNTS = {
  lines_total: 12,
  // "this is not json", "[1, 2, 3]", the cut-off line, the missing file
  parse_errors: 4,
  outcome_counts: { missing_required: 1, ok: 3, rate_limited: 1, timeout: 1 },
  // http_status wins over status_code; a string status counts under its own text
  http_status_counts: { '200': 4, '408': 1, '429': 1 },
  // queue values [0, 3, 10] (0.7 truncated; the string "5" ignored)
  queue_wait_ms_p50: 3,
  queue_wait_ms_p95: 10,
  // total values [7, 12, 40, 100] (12.9 truncated; the string "9" ignored)
  total_ms_p50: 12,
  total_ms_p95: 100,
};

describe('nearestRankPercentile', () => {
  it('picks the value at min(n-1, max(0, ceil(p/100*n) - 1))', () => {
    const twenty = Array.from({ length: 20 }, (_, i) => i + 1);
    expect(nearestRankPercentile(twenty, 95)).toBe(19);
    expect(nearestRankPercentile(twenty, 50)).toBe(10);
    expect(nearestRankPercentile(twenty, 100)).toBe(20);
    expect(nearestRankPercentile(twenty, 0)).toBe(1);
    const hundred = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(nearestRankPercentile(hundred, 95)).toBe(95);
    expect(nearestRankPercentile([7], 95)).toBe(7);
    expect(nearestRankPercentile([], 50)).toBeNull();
  });
});

describe('summarizeLogText line rules', () => {
  it('counts every line; a final newline adds no empty line', () => {
    expect(summarizeLogText('').lines_total).toBe(0);
    expect(summarizeLogText('\n').lines_total).toBe(1);
    expect(summarizeLogText('{"a":1}').lines_total).toBe(1);
    expect(summarizeLogText('{"a":1}\n').lines_total).toBe(1);
    expect(summarizeLogText('{"a":1}\n\n').lines_total).toBe(2);
    expect(summarizeLogText('{"a":1}\r\n\r\n{"b":2}').lines_total).toBe(3);
  });

  it('skips blank lines and counts non-objects as parse errors', () => {
    const summary = summarizeLogText('\n  \n"text"\nnull\n42\n{}\n{bad\n');
    expect(summary.lines_total).toBe(7);
    expect(summary.parse_errors).toBe(4);
    expect(summary.outcome_counts).toEqual({});
    expect(summary.queue_wait_ms_p50).toBeNull();
    expect(summary.total_ms_p95).toBeNull();
  });
});

describe('summarizeLogFiles', () => {
  it('gives exact counts and percentiles over the fixture files', async () => {
    const summary = await summarizeLogFiles([apiLog, secondLog, missingLog]);
    expect(summary).toEqual({ files: [apiLog, secondLog, missingLog], ...EXPECTED_COUNTS });
  });

  it('counts a directory given as a file as one parse error', async () => {
    const sub = join(dir, 'a-directory');
    await mkdir(sub, { recursive: true });
    const summary = await summarizeLogFiles([sub]);
    expect(summary.parse_errors).toBe(1);
    expect(summary.lines_total).toBe(0);
  });

  it('serializes count maps with sorted keys and fields in the documented order', async () => {
    const summary = await summarizeLogFiles([apiLog]);
    const json = logSummaryToJson({ ...summary, http_status_counts: { '99': 1, '200': 2 } });
    expect(Object.keys(JSON.parse(json))).toEqual([
      'files',
      'lines_total',
      'parse_errors',
      'outcome_counts',
      'http_status_counts',
      'queue_wait_ms_p50',
      'queue_wait_ms_p95',
      'total_ms_p50',
      'total_ms_p95',
    ]);
    // code-unit order ("200" < "99"), which JSON.stringify would not keep for integer-like keys
    expect(json.indexOf('"200"')).toBeLessThan(json.indexOf('"99"'));
    expect(json.indexOf('"missing_required"')).toBeLessThan(json.indexOf('"timeout"'));
  });
});

describe.skipIf(!existsSync(DIST_COMMAND))('docops summarize-logs (compiled bin)', () => {
  it('prints the JSON summary and exits 0', () => {
    const result = spawnSync(
      process.execPath,
      [BIN, 'summarize-logs', '--json', apiLog, secondLog, missingLog],
      {
        encoding: 'utf8',
      },
    );
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual({ files: [apiLog, secondLog, missingLog], ...EXPECTED_COUNTS });
  });

  it('prints a readable summary without --json', () => {
    const result = spawnSync(process.execPath, [BIN, 'summarize-logs', apiLog], { encoding: 'utf8' });
    expect(result.status).toBe(0);
    expect(result.stdout).toContain('lines_total: 10');
    expect(result.stdout).toContain('parse_errors: 2');
    expect(result.stdout).toContain('  ok: 2');
    expect(result.stdout).toContain('queue_wait_ms: p50=3 p95=10');
  });

  it('needs at least one file: ERROR and exit 1', () => {
    const result = spawnSync(process.execPath, [BIN, 'summarize-logs', '--json'], { encoding: 'utf8' });
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/^ERROR: /);
  });
});
