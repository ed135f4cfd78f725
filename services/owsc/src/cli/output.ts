// What every `openworld-chem` command shares (spec §3.6, §3.11): exit codes, the one-line error report,
// atomic output files, the CLI log writer and the progress line. Kept free of heavy imports: it is loaded on
// every run, and whole-command wall time (start-up included) is a performance target (spec §6).
import { randomBytes } from 'node:crypto';
import { mkdir, rename, unlink, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** Process exit codes of the CLI (spec §3.6). */
export const ExitCode = {
  OK: 0,
  GENERIC: 1,
  USAGE: 2,
  NOT_FOUND: 3,
  VALIDATION: 4,
  NETWORK: 5,
  PERMISSION: 6,
  TIMEOUT: 7,
  DEPENDENCY_MISSING: 8,
  COMPLIANCE: 9,
} as const;
export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

/**
 * A failure the CLI reports as `error: <message>` with an exit code; `details` are printed on the lines after
 * it (CSV issues, one per line).
 */
export class CliError extends Error {
  override readonly name = 'CliError';
  constructor(
    message: string,
    readonly exitCode: ExitCodeValue,
    readonly details: readonly string[] = [],
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

function errnoCode(error: unknown): string | undefined {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

function errnoPath(error: unknown): string | undefined {
  const path = (error as NodeJS.ErrnoException | null)?.path;
  return typeof path === 'string' ? path : undefined;
}

/**
 * The CliError of a file-system failure (ENOSPC, EACCES, ENOENT, …), or null for other errors. `what` names
 * the file's role for a missing file ("input file", "permit file").
 */
export function fileSystemError(error: unknown, what = 'file'): CliError | null {
  const code = errnoCode(error);
  const path = errnoPath(error);
  const target = path === undefined ? '' : `: ${path}`;
  switch (code) {
    case 'ENOSPC':
    case 'EDQUOT':
      return new CliError('no space left on device', ExitCode.GENERIC, [], { cause: error });
    case 'EACCES':
    case 'EPERM':
    case 'EROFS':
      return new CliError(`permission denied${target}`, ExitCode.PERMISSION, [], { cause: error });
    case 'ENOENT':
      return new CliError(`${what} not found${target}`, ExitCode.NOT_FOUND, [], { cause: error });
    case 'EISDIR':
      return new CliError(`${what} is a directory${target}`, ExitCode.VALIDATION, [], { cause: error });
    case 'ENOTDIR':
      return new CliError(`not a directory${target}`, ExitCode.NOT_FOUND, [], { cause: error });
    default:
      return null;
  }
}

/** Any thrown value as a CliError (unknown errors exit 1). */
export function asCliError(error: unknown): CliError {
  if (error instanceof CliError) return error;
  const fromFileSystem = fileSystemError(error);
  if (fromFileSystem) return fromFileSystem;
  const message = error instanceof Error ? error.message : String(error);
  return new CliError(message, ExitCode.GENERIC, [], { cause: error });
}

function oneLine(text: string): string {
  return text.replace(/[\r\n]+/g, ' ').trim();
}

/** Prints `error: <message>` (and its detail lines) on stderr; the stack only with --verbose. */
export function printError(error: CliError, verbose: boolean, write = writeStderr): void {
  let text = `error: ${oneLine(error.message)}\n`;
  for (const detail of error.details) text += `${oneLine(detail)}\n`;
  if (verbose) {
    const origin = error.cause instanceof Error ? error.cause : error;
    if (origin.stack) text += `${origin.stack}\n`;
  }
  write(text);
}

export function writeStderr(text: string): void {
  process.stderr.write(text);
}

/**
 * Writes a file atomically: a temp file in the same directory (so the rename never crosses file systems), then
 * rename. Parent directories are created. On failure the temp file is removed and the previous file, if any,
 * is left as it was.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const directory = dirname(path);
  await mkdir(directory, { recursive: true });
  const temp = join(directory, `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    await writeFile(temp, data, { flag: 'wx' });
    await rename(temp, path);
  } catch (error) {
    await unlink(temp).catch(() => {});
    throw error;
  }
}

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error';
export type LogFormat = 'json' | 'text';
const LEVEL_VALUES: Record<LogLevel | 'silent', number> = {
  trace: 10,
  debug: 20,
  info: 30,
  warn: 40,
  error: 50,
  silent: Number.POSITIVE_INFINITY,
};

export interface CliLoggerSettings {
  level: LogLevel | 'silent';
  format: LogFormat;
  /** 8 hex characters, one per run */
  corrId: string;
  instanceId: string;
  write?: (line: string) => void;
}

function textValue(value: unknown): string {
  if (typeof value === 'string') return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
  return JSON.stringify(value) ?? String(value);
}

/** `--log-format text`: `<time> <LEVEL> <msg> key=value …` (strings with spaces or quotes JSON-quoted). */
export function textLogLine(
  time: string,
  level: string,
  msg: string,
  fields: Record<string, unknown>,
): string {
  let line = `${time} ${level.toUpperCase().padEnd(5)} ${msg}`;
  for (const [key, value] of Object.entries(fields)) {
    if (value !== undefined) line += ` ${key}=${textValue(value)}`;
  }
  return `${line}\n`;
}

/**
 * The one-shot commands' logger: one line per event on stderr with `time` (ISO), `level` (label), `msg`,
 * `service`, `instance_id`, `corr_id` and `event` (spec §3.11). A few lines per run, written synchronously, so
 * it does not need pino's start-up cost or an asynchronous flush before exit.
 */
export class CliLogger {
  private threshold: number;
  private format: LogFormat;
  private readonly write: (line: string) => void;

  constructor(private readonly settings: CliLoggerSettings) {
    this.threshold = LEVEL_VALUES[settings.level];
    this.format = settings.format;
    this.write = settings.write ?? writeStderr;
  }

  get corrId(): string {
    return this.settings.corrId;
  }

  configure(level: LogLevel | 'silent', format: LogFormat): void {
    this.threshold = LEVEL_VALUES[level];
    this.format = format;
  }

  enabled(level: LogLevel): boolean {
    return LEVEL_VALUES[level] >= this.threshold;
  }

  trace(event: string, msg: string, fields?: Record<string, unknown>): void {
    this.log('trace', event, msg, fields);
  }
  debug(event: string, msg: string, fields?: Record<string, unknown>): void {
    this.log('debug', event, msg, fields);
  }
  info(event: string, msg: string, fields?: Record<string, unknown>): void {
    this.log('info', event, msg, fields);
  }
  warn(event: string, msg: string, fields?: Record<string, unknown>): void {
    this.log('warn', event, msg, fields);
  }
  error(event: string, msg: string, fields?: Record<string, unknown>): void {
    this.log('error', event, msg, fields);
  }

  /** Writes a line from a pino-shaped record (`level` number or label, `msg`, fields) at its own level. */
  record(record: Record<string, unknown>): void {
    const { level, msg, time: _time, event, ...fields } = record;
    const label =
      typeof level === 'number'
        ? ((Object.entries(LEVEL_VALUES).find(([, value]) => value === level)?.[0] as LogLevel) ?? 'info')
        : (level as LogLevel);
    this.log(label, typeof event === 'string' ? event : 'log', typeof msg === 'string' ? msg : '', fields);
  }

  log(level: LogLevel, event: string, msg: string, fields: Record<string, unknown> = {}): void {
    if (!this.enabled(level)) return;
    const time = new Date().toISOString();
    if (this.format === 'text') {
      this.write(textLogLine(time, level, msg, { event, corr_id: this.settings.corrId, ...fields }));
      return;
    }
    this.write(
      `${JSON.stringify({
        time,
        level,
        msg,
        service: 'owsc',
        instance_id: this.settings.instanceId,
        corr_id: this.settings.corrId,
        event,
        ...fields,
      })}\n`,
    );
  }
}

/**
 * The "rows parsed" line of long runs: at most four lines a second, on stderr, only when asked for (a TTY or
 * --verbose, never --quiet; the caller decides).
 */
export class ProgressLine {
  private lastAt = 0;
  private shown = false;

  constructor(
    private readonly enabled: boolean,
    private readonly write = writeStderr,
    private readonly intervalMs = 250,
  ) {}

  rows(count: number): void {
    if (!this.enabled) return;
    const now = Date.now();
    if (now - this.lastAt < this.intervalMs) return;
    if (this.lastAt === 0) {
      // The first call starts the clock: a short run prints nothing.
      this.lastAt = now;
      return;
    }
    this.lastAt = now;
    this.shown = true;
    this.write(`parsed ${count} rows\n`);
  }

  done(count: number): void {
    if (this.shown) this.write(`parsed ${count} rows (done)\n`);
  }
}
