// The `raven-zero` bin: `serve`, `sweep`, `check-config` and the client commands. Each command lives in src/cli/.
import { Command, CommanderError } from 'commander';
import { registerCheckConfigCommand } from './cli/check-config.js';
import { registerClientCommands } from './cli/client.js';
import { registerServeCommand } from './cli/serve.js';
import { registerSweepCommand } from './cli/sweep.js';
import { serviceVersion } from './version.js';

const program = new Command('raven-zero')
  .description('Raven Zero: ephemeral encrypted file sharing')
  .version(serviceVersion(), '--version')
  .exitOverride();

registerServeCommand(program);
registerSweepCommand(program);
registerCheckConfigCommand(program);
registerClientCommands(program);

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) {
    process.exitCode = error.exitCode === 0 ? 0 : 1;
  } else {
    process.stderr.write(`ERROR: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  }
}
