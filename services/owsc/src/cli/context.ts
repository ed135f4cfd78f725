// One CLI run (spec §3.6, §3.11, §3.12): the global options, the effective configuration (loaded on demand,
// flags > environment > --config file > .env > defaults), the run's logger and correlation id, the job
// deadline, and the wrapper that turns a command's outcome into an exit code.
import { randomBytes } from 'node:crypto';
import type { Command } from 'commander';
import type { OwscConfig } from '../config.js';
import {
  asCliError,
  CliError,
  CliLogger,
  ExitCode,
  type ExitCodeValue,
  type LogFormat,
  type LogLevel,
  ProgressLine,
  printError,
} from './output.js';

/** The options accepted before the command (spec §3.6). */
export interface GlobalOptions {
  verbose?: boolean;
  quiet?: boolean;
  logFormat?: LogFormat;
  dryRun?: boolean;
  config?: string;
}

type Env = Record<string, string | undefined>;

function lenientLevel(raw: string | undefined): LogLevel {
  const word = (raw ?? '').trim().toLowerCase();
  if (word === 'warning') return 'warn';
  if (word === 'critical') return 'error';
  return word === 'trace' || word === 'debug' || word === 'warn' || word === 'error' ? word : 'info';
}

function lenientFormat(raw: string | undefined): LogFormat {
  return raw?.trim().toLowerCase() === 'text' ? 'text' : 'json';
}

export class RunContext {
  readonly corrId = randomBytes(4).toString('hex');
  readonly instanceId = randomBytes(8).toString('hex');
  readonly logger: CliLogger;
  readonly verbose: boolean;
  readonly quiet: boolean;
  readonly dryRun: boolean;
  private loaded: { env: Env; config: OwscConfig } | undefined;
  private deadline = Number.POSITIVE_INFINITY;
  private watchdog: NodeJS.Timeout | undefined;

  constructor(
    readonly globals: GlobalOptions,
    readonly commandName: string,
  ) {
    this.verbose = globals.verbose === true;
    this.quiet = globals.quiet === true;
    this.dryRun = globals.dryRun === true;
    // Until the configuration is loaded, LOG_LEVEL/LOG_FORMAT are read leniently (loadConfig checks them).
    this.logger = new CliLogger({
      level: this.levelFor(lenientLevel(process.env.LOG_LEVEL)),
      format: globals.logFormat ?? lenientFormat(process.env.LOG_FORMAT),
      corrId: this.corrId,
      instanceId: this.instanceId,
    });
  }

  private levelFor(configured: LogLevel): LogLevel | 'silent' {
    if (this.quiet) return 'silent';
    if (this.verbose) return configured === 'trace' ? 'trace' : 'debug';
    return configured;
  }

  /**
   * The effective environment and configuration, validated once. A missing --config file exits 3, an invalid
   * one or an invalid variable exits 4 (`configuration error: <VARIABLE>: <reason>`).
   */
  async load(overrides: Env = {}): Promise<{ env: Env; config: OwscConfig }> {
    if (this.loaded) return this.loaded;
    const { effectiveEnvironment, loadConfig } = await import('../config.js');
    const env: Env = { ...effectiveEnvironment(process.env, this.globals.config), ...overrides };
    if (this.globals.logFormat !== undefined) env.LOG_FORMAT = this.globals.logFormat;
    const config = loadConfig(env);
    this.logger.configure(this.levelFor(config.logLevel), config.logFormat);
    this.loaded = { env, config };
    return this.loaded;
  }

  async config(): Promise<OwscConfig> {
    return (await this.load()).config;
  }

  /**
   * Starts the job clock (OW_SC_JOB_TIMEOUT_S) when the input starts being read. The CLI computes in this
   * process (a one-shot command has no job pool to kill), so the limit is enforced cooperatively: synchronous
   * steps call checkDeadline between chunks and between steps, and a watchdog timer covers waits on slow input
   * (it can only fire while the process waits). Either way the run exits 7.
   */
  async startJob(): Promise<void> {
    if (this.watchdog !== undefined) return;
    const { jobTimeoutSeconds } = await this.config();
    this.deadline = Date.now() + jobTimeoutSeconds * 1000;
    this.watchdog = setTimeout(() => {
      printError(this.timeoutError(), this.verbose);
      process.exit(ExitCode.TIMEOUT);
    }, jobTimeoutSeconds * 1000);
    this.watchdog.unref();
  }

  /** The computation is over: outputs, ledgers and publishing are not cut short by the job timeout. */
  finishJob(): void {
    clearTimeout(this.watchdog);
    this.deadline = Number.POSITIVE_INFINITY;
  }

  checkDeadline(): void {
    if (Date.now() > this.deadline) throw this.timeoutError();
  }

  /** After the last computing step: exit 7 if it overran the deadline, else stop the clock. */
  completeJob(): void {
    this.checkDeadline();
    this.finishJob();
  }

  private timeoutError(): CliError {
    const seconds = this.loaded?.config.jobTimeoutSeconds ?? 0;
    return new CliError(`processing timed out after ${seconds} s (OW_SC_JOB_TIMEOUT_S)`, ExitCode.TIMEOUT);
  }

  /** Human diagnostics on stderr (never with --quiet). */
  note(text: string): void {
    if (!this.quiet) process.stderr.write(`${text}\n`);
  }

  /** What --dry-run would have done, on stderr. */
  wouldDo(action: string): void {
    this.note(`dry run: would ${action}`);
  }

  /** The rows-parsed line: shown when stderr is a terminal or with --verbose, never with --quiet. */
  progress(): ProgressLine {
    return new ProgressLine(!this.quiet && (this.verbose || process.stderr.isTTY === true));
  }

  stdout(text: string): void {
    process.stdout.write(text);
  }
}

/** Commander options of a command plus the global ones (commander merges them). */
export function globalOptions(command: Command): GlobalOptions {
  return command.optsWithGlobals() as GlobalOptions;
}

/**
 * Runs a command body with its RunContext and sets the process exit code: the body's own code (0 or 9), or
 * the failure's, after printing `error: <message>`.
 */
export async function runCommand(
  command: Command,
  body: (context: RunContext) => Promise<ExitCodeValue | undefined>,
): Promise<void> {
  const context = new RunContext(globalOptions(command), command.name());
  try {
    process.exitCode = (await body(context)) ?? ExitCode.OK;
  } catch (error) {
    const failure = describeFailure(error);
    context.logger.debug('command_failed', failure.message, {
      command: command.name(),
      exit_code: failure.exitCode,
    });
    printError(failure, context.verbose);
    process.exitCode = failure.exitCode;
  }
}

interface NamedErrorShape {
  name?: unknown;
  message?: unknown;
  issues?: unknown;
  missing?: unknown;
}

/**
 * Maps the errors of the domain and configuration modules (recognised by name, so that this file does not load
 * them) and file-system errors to exit codes (spec §3.6).
 */
export function describeFailure(error: unknown): CliError {
  if (error instanceof CliError) return error;
  const shape = (error ?? {}) as NamedErrorShape;
  const message = typeof shape.message === 'string' ? shape.message : String(error);
  switch (shape.name) {
    case 'ConfigError':
      return new CliError(`configuration error: ${message}`, ExitCode.VALIDATION, [], { cause: error });
    case 'ConfigFileError':
      return new CliError(message, shape.missing === true ? ExitCode.NOT_FOUND : ExitCode.VALIDATION, [], {
        cause: error,
      });
    case 'CsvError': {
      const issues = Array.isArray(shape.issues)
        ? (shape.issues as { line: number; column: string; reason: string }[])
        : [];
      return new CliError(
        message,
        ExitCode.VALIDATION,
        issues.slice(0, 20).map((issue) => `line ${issue.line}, column ${issue.column}: ${issue.reason}`),
        { cause: error },
      );
    }
    case 'CsvLimitError':
    case 'PermitError':
    case 'FitError':
    case 'StatisticsError':
      return new CliError(message, ExitCode.VALIDATION, [], { cause: error });
  }
  return asCliError(error);
}
