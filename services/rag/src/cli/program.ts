// The `rag-assistant` program (spec §2.1, §3.11): the commands of cli/*.ts; commander's own errors (unknown
// command or option, missing argument, bad value) exit 2 with a usage line. Commands load their heavy modules
// (the server, the database, the pipeline) only when they run.
import { CommanderError, Command as Program } from 'commander';
import { serviceVersion } from '../version.js';
import { registerAdminCommands } from './admin.js';
import { registerMaintenanceCommands } from './maintenance.js';
import { registerOperatorCommands } from './operator.js';
import { ExitCode } from './runtime.js';
import { registerServeCommands } from './serve.js';

const EXIT_CODES_HELP = `
Exit codes:
  0  success (create-first-admin: also when the user already exists)
  1  failure: invalid configuration, production rules violated, database unavailable or in use by a running
     server, eval below its thresholds, worker without REDIS_URL
  2  usage error: unknown command or option, missing argument, invalid value;
     create-first-admin with a password that breaks the policy ("Invalid password: <message>")

Normal output goes to stdout, errors to stderr. With the embedded database, commands that open it take an
exclusive lock on DATA_DIR and exit 1 while a server holds it.`;

const program = new Program('rag-assistant')
  .description('RAG Assistant: document question answering with citations, budgets and admin')
  .version(serviceVersion(), '--version', 'print the version')
  .addHelpText('after', EXIT_CODES_HELP)
  .showHelpAfterError('(run with --help for usage)')
  .exitOverride();

registerServeCommands(program);
registerMaintenanceCommands(program);
registerAdminCommands(program);
registerOperatorCommands(program);

for (const command of program.commands) command.exitOverride();

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (!(error instanceof CommanderError)) throw error;
  // --help and --version exit 0; every other commander error is a usage error.
  process.exitCode = error.exitCode === 0 ? ExitCode.OK : ExitCode.USAGE;
}
