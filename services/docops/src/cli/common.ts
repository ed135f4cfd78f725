import { Command, CommanderError } from 'commander';

/** Raised for bad command-line use: printed as `ERROR: <message>` on stderr, exit code 1 (never 2). */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/**
 * A subcommand wired for the DocOps conventions: commander's own errors (unknown option, missing value)
 * become `ERROR: ...` with exit 1 instead of commander's exit code.
 */
export function newCommand(name: string): Command {
  const command = new Command(name);
  command
    .exitOverride()
    .configureOutput({
      writeErr: (text) => process.stderr.write(text),
      outputError: (text, write) => write(`ERROR: ${text.replace(/^error: /i, '')}`),
    })
    .showHelpAfterError(false);
  return command;
}

/** Runs an action body: a UsageError prints `ERROR: ...` and exits 1; any other error too, without stack. */
export async function runAction(body: () => Promise<number | undefined> | number | undefined): Promise<void> {
  try {
    const code = await body();
    process.exitCode = code ?? 0;
  } catch (error) {
    if (error instanceof CommanderError) throw error;
    const message = error instanceof Error ? error.message : String(error);
    process.stderr.write(`ERROR: ${message}\n`);
    process.exitCode = 1;
  }
}
