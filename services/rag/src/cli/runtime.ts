// What the `rag-assistant` commands share: exit codes, the configuration (a bad variable stops the command with
// a message naming it), the logger, and opening the database with the embedded-lock message of spec §3.11.
import { join } from 'node:path';
import { ConfigError, type Env } from '@quintet/kernel/config';
import { createLogger, flushLogger, type Logger } from '@quintet/kernel/log';
import type { RagConfig } from '../config-types.js';
import type { RagDb } from '../domain/database.js';

export const ExitCode = { OK: 0, FAILURE: 1, USAGE: 2 } as const;
export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

/** A failure reported as its message on stderr (no stack) with an exit code. */
export class CliFailure extends Error {
  override readonly name = 'CliFailure';
  constructor(
    message: string,
    readonly exitCode: ExitCodeValue = ExitCode.FAILURE,
  ) {
    super(message);
  }
}

/** The configuration of `env` (default: the process environment); ConfigError → CliFailure naming the variable. */
export async function loadCliConfig(env: Env = process.env): Promise<RagConfig> {
  const { loadConfig } = await import('../config.js');
  try {
    return loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) throw new CliFailure(error.message);
    throw error;
  }
}

/**
 * A logger for one-shot commands: their stdout is the command's output, so log lines go to stderr, and only
 * warnings and errors unless LOG_LEVEL asks for more.
 */
export function createCommandLogger(config: Pick<RagConfig, 'logLevel'>, env: Env = process.env): Logger {
  const level = env.LOG_LEVEL === undefined ? 'warn' : config.logLevel;
  return createLogger({ name: 'rag-assistant', level, destination: process.stderr });
}

/** The spec's message when a running server holds the embedded database's directory lock. */
export function embeddedDatabaseInUseMessage(dataDir: string): string {
  return `The embedded database in ${dataDir} is in use by another process; stop the server first`;
}

/** True for the kernel's data-directory lock refusal (another live process has the PGlite directory open). */
export function isDataDirLocked(error: unknown): boolean {
  return error instanceof Error && /^The database directory .* is already open in /.test(error.message);
}

/** The embedded database's files (the directory the lock protects). */
export function pgliteDir(config: Pick<RagConfig, 'dataDir'>): string {
  return join(config.dataDir, 'pglite');
}

/**
 * Opens the configured database (migrations per RUN_MIGRATIONS). With the embedded database a server holding the
 * lock turns into the spec's message (exit 1).
 */
export async function openCliDatabase(
  config: RagConfig,
  logger: Logger,
  options: { runMigrations?: boolean } = {},
): Promise<RagDb> {
  const { openRagDatabase } = await import('../domain/database.js');
  try {
    return await openRagDatabase(
      options.runMigrations === undefined ? config : { ...config, runMigrations: options.runMigrations },
      logger,
    );
  } catch (error) {
    if (config.databaseUrl === undefined && isDataDirLocked(error))
      throw new CliFailure(embeddedDatabaseInUseMessage(config.dataDir));
    throw error;
  }
}

/** Runs `work` with the database open and always closes it. */
export async function withDatabase<T>(
  config: RagConfig,
  logger: Logger,
  work: (db: RagDb) => Promise<T>,
): Promise<T> {
  const db = await openCliDatabase(config, logger);
  try {
    return await work(db);
  } finally {
    await db.close();
  }
}

/**
 * Runs a command body: its result is the exit code (default 0); a CliFailure prints its message, any other error
 * `error: <message>`, on stderr, with exit 1. Log lines are flushed before the process exits.
 */
export async function runCommand(
  body: () => Promise<ExitCodeValue | undefined>,
  logger?: Logger,
): Promise<void> {
  try {
    process.exitCode = (await body()) ?? ExitCode.OK;
  } catch (error) {
    const failure =
      error instanceof CliFailure
        ? error
        : new CliFailure(`error: ${error instanceof Error ? error.message : String(error)}`);
    process.stderr.write(`${failure.message}\n`);
    process.exitCode = failure.exitCode;
  } finally {
    if (logger !== undefined) await flushLogger(logger);
  }
}

/** Writes one line to stdout. */
export function say(text: string): void {
  process.stdout.write(`${text}\n`);
}
