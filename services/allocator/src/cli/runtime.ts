// What every command shares: configuration from the environment and `.env`, a stderr logger for one-shot
// commands, and the exit-code discipline (a failure is one line on stderr, exit 1).
import { ConfigError } from '@quintet/kernel/config';
import { flushLogger, type Logger } from '@quintet/kernel/log';
import { type AllocatorConfig, loadConfig, loadEnvironment } from '../config.js';

/** A failure reported as its message on stderr (no stack), exit 1. */
export class CliFailure extends Error {
  override readonly name = 'CliFailure';
}

/** The configuration of the process environment over `.env`; ConfigError → CliFailure naming the variable. */
export function cliConfig(): AllocatorConfig {
  try {
    return loadConfig(loadEnvironment(process.env));
  } catch (error) {
    if (error instanceof ConfigError) throw new CliFailure(error.message);
    throw error;
  }
}

/** Logs of one-shot commands go to stderr (the service's line format), so their stdout stays clean for output. */
export async function commandLogger(config: AllocatorConfig): Promise<Logger> {
  const { createAllocatorLogger } = await import('../server.js');
  return createAllocatorLogger(
    { ...config, logLevel: config.logLevel === 'DEBUG' ? 'DEBUG' : 'WARNING' },
    process.stderr,
  );
}

/** The message for an embedded database held by a running server. */
export function isDataDirLocked(error: unknown): boolean {
  return error instanceof Error && /is already open in/.test(error.message);
}

/** Runs a command body; a failure prints one line on stderr and sets exit code 1. */
export async function runCommand(body: () => Promise<number | undefined>, logger?: Logger): Promise<void> {
  try {
    process.exitCode = (await body()) ?? 0;
  } catch (error) {
    const message =
      error instanceof CliFailure
        ? error.message
        : isDataDirLocked(error)
          ? 'the embedded database is in use by a running server; stop it first (or use DATABASE_URL)'
          : `error: ${error instanceof Error ? error.message : String(error)}`;
    process.stderr.write(`${message}\n`);
    process.exitCode = 1;
  } finally {
    if (logger !== undefined) await flushLogger(logger);
  }
}

export function say(text: string): void {
  process.stdout.write(`${text}\n`);
}
