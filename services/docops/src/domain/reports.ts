// Output files (§3.6): compact UTF-8 JSON with recursively sorted keys, every file written atomically, and
// the CLI's exit-1 fallback reports.
import { randomBytes } from 'node:crypto';
import { copyFile, open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { MissingFields, UnsupportedMode } from './types.js';

export const OUTPUT_FILES = {
  docx: 'out.docx',
  replaceLog: 'out.replace_log.json',
  missingFields: 'out.missing_fields.json',
  formatReport: 'out.format_report.json',
  suggestedPolicy: 'out.suggested_policy.yaml',
  pdf: 'out.pdf',
  debug: 'out.debug.json',
} as const;

function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function sortKeysDeep(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeysDeep);
  if (value !== null && typeof value === 'object') {
    const source = value as Record<string, unknown>;
    const sorted: Record<string, unknown> = {};
    for (const key of Object.keys(source).sort(compareKeys)) {
      const item = source[key];
      if (item !== undefined) sorted[key] = sortKeysDeep(item);
    }
    return sorted;
  }
  return value;
}

/** Compact JSON with object keys sorted recursively (code-unit order). */
export function stableJson(value: unknown): string {
  return JSON.stringify(sortKeysDeep(value));
}

function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
}

/**
 * Writes `data` to a temp file in the target's directory and renames it over `path`: readers (and a run that is
 * interrupted) see the old file or the new one, never half of one. Outputs are artifacts a run can recreate,
 * so they are not fsynced (that would cost milliseconds per file on every render).
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const temp = tempPathFor(path);
  try {
    const handle = await open(temp, 'wx', 0o644);
    try {
      await handle.writeFile(data);
    } finally {
      await handle.close();
    }
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}

/** Atomic write through a temp file that `produce(tempPath)` fills (for writers that want a path). */
export async function writeViaTemp(
  path: string,
  produce: (tempPath: string) => Promise<void>,
): Promise<void> {
  const temp = tempPathFor(path);
  try {
    await produce(temp);
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}

export async function copyFileAtomic(source: string, path: string): Promise<void> {
  await writeViaTemp(path, (temp) => copyFile(source, temp));
}

export async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  await writeFileAtomic(path, stableJson(value));
}

export interface ReplaceSummary {
  total_placeholders: number;
  replaced_count: number;
  missing_count: number;
  had_unsupported: boolean;
  unsupported_count: number;
  unsupported_mode: UnsupportedMode;
}

export interface FallbackError {
  error_type: string;
  error_message: string;
  stage: string;
  docx_write_error: boolean;
}

/** The three reports of a run that failed before a render output existed (§3.6, CLI exit 1). */
export function fallbackReports(
  error: FallbackError,
  unsupportedMode: UnsupportedMode = 'error',
): { replaceLog: unknown; missingFields: unknown; formatReport: unknown } {
  const summary: ReplaceSummary = {
    total_placeholders: 0,
    replaced_count: 0,
    missing_count: 0,
    had_unsupported: false,
    unsupported_count: 0,
    unsupported_mode: unsupportedMode,
  };
  const missing: MissingFields = { missing_required: [], missing_optional: [], unknown: [] };
  return {
    replaceLog: { entries: [], summary, touched_runs: [], template_run_styles: {}, error },
    missingFields: { ...missing, error },
    formatReport: { passed: false, error_count: 1, fixed_count: 0, issues: [], summary: null, error },
  };
}

/**
 * Writes the fallback reports into `outDir` and removes a stale `out.docx` (a failed run has none).
 * Returns the names written; write failures are swallowed (the run already failed and says why).
 */
export async function writeFallbackReports(
  outDir: string,
  error: FallbackError,
  unsupportedMode: UnsupportedMode = 'error',
): Promise<string[]> {
  const reports = fallbackReports(error, unsupportedMode);
  const written: string[] = [];
  const targets: [string, unknown][] = [
    [OUTPUT_FILES.replaceLog, reports.replaceLog],
    [OUTPUT_FILES.missingFields, reports.missingFields],
    [OUTPUT_FILES.formatReport, reports.formatReport],
  ];
  await rm(join(outDir, OUTPUT_FILES.docx), { force: true }).catch(() => undefined);
  for (const [name, value] of targets) {
    try {
      await writeJsonAtomic(join(outDir, name), value);
      written.push(name);
    } catch {
      // best effort: the directory may be the reason the run failed
    }
  }
  return written;
}

/**
 * Where the small text reports of a run go. The CLI writes each into the output directory atomically; a
 * render process keeps them in memory and hands them to the HTTP process with its result, which saves a round
 * of file writes and reads per request.
 */
export interface ReportSink {
  write(name: string, text: string): Promise<void>;
}

/** Reports written atomically into `outDir`. */
export function fileReportSink(outDir: string): ReportSink {
  return { write: (name, text) => writeFileAtomic(join(outDir, name), text) };
}

/** Reports kept in memory, by file name. */
export class MemoryReportSink implements ReportSink {
  readonly texts: Record<string, string> = {};
  async write(name: string, text: string): Promise<void> {
    this.texts[name] = text;
  }
}
