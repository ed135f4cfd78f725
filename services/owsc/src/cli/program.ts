// The `openworld-chem` program (spec §3.6): global options, the commands of cli/*.ts, and commander's own
// errors (unknown command or option, missing required option, bad value) as exit 2 with a usage line.
// Commands import their heavy modules (pdf-lib, ws, the HTTP server) only when they run.
import { type Command, CommanderError, Option, Command as Program } from 'commander';
import { serviceVersion } from '../version.js';
import { registerAdviseCommand } from './advise.js';
import { registerCertCommand } from './cert.js';
import { registerDashboardCommand } from './dashboard.js';
import { registerHealthcheckCommand } from './healthcheck.js';
import { registerLedgerCommands } from './ledger.js';
import { registerMonitorBatchCommand } from './monitor-batch.js';
import { ExitCode, writeStderr } from './output.js';
import { registerProcessChemistryCommand } from './process-chemistry.js';
import { registerSimulateStreamCommand } from './simulate-stream.js';
import { registerStatsCommand } from './stats.js';
import { registerVersionCommand } from './version.js';

const BIN = 'openworld-chem';

const program = new Program(BIN)
  .description('OpenWorld Specialty Chemicals: effluent compliance checks, reports and the live dashboard')
  // `-h` is `dashboard --host`, so help is `--help` only (inherited by every command).
  .helpOption('--help', 'show help')
  .version(serviceVersion(), '--version', 'print the version')
  .option('-v, --verbose', 'debug logs, stack traces on errors')
  .option('-q, --quiet', 'no human output on stderr (results still printed)')
  .addOption(
    new Option('--log-format <format>', 'log line format (overrides LOG_FORMAT)').choices(['text', 'json']),
  )
  .option('--dry-run', 'write no files, publish nothing, record no ledger entries; say what would be done')
  .option('--config <file>', 'configuration file: a JSON object or KEY=VALUE lines')
  .exitOverride()
  .configureOutput({ writeErr: writeStderr });

for (const register of [
  registerProcessChemistryCommand,
  registerMonitorBatchCommand,
  registerStatsCommand,
  registerSimulateStreamCommand,
  registerCertCommand,
  registerAdviseCommand,
  registerDashboardCommand,
  registerHealthcheckCommand,
  registerLedgerCommands,
  registerVersionCommand,
]) {
  register(program);
}

function commandPath(command: Command): string {
  const names: string[] = [];
  for (let current: Command | null = command; current; current = current.parent)
    names.unshift(current.name());
  return names.join(' ');
}

/** Every usage error names the command's usage and where the full help is. */
function withUsageOnError(command: Command): void {
  const path = commandPath(command);
  command.configureOutput({
    writeErr: writeStderr,
    outputError: (text, write) =>
      write(`${text.trimEnd()}\nusage: ${path} ${command.usage()}\n(run '${path} --help' for details)\n`),
  });
  for (const child of command.commands) withUsageOnError(child);
}
withUsageOnError(program);

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (!(error instanceof CommanderError)) throw error;
  // --help and --version exit 0; every other commander error is a usage error.
  process.exitCode = error.exitCode === 0 ? ExitCode.OK : ExitCode.USAGE;
}
