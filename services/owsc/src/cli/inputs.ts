// Reading the CLI's input files (spec §3.4, §3.6, §7.1): CSV readings with the configured limits, permits and
// alerts documents. Every failure becomes the CliError of its exit code: missing file 3, bad content 4.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import {
  CsvError,
  CsvLimitError,
  CsvReadingsParser,
  formatCsvIssue,
  MAX_REPORTED_ISSUES,
} from '../domain/csv.js';
import { PermitError, parsePermit } from '../domain/permit.js';
import type { ParsedReadings, Permit } from '../domain/types.js';
import type { RunContext } from './context.js';
import { CliError, ExitCode, fileSystemError } from './output.js';

const CHUNK_BYTES = 1 << 20;

function countLines(chunk: Buffer): number {
  let lines = 0;
  for (let index = chunk.indexOf(10); index !== -1; index = chunk.indexOf(10, index + 1)) lines++;
  return lines;
}

/** A CSV problem as the CLI prints it: one issue inline, several as `line <n>, column <name>: <reason>` lines. */
function csvFailure(path: string, error: CsvError): CliError {
  const issues = error.issues.slice(0, MAX_REPORTED_ISSUES).map(formatCsvIssue);
  if (issues.length === 1)
    return new CliError(`invalid CSV ${path}: ${issues[0]}`, ExitCode.VALIDATION, [], { cause: error });
  const more = error.issues.length > MAX_REPORTED_ISSUES ? ' (first 20 shown)' : '';
  return new CliError(
    `invalid CSV ${path}: ${error.issues.length} problems${more}`,
    ExitCode.VALIDATION,
    issues,
    {
      cause: error,
    },
  );
}

/**
 * Parses a readings CSV with OW_SC_MAX_CSV_BYTES/ROWS and OW_SC_NONDETECT. A file over the byte limit is
 * refused from its size; the parse is streamed in 1 MiB chunks, checking the job deadline after each one and
 * reporting progress (rows ≈ lines read) on long runs.
 */
export async function readReadings(context: RunContext, path: string): Promise<ParsedReadings> {
  return (await readReadingsWithDigest(context, path, false)).parsed;
}

/** readReadings plus the sha256 of the file's bytes, hashed in the same pass (lineage records need it). */
export async function readReadingsWithDigest(
  context: RunContext,
  path: string,
  digest = true,
): Promise<{ parsed: ParsedReadings; sha256: string }> {
  const config = await context.config();
  const options = { maxBytes: config.maxCsvBytes, maxRows: config.maxCsvRows, nondetect: config.nondetect };
  const progress = context.progress();
  await context.startJob();
  try {
    const info = await stat(path);
    if (info.isDirectory()) throw new CliError(`input file is a directory: ${path}`, ExitCode.VALIDATION);
    if (info.size > options.maxBytes) throw new CsvLimitError('bytes', options.maxBytes);
    const parser = new CsvReadingsParser(options);
    const hash = digest ? createHash('sha256') : null;
    let lines = 0;
    for await (const chunk of createReadStream(path, { highWaterMark: CHUNK_BYTES })) {
      parser.push(chunk as Buffer);
      hash?.update(chunk as Buffer);
      context.checkDeadline();
      if (context.verbose || process.stderr.isTTY) {
        lines += countLines(chunk as Buffer);
        progress.rows(lines);
      }
    }
    const parsed = parser.finish();
    context.checkDeadline();
    progress.done(parsed.rows);
    return { parsed, sha256: hash?.digest('hex') ?? '' };
  } catch (error) {
    if (error instanceof CsvError) throw csvFailure(path, error);
    if (error instanceof CsvLimitError) {
      throw new CliError(`${path}: ${error.message}`, ExitCode.VALIDATION, [], { cause: error });
    }
    throw fileSystemError(error, 'input file') ?? error;
  }
}

/** A file's bytes; a missing file is exit 3 naming its role. */
export async function readInputFile(path: string, what: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (error) {
    throw fileSystemError(error, what) ?? error;
  }
}

/** A JSON file's value; not JSON → exit 4. */
export async function readJsonFile(path: string, what: string): Promise<{ value: unknown; bytes: Buffer }> {
  const bytes = await readInputFile(path, what);
  try {
    return { value: JSON.parse(bytes.toString('utf8').replace(/^\uFEFF/, '')), bytes };
  } catch (error) {
    throw new CliError(
      `${what} ${path} is not valid JSON: ${(error as Error).message}`,
      ExitCode.VALIDATION,
      [],
      {
        cause: error,
      },
    );
  }
}

/**
 * The permit of `--permit PATH`, validated (exit 3 missing, 4 invalid naming the key), or the configured one
 * (OW_SC_PERMIT_FILE, else the default permit) when no path is given.
 */
export async function readPermit(context: RunContext, path: string | undefined): Promise<Permit> {
  if (path === undefined) return (await context.config()).permit;
  const { value } = await readJsonFile(path, 'permit file');
  try {
    return parsePermit(value);
  } catch (error) {
    if (error instanceof PermitError) {
      throw new CliError(`invalid permit ${path}: ${error.message}`, ExitCode.VALIDATION, [], {
        cause: error,
      });
    }
    throw error;
  }
}

/**
 * An alerts document (a list of alert objects, or an object with an `alerts` list) and the sha256 of the file.
 * Missing → exit 3; not JSON or not such a document → exit 4.
 */
export async function readAlerts(
  path: string,
): Promise<{ alerts: Record<string, unknown>[]; sha256: string }> {
  const { value, bytes } = await readJsonFile(path, 'alerts file');
  const { parseAlertsDocument } = await import('../domain/certificate.js');
  try {
    return { alerts: parseAlertsDocument(value), sha256: createHash('sha256').update(bytes).digest('hex') };
  } catch (error) {
    throw new CliError(`invalid alerts file ${path}: ${(error as Error).message}`, ExitCode.VALIDATION, [], {
      cause: error,
    });
  }
}
